"""2D toy distributions for GANs, VAEs and diffusion: Gaussian mixtures with known density, swiss roll, moons.

All samplers are pure torch and reproducible: pass a ``torch.Generator`` (CPU) to get the same points on
every run; without one they draw from torch's global RNG (seeded by ``setup_lesson``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import torch

from ..validation import check_generator as _check_generator

DEFAULT_NOISE = {"ring8": 0.02, "grid25": 0.05, "swiss_roll": 0.1, "two_moons": 0.1}
TOY_2D_NAMES = tuple(DEFAULT_NOISE)
MIXTURE_NAMES = ("ring8", "grid25")


def _check_n(n: object, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{name} must be >= 1, got {n}")
    return n


def _check_nonneg(value: object, name: str, strictly_positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (strictly_positive and v == 0):
        bound = "> 0" if strictly_positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return v


def _check_points(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, 2), got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no single truth value
class GaussianMixture2D:
    """Mixture of K isotropic 2D Gaussians sharing one standard deviation.

    ``means`` (K, 2) float32, ``std`` float > 0, ``weights`` (K,) non-negative, summing to 1.
    """

    means: torch.Tensor
    std: float
    weights: torch.Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.means, torch.Tensor):
            raise TypeError(f"means must be a torch.Tensor of shape (K, 2), got {type(self.means).__name__}")
        if self.means.ndim != 2 or self.means.shape[1] != 2:
            raise ValueError(f"means must have shape (K, 2), got {tuple(self.means.shape)}")
        if self.means.shape[0] < 1:
            raise ValueError("means must hold at least one component, got K = 0")
        _check_nonneg(self.std, "std", strictly_positive=True)
        k, w = self.means.shape[0], self.weights
        if not isinstance(w, torch.Tensor):
            raise TypeError(f"weights must be a torch.Tensor of shape ({k},), got {type(w).__name__}")
        if tuple(w.shape) != (k,):
            raise ValueError(f"weights must have shape ({k},) to match means, got {tuple(w.shape)}")
        total = float(self.weights.sum())
        if bool((self.weights < 0).any()) or not abs(total - 1.0) <= 1e-5:  # `not <=` also rejects NaN
            raise ValueError(f"weights must be non-negative and sum to 1, got sum {total:.6f}")
        # Frozen dataclass: normalise dtypes through object.__setattr__.
        object.__setattr__(self, "means", self.means.detach().to(torch.float32))
        object.__setattr__(self, "weights", self.weights.detach().to(torch.float32))
        object.__setattr__(self, "std", float(self.std))

    @classmethod
    def uniform(cls, means: torch.Tensor, std: float) -> GaussianMixture2D:
        """Equal weights 1/K for the K rows of ``means`` (K, 2)."""
        if not isinstance(means, torch.Tensor):
            raise TypeError(f"means must be a torch.Tensor of shape (K, 2), got {type(means).__name__}")
        k = means.shape[0] if means.ndim > 0 else 0
        return cls(means, std, torch.full((k,), 1.0 / max(k, 1)))

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` points, float32 (n, 2): pick a component by weight, then add N(0, std^2 I) noise."""
        _check_n(n)
        _check_generator(generator)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, 2, generator=generator)
        return self.means[k] + self.std * noise

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log density at points ``x`` (N, 2) -> (N,).

        log p(x) = logsumexp_k [ log w_k - |x - mu_k|^2 / (2 std^2) - log(2 pi std^2) ].
        """
        x = _check_points(x, "x")
        means = self.means.to(dtype=x.dtype, device=x.device)
        log_w = self.weights.to(dtype=x.dtype, device=x.device).log()
        # (N, K) squared distances, computed directly: cdist may go through a less exact matmul.
        sq_dist = (x[:, None, :] - means[None, :, :]).square().sum(dim=-1)
        var = self.std**2
        log_normal = -sq_dist / (2 * var) - math.log(2 * math.pi * var)
        return torch.logsumexp(log_w + log_normal, dim=1)

    def nearest(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For points ``x`` (N, 2): index (N,) of the nearest mean and distance (N,) to it."""
        x = _check_points(x, "x")
        means = self.means.to(dtype=x.dtype, device=x.device)
        sq_dist = (x[:, None, :] - means[None, :, :]).square().sum(dim=-1)  # (N, K)
        d2, idx = sq_dist.min(dim=1)
        return idx, d2.sqrt()


