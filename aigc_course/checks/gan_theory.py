"""Self-checks for lesson 02 (GAN theory): the optimal discriminator, the discriminator loss and the
non-saturating generator loss, all from logits or log-densities.

Each ``*_CHECK`` is a :class:`~aigc_course.checks._core.Check` (cases, mistakes, return type); the
``check_*`` functions that the exercises call run it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .. import gan as ref
from ._core import Case, Check, Mistake, TensorResult

__all__ = ["check_optimal_discriminator", "check_discriminator_loss", "check_non_saturating_generator_loss"]

F64 = torch.float64
_UNDERFLOW = -700.0  # exp(x) is 0 or subnormal in float64 below about -708


def _t(values: list[float] | list[list[float]], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def _normal_logits(n: int, seed: int, std: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return std * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --------------------------------------------------------------------------- Exercise 2.1

def _optimal_discriminator(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """D*(x) = p/(p + q) = σ(log p − log q), elementwise; 1/2 where p = q = 0 (both −inf)."""
    both_zero = torch.isneginf(log_p) & torch.isneginf(log_q)
    return torch.sigmoid(torch.where(both_zero, torch.zeros_like(log_p), log_p - log_q))


def _density_ratio_form(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    p, q = log_p.exp(), log_q.exp()
    return p / (p + q)  # exp(−1000) = 0 for both: 0/0 = NaN


def _gaussian_grid() -> tuple[torch.Tensor, torch.Tensor]:
    """log N(x; 2, 0.5²) and log N(x; 0, 1) on 9 points of [−3, 5], float32 (the lesson's 1D pair)."""
    x = torch.linspace(-3.0, 5.0, 9)
    log_p = -0.5 * ((x - 2.0) / 0.5) ** 2 - math.log(0.5 * math.sqrt(2 * math.pi))
    log_q = -0.5 * x**2 - 0.5 * math.log(2 * math.pi)
    return log_p, log_q


def _od_cases() -> list[Case]:
    return [
        Case((_t([0.0, -1.0, -2.0, -0.5], F64), _t([-2.0, -1.0, 0.0, -3.0], F64)),
             label="four points, ordinary log-densities"),
        Case(_gaussian_grid(), label="float32, p = N(2, 0.5²) and q = N(0, 1) on 9 grid points"),
        Case((_t([[-0.2, -1.5, -4.0], [-3.0, -0.1, -0.7]], F64), _t([[-1.0, -1.0, -1.0], [-0.5, -2.5, -0.7]], F64)),
             label="a (2, 3) batch of points"),
        Case((_t([-1000.0, -1001.0, -1200.0, -745.0], F64), _t([-1000.5, -1000.0, -1000.0, -746.0], F64)),
             label="log-densities near −1000 (far out in both tails)"),
        Case((_t([-0.5, -math.inf, -2.0]), _t([-math.inf, -0.5, -2.0])),
             label="p = 0 or q = 0 at some points (log-density −inf)",
             note="where only q = 0 the point is certainly real (D* = 1); where only p = 0 it is certainly fake "
                  "(D* = 0)."),
        Case((_t([-math.inf, -1.0, -math.inf], F64), _t([-math.inf, -2.0, -math.inf], F64)),
             label="p = q = 0 at two points (outside both supports)",
             note="where p = q = 0, p/(p + q) is 0/0; the lesson's convention is D* = 1/2 there (no evidence "
                  "either way). torch.where(both −inf, 1/2, σ(log p − log q)) does it."),
    ]


def _underflow_symptom(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], log_p: torch.Tensor,
                       log_q: torch.Tensor) -> bool:
    """Symptom: where both log-densities are finite and below −700, the answer is NaN, 0 or 1 but D* is not."""
    lp, lq = log_p.double().numpy(), log_q.double().numpy()
    deep = np.isfinite(lp) & np.isfinite(lq) & (np.maximum(lp, lq) < _UNDERFLOW)
    d, w = mine[0], want[0]
    if d.shape != w.shape or not deep.any():
        return False
    interior = deep & (w > 1e-12) & (w < 1 - 1e-12)
    degenerate = np.isnan(d) | (d == 0.0) | (d == 1.0)
    return bool((interior & degenerate).any())


_OD_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("you got NaN where p = q = 0: log p − log q = −inf − (−inf) = NaN. The lesson's convention is "
            "D* = 1/2 there (no evidence either way): use torch.where on (log_p == −inf) & (log_q == −inf).",
            lambda lp, lq: torch.sigmoid(lp - lq)),
    Mistake("underflow: exp(−1000) is 0 in floating point, so p/(p + q) becomes 0/0 = NaN (or 0 with an ε in "
            "the denominator) although D* is a perfectly ordinary number there. Only the difference of the "
            "log-densities matters: D* = p/(p + q) = 1/(1 + q/p) = σ(log p − log q).",
            _density_ratio_form, symptom=_underflow_symptom),
    Mistake("you computed q/(p + q) = 1 − D*, the probability that x is *fake*. D* says how likely x is real: "
            "p/(p + q) = σ(log p − log q), with p the data density (first argument).",
            lambda lp, lq: 1 - _optimal_discriminator(lp, lq)),
    Mistake("you returned the logit log p − log q (or log D*); D* itself is a probability: its sigmoid, "
            "σ(log p − log q).", lambda lp, lq: lp - lq),
    Mistake("you returned log D* = log σ(log p − log q); the exercise asks for the probability D* itself.",
            lambda lp, lq: F.logsigmoid(lp - lq)),
    Mistake("you returned the density ratio p/q; the optimal discriminator is p/(p + q) = r/(1 + r) with r = p/q.",
            lambda lp, lq: (lp - lq).exp()),
    Mistake("your inputs are log-densities, not densities: log_p/(log_p + log_q) is not p/(p + q). "
            "Use σ(log p − log q) (or exponentiate first, though that underflows far in the tails).",
            lambda lp, lq: lp / (lp + lq)),
]

