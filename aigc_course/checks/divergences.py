"""Self-checks for lesson 01 (divergences, maximum likelihood).

Each ``check_*`` runs the student's function on a few cases against the package reference and, when the
answer is wrong, recognises the typical mistakes (swapped arguments, wrong sign, missing ½, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .. import divergences as ref
from ._core import Case, Mistake, check_function

__all__ = ["check_discrete_kl", "check_kl_to_standard_normal", "check_js_divergence", "check_gaussian_mle"]


def _probs(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows if len(rows) > 1 else rows[0], dtype=torch.float64)


# --------------------------------------------------------------------------- Exercise 1.1

def _naive_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return (p * torch.log(p / q)).sum(-1)  # 0 · log 0 = 0 · (−inf) = NaN


_KL_CASES = [
    Case((_probs([0.5, 0.3, 0.2]), _probs([0.2, 0.5, 0.3])), label="3 outcomes, no zeros"),
    Case((_probs([0.1, 0.6, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]),
          _probs([0.4, 0.3, 0.2, 0.1], [0.7, 0.1, 0.1, 0.1])), label="batch of 2 pairs, shape (2, 4)"),
    Case((_probs([0.0, 0.5, 0.5]), _probs([0.2, 0.4, 0.4])), label="p has a zero: 0·log 0 counts as 0"),
    Case((_probs([0.5, 0.5, 0.0]), _probs([0.0, 0.5, 0.5])), label="q = 0 where p > 0: KL is +inf"),
]

_KL_MISTAKES = [
    Mistake("you computed KL(q‖p): the arguments are swapped. KL(p‖q) averages log(p/q) under p, "
            "so the weights in front of the log are p.", lambda p, q: ref.kl_divergence(q, p)),
    Mistake("your result has the wrong sign: you wrote log(q/p) instead of log(p/q). "
            "KL is never negative (Gibbs' inequality).", lambda p, q: -ref.kl_divergence(p, q)),
    Mistake("you got NaN where p has a zero entry: 0·log(0/q) evaluates to 0·(−inf) = NaN in floating point, "
            "but its limit is 0. Mask those terms (torch.where(p > 0, ..., 0)) or use torch.xlogy.",
            _naive_kl),
    Mistake("you used log base 2 (bits); the course measures information in nats (natural log).",
            lambda p, q: ref.kl_divergence(p, q) / math.log(2)),
    Mistake("you averaged over the outcomes instead of summing: KL = Σ_k p_k log(p_k/q_k), reduced over the "
            "last dim.", lambda p, q: ref.kl_divergence(p, q) / p.shape[-1]),
]


def check_discrete_kl(student_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 1.1: ``kl(p, q)`` for probability tensors (..., K) → (...), with 0·log 0 = 0."""
    check_function("Exercise 1.1 (discrete KL)", student_fn, ref.kl_divergence, _KL_CASES, _KL_MISTAKES)


# --------------------------------------------------------------------------- Exercise 1.2

def _kl_std_normal_terms(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return logvar.exp() + mu**2 - 1.0 - logvar  # 2 × per-dimension KL


_GKL_CASES = [
    Case((torch.tensor([[0.5, -1.0, 0.0]], dtype=torch.float64),
          torch.tensor([[0.3, -0.7, 1.2]], dtype=torch.float64)), label="one row, D = 3"),
    Case((torch.tensor([[0.0, 0.0], [1.0, -2.0], [0.2, 0.4]], dtype=torch.float64),
          torch.tensor([[0.0, 0.0], [-1.0, 0.5], [2.0, -0.3]], dtype=torch.float64)),
         label="batch of 3, D = 2 (first row is the prior itself: KL 0)"),
]

_GKL_MISTAKES = [
    Mistake("you are missing the factor ½ in front of the sum: KL = ½ Σ_d (σ² + μ² − 1 − log σ²).",
            lambda mu, lv: _kl_std_normal_terms(mu, lv).sum(-1)),
    Mistake("you used the standard deviation σ = exp(logvar/2) where the variance σ² = exp(logvar) belongs; "
            "the input is the log-*variance*.",
            lambda mu, lv: 0.5 * ((0.5 * lv).exp() + mu**2 - 1.0 - 0.5 * lv).sum(-1)),
    Mistake("the log-variance term has the wrong sign: it is −log σ² (so the KL grows when σ → 0), "
            "i.e. ½ Σ (exp(logvar) + μ² − 1 − logvar).",
            lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1.0 + lv).sum(-1)),
    Mistake("you averaged over the latent dimensions; the KL of a diagonal Gaussian is the *sum* of the "
            "per-dimension KLs (use .sum(dim=-1)).",
            lambda mu, lv: 0.5 * _kl_std_normal_terms(mu, lv).mean(-1)),
    Mistake("you forgot the −1 inside the sum (it makes the KL exactly 0 when μ = 0, σ = 1).",
            lambda mu, lv: 0.5 * (lv.exp() + mu**2 - lv).sum(-1)),
    Mistake("the KL has the wrong sign overall; it must be ≥ 0.",
            lambda mu, lv: -ref.gaussian_kl(mu, lv)),
]


