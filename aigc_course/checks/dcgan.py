"""Self-checks for lesson 03 (DCGAN on the digits): sizes through transposed convolutions, spherical
interpolation of latent codes, and the Fréchet distance between diagonal Gaussians.

Each ``*_CHECK`` is a :class:`~aigc_course.checks._core.Check` (cases, mistakes, return type); the
``check_*`` functions that the exercises call run it. The references live here: the package has no function
for them (lesson 03 calls ``torch.nn.ConvTranspose2d``, ``torch.lerp`` and ``aigc_course.metrics``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._core import Case, Check, Mistake, TensorResult, _kind, _to_array

__all__ = ["check_transposed_conv_sizes", "check_slerp", "check_frechet_distance_diag"]

F64 = torch.float64


# --------------------------------------------------------------------------- Exercise 3.1

@dataclass(frozen=True)
class IntListResult:
    """The result must be a list (or tuple) of whole numbers: Python ints or NumPy integers, not floats,
    bools or tensors (``nn.ConvTranspose2d`` and tensor shapes take ints)."""

    @property
    def part_names(self) -> tuple[str, ...]:
        return ("",)

    def problem(self, got: Any, want: Any) -> str | None:
        """Why ``got`` is not a list of ints, or None."""
        if got is None:
            return "your function returned None — did you forget `return`?"
        if isinstance(got, (torch.Tensor, np.ndarray)):
            return (f"you returned {_kind(got)}; return a plain list of Python ints, one size per layer "
                    "(convert with .tolist()): sizes go into layer constructors and shapes, which take ints.")
        if isinstance(got, numbers.Number):
            return (f"you returned one number ({got!r}); return a list with the size after *each* layer, "
                    "e.g. [4, 8] for two layers (an empty list for no layers).")
        if not isinstance(got, (list, tuple)):
            return f"you returned {_kind(got)}; return a list of ints, one size per layer."
        for i, v in enumerate(got):
            if isinstance(v, (bool, np.bool_)):
                return f"element {i} of your list is a bool ({v!r}); sizes are ints."
            if isinstance(v, (float, np.floating)):
                return (f"element {i} of your list is a float ({v!r}): a size is a whole number of pixels, so "
                        "return ints. In Python 3 `/` always gives a float; the formula needs no division, "
                        "so keep to +, −, * on ints.")
            if isinstance(v, torch.Tensor):
                return (f"element {i} of your list is {_kind(v)}; sizes are Python ints (use int(...) or "
                        ".item()).")
            if not isinstance(v, (int, np.integer)):
                return f"element {i} of your list is {_kind(v)}; sizes are ints."
        return None

    def parts(self, value: Any) -> tuple[np.ndarray, ...]:
        if isinstance(value, (list, tuple)):
            return (np.array([float(v) for v in value], dtype=np.float64),)
        return (_to_array(value),)


Layer = tuple[int, int, int]


def _transposed_conv_sizes(size: int, layers: Sequence[Layer]) -> list[int]:
    """Side length after each ConvTranspose2d(kernel k, stride s, padding p): out = (in − 1)·s − 2p + k."""
    out = []
    for k, s, p in layers:
        size = (size - 1) * s - 2 * p + k
        out.append(size)
    return out


def _sizes_with(step: Callable[[int, int, int, int], Any]) -> Callable[[int, Sequence[Layer]], list]:
    """A wrong answer that applies ``step(size, k, s, p)`` layer after layer."""
    def sizes(size: int, layers: Sequence[Layer]) -> list:
        out = []
        for k, s, p in layers:
            size = step(size, k, s, p)
            out.append(size)
        return out
    return sizes


def _float32_sizes(size: int, layers: Sequence[Layer]) -> list[int]:
    """The right formula evaluated in float32 (e.g. after torch.tensor(layers, dtype=torch.float32))."""
    x = torch.tensor(float(size), dtype=torch.float32)
    out = []
    for k, s, p in layers:
        x = (x - 1) * s - 2 * p + k
        out.append(int(x))
    return out


_DCGAN_64 = [(4, 1, 0), (4, 2, 1), (4, 2, 1), (4, 2, 1), (4, 2, 1)]


def _sizes_cases() -> list[Case]:
    return [
        Case((2, [(4, 2, 1), (4, 2, 1)]), label="this lesson's generator: 2×2 → ? → ?"),
        Case((1, list(_DCGAN_64)), label="the DCGAN paper's 64×64 generator from a 1×1 latent"),
        Case((7, [(4, 2, 1), (4, 2, 1)]), label="MNIST: 7×7 → ? → ?"),
        Case((5, [(3, 1, 1)]), label="kernel 3, stride 1, padding 1"),
        Case((3, [(3, 2, 0), (5, 3, 2)]), label="odd kernels, strides 2 and 3"),
        Case((4, []), label="an empty stack (no layers)",
             note="with no layers there are no sizes to report: return []."),
        Case((112_500, [(16, 8, 4), (16, 8, 4), (4, 2, 1), (4, 2, 1), (4, 1, 1)]),
             label="1D: 112 500 mel frames → 10 min of 48 kHz audio (a vocoder's upsampler)"),
    ]


_SIZES_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("you computed in float32: it holds whole numbers exactly only up to 2^24 = 16 777 216, so a long "
            "1D signal (28.8 million audio samples) comes out rounded by a sample or two. Sizes are integers: "
            "keep them Python ints, no float tensors.", _float32_sizes),
    Mistake("you assumed every layer multiplies the size by its stride. That holds only when k − 2p = s (as for "
            "kernel 4, stride 2, padding 1); in general out = (in − 1)·s − 2p + k, e.g. the first DCGAN layer "
            "(kernel 4, stride 1, padding 0) turns 1×1 into 4×4.", _sizes_with(lambda n, k, s, p: n * s)),
    Mistake("you used the formula of an ordinary (downsampling) convolution, ⌊(in + 2p − k)/s⌋ + 1. A "
            "transposed convolution runs that map backwards: out = (in − 1)·s − 2p + k.",
            _sizes_with(lambda n, k, s, p: (n + 2 * p - k) // s + 1)),
    Mistake("you multiplied the whole input size by the stride: only the in − 1 gaps between input pixels are "
            "stretched by s, then the kernel adds k: out = (in − 1)·s − 2p + k.",
            _sizes_with(lambda n, k, s, p: n * s - 2 * p + k)),
    Mistake("you removed the padding once; it is cropped from *both* ends of the output: −2p.",
            _sizes_with(lambda n, k, s, p: (n - 1) * s - p + k)),
    Mistake("you added the padding: in a transposed convolution p *crops* the output (it undoes the padding "
            "of the convolution it transposes), so out = (in − 1)·s − 2p + k.",
            _sizes_with(lambda n, k, s, p: (n - 1) * s + 2 * p + k)),
    Mistake("your list starts with the input size: return only the size after each layer (len(layers) "
            "values).", lambda n, layers: [n, *_transposed_conv_sizes(n, layers)]),
    Mistake("your list also holds the input size, at the end or in the wrong place: return only the size after "
            "each layer, in layer order.",
            lambda n, layers: [*_transposed_conv_sizes(n, layers), n]),
]

TRANSPOSED_CONV_SIZES_CHECK = Check(
    "Exercise 3.1 (sizes through transposed convolutions)", _transposed_conv_sizes, _sizes_cases,
    _SIZES_MISTAKES, IntListResult(), ("size", "layers"), atol=0.0, rtol=0.0)


def check_transposed_conv_sizes(student_fn: Callable[[int, list[Layer]], list[int]]) -> None:
    """Exercise 3.1: ``sizes(size, layers)`` → the side length after each (kernel, stride, padding) layer."""
    TRANSPOSED_CONV_SIZES_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 3.2

def _slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation z0 (D,), z1 (D,), t (T,) → (T, D); the straight line when sin ω = 0."""
    cos = ((z0 / z0.norm()) * (z1 / z1.norm())).sum().clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    t = t[:, None]
    if so < 1e-6:
        return (1 - t) * z0 + t * z1
    return torch.sin((1 - t) * omega) / so * z0 + torch.sin(t * omega) / so * z1