OPTIMAL_DISCRIMINATOR_CHECK = Check("Exercise 2.1 (optimal discriminator D*)", _optimal_discriminator, _od_cases,
                                    _OD_MISTAKES, TensorResult("float"), ("log_p", "log_q"))


def check_optimal_discriminator(student_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 2.1: ``d_star(log_p, log_q)`` = p/(p + q) elementwise, 1/2 where p = q = 0."""
    OPTIMAL_DISCRIMINATOR_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 2.2

def _naive_d_loss(r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean()


def _bce_d_loss(r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return (F.binary_cross_entropy(torch.sigmoid(r), torch.ones_like(r))
            + F.binary_cross_entropy(torch.sigmoid(f), torch.zeros_like(f)))


_BATCH_NOTE = ("the real and fake batches have different sizes here: each expectation is its own mean, "
               "−mean(log D(x_real)) − mean(log(1 − D(x_fake))); do not add, stack or concatenate them "
               "elementwise.")


def _dl_cases() -> list[Case]:
    return [
        Case((_t([0.9, 0.2, 0.6]), _t([0.1, -0.3, 0.4])), label="3 real and 3 fake logits"),
        Case((torch.zeros(4), torch.zeros(4)), label="all logits 0 (D = 1/2 everywhere): log 4"),
        Case((_t([2.0], F64), _t([-1.0], F64)), label="one real and one fake sample (float64)"),
        Case((_t([1.5, -0.5, 3.0, 0.2, -2.0], F64), _t([-1.0, 0.5, -3.0], F64)),
             label="5 real, 3 fake (float64)", note=_BATCH_NOTE),
        Case((_normal_logits(64, 0, 3.0), _normal_logits(64, 1, 3.0)), label="a batch of 64 each, logits ~ N(0, 3²)"),
        Case((_t([100.0, -100.0, 200.0, -200.0]), _t([-100.0, 100.0, -200.0, 200.0])),
             label="float32 logits ±100 and ±200 (a very confident D)"),
        Case((_t([1000.0, -1000.0], F64), _t([-1000.0, 1000.0], F64)), label="float64 logits ±1000"),
    ]


_DL_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("binary_cross_entropy on probabilities: sigmoid(±200) rounds to exactly 1 or 0, and torch clamps "
            "each log at −100, so a confident mistake costs 100 instead of 200. Work with the logits: "
            "F.binary_cross_entropy_with_logits, or softplus(−r) for −log σ(r) and softplus(f) for −log(1 − σ(f)).",
            _bce_d_loss),
    Mistake("log(sigmoid(·)) is numerically unstable: for a logit of ±100 in float32 sigmoid rounds to exactly "
            "0 or 1 and the log gives −inf. Use −log σ(r) = softplus(−r) and −log(1 − σ(f)) = softplus(f) "
            "(F.softplus, F.logsigmoid or F.binary_cross_entropy_with_logits).", _naive_d_loss),
    Mistake("you averaged over the real and fake samples together (÷ (B_real + B_fake)): with equal batch sizes "
            "that halves the loss. Each expectation is its own mean: "
            "softplus(−real).mean() + softplus(fake).mean().",
            lambda r, f: (F.softplus(-r).sum() + F.softplus(f).sum()) / (r.numel() + f.numel())),
    Mistake("wrong sign: you returned V(D, G) = E log D(x) + E log(1 − D(G(z))), which the discriminator "
            "*maximises*. A loss is minimised, so return −V.", lambda r, f: -ref.discriminator_loss(r, f)),
    Mistake("real and fake are swapped: the discriminator should push D(x) → 1 on real samples and D(G(z)) → 0 "
            "on fakes, i.e. minimise −log σ(real) − log(1 − σ(fake)) = softplus(−real) + softplus(fake).",
            lambda r, f: F.softplus(r).mean() + F.softplus(-f).mean()),
    Mistake("you summed over the batch; the expectations are means, so that the loss does not grow with the "
            "batch size.", lambda r, f: F.softplus(-r).sum() + F.softplus(f).sum()),
    Mistake("your loss has only the real-data term −E log D(x); add the fake term −E log(1 − D(G(z))).",
            lambda r, f: F.softplus(-r).mean()),
    Mistake("your loss has only the fake term −E log(1 − D(G(z))); add the real-data term −E log D(x).",
            lambda r, f: F.softplus(f).mean()),
    Mistake("the inputs are logits (any real number), not probabilities: D = σ(logit). log(logit) and "
            "log(1 − logit) are wrong (and NaN for a negative logit).",
            lambda r, f: -torch.log(r).mean() - torch.log(1 - f).mean()),
]

DISCRIMINATOR_LOSS_CHECK = Check("Exercise 2.2 (discriminator loss from logits)", ref.discriminator_loss,
                                 _dl_cases, _DL_MISTAKES, TensorResult("float"), ("real_logits", "fake_logits"))


def check_discriminator_loss(student_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 2.2: ``d_loss(real_logits, fake_logits)`` = −E log D(x) − E log(1 − D(G(z))), (B,), (B') → 0-d."""
    DISCRIMINATOR_LOSS_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 2.3

def _non_saturating(f: torch.Tensor) -> torch.Tensor:
    return ref.generator_loss(f, kind="non_saturating")


def _ng_cases() -> list[Case]:
    return [
        Case((_t([0.5, -1.0, 2.0, -0.3]),), label="4 fake logits"),
        Case((torch.zeros(3),), label="all logits 0 (D(G(z)) = 1/2): log 2"),
        Case((_t([1.5], F64),), label="a single fake sample (float64)"),
        Case((_normal_logits(64, 2, 3.0),), label="a batch of 64, logits ~ N(0, 3²)"),
        Case((_t([-30.0, -25.0, -18.0, -40.0]),),
             label="D rejects the fakes confidently (logits −18 to −40), as early in training",
             note="this is the regime the non-saturating loss exists for: the loss is about −logit (≈ 30) and "
                  "its gradient about −1 per sample."),
        Case((_t([-100.0, 100.0, -200.0, 200.0]),), label="float32 logits ±100 and ±200"),
        Case((_t([-1000.0, 1000.0, 0.0], F64),), label="float64 logits −1000, 1000 and 0"),
    ]


def _too_small_when_rejected(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], f: torch.Tensor) -> bool:
    """Symptom: the case has logits ≤ −15 and the answer is finite but clearly below the reference."""
    m, w = mine[0], want[0]
    return bool(m.shape == w.shape and (f.double() <= -15).any() and np.isfinite(m).all()
                and (m < w - 1e-3 * np.maximum(1.0, np.abs(w))).all())