def check_kl_to_standard_normal(student_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 1.2: ``kl(mu, logvar)`` = KL(N(μ, diag e^logvar) ‖ N(0, I)), shapes (B, D) → (B,)."""
    check_function("Exercise 1.2 (Gaussian KL to N(0, I))", student_fn, ref.gaussian_kl, _GKL_CASES,
                   _GKL_MISTAKES)


# --------------------------------------------------------------------------- Exercise 1.3

_JS_CASES = [
    Case((_probs([0.5, 0.3, 0.2]), _probs([0.1, 0.3, 0.6])), label="3 outcomes, no zeros"),
    Case((_probs([0.7, 0.2, 0.1], [0.25, 0.25, 0.5]), _probs([0.2, 0.2, 0.6], [0.1, 0.8, 0.1])),
         label="batch of 2 pairs"),
    Case((_probs([0.5, 0.5, 0.0, 0.0]), _probs([0.0, 0.0, 0.4, 0.6])), label="disjoint supports: JS = log 2"),
]

_JS_MISTAKES = [
    Mistake("you symmetrised the KL, ½[KL(p‖q) + KL(q‖p)], instead of comparing each distribution with the "
            "mixture m = (p + q)/2: JS = ½ KL(p‖m) + ½ KL(q‖m).",
            lambda p, q: 0.5 * (ref.kl_divergence(p, q) + ref.kl_divergence(q, p))),
    Mistake("you computed KL(p‖q) + KL(q‖p) (the Jeffreys divergence); JS compares p and q with their "
            "mixture m = (p + q)/2.", lambda p, q: ref.kl_divergence(p, q) + ref.kl_divergence(q, p)),
    Mistake("you forgot the ½ weights: JS = ½ KL(p‖m) + ½ KL(q‖m), bounded by log 2.",
            lambda p, q: 2 * ref.js_divergence(p, q)),
    Mistake("your mixture is m = p + q, which is not a probability vector; use m = (p + q)/2.",
            lambda p, q: ref.js_divergence(p, q) - math.log(2)),
    Mistake("you used only one half, KL(p‖m) (or ½ of it); JS is symmetric: ½ KL(p‖m) + ½ KL(q‖m).",
            lambda p, q: ref.kl_divergence(p, 0.5 * (p + q))),
    Mistake("you used only one half, ½ KL(p‖m); add the other half ½ KL(q‖m).",
            lambda p, q: 0.5 * ref.kl_divergence(p, 0.5 * (p + q))),
]


def check_js_divergence(student_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 1.3: ``js(p, q)`` for probability tensors (..., K) → (...)."""
    check_function("Exercise 1.3 (Jensen–Shannon divergence)", student_fn, ref.js_divergence, _JS_CASES,
                   _JS_MISTAKES)


# --------------------------------------------------------------------------- Exercise 1.4

def _mle_pair(fn: Callable[[torch.Tensor], object]) -> Callable[[torch.Tensor], torch.Tensor | None]:
    """Wrap ``fn(x) -> (mu, var)`` into ``x -> tensor([mu, var])`` so both numbers are compared at once."""

    def wrapped(x: torch.Tensor) -> torch.Tensor | None:
        out = fn(x)
        if out is None:
            return None
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(f"return a pair (mu, var), got {type(out).__name__}")
        return torch.stack([torch.as_tensor(v, dtype=torch.float64).reshape(()) for v in out])

    return wrapped


def _sample(n: int, seed: int, loc: float, scale: float) -> torch.Tensor:
    return loc + scale * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


_MLE_CASES = [
    Case((torch.tensor([1.0, 2.0, 4.0, 5.0], dtype=torch.float64),), label="x = [1, 2, 4, 5]"),
    Case((_sample(25, 1, 3.0, 2.0),), label="25 samples of N(3, 2²)"),
    Case((_sample(7, 2, -1.0, 0.5),), label="7 samples of N(-1, 0.5²)"),
]

_MLE_MISTAKES = [
    Mistake("you divided by N − 1 (the unbiased estimator, torch.var's default). Setting ∂/∂σ² of the "
            "log-likelihood to zero gives the maximum-likelihood variance (1/N) Σ (x_i − μ̂)²: "
            "use x.var(unbiased=False) or divide by N.",
            lambda x: torch.stack([x.mean(), x.var(unbiased=True)])),
    Mistake("you returned the standard deviation; the exercise asks for the variance σ² (no square root).",
            lambda x: torch.stack([x.mean(), x.std(unbiased=False)])),
    Mistake("you returned the standard deviation with the N − 1 correction; the MLE wants the variance with "
            "1/N.", lambda x: torch.stack([x.mean(), x.std(unbiased=True)])),
    Mistake("your variance is the raw second moment E[x²]; subtract the mean first: (1/N) Σ (x_i − μ̂)².",
            lambda x: torch.stack([x.mean(), (x**2).mean()])),
]


def check_gaussian_mle(student_fn: Callable[[torch.Tensor], object]) -> None:
    """Exercise 1.4: ``mle(x) -> (mu, var)`` for 1D samples x of shape (N,): mean and variance with 1/N."""
    if not callable(student_fn):
        raise TypeError(f"pass your function itself, got {type(student_fn).__name__}")
    check_function("Exercise 1.4 (Gaussian MLE)", _mle_pair(student_fn), _mle_pair(ref.gaussian_mle),
                   _MLE_CASES, _MLE_MISTAKES)