def _slerp_without(clamp: bool = True, fallback: bool = True) -> Callable[..., torch.Tensor]:
    """The reference with its clamp of cos ω or its straight-line limit for sin ω ≈ 0 left out."""
    def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cos = ((z0 / z0.norm()) * (z1 / z1.norm())).sum()
        omega = torch.acos(cos.clamp(-1.0, 1.0) if clamp else cos)
        so = torch.sin(omega)
        t = t[:, None]
        if fallback and so < 1e-6:
            return (1 - t) * z0 + t * z1
        return torch.sin((1 - t) * omega) / so * z0 + torch.sin(t * omega) / so * z1
    return slerp


def _angle(z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    return torch.acos(((z0 / z0.norm()) * (z1 / z1.norm())).sum().clamp(-1.0, 1.0))


def _nan_on_rounded_parallel(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], z0: torch.Tensor,
                             z1: torch.Tensor, t: torch.Tensor) -> bool:
    """Symptom: NaN where the reference is finite, on float32 vectors that are parallel up to rounding."""
    cos = float(torch.nn.functional.cosine_similarity(z0.double(), z1.double(), dim=0))
    nan = np.isnan(mine[0]) & np.isfinite(want[0])
    return bool(z0.dtype == torch.float32 and cos > 1 - 1e-6 and nan.any())


