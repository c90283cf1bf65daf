"""Self-checks for lesson 06 (VAEs in practice): the Bernoulli log-likelihood from logits (the distortion of
the rate–distortion curve), the number of active latent units (posterior collapse), and the IWAE bound from
log-weights (the test-set NLL).

Each ``*_CHECK`` is a :class:`~aigc_course.checks._core.Check` (cases, mistakes, return type); the
``check_*`` functions that the exercises call run them. The references are the package's formulas
(:func:`aigc_course.vae.conditional_log_likelihood`) or short torch expressions of the definitions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..vae import conditional_log_likelihood
from ._core import Case, Check, Mistake, TensorResult, _kind, _to_array

__all__ = ["check_bernoulli_log_likelihood", "check_active_units", "check_iwae_bound"]

F64 = torch.float64


def _nan_where_finite(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> bool:
    return mine[0].shape == want[0].shape and bool((np.isnan(mine[0]) & ~np.isnan(want[0])).any())


# --------------------------------------------------------------------------- Exercise 6.1

def _bernoulli_ll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) = Σ_pixels x·log σ(l) + (1 − x)·log σ(−l): logits, x (B, ...) → (B,)."""
    return conditional_log_likelihood(logits, x, "bernoulli")


def _naive_bernoulli(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)
    return (x * torch.log(p) + (1 - x) * torch.log(1 - p)).flatten(1).sum(1)


def _clamped_bce(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return -F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").flatten(1).sum(1)


def _nan_from_saturated_sigmoid(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...],
                                logits: torch.Tensor, x: torch.Tensor) -> bool:
    """Symptom: NaN where the reference is a number, on a case with logits beyond ±17 (σ rounds to 0 or 1)."""
    return bool(logits.abs().max() > 17) and _nan_where_finite(mine, want)


def _digit_like(seed: int, batch: int, size: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey images with a background of exact zeros and some pixels at full ink (exactly 1), and moderate
    logits (a decoder part-way through training)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, size, size, generator=g, dtype=dtype)
    x = torch.where(x < 0.5, torch.zeros_like(x), torch.where(x > 0.85, torch.ones_like(x), x))
    logits = 3 * torch.randn(batch, 1, size, size, generator=g, dtype=dtype)
    return logits, x


