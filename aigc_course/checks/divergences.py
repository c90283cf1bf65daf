"""Self-checks for lesson 01 (divergences, maximum likelihood).

Each ``*_CHECK`` is a :class:`~aigc_course.checks._core.Check` (cases, mistakes, return type); the
``check_*`` functions that the exercises call run it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .. import divergences as ref
from ._core import Case, Check, Mistake, TensorResult, TupleResult

__all__ = ["check_discrete_kl", "check_kl_to_standard_normal", "check_js_divergence", "check_gaussian_mle"]

F64 = torch.float64


def _probs(*rows: list[float], dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.tensor(rows if len(rows) > 1 else rows[0], dtype=dtype)


def _sparse_batch(seed: int, B: int = 8, K: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """B pairs of float32 distributions over K outcomes, about half the entries 0 (p and q share zeros)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(B, K, generator=g) ** 4
    q = torch.rand(B, K, generator=g) ** 4
    p[torch.rand(B, K, generator=g) < 0.5] = 0.0
    q[p == 0] = q[p == 0] * (torch.rand(int((p == 0).sum()), generator=g) < 0.5)  # some p_k = q_k = 0
    return p / p.sum(-1, keepdim=True), q / q.sum(-1, keepdim=True)


def _finite_where_inf(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], *args: object) -> bool:
    """Symptom: the reference is +inf somewhere and the answer is finite there."""
    inf = np.isposinf(want[0])
    return bool(inf.any() and np.isfinite(mine[0][inf]).all())


# --------------------------------------------------------------------------- Exercise 1.1

def _naive_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return (p * torch.log(p / q)).sum(-1)  # 0 · log 0 = 0 · (−inf) = NaN


def _ratio_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return torch.where(p > 0, p * torch.log(p / q), torch.zeros_like(p)).sum(-1)


def _kl_cases() -> list[Case]:
    return [
        Case((_probs([0.5, 0.3, 0.2]), _probs([0.2, 0.5, 0.3])), label="3 outcomes, no zeros"),
        Case((_probs([0.1, 0.6, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]),
              _probs([0.4, 0.3, 0.2, 0.1], [0.7, 0.1, 0.1, 0.1])), label="batch of 2 pairs, shape (2, 4)"),
        Case((_probs([0.7, 0.2, 0.1], dtype=torch.float32), _probs([0.2, 0.4, 0.4], dtype=torch.float32)),
             label="float32, as in the lesson's demo"),
        Case((_probs([1.0]), _probs([1.0])), label="a single outcome (K = 1)"),
        Case((_probs([0.0, 0.5, 0.5]), _probs([0.2, 0.4, 0.4])), label="p has a zero entry"),
        Case((_probs([0.5, 0.5, 0.0]), _probs([0.0, 0.5, 0.5])), label="q = 0 where p > 0: KL is +inf"),
        Case((_probs([0.5, 0.5, 0.0, 0.0]), _probs([0.25, 0.25, 0.5, 0.0])),
             label="p_k = q_k = 0 for the last outcome"),
        Case(_sparse_batch(0), label="8 sparse pairs over 1000 outcomes (float32)"),
        Case((_probs([0.5, 0.3, 0.2]), _probs([1e-310, 0.6, 0.4])), label="q_k = 1e-310 (tiny, not zero)"),
    ]

_ZERO_LOG_ZERO = ("you got NaN where p_k = 0: 0·log(0/q_k) evaluates to 0·(−inf) = NaN in floating point, "
                  "but its limit is 0. Use torch.xlogy(p, p) − torch.xlogy(p, q), or mask the terms with p = 0.")