def _slerp_cases() -> list[Case]:
    g = torch.Generator().manual_seed(3)
    z0, z1 = torch.randn(64, generator=g), torch.randn(64, generator=g)
    z8 = torch.randn(64, generator=torch.Generator().manual_seed(8))
    return [
        Case((torch.tensor([1.0, 2.0, 0.0, -1.0], dtype=F64), torch.tensor([0.5, -1.0, 2.0, 1.0], dtype=F64),
              torch.tensor([0.0, 0.3, 0.6, 1.0], dtype=F64)), label="D = 4 with 4 values of t (T = D)"),
        Case((torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64),
              torch.linspace(0, 1, 5, dtype=F64)), label="two orthogonal unit vectors in 2D, t = 0, ¼, ½, ¾, 1"),
        Case((z0, z1, torch.linspace(0, 1, 9)), label="two latent codes z ~ N(0, I) in 64 dims (float32)"),
        Case((torch.tensor([2.0, 0.0, 1.0], dtype=F64), torch.tensor([0.5, 0.5, -0.7], dtype=F64),
              torch.tensor([0.25, 0.5, 0.75], dtype=F64)), label="vectors of different lengths"),
        Case((torch.tensor([1.0, 0.0, 0.0], dtype=F64), torch.tensor([2.5, 0.0, 0.0], dtype=F64),
              torch.tensor([0.0, 0.5, 1.0], dtype=F64)), label="z1 = 2.5·z0 (same direction)",
             note="the angle ω is 0 here, so sin ω = 0 and the formula is 0/0; its limit as ω → 0 is the "
                  "straight line (1 − t)·z0 + t·z1."),
        Case((z8, 3 * z8, torch.tensor([0.0, 0.5, 1.0])), label="z1 = 3·z0 in 64 dims (float32)"),
    ]


_SLERP_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("rounding made cos ω slightly larger than 1 (1.0000001 in float32, for vectors pointing the same "
            "way), and acos of that is NaN. Clamp the cosine to [−1, 1] before torch.acos.",
            _slerp_without(clamp=False), symptom=_nan_on_rounded_parallel),
    Mistake("for parallel vectors ω = 0, so sin ω = 0 and sin((1 − t)ω)/sin ω is 0/0 = NaN. Its limit is "
            "1 − t: when sin ω is (nearly) 0, return the straight line (1 − t)·z0 + t·z1.",
            _slerp_without(fallback=False)),
    Mistake("that is linear interpolation (lerp), (1 − t)·z0 + t·z1: it cuts through the inside of the sphere. "
            "Slerp follows the arc: [sin((1 − t)ω)·z0 + sin(tω)·z1] / sin ω with ω the angle between z0 and z1.",
            lambda z0, z1, t: torch.lerp(z0, z1, t[:, None])),
    Mistake("your path starts at z1 and ends at z0: the weight of z0 is sin((1 − t)ω)/sin ω (1 at t = 0) and "
            "the weight of z1 is sin(tω)/sin ω.", lambda z0, z1, t: _slerp(z1, z0, t)),
    Mistake("you forgot to divide by sin ω: without it the endpoints come out as sin ω·z0 and sin ω·z1, "
            "shrunk towards 0.", lambda z0, z1, t: _slerp(z0, z1, t) * torch.sin(_angle(z0, z1))),
    Mistake("you interpolated the unit vectors z/‖z‖ only, so every point has length 1. The slerp used for "
            "GAN latents weights z0 and z1 themselves: [sin((1 − t)ω)·z0 + sin(tω)·z1] / sin ω.",
            lambda z0, z1, t: _slerp(z0 / z0.norm(), z1 / z1.norm(), t)),
    Mistake("ω must be the angle between z0 and z1, ω = arccos(cos ω); you used the cosine itself as the "
            "angle.", lambda z0, z1, t: _slerp_with_omega(z0, z1, t, ((z0 / z0.norm()) * (z1 / z1.norm())).sum())),
    Mistake("your t is not a column: make it t[:, None] (shape (T, 1)) so that each t gives a whole row "
            "(T, D); with T = D a flat t multiplies z elementwise instead and no error is raised.",
            lambda z0, z1, t: _slerp(z0, z1, t).diagonal() if len(t) == len(z0) else None),
]