_NG_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("binary_cross_entropy on probabilities: sigmoid(−200) rounds to exactly 0, and torch clamps the "
            "log at −100, so the loss (and its gradient) is wrong exactly when D rejects the fakes. Use "
            "F.binary_cross_entropy_with_logits(fake_logits, ones) or softplus(−fake_logits).mean().",
            lambda f: F.binary_cross_entropy(torch.sigmoid(f), torch.ones_like(f))),
    Mistake("−log(sigmoid(f)) is numerically unstable: sigmoid(−100) is exactly 0 in float32 (and "
            "log(1 + exp(−f)) overflows for f = −1000), giving inf. −log σ(f) = softplus(−f): use F.softplus "
            "or F.logsigmoid.", lambda f: -torch.log(torch.sigmoid(f)).mean()),
    Mistake("you clamped the logits or the probabilities: when D rejects the fakes confidently (logit −30) the "
            "true loss is about 30 with gradient −1 — exactly the regime the non-saturating loss is for — and a "
            "clamp makes it smaller and its gradient 0. Use softplus(−f), which is exact for any logit.",
            symptom=_too_small_when_rejected),
    Mistake("wrong sign: that is the article's L_G = E_z[log D(G(z))]. Minimising it pushes D(G(z)) → 0, "
            "i.e. it helps the discriminator. The non-saturating loss minimises −E_z[log D(G(z))].",
            lambda f: -_non_saturating(f)),
    Mistake("that is the minimax (saturating) loss E_z[log(1 − D(G(z)))]: right direction, but its gradient "
            "w.r.t. the logit is −D(G(z)), which vanishes when D rejects the fakes. The non-saturating loss "
            "is −E_z[log D(G(z))] = softplus(−f).mean().", lambda f: ref.generator_loss(f, kind="minimax")),
    Mistake("you minimise −E log(1 − D(G(z))) (the discriminator's fake term, or a BCE with the label 0): "
            "that pushes D(G(z)) down. The generator wants its fakes labelled *real* (1): −E log D(G(z)).",
            lambda f: F.softplus(f).mean()),
    Mistake("you summed over the batch; the expectation is a mean (the loss must not grow with the batch size).",
            lambda f: F.softplus(-f).sum()),
]

NON_SATURATING_LOSS_CHECK = Check("Exercise 2.3 (non-saturating generator loss)", _non_saturating, _ng_cases,
                                  _NG_MISTAKES, TensorResult("float"), ("fake_logits",))


def check_non_saturating_generator_loss(student_fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Exercise 2.3: ``g_loss(fake_logits)`` = −E_z[log D(G(z))] from logits (B,) → 0-d."""
    NON_SATURATING_LOSS_CHECK.run(student_fn)
