"""Self-checks for lesson 04 (Wasserstein GANs): the 1-D earth-mover distance, the WGAN losses and the
gradient penalty.

Each ``*_CHECK`` is a :class:`~aigc_course.checks._core.Check` (cases, mistakes, return type); the
``check_*`` functions that the exercises call run it. Import them from this module:
``from aigc_course.checks.wasserstein import check_earth_movers_1d``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .. import gan
from ._core import Case, Check, Mistake, TensorResult, TupleResult

__all__ = ["check_earth_movers_1d", "check_wgan_losses", "check_gradient_penalty_from_grads"]

F64 = torch.float64


def _normal(shape: tuple[int, ...], seed: int, loc: float = 0.0, scale: float = 1.0,
            dtype: torch.dtype = F64) -> torch.Tensor:
    return loc + scale * torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _nonfinite_where_finite(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], *args: object) -> bool:
    """Symptom: half-precision inputs, a finite reference and an inf/NaN somewhere in the answer."""
    half = any(isinstance(a, torch.Tensor) and a.dtype == torch.float16 for a in args)
    return half and all(np.isfinite(w).all() for w in want) and not all(np.isfinite(m).all() for m in mine)


def _rounded_through_half(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], *args: object) -> bool:
    """Symptom: half-precision inputs and an answer within 1 % of the reference (float16 keeps ~3 digits)."""
    half = any(isinstance(a, torch.Tensor) and a.dtype == torch.float16 for a in args)
    return half and all(m.shape == w.shape and np.isfinite(m).all() and np.isfinite(w).all()
                        and bool(np.allclose(m, w, rtol=1e-2, atol=0)) for m, w in zip(mine, want, strict=True))


_HALF_ROUNDED = ("your result went through float16, which keeps about 3 significant digits, so it is off in "
                 "the 4th digit. Convert the inputs to float32 first ({}.float()) and compute everything in "
                 "float32.")


# --------------------------------------------------------------------------- Exercise 4.1

def _w1_sorted(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """W1 between the empirical distributions of x and y, shapes (..., N) → (...): mean |x_(i) − y_(i)|."""
    return (x.sort(dim=-1).values - y.sort(dim=-1).values).abs().mean(dim=-1)


def _emd_cases() -> list[Case]:
    x = _normal((1000,), 5, 1e8)
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(6))
    same = _normal((40,), 4)
    return [
        Case((torch.tensor([0.0, 2.0, 1.0, -0.5], dtype=F64), torch.tensor([-1.0, 4.0, 5.0, 1.0], dtype=F64)),
             label="x = [0, 2, 1, -0.5], y = [-1, 4, 5, 1]"),
        Case((_normal((25,), 1), _normal((25,), 2, 0.5, 2.0)), label="25 samples of N(0, 1) and of N(0.5, 2²)"),
        Case((_normal((3, 6), 3), _normal((3, 6), 13, 1.0)), label="batch of 3 pairs, shape (3, 6)"),
        Case((_normal((200,), 7, dtype=torch.float32), _normal((200,), 8, 2.0, dtype=torch.float32)),
             label="float32, 200 samples each, as in the lesson's demo"),
        Case((torch.tensor([2.5], dtype=F64), torch.tensor([-0.5], dtype=F64)), label="a single sample each (N = 1)"),
        Case((same, same[perm]), label="y is x shuffled: W1 = 0"),
        Case((x, 0.25 + x + 0.5 * _normal((1000,), 9)), label="1000 samples around 1e8 (float64)"),
    ]


_EMD_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("your answer lost precision on samples around 1e8: float32 keeps about 7 significant digits, so "
            "there it rounds every value to a multiple of 8 and the differences of order 1 are gone. Keep the "
            "inputs' dtype (no .float(), no torch.tensor(..., dtype=torch.float32)).",
            lambda x, y: _w1_sorted(x.float(), y.float())),
    Mistake("you sorted along the wrong dimension: with a batch (B, N) the samples are on the last dim, so "
            "sort with dim=-1 (torch.sort's default), not dim=0.",
            lambda x, y: (x.sort(dim=0).values - y.sort(dim=0).values).abs().mean(dim=-1)),
    Mistake("you reduced over the whole batch: for inputs (B, N) return one distance per pair, shape (B,) — "
            "take the mean over dim=-1 only.", lambda x, y: _w1_sorted(x, y).mean()),
    Mistake("you paired the samples in the order they came: sort both first. In 1-D the optimal transport "
            "plan matches the i-th smallest x with the i-th smallest y.",
            lambda x, y: (x - y).abs().mean(dim=-1)),
    Mistake("you sorted only one of the two samples; sort both x and y.",
            lambda x, y: (x.sort(dim=-1).values - y).abs().mean(dim=-1)),
    Mistake("you sorted only one of the two samples; sort both x and y.",
            lambda x, y: (x - y.sort(dim=-1).values).abs().mean(dim=-1)),
    Mistake("you sorted x and y in opposite orders (one descending): that pairs the smallest x with the "
            "largest y, the worst plan instead of the best. Sort both ascending.",
            lambda x, y: (x.sort(dim=-1, descending=True).values - y.sort(dim=-1).values).abs().mean(dim=-1)),
    Mistake("you squared the differences: mean (x_(i) − y_(i))² is W2², the squared 2-Wasserstein distance. "
            "W1 moves mass at cost |distance|: take the absolute value.",
            lambda x, y: ((x.sort(dim=-1).values - y.sort(dim=-1).values) ** 2).mean(dim=-1)),
    Mistake("you computed W2 = sqrt(mean (x_(i) − y_(i))²), the 2-Wasserstein distance. W1 averages the "
            "absolute differences themselves.",
            lambda x, y: ((x.sort(dim=-1).values - y.sort(dim=-1).values) ** 2).mean(dim=-1).sqrt()),
    Mistake("you summed instead of averaging: each sample carries mass 1/N, so W1 = (1/N) Σ |x_(i) − y_(i)| "
            "(.mean(dim=-1)).", lambda x, y: _w1_sorted(x, y) * x.shape[-1]),
    Mistake("you divided by N − 1: each of the N samples carries mass 1/N, so divide by N (.mean(dim=-1)); "
            "with N = 1 your version divides by 0.", lambda x, y: _w1_sorted(x, y) * x.shape[-1] / (x.shape[-1] - 1)),
    Mistake("you forgot the absolute value: positive and negative differences cancel, leaving "
            "mean(x) − mean(y). Average |x_(i) − y_(i)|.",
            lambda x, y: (x.sort(dim=-1).values - y.sort(dim=-1).values).mean(dim=-1)),
    Mistake("you returned |mean(x) − mean(y)|: that is only a lower bound on W1 (equal when one sample is a "
            "shifted copy of the other). Match the sorted samples and average |x_(i) − y_(i)|.",
            lambda x, y: (x.mean(dim=-1) - y.mean(dim=-1)).abs()),
    Mistake("you averaged |x_i − y_j| over all pairs: that couples every x with every y (the independent "
            "plan), which is not the cheapest one — it is not even 0 when y is x shuffled. Sort both and pair "
            "x_(i) with y_(i).", lambda x, y: (x[..., :, None] - y[..., None, :]).abs().mean(dim=(-2, -1))),
]

EARTH_MOVERS_1D_CHECK = Check("Exercise 4.1 (1-D earth-mover distance)", _w1_sorted, _emd_cases, _EMD_MISTAKES,
                              TensorResult("float"), ("x", "y"))


def check_earth_movers_1d(student_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 4.1: ``w1(x, y)`` for two equal-size samples of shape (..., N) → (...)."""
    EARTH_MOVERS_1D_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 4.2