def gaussian_mixture_2d(name: str, std: float | None = None) -> GaussianMixture2D:
    """The density-known toy targets: ``"ring8"`` (8 equal modes on a circle of radius 2, std 0.02) or
    ``"grid25"`` (a 5x5 grid at -4, -2, 0, 2, 4, std 0.05). ``std`` overrides the default spread."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in MIXTURE_NAMES:
        raise ValueError(f"name must be one of {', '.join(MIXTURE_NAMES)} (mixtures with a known density), "
                         f"got {name!r}")
    std = DEFAULT_NOISE[name] if std is None else _check_nonneg(std, "std", strictly_positive=True)
    if name == "ring8":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        means = 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)
    else:
        ticks = torch.arange(-4.0, 5.0, 2.0, dtype=torch.float64)
        gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
        means = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    return GaussianMixture2D.uniform(means.to(torch.float32), std)


def _swiss_roll(n: int, noise: float, generator: torch.Generator | None) -> torch.Tensor:
    # Archimedean spiral r = t for t in [1.5 pi, 4.5 pi] (one and a half turns), scaled to about [-2.7, 2.7].
    t = 1.5 * math.pi * (1.0 + 2.0 * torch.rand(n, generator=generator))
    x = torch.stack([t * t.cos(), t * t.sin()], dim=1) / 5.0
    return x + noise * torch.randn(n, 2, generator=generator)


def _two_moons(n: int, noise: float, generator: torch.Generator | None) -> torch.Tensor:
    # Upper half circle of radius 1 and a lower one shifted by (1, 0.5), centred at the origin.
    theta = math.pi * torch.rand(n, generator=generator)
    lower = torch.rand(n, generator=generator) < 0.5
    upper_pts = torch.stack([theta.cos(), theta.sin()], dim=1)
    lower_pts = torch.stack([1.0 - theta.cos(), 0.5 - theta.sin()], dim=1)
    x = torch.where(lower[:, None], lower_pts, upper_pts) - torch.tensor([0.5, 0.25])
    return x + noise * torch.randn(n, 2, generator=generator)


def sample_2d(
    name: str, n: int, *, generator: torch.Generator | None = None, noise: float | None = None
) -> torch.Tensor:
    """Draw ``n`` points, float32 (n, 2), from a named toy distribution.

    ``name``: ``"ring8"``, ``"grid25"``, ``"swiss_roll"`` or ``"two_moons"``. ``noise`` is the std of each
    mixture component (ring8: 0.02, grid25: 0.05) or of the Gaussian jitter added to the curve (swiss_roll
    and two_moons: 0.1); ``None`` takes these defaults.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in DEFAULT_NOISE:
        raise ValueError(f"unknown 2D distribution name {name!r}; valid names: {', '.join(TOY_2D_NAMES)}")
    _check_n(n)
    _check_generator(generator)
    if noise is None:
        noise = DEFAULT_NOISE[name]
    noise = _check_nonneg(noise, "noise", strictly_positive=name in MIXTURE_NAMES)
    if name in MIXTURE_NAMES:
        return gaussian_mixture_2d(name, std=noise).sample(n, generator=generator)
    if name == "swiss_roll":
        return _swiss_roll(n, noise, generator)
    return _two_moons(n, noise, generator)


def _within(
    samples: torch.Tensor, mixture: GaussianMixture2D, max_std: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-component index (N,) and whether each sample is within max_std * std of it (N,)."""
    if not isinstance(mixture, GaussianMixture2D):
        raise TypeError(f"mixture must be a GaussianMixture2D, got {type(mixture).__name__}")
    samples = _check_points(samples, "samples")
    if samples.shape[0] == 0:
        raise ValueError("samples must hold at least one point, got shape (0, 2)")
    max_std = _check_nonneg(max_std, "max_std", strictly_positive=True)
    idx, dist = mixture.nearest(samples.detach().float())
    return idx, dist <= max_std * mixture.std


def modes_covered(
    samples: torch.Tensor, mixture: GaussianMixture2D, max_std: float = 3.0, min_fraction: float = 0.01
) -> int:
    """Number of mixture components that the samples (N, 2) cover.

    Rule: a component is covered when at least ``min_fraction`` of all samples (1 % by default, and at
    least one sample) lie within ``max_std * std`` of its mean. For an exact sample from a 2D isotropic
    Gaussian, 1 - exp(-max_std^2 / 2) of the points fall inside that radius (98.9 % for 3 std), so a
    perfect generator covers every mode of ring8/grid25 once N is a few hundred.
    """
    idx, inside = _within(samples, mixture, max_std)
    min_fraction = _check_nonneg(min_fraction, "min_fraction")
    if min_fraction > 1:
        raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction}")
    counts = torch.bincount(idx[inside], minlength=mixture.num_components)
    needed = max(1, math.ceil(min_fraction * samples.shape[0]))
    return int((counts >= needed).sum())


def high_quality_fraction(samples: torch.Tensor, mixture: GaussianMixture2D, max_std: float = 3.0) -> float:
    """Fraction of samples (N, 2) within ``max_std * std`` of some component mean.

    An exact sample scores about 1 - exp(-max_std^2 / 2) (0.989 for 3 std).
    """
    _, inside = _within(samples, mixture, max_std)
    return float(inside.float().mean())