_KL_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("overflow in the ratio: p/q exceeds the largest float (≈1.8e308) when q_k is tiny, so "
            "log(p/q) = inf although the KL is finite. Subtract logs instead of dividing: "
            "torch.xlogy(p, p) − torch.xlogy(p, q).", _ratio_kl),
    Mistake("you got NaN where p_k = q_k = 0: xlogy(p, p/q) still forms p/q = 0/0 = NaN before xlogy can "
            "treat p = 0, and xlogy(0, NaN) is NaN. Keep the two logs apart: "
            "torch.xlogy(p, p) − torch.xlogy(p, q).", lambda p, q: torch.xlogy(p, p / q).sum(-1)),
    Mistake(_ZERO_LOG_ZERO, _naive_kl),
    Mistake("your KL is finite where q_k = 0 < p_k, but there it is +inf (q rules out an outcome that p "
            "allows). An ε added inside the log, or a clamp of q, hides this; use torch.xlogy(p, q), "
            "which gives -inf for q = 0.", symptom=_finite_where_inf),
    Mistake("you computed KL(q‖p): the arguments are swapped. KL(p‖q) averages log(p/q) under p, "
            "so the weights in front of the log are p.", lambda p, q: ref.kl_divergence(q, p)),
    Mistake("your result has the wrong sign: you wrote log(q/p) instead of log(p/q). "
            "KL is never negative (Gibbs' inequality).", lambda p, q: -ref.kl_divergence(p, q)),
    Mistake("you used log base 2 (bits); the course measures information in nats (natural log).",
            lambda p, q: ref.kl_divergence(p, q) / math.log(2)),
    Mistake("you averaged over the outcomes instead of summing: KL = Σ_k p_k log(p_k/q_k), reduced over the "
            "last dim.", lambda p, q: ref.kl_divergence(p, q) / p.shape[-1]),
]

DISCRETE_KL_CHECK = Check("Exercise 1.1 (discrete KL)", ref.kl_divergence, _kl_cases, _KL_MISTAKES,
                          TensorResult("float"), ("p", "q"))