def _wgan_losses(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return gan.critic_loss(real_scores, fake_scores), gan.wasserstein_generator_loss(fake_scores)


def _loss_cases() -> list[Case]:
    return [
        Case((torch.tensor([2.0, 1.0, 0.5, 1.5], dtype=F64), torch.tensor([-0.5, 0.25, 0.0, -1.0], dtype=F64)),
             label="real scores [2, 1, 0.5, 1.5], fake scores [-0.5, 0.25, 0, -1]"),
        Case((_normal((64,), 21, 0.3, dtype=torch.float32), _normal((64,), 22, -0.2, dtype=torch.float32)),
             label="a float32 batch of 64 scores each"),
        Case((_normal((8, 1), 23, 1.0), _normal((8, 1), 24, -2.0)), label="scores of shape (B, 1), as a critic "
             "returns them"),
        Case((torch.tensor([3.0, -1.0, 2.0, 0.5, 1.5], dtype=F64), torch.tensor([-2.0, 0.0, 1.0], dtype=F64)),
             label="5 real scores, 3 fake scores",
             note="real and fake batches may differ in size: each expectation is the mean over its own batch."),
        Case((_normal((4096,), 25, 20.0).half(), _normal((4096,), 26, -20.0).half()),
             label="float16 scores from a mixed-precision critic, batch 4096"),
    ]


def _softplus_losses(r: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return F.softplus(-r).mean() + F.softplus(f).mean(), F.softplus(-f).mean()


_LOSS_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("your loss is inf or NaN on 4096 float16 scores: a sum of thousands of scores of size 20 "
            "exceeds float16's largest number, 65 504, so it overflows before you divide. Convert the scores "
            "to float32 first (.float()), then reduce (or use .mean()).", symptom=_nonfinite_where_finite),
    Mistake(_HALF_ROUNDED.format("scores"), symptom=_rounded_through_half),
    Mistake("the critic's loss has the wrong sign: the critic *maximises* the Wasserstein estimate "
            "E f(x) − E f(G(z)), so the loss it minimises is E f(G(z)) − E f(x).",
            lambda r, f: (r.float().mean() - f.float().mean(), -f.float().mean())),
    Mistake("the generator's loss has the wrong sign: the generator wants the critic to score its samples "
            "high, so it minimises −E f(G(z)).", lambda r, f: (_wgan_losses(r, f)[0], f.float().mean())),
    Mistake("both signs are flipped: the critic minimises E f(G(z)) − E f(x), the generator minimises "
            "−E f(G(z)).", lambda r, f: (r.float().mean() - f.float().mean(), f.float().mean())),
    Mistake("you returned (generator_loss, critic_loss): the exercise returns (critic_loss, generator_loss).",
            lambda r, f: _wgan_losses(r, f)[::-1]),
    Mistake("your generator loss is the Wasserstein estimate E f(x) − E f(G(z)). Its gradient is right, "
            "since E f(x) does not depend on the generator, but the loss to return is −E f(G(z)) alone.",
            lambda r, f: (_wgan_losses(r, f)[0], r.float().mean() - f.float().mean())),
    Mistake("you used the original GAN's losses (softplus / log-sigmoid): a critic's scores are not logits "
            "of a probability. The Wasserstein losses are plain means of the scores.", _softplus_losses),
    Mistake("you summed the scores instead of averaging: each loss is a difference of expectations "
            "(means over the batch), so it must not grow with the batch size.",
            lambda r, f: (f.float().sum() - r.float().sum(), -f.float().sum())),
]

WGAN_LOSSES_CHECK = Check(
    "Exercise 4.2 (WGAN losses)", _wgan_losses, _loss_cases, _LOSS_MISTAKES,
    TupleResult((TensorResult("float"),) * 2, ("critic_loss", "generator_loss")), ("real_scores", "fake_scores"))


def check_wgan_losses(student_fn: Callable[[torch.Tensor, torch.Tensor], object]) -> None:
    """Exercise 4.2: ``wgan_losses(real_scores, fake_scores) -> (critic_loss, generator_loss)``, 0-d tensors."""
    WGAN_LOSSES_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 4.3

def _penalty(grads: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of (‖g_i‖₂ − 1)², the norm over all non-batch dims; float16 is computed in float32."""
    g = grads.flatten(1)
    if g.dtype in (torch.float16, torch.bfloat16):
        g = g.float()
    return ((torch.linalg.vector_norm(g, dim=1) - 1) ** 2).mean()


def _penalty_cases() -> list[Case]:
    unit = _normal((16, 2), 31, dtype=torch.float32)
    radii = 0.7 + 0.6 * torch.rand(16, 1, generator=torch.Generator().manual_seed(32))
    with_zero = _normal((4, 3), 33)
    with_zero[2] = 0.0
    return [
        Case((torch.tensor([[3.0, 4.0], [0.6, 0.8]], dtype=F64),), label="grads [[3, 4], [0.6, 0.8]]"),
        Case((_normal((4, 1, 3, 3), 34),), label="image-shaped gradients (4, 1, 3, 3)"),
        Case((unit / unit.norm(dim=1, keepdim=True) * radii,), label="16 float32 gradients with norms in (0.7, 1.3)"),
        Case((with_zero,), label="4 gradients, the third all zero (a flat critic there)"),
        Case((_normal((1, 5), 35),), label="a single gradient (B = 1)"),
        Case((_normal((8, 64), 36, 0.0, 300.0).half(),), label="float16 gradients of size about 300, (8, 64)"),
    ]


def _rows(grads: torch.Tensor) -> torch.Tensor:
    return grads.flatten(1).double()


_PENALTY_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("your penalty is inf or NaN on float16 gradients: squares of numbers near 300 summed over 64 "
            "entries exceed float16's largest number, 65 504. Convert to float32 before squaring "
            "(grads.float()), or use torch.linalg.vector_norm, which rescales.", symptom=_nonfinite_where_finite),
    Mistake(_HALF_ROUNDED.format("grads"), symptom=_rounded_through_half),
    Mistake("you took the norm over the last dimension only: a gradient of shape (B, C, H, W) has one norm "
            "per sample over all C·H·W entries. Flatten first: grads.flatten(1), then the norm over dim=1.",
            lambda g: ((torch.linalg.vector_norm(g.double(), dim=-1) - 1) ** 2).mean()),
    Mistake("you got NaN for an all-zero gradient: dividing by the largest entry (to avoid overflow) gives "
            "0/0 there. The norm of a zero vector is 0, so that sample's penalty is (0 − 1)² = 1: guard the "
            "division (e.g. .clamp_min(tiny)) or use torch.linalg.vector_norm.",
            symptom=lambda mine, want, g: bool((g.flatten(1) == 0).all(1).any() and np.isnan(mine[0]).any()
                                               and np.isfinite(want[0]).all())),
    Mistake("you penalised (‖g‖² − 1)², the squared norm: WGAN-GP penalises (‖g‖₂ − 1)², the norm itself "
            "(take the square root of the sum of squares).",
            lambda g: (((_rows(g) ** 2).sum(1) - 1) ** 2).mean()),
    Mistake("you used the one-sided penalty max(0, ‖g‖ − 1)², which only punishes norms above 1; WGAN-GP's "
            "two-sided penalty (‖g‖ − 1)² also pulls norms below 1 up.",
            lambda g: ((torch.linalg.vector_norm(_rows(g), dim=1) - 1).clamp_min(0) ** 2).mean()),
    Mistake("you forgot to square: the penalty is the mean of (‖g‖ − 1)², not of |‖g‖ − 1|.",
            lambda g: (torch.linalg.vector_norm(_rows(g), dim=1) - 1).abs().mean()),
    Mistake("you took one norm over the whole batch: the penalty needs one norm per sample, "
            "‖g_i‖ over dim=1 of grads.flatten(1), then the mean of (‖g_i‖ − 1)².",
            lambda g: (torch.linalg.vector_norm(_rows(g)) - 1) ** 2),
    Mistake("you averaged the squares over the entries (an RMS) instead of summing them: ‖g‖₂ = sqrt(Σ g²).",
            lambda g: (((_rows(g) ** 2).mean(1).sqrt() - 1) ** 2).mean()),
    Mistake("you summed over the batch: the penalty is the *mean* over samples of (‖g_i‖ − 1)².",
            lambda g: ((torch.linalg.vector_norm(_rows(g), dim=1) - 1) ** 2).sum()),
    Mistake("you multiplied by λ = 10: return the penalty without its weight (the training loop multiplies by "
            "gp_weight).", lambda g: 10 * _penalty(g.double())),
]

GRADIENT_PENALTY_CHECK = Check("Exercise 4.3 (gradient penalty from per-sample gradients)", _penalty,
                               _penalty_cases, _PENALTY_MISTAKES, TensorResult("float"), ("grads",))


def check_gradient_penalty_from_grads(student_fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Exercise 4.3: ``penalty(grads)`` for per-sample gradients (B, ...) → 0-d mean of (‖g_i‖₂ − 1)²."""
    GRADIENT_PENALTY_CHECK.run(student_fn)