def _slerp_with_omega(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    t = t[:, None]
    return torch.sin((1 - t) * omega) / torch.sin(omega) * z0 + torch.sin(t * omega) / torch.sin(omega) * z1


SLERP_CHECK = Check("Exercise 3.2 (spherical interpolation)", _slerp, _slerp_cases, _SLERP_MISTAKES,
                    TensorResult("float"), ("z0", "z1", "t"))


def check_slerp(student_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 3.2: ``slerp(z0, z1, t)`` for z0, z1 of shape (D,) and t of shape (T,) → (T, D)."""
    SLERP_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 3.3

def _frechet_diag(mu1: torch.Tensor, var1: torch.Tensor, mu2: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
    """‖μ1 − μ2‖² + Σ_d (σ1,d − σ2,d)² for diagonal Gaussians; all inputs (D,) → a scalar tensor."""
    return ((mu1 - mu2) ** 2).sum() + ((var1.sqrt() - var2.sqrt()) ** 2).sum()


def _expanded(mu1: torch.Tensor, var1: torch.Tensor, mu2: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
    return ((mu1 - mu2) ** 2).sum() + (var1 + var2 - 2 * (var1 * var2).sqrt()).sum()


def _cancellation(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], mu1: torch.Tensor,
                  var1: torch.Tensor, mu2: torch.Tensor, var2: torch.Tensor) -> bool:
    """Symptom: off by no more than float32 rounding of Σ(var1 + var2), on float32 inputs whose variances
    agree to 1 %: what var1 + var2 − 2√(var1·var2) loses to cancellation."""
    v1, v2 = var1.double(), var2.double()
    close = bool(((v1 - v2).abs() <= 1e-2 * v1).all())
    err = float(np.abs(mine[0] - want[0]).max()) if mine[0].shape == want[0].shape else np.inf
    return var1.dtype == torch.float32 and close and 0 < err <= 1e-5 * float((v1 + v2).sum())


def _zero_variance(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], mu1: torch.Tensor,
                   var1: torch.Tensor, mu2: torch.Tensor, var2: torch.Tensor) -> bool:
    """Symptom: below the reference, by less than half, on a case where some variances are exactly 0."""
    zeros = bool((var1 == 0).any() or (var2 == 0).any())
    if not zeros or mine[0].shape != want[0].shape:
        return False
    gap = float(want[0] - mine[0])
    return 0 < gap < 0.5 * float(want[0])


def _near_floor_features() -> tuple[torch.Tensor, ...]:
    """32 float32 features with σ ≈ 100; the second set's σ's within about 0.01 % of the first's, its means
    within about 0.005 (a generator near the floor)."""
    g = torch.Generator().manual_seed(11)
    mu1 = 50 * torch.randn(32, generator=g)
    sd1 = 100 * (1 + 0.2 * torch.rand(32, generator=g))
    mu2 = mu1 + 0.005 * torch.randn(32, generator=g)
    sd2 = sd1 * (1 + 1e-4 * torch.randn(32, generator=g))
    return mu1, sd1**2, mu2, sd2**2


def _fd_cases() -> list[Case]:
    g = torch.Generator().manual_seed(5)
    mu1, mu2 = torch.randn(8, generator=g, dtype=F64), torch.randn(8, generator=g, dtype=F64)
    var1, var2 = torch.rand(8, generator=g, dtype=F64) + 0.1, torch.rand(8, generator=g, dtype=F64) + 0.1
    return [
        Case((torch.tensor([0.0, 1.0], dtype=F64), torch.tensor([1.0, 4.0], dtype=F64),
              torch.tensor([1.0, 1.0], dtype=F64), torch.tensor([4.0, 1.0], dtype=F64)),
             label="D = 2: μ1 = (0, 1), σ1² = (1, 4); μ2 = (1, 1), σ2² = (4, 1)"),
        Case((mu1, var1, mu2, var2), label="8 features, float64"),
        Case((torch.tensor([0.3], dtype=F64), torch.tensor([2.0], dtype=F64), torch.tensor([-0.2], dtype=F64),
              torch.tensor([0.5], dtype=F64)), label="one feature (D = 1)"),
        Case((mu1, var1, mu1.clone(), var1.clone()), label="the same Gaussian twice: distance 0"),
        Case((torch.full((8,), 0.5, dtype=F64), torch.full((8,), 1e-4, dtype=F64), torch.full((8,), 0.5, dtype=F64),
              torch.zeros(8, dtype=F64)), label="a collapsed generator: every feature constant (σ2 = 0), σ1 = 0.01",
             note="the second Gaussian has variance exactly 0 in every feature, so σ2 = 0 exactly."),
        Case(_near_floor_features(), label="32 float32 features, σ ≈ 100, the two sets within 0.01 %"),
    ]


_FD_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("catastrophic cancellation: var1 + var2 − 2√(var1·var2) subtracts two numbers near 2·10⁴ whose "
            "difference is about 10⁻⁴, and float32 keeps only ~7 digits, so the result is mostly rounding "
            "error (FID code has returned negative distances this way). Take the square roots first: "
            "(√var1 − √var2)².", _expanded, symptom=_cancellation),
    Mistake("you added an ε inside the square root (√(var + ε)): a feature with variance exactly 0 — what a "
            "collapsed generator produces — then gets σ = √ε instead of 0, and the distance comes out too small. "
            "torch.sqrt(0) is 0; no ε is needed.",
            lambda m1, v1, m2, v2: _frechet_diag(m1, v1 + 1e-8, m2, v2 + 1e-8), symptom=_zero_variance),
    Mistake("the mean term is the *squared* distance ‖μ1 − μ2‖² = Σ_d (μ1,d − μ2,d)²; you took the norm "
            "without squaring it.",
            lambda m1, v1, m2, v2: (m1 - m2).norm() + ((v1.sqrt() - v2.sqrt()) ** 2).sum()),
    Mistake("you compared variances instead of standard deviations: for diagonal covariances "
            "Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) = Σ_d (σ1,d − σ2,d)², not Σ_d (σ1,d² − σ2,d²)².",
            lambda m1, v1, m2, v2: ((m1 - m2) ** 2).sum() + ((v1 - v2) ** 2).sum()),
    Mistake("the cross term needs its factor 2: Σ_d (σ1,d² + σ2,d² − 2σ1,dσ2,d) = Σ_d (σ1,d − σ2,d)².",
            lambda m1, v1, m2, v2: ((m1 - m2) ** 2).sum() + (v1 + v2 - (v1 * v2).sqrt()).sum()),
    Mistake("you returned the square root: the Fréchet distance of FID is the *squared* 2-Wasserstein "
            "distance, ‖μ1 − μ2‖² + Tr(…), with no root taken.",
            lambda m1, v1, m2, v2: _frechet_diag(m1, v1, m2, v2).sqrt()),
    Mistake("you averaged over the features; the distance *sums* over them (a trace and a squared norm).",
            lambda m1, v1, m2, v2: _frechet_diag(m1, v1, m2, v2) / m1.numel()),
    Mistake("you left out the variance term: two Gaussians with the same means but different spreads (e.g. "
            "a collapsed generator) must be at a positive distance. Add Σ_d (σ1,d − σ2,d)².",
            lambda m1, v1, m2, v2: ((m1 - m2) ** 2).sum()),
    Mistake("you left out the mean term ‖μ1 − μ2‖²: samples that look wrong on average must cost something.",
            lambda m1, v1, m2, v2: ((v1.sqrt() - v2.sqrt()) ** 2).sum()),
]

FRECHET_DIAG_CHECK = Check("Exercise 3.3 (Fréchet distance, diagonal Gaussians)", _frechet_diag, _fd_cases,
                           _FD_MISTAKES, TensorResult("float", scalar_ok=True), ("mu1", "var1", "mu2", "var2"),
                           atol=1e-6, rtol=1e-3)


def check_frechet_distance_diag(student_fn: Callable[..., torch.Tensor | float]) -> None:
    """Exercise 3.3: ``fd(mu1, var1, mu2, var2)`` for diagonal Gaussians, all (D,) → a scalar."""
    FRECHET_DIAG_CHECK.run(student_fn)