def _confident(dtype: torch.dtype, logit: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels at 0 and exactly 1 (full ink), decoded with logits ∓|logit| (right) or a wrong sign on one."""
    x = torch.tensor([[[[0.0, 1.0, 1.0], [0.0, 1.0, 0.0]]], [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]], dtype=dtype)
    return torch.where(x > 0.5, torch.full_like(x, logit), torch.full_like(x, -logit)), x


def _bernoulli_cases() -> list[Case]:
    logits_wrong, x_wrong = _confident(F64, 20.0)
    logits_wrong[0, 0, 0, 1] = -150.0                                 # one full-ink pixel, confidently wrong
    return [
        Case((torch.tensor([[[[0.0, math.log(3.0)], [-math.log(3.0), 2.0]]]], dtype=F64),
              torch.tensor([[[[0.5, 1.0], [1.0, 0.0]]]], dtype=F64)),
             label="one 2×2 image: logits (0, ln 3, −ln 3, 2), pixels (½, 1, 1, 0)"),
        Case(_digit_like(0, 4, 8, F64), label="4 grey 8×8 images, float64"),
        Case(_digit_like(1, 16, 8, torch.float32), label="16 grey 8×8 images, float32"),
        Case(_confident(torch.float32, 20.0),
             label="a trained decoder, float32: logits ±20, pixels exactly 0 or 1 (and right)",
             note="σ(20) rounds to exactly 1.0 in float32, so log(1 − σ(20)) = log 0 = −inf, and "
                  "(1 − x)·(−inf) with x = 1 is 0·(−inf) = NaN. The true term is 0."),
        Case((logits_wrong, x_wrong), label="one full-ink pixel decoded with logit −150, float64"),
        Case(_digit_like(2, 2, 28, torch.float32), label="2 grey 28×28 images (MNIST-sized), float32"),
    ]


_BERNOULLI_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("NaN from a saturated sigmoid: σ(l) rounds to exactly 1.0 for l > 17 in float32 (0.0 for l < −88), "
            "so log(1 − σ(l)) = −inf and 0·(−inf) = NaN. Never take the log of σ: log σ(l) = −softplus(−l) "
            "and log(1 − σ(l)) = −softplus(l), so the term is x·l − softplus(l) "
            "(or −F.binary_cross_entropy_with_logits(l, x, reduction='none')).",
            _naive_bernoulli, symptom=_nan_from_saturated_sigmoid),
    Mistake("F.binary_cross_entropy on probabilities clamps every log at −100, so the pixel decoded with "
            "logit −150 costs 100 nats instead of 150. Work with the logits: "
            "F.binary_cross_entropy_with_logits(logits, x, reduction='none'), or x·l − softplus(l).",
            _clamped_bce),
    Mistake("you averaged over the pixels: the log-likelihood of an image is the *sum* of its pixels' "
            "log-probabilities (they are independent given z). F.binary_cross_entropy(...) averages by default; "
            "use reduction='none' and .flatten(1).sum(1).",
            lambda lg, x: _bernoulli_ll(lg, x) / x[0].numel()),
    Mistake("you returned one number for the whole batch: F.binary_cross_entropy_with_logits averages over "
            "the batch *and* the pixels by default (reduction='mean'). Use reduction='none', then sum each image's "
            "pixels: one log-likelihood per image, shape (B,).",
            lambda lg, x: -F.binary_cross_entropy_with_logits(lg, x)),
    Mistake("your values are ≥ 0: that is the binary cross-entropy, i.e. minus the log-likelihood. Return "
            "log p(x|z) = −BCE (≤ 0).", lambda lg, x: -_bernoulli_ll(lg, x)),
    Mistake("you summed over the batch as well: return one log-likelihood per image, shape (B,).",
            lambda lg, x: _bernoulli_ll(lg, x).sum()),
    Mistake("you left out the (1 − x)·log(1 − σ(l)) term: the dark part of each pixel counts too; "
            "log p = x·log σ(l) + (1 − x)·log(1 − σ(l)).",
            lambda lg, x: (x * F.logsigmoid(lg)).flatten(1).sum(1)),
    Mistake("you applied the sigmoid twice: the decoder's outputs are already logits, and "
            "binary_cross_entropy_with_logits applies σ itself. Pass the logits unchanged.",
            lambda lg, x: _bernoulli_ll(torch.sigmoid(lg), x)),
    Mistake("you swapped the arguments: F.binary_cross_entropy_with_logits(input, target) takes the logits "
            "first and the pixels x (the target) second.",
            lambda lg, x: -F.binary_cross_entropy_with_logits(x, lg, reduction="none").flatten(1).sum(1)),
    Mistake("you summed over the last axis only: an image (B, 1, H, W) has all its C·H·W pixels to sum, e.g. "
            ".flatten(1).sum(1).",
            lambda lg, x: -F.binary_cross_entropy_with_logits(lg, x, reduction="none").sum(-1)),
]

BERNOULLI_LOG_LIKELIHOOD_CHECK = Check(
    "Exercise 6.1 (Bernoulli log-likelihood from logits)", _bernoulli_ll, _bernoulli_cases, _BERNOULLI_MISTAKES,
    TensorResult("float"), ("logits", "x"), atol=1e-5, rtol=1e-5)


def check_bernoulli_log_likelihood(student_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 6.1: ``bernoulli_log_likelihood(logits, x)`` for (B, C, H, W) tensors → (B,)."""
    BERNOULLI_LOG_LIKELIHOOD_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 6.2

@dataclass(frozen=True)
class CountResult:
    """The result must be a whole number: a Python int, a NumPy integer or a 0-d integer tensor
    (``mask.sum()`` of a bool mask is an int64 tensor)."""

    @property
    def part_names(self) -> tuple[str, ...]:
        return ("",)

    def problem(self, got: Any, want: Any) -> str | None:
        """Why ``got`` is not a count, or None."""
        if got is None:
            return "your function returned None — did you forget `return`?"
        if isinstance(got, torch.Tensor):
            if got.dim() > 0:
                return (f"you returned {_kind(got)}: one value per unit (the mask or the variances?). Return how "
                        "many units are active, one number: e.g. (variances > threshold).sum().")
            if got.dtype == torch.bool:
                return "you returned a 0-d bool tensor; return the number of active units (an int)."
            if got.is_floating_point() or got.is_complex():
                return (f"you returned a {got.dtype} number; a count is a whole number. The .sum() of a bool "
                        "mask is already int64 — .float() or .mean() turn it into something else.")
            return None
        if isinstance(got, (bool, np.bool_)):
            return f"you returned a bool ({got!r}); return the number of active units (an int)."
        if isinstance(got, (int, np.integer)):
            return None
        if isinstance(got, (float, np.floating)):
            return (f"you returned a float ({got!r}); a count is a whole number: an int, or the int64 .sum() "
                    "of a bool mask.")
        if isinstance(got, (np.ndarray, list, tuple)):
            return (f"you returned {_kind(got)}; return one number, the count of active units "
                    "(e.g. int((variances > threshold).sum())).")
        return f"you returned {_kind(got)}; return the number of active units as an int."

    def parts(self, value: Any) -> tuple[np.ndarray, ...]:
        return (_to_array(value),)


def _active_units(mu: torch.Tensor, threshold: float) -> torch.Tensor:
    """Burda et al.'s count: units u with Var_x[μ_u(x)] > threshold; mu (N, D) → an int64 scalar."""
    return (mu.double().var(dim=0, unbiased=False) > threshold).sum()


def _one_pass_variance(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], mu: torch.Tensor,
                       threshold: float) -> bool:
    """Symptom: a wrong count on float32 means far from 0, where E[μ²] − E[μ]² cancels catastrophically."""
    return mu.dtype == torch.float32 and float(mu.abs().mean()) > 100 and not np.array_equal(mine[0], want[0])