def check_discrete_kl(student_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 1.1: ``kl(p, q)`` for probability tensors (..., K) → (...), with 0·log 0 = 0."""
    DISCRETE_KL_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 1.2

def _kl_std_normal_terms(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return logvar.exp() + mu**2 - 1.0 - logvar  # 2 × per-dimension KL


def _realistic_latents() -> tuple[torch.Tensor, torch.Tensor]:
    """3 rows of a float32 VAE-like posterior with D = 64: log σ² ≈ −12 (collapsed), ≈ +12, ≈ 0."""
    g = torch.Generator().manual_seed(7)
    mu = torch.randn(3, 64, generator=g)
    centre = torch.tensor([[-12.0], [12.0], [0.0]])
    return mu, centre + torch.randn(3, 64, generator=g)


def _gkl_cases() -> list[Case]:
    return [
        Case((torch.tensor([[0.5, -1.0, 0.0]], dtype=F64), torch.tensor([[0.3, 0.7, 1.2]], dtype=F64)),
             label="one row, D = 3"),
        Case((torch.tensor([[0.0, 0.0], [1.0, -2.0], [0.2, 0.4]], dtype=F64),
              torch.tensor([[0.0, 0.0], [-1.0, 0.5], [2.0, -0.3]], dtype=F64)),
             label="batch of 3, D = 2 (first row is the prior itself: KL 0)"),
        Case((torch.tensor([[0.7]], dtype=F64), torch.tensor([[-0.4]], dtype=F64)), label="B = 1, D = 1"),
        Case(_realistic_latents(), label="float32, B = 3, D = 64, log σ² around -12, +12 and 0"),
    ]

_GKL_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("you computed log det Σ as the log of the *product* of the variances: with 64 dimensions of "
            "σ² ≈ e^-12 the product underflows to 0 (and e^+12 ones overflow to inf), giving ±inf. Sum "
            "the log-variances instead: log det Σ = Σ_d logvar_d.",
            lambda mu, lv: 0.5 * (lv.exp().sum(-1) + (mu**2).sum(-1) - lv.shape[-1] - lv.exp().prod(-1).log())),
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
    Mistake("the KL has the wrong sign overall; it must be ≥ 0.", lambda mu, lv: -ref.gaussian_kl(mu, lv)),
    Mistake("you computed the reverse divergence KL(N(0, I) ‖ N(μ, σ²)) = ½ Σ (log σ² + (1 + μ²)/σ² − 1). "
            "The VAE term is KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ (σ² + μ² − 1 − log σ²).",
            lambda mu, lv: ref.gaussian_kl(torch.zeros_like(mu), torch.zeros_like(lv), mu, lv)),
    Mistake("you took the log of the log-variance: logvar already *is* log σ², so the term is just "
            "−logvar. (log of a negative logvar, i.e. σ < 1, is NaN.)",
            lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1.0 - torch.log(lv)).sum(-1)),
]

GAUSSIAN_KL_CHECK = Check("Exercise 1.2 (Gaussian KL to N(0, I))", ref.gaussian_kl, _gkl_cases, _GKL_MISTAKES,
                          TensorResult("float"), ("mu", "logvar"))


def check_kl_to_standard_normal(student_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 1.2: ``kl(mu, logvar)`` = KL(N(μ, diag e^logvar) ‖ N(0, I)), shapes (B, D) → (B,)."""
    GAUSSIAN_KL_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 1.3

def _js_with(kl: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    return lambda p, q: 0.5 * kl(p, 0.5 * (p + q)) + 0.5 * kl(q, 0.5 * (p + q))


def _js_cases() -> list[Case]:
    return [
        Case((_probs([0.5, 0.3, 0.2]), _probs([0.1, 0.3, 0.6])), label="3 outcomes, no zeros"),
        Case((_probs([0.7, 0.2, 0.1], [0.25, 0.25, 0.5]), _probs([0.2, 0.2, 0.6], [0.1, 0.8, 0.1])),
             label="batch of 2 pairs"),
        Case((_probs([0.7, 0.2, 0.1], dtype=torch.float32), _probs([0.2, 0.4, 0.4], dtype=torch.float32)),
             label="float32"),
        Case((_probs([1.0]), _probs([1.0])), label="a single outcome (K = 1)"),
        Case((_probs([0.5, 0.5, 0.0, 0.0]), _probs([0.0, 0.0, 0.4, 0.6])), label="disjoint supports: JS = log 2"),
        Case((_probs([0.6, 0.4, 0.0]), _probs([0.3, 0.7, 0.0])), label="p_k = q_k = 0 for the last outcome"),
        Case(_sparse_batch(1), label="8 sparse pairs over 1000 outcomes (float32)"),
    ]

_JS_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("you got NaN where p_k = q_k = 0: there m_k = 0 too, and xlogy(p, p/m) forms 0/0 = NaN before "
            "xlogy can treat p = 0. Keep the two logs apart: torch.xlogy(p, p) − torch.xlogy(p, m).",
            _js_with(lambda a, b: torch.xlogy(a, a / b).sum(-1))),
    Mistake(_ZERO_LOG_ZERO.replace("q_k", "m_k").replace("(p, q)", "(p, m)"), _js_with(_naive_kl)),
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
    Mistake("you measured JS in bits (log base 2, bounded by 1); the course uses nats (natural log, bounded "
            "by log 2 ≈ 0.693).", lambda p, q: ref.js_divergence(p, q) / math.log(2)),
    Mistake("you returned √JS: scipy.spatial.distance.jensenshannon gives the Jensen–Shannon *distance*, "
            "the square root of the divergence. Square it (and pass axis=-1 for batches).",
            lambda p, q: ref.js_divergence(p, q).sqrt()),
]

JS_DIVERGENCE_CHECK = Check("Exercise 1.3 (Jensen–Shannon divergence)", ref.js_divergence, _js_cases,
                            _JS_MISTAKES, TensorResult("float"), ("p", "q"))


def check_js_divergence(student_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 1.3: ``js(p, q)`` for probability tensors (..., K) → (...)."""
    JS_DIVERGENCE_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 1.4

def _sample(n: int, seed: int, loc: float, scale: float, dtype: torch.dtype = F64) -> torch.Tensor:
    return loc + scale * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _mle_cases() -> list[Case]:
    return [
        Case((torch.tensor([1.0, 2.0, 4.0, 5.0], dtype=F64),), label="x = [1, 2, 4, 5]"),
        Case((_sample(25, 1, 3.0, 2.0),), label="25 samples of N(3, 2²)"),
        Case((_sample(7, 2, -1.0, 0.5),), label="7 samples of N(-1, 0.5²)"),
        Case((_sample(50, 3, 0.5, 1.5, torch.float32),), label="50 float32 samples"),
        Case((torch.tensor([2.5], dtype=F64),), label="a single sample (N = 1): variance 0"),
        Case((_sample(10_000, 4, 1e8, 1.0),), label="10 000 samples of N(1e8, 1)"),
    ]


def _one_pass_variance(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean(), (x**2).mean() - x.mean() ** 2


def _cancellation(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], x: torch.Tensor) -> bool:
    """Symptom: the mean is right, the variance is not, and the data sit far from 0 relative to their spread."""
    mean_ok = bool(np.isclose(mine[0], want[0], rtol=1e-9, atol=0).all())
    var_ok = bool(np.isclose(mine[1], want[1], rtol=1e-5, atol=1e-6).all())
    return mean_ok and not var_ok and abs(float(x.mean())) > 1e3 * float(x.std())


_MLE_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("x.var() · (N − 1)/N rescales the unbiased variance to the MLE, but for a single sample (N = 1) "
            "x.var() is 0/0 = NaN and NaN · 0 stays NaN, while the MLE variance is 0. Compute the MLE "
            "directly: ((x − μ̂)²).mean() or x.var(correction=0).",
            lambda x: (x.mean(), x.var(correction=1) * (x.numel() - 1) / x.numel())),
    Mistake("catastrophic cancellation: E[x²] − E[x]² subtracts two numbers near 1e16 whose difference is "
            "about 1, and float64 keeps only ~16 digits, so the variance comes out wrong (even negative). "
            "Subtract the mean first: ((x − μ̂)²).mean().", _one_pass_variance, symptom=_cancellation),
    Mistake("you divided by N − 1 (the unbiased estimator, torch.var's default). Setting ∂/∂σ² of the "
            "log-likelihood to zero gives the maximum-likelihood variance (1/N) Σ (x_i − μ̂)²: "
            "use x.var(correction=0) or divide by N.", lambda x: (x.mean(), x.var(correction=1))),
    Mistake("you returned the standard deviation; the exercise asks for the variance σ² (no square root).",
            lambda x: (x.mean(), x.std(correction=0))),
    Mistake("you returned the standard deviation with the N − 1 correction; the MLE wants the variance with "
            "1/N.", lambda x: (x.mean(), x.std(correction=1))),
    Mistake("your variance is the raw second moment E[x²]; subtract the mean first: (1/N) Σ (x_i − μ̂)².",
            lambda x: (x.mean(), (x**2).mean())),
    Mistake("you returned (var, mean): torch.var_mean gives the variance *first*. The exercise returns "
            "(mu, var), so swap them: `var, mu = torch.var_mean(x, correction=0); return mu, var`.",
            lambda x: tuple(reversed(ref.gaussian_mle(x)))),
]

GAUSSIAN_MLE_CHECK = Check(
    "Exercise 1.4 (Gaussian MLE)", ref.gaussian_mle, _mle_cases, _MLE_MISTAKES,
    TupleResult((TensorResult("float", scalar_ok=True),) * 2, ("mu", "var"), stacked_ok=True), ("x",))


def check_gaussian_mle(student_fn: Callable[[torch.Tensor], object]) -> None:
    """Exercise 1.4: ``mle(x) -> (mu, var)`` for 1D samples x of shape (N,): mean and variance with 1/N."""
    GAUSSIAN_MLE_CHECK.run(student_fn)