def _per_row(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], mu: torch.Tensor, threshold: float) -> bool:
    """Symptom: the count of *rows* (data points) whose variance across units exceeds the threshold, with the
    1/(D − 1) convention (torch's default)."""
    return float(mine[0]) == float((mu.double().var(dim=1) > threshold).sum()) != float(want[0])


def _posterior_means(seed: int, n: int, spreads: list[float], offsets: list[float] | None = None,
                     dtype: torch.dtype = F64) -> torch.Tensor:
    """(n, D) means: unit d varies over the data with standard deviation spreads[d] around offsets[d]."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, len(spreads), generator=g, dtype=F64)
    z = (z - z.mean(0)) / z.std(0, unbiased=False)                 # exactly the asked spreads (1/N)
    out = z * torch.tensor(spreads, dtype=F64) + torch.tensor(offsets or [0.0] * len(spreads), dtype=F64)
    return out.to(dtype)


def _active_cases() -> list[Case]:
    constant = torch.full((6, 4), 0.5, dtype=F64)
    steps = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, -0.5]], dtype=F64).repeat(4, 1)    # 8 rows: var 0, 0, ¼
    steps[:, 1] = 3.0                                                                       # a constant unit at 3
    return [
        Case((_posterior_means(0, 200, [1.0, 0.02, 0.5, 0.001, 0.3]), 0.01),
             label="N = 200 means of 5 units, spreads (1, 0.02, 0.5, 0.001, 0.3)"),
        Case((_posterior_means(1, 50, [0.03, 0.2, 0.05, 0.9, 0.02, 0.11, 0.5, 0.08], dtype=torch.float32), 0.01),
             label="N = 50 means of 8 units (float32)"),
        Case((_posterior_means(2, 4, [0.6, 0.03, 0.5, 0.2, 0.04, 0.07]), 0.01),
             label="only N = 4 data points, 6 units"),
        Case((_posterior_means(3, 7, [0.3, 0.2, 1.0, 0.5, 0.4, 0.06, 0.9], [2.0, -3.0, 0.0, 1.0, 0.0, 4.0, -1.0]),
              0.01), label="N = 7 data points and 7 units (a square table), units offset from 0"),
        Case((constant, 0.01), label="every unit collapsed: μ_u(x) = 0.5 for every x",
             note="a unit whose mean is the same for every x tells the decoder nothing about x: none is active."),
        Case((steps, 0.0), label="threshold 0, units constant at 0 and at 3, and one that moves",
             note="the criterion is strict: Var > threshold. A unit whose mean never moves has variance exactly 0, "
                  "which is not > 0, whatever its constant value."),
        Case((_posterior_means(4, 1000, [0.2, 0.0001, 0.15, 0.3, 0.05, 0.2], [1000.0, 1000.0, -1000.0, 500.0,
                                                                               1000.0, 300.0], torch.float32), 0.01),
             label="N = 1000 float32 means around ±1000, spreads 0.05 to 0.3"),
    ]


_ACTIVE_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("catastrophic cancellation: E[μ²] − E[μ]² subtracts two numbers near 10⁶ whose difference is about "
            "0.01–0.1, and float32 keeps only ~7 significant digits, so the variance is rounding noise (it can "
            "even come out negative). Subtract the mean first: ((mu − mu.mean(0))**2).mean(0), or "
            "mu.var(dim=0).", lambda mu, thr: (((mu ** 2).mean(0) - mu.mean(0) ** 2) > thr).sum(),
            symptom=_one_pass_variance),
    Mistake("you used ≥: the criterion is strict, Var_x[μ_u] > threshold, so a unit whose mean never moves "
            "(variance exactly 0) is inactive even at threshold 0.",
            lambda mu, thr: (mu.double().var(dim=0, unbiased=False) >= thr).sum()),
    Mistake("you compared the mean of μ² with the threshold: that is not centred, so a unit whose mean is "
            "the same nonzero constant for every x (it carries no information) counts as active. Use the "
            "variance over the data, E[(μ − E[μ])²].", lambda mu, thr: ((mu.double() ** 2).mean(0) > thr).sum()),
    Mistake("you compared the standard deviation with the threshold; Burda's criterion compares the "
            "*variance* Var_x[μ_u] (0.01 means a standard deviation of 0.1).",
            lambda mu, thr: (mu.double().std(dim=0, unbiased=False) > thr).sum()),
    Mistake("you took the variance along the wrong axis: mu is (N, D), one row per data point, and each unit "
            "u needs the variance of its column over the N data points: mu.var(dim=0).",
            lambda mu, thr: (mu.double().var(dim=1, unbiased=False) > thr).sum(), symptom=_per_row),
    Mistake("you counted the inactive units (variance ≤ threshold); count the active ones, "
            "Var_x[μ_u] > threshold.", lambda mu, thr: (mu.double().var(dim=0, unbiased=False) <= thr).sum()),
]

ACTIVE_UNITS_CHECK = Check("Exercise 6.2 (active units)", _active_units, _active_cases, _ACTIVE_MISTAKES,
                           CountResult(), ("mu", "threshold"), atol=0.0, rtol=0.0)


def check_active_units(student_fn: Callable[[torch.Tensor, float], Any]) -> None:
    """Exercise 6.2: ``active_units(mu, threshold)`` for posterior means mu (N, D) → the number of units u
    with Var_x[μ_u] > threshold."""
    ACTIVE_UNITS_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 6.3

def _iwae(log_px_z: torch.Tensor, log_pz: torch.Tensor, log_qz: torch.Tensor) -> torch.Tensor:
    """log (1/k) Σ_i p(x|z_i)p(z_i)/q(z_i|x) from (B, k) log-densities → (B,)."""
    return torch.logsumexp(log_px_z + log_pz - log_qz, dim=1) - math.log(log_px_z.shape[1])


def _naive_iwae(log_px_z: torch.Tensor, log_pz: torch.Tensor, log_qz: torch.Tensor) -> torch.Tensor:
    return torch.log(torch.exp(log_px_z + log_pz - log_qz).mean(1))


def _unguarded_shift(log_px_z: torch.Tensor, log_pz: torch.Tensor, log_qz: torch.Tensor) -> torch.Tensor:
    log_w = log_px_z + log_pz - log_qz
    m = log_w.max(dim=1, keepdim=True).values
    return (m + torch.log(torch.exp(log_w - m).mean(1, keepdim=True))).squeeze(1)


def _overflow_or_underflow(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], log_px_z: torch.Tensor,
                           log_pz: torch.Tensor, log_qz: torch.Tensor) -> bool:
    """Symptom: ±inf where the reference is finite, on log-weights beyond float's exp range."""
    log_w = (log_px_z + log_pz - log_qz).double()
    limit = 80.0 if log_px_z.dtype == torch.float32 else 700.0
    far = bool((log_w.abs() > limit).all(dim=1).any())
    return far and mine[0].shape == want[0].shape and bool((np.isinf(mine[0]) & np.isfinite(want[0])).any())


def _nan_where_minus_inf(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], *args: Any) -> bool:
    """Symptom: NaN where the reference is −inf (a row whose every weight is 0)."""
    return mine[0].shape == want[0].shape and bool((np.isnan(mine[0]) & np.isneginf(want[0])).any())


def _log_terms(seed: int, batch: int, k: int, centre: float, dtype: torch.dtype = F64,
               spread: float = 3.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, k) log p(x|z), log p(z), log q(z|x) whose log-weights sit around ``centre`` with a few nats of spread."""
    g = torch.Generator().manual_seed(seed)
    log_pz = -0.5 * (torch.randn(batch, k, 8, generator=g, dtype=F64) ** 2).sum(-1) - 4 * math.log(2 * math.pi)
    log_qz = log_pz + spread * torch.randn(batch, k, generator=g, dtype=F64) + 2.0
    log_px_z = centre + spread * torch.randn(batch, k, generator=g, dtype=F64) + 2.0
    return log_px_z.to(dtype), log_pz.to(dtype), log_qz.to(dtype)


def _iwae_cases() -> list[Case]:
    minus_inf = list(_log_terms(5, 3, 4, -30.0))
    minus_inf[0][1] = -math.inf                                            # every sample of x_2: p(x|z) = 0
    return [
        Case((torch.tensor([[-2.0, -4.0, -3.0], [-10.0, -12.0, -11.0]], dtype=F64),
              torch.tensor([[-1.0, -1.5, -2.0], [-1.0, -1.0, -1.0]], dtype=F64),
              torch.tensor([[-0.5, -1.0, -2.0], [-2.0, -1.0, -3.0]], dtype=F64)),
             label="two x's, k = 3: log w = (−2.5, −4.5, −3) and (−9, −12, −9)"),
        Case(_log_terms(0, 4, 10, -25.0), label="B = 4 images, k = 10 samples each, log w ≈ −25"),
        Case(_log_terms(1, 5, 5, -20.0), label="B = k = 5 (a square table)"),
        Case(_log_terms(2, 6, 1, -25.0), label="k = 1: the bound is the one-sample ELBO",
             note="with k = 1 the bound is log w₁ itself (log 1 = 0)."),
        Case(tuple(minus_inf), label="x_2's samples all have p(x|z) = 0 (log −inf)",
             note="every weight of x_2 is 0, so its bound is log 0 = −inf; the other rows stay finite."),
        Case(_log_terms(3, 3, 1000, -500.0, torch.float32), label="k = 1000, float32, log w ≈ −500 (28×28 images)"),
        Case(_log_terms(4, 2, 100, 150.0, torch.float32),
             label="k = 100, float32, log w ≈ +150 (a Gaussian decoder's density can exceed 1)"),
    ]


_IWAE_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("exp of the log-weights under- or overflows: e^(−500) is 0 in float32 (below e^(−104)) and so is "
            "e^(−746) in float64, giving log 0 = −inf; e^(+150) is inf in float32. Never leave log space: "
            "torch.logsumexp(log_w, dim=1) − log k subtracts the largest log-weight before exponentiating.",
            _naive_iwae, symptom=_overflow_or_underflow),
    Mistake("NaN for the row whose log-weights are all −inf: shifting by the maximum gives −inf − (−inf) = NaN. "
            "torch.logsumexp handles that row (its bound is −inf); a hand-written shift must use 0 where "
            "the maximum is −inf.", _unguarded_shift, symptom=_nan_where_minus_inf),
    Mistake("you forgot the 1/k: the bound is the log of the *mean* of the weights, logsumexp(log w) − log k. "
            "Without it the bound grows by log k and can exceed log p(x).",
            lambda a, b, c: torch.logsumexp(a + b - c, dim=1)),
    Mistake("you averaged the log-weights, (1/k) Σ log wᵢ: that is the ELBO averaged over k samples, which "
            "does not tighten with k. The IWAE bound takes the log of the average: log (1/k) Σ wᵢ.",
            lambda a, b, c: (a + b - c).mean(1)),
    Mistake("the weight is p(x|z)·p(z)/q(z|x): log q(z|x) must be *subtracted*, log w = log p(x|z) + log p(z) "
            "− log q(z|x).", lambda a, b, c: _iwae(a, b, -c)),
    Mistake("you left out the prior: the weight is p(x, z)/q(z|x) = p(x|z)·p(z)/q(z|x), so log p(z) belongs in "
            "log w.", lambda a, b, c: _iwae(a, torch.zeros_like(b), c)),
    Mistake("you left out log q(z|x): the samples come from q, so each is weighted by p(x, z)/q(z|x).",
            lambda a, b, c: _iwae(a, b, torch.zeros_like(c))),
    Mistake("you reduced over the batch (dim 0): each row holds one x's k samples, so the logsumexp runs "
            "over dim 1, giving one bound per x.",
            lambda a, b, c: torch.logsumexp(a + b - c, dim=0) - math.log(a.shape[0])),
    Mistake("you divided by the batch size B instead of by the number of samples k: log (1/k) Σᵢ wᵢ, with k = "
            "log_w.shape[1].", lambda a, b, c: torch.logsumexp(a + b - c, dim=1) - math.log(a.shape[0])),
]

IWAE_BOUND_CHECK = Check("Exercise 6.3 (IWAE bound from log-weights)", _iwae, _iwae_cases, _IWAE_MISTAKES,
                         TensorResult("float"), ("log_px_given_z", "log_pz", "log_qz"), atol=1e-5, rtol=1e-5)


def check_iwae_bound(student_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 6.3: ``iwae_bound(log_px_given_z, log_pz, log_qz)``, each (B, k) → (B,)."""
    IWAE_BOUND_CHECK.run(student_fn)
