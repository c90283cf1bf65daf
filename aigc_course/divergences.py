"""Densities and divergences: entropy, KL, JS, Gaussian KL, 1D mixtures, fitting q by forward/reverse KL.

Discrete distributions are probability tensors whose *last* dimension sums to one, shape ``(..., K)``;
every divergence reduces that dimension, so a batch ``(B, K)`` gives ``(B,)``. Natural logs throughout
(units: nats). Conventions follow the limits: ``0·log 0 = 0`` and ``p·log(p/0) = +inf`` for ``p > 0``.

>>> p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])
>>> kl_divergence(p, q)          # KL(p || q) = 0.5 log(0.5/0.9) + 0.5 log(0.5/0.1) ≈ 0.511
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = [
    "entropy", "cross_entropy", "kl_divergence", "js_divergence",
    "gaussian_log_prob", "gaussian_kl", "gaussian_mle", "Mixture1D",
    "discretize", "grid_kl", "fit_gaussian", "FitResult",
    "inverse_cdf_sample", "ks_statistic", "kde_log_prob",
]

LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------- input validation

def _as_float_tensor(name: str, x: object) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        if not (x.is_floating_point()):
            x = x.to(torch.get_default_dtype())
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return torch.tensor(float(x))
    raise TypeError(f"{name} must be a torch.Tensor (or a float), got {type(x).__name__}")


def _check_probs(name: str, p: object, atol: float = 1e-4) -> torch.Tensor:
    """Validate a probability tensor of shape (..., K): finite, non-negative, last dim sums to 1."""
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of probabilities with shape (..., K), "
                        f"got {type(p).__name__}")
    if p.ndim == 0:
        raise ValueError(f"{name} must have shape (..., K) with the probabilities on the last dim, "
                         "got a scalar")
    if not p.is_floating_point():
        p = p.to(torch.get_default_dtype())
    if not torch.isfinite(p).all():
        raise ValueError(f"{name} must be finite, got NaN or inf")
    if (p < 0).any():
        raise ValueError(f"{name} must be non-negative, got min {p.min().item():.3g}")
    sums = p.sum(dim=-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=atol, rtol=0):
        worst = (sums - 1).abs().max().item()
        raise ValueError(f"{name} must sum to 1 over its last dim (shape {tuple(p.shape)}); "
                         f"off by up to {worst:.3g}")
    return p


def _check_pair(p: object, q: object) -> tuple[torch.Tensor, torch.Tensor]:
    p, q = _check_probs("p", p), _check_probs("q", q)
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(f"p and q must have the same number of outcomes K on the last dim, "
                         f"got p {tuple(p.shape)} and q {tuple(q.shape)}")
    try:
        torch.broadcast_shapes(p.shape, q.shape)
    except RuntimeError:
        raise ValueError(f"p {tuple(p.shape)} and q {tuple(q.shape)} must broadcast") from None
    dtype = torch.promote_types(p.dtype, q.dtype)
    return p.to(dtype), q.to(dtype)


def _broadcast(**tensors: torch.Tensor) -> None:
    try:
        torch.broadcast_shapes(*(t.shape for t in tensors.values()))
    except RuntimeError:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items())
        raise ValueError(f"shapes must broadcast, got {shapes}") from None


# --------------------------------------------------------------------------- discrete distributions

def entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy H(p) = -Σ_k p_k log p_k in nats; (..., K) → (...)."""
    p = _check_probs("p", p)
    return -torch.xlogy(p, p).sum(dim=-1)


def cross_entropy(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Cross-entropy H(p, q) = -Σ_k p_k log q_k; (..., K), (..., K) → (...). Equals H(p) + KL(p‖q)."""
    p, q = _check_pair(p, q)
    return -torch.xlogy(p, q).sum(dim=-1)  # xlogy(0, 0) = 0; p > 0 = q gives +inf


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) = Σ_k p_k log(p_k / q_k); (..., K), (..., K) → (...).

    Terms with ``p_k = 0`` contribute 0; ``q_k = 0`` where ``p_k > 0`` gives ``+inf``.
    """
    p, q = _check_pair(p, q)
    kl = (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(dim=-1)
    return kl.clamp_min(0.0)  # Gibbs: KL ≥ 0; clamp only removes round-off of order 1e-16


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence ½KL(p‖m) + ½KL(q‖m) with m = (p+q)/2; (..., K) → (...), in [0, log 2]."""
    p, q = _check_pair(p, q)
    # KL(p‖m) = Σ p log(2p / (p+q)); dividing by p+q rather than forming m = (p+q)/2 avoids m underflowing
    # to 0 for tiny (subnormal) q, which would make a term p log(p/0) = inf.
    total = p + q
    safe = lambda a: torch.where(total > 0, 2 * a / total, torch.ones_like(a))  # noqa: E731
    js = 0.5 * (torch.xlogy(p, safe(p)) + torch.xlogy(q, safe(q))).sum(dim=-1)
    return js.clamp_min(0.0)


# --------------------------------------------------------------------------- Gaussians

def gaussian_log_prob(
    x: torch.Tensor, mu: torch.Tensor | float, logvar: torch.Tensor | float
) -> torch.Tensor:
    """Elementwise log N(x; μ, exp(logvar)); all arguments broadcast, the result has the broadcast shape.

    For a diagonal Gaussian over vectors of shape (..., D), sum the result over the last dim.
    """
    x, mu, logvar = (_as_float_tensor(n, v) for n, v in (("x", x), ("mu", mu), ("logvar", logvar)))
    _broadcast(x=x, mu=mu, logvar=logvar)
    return -0.5 * (LOG_2PI + logvar + (x - mu) ** 2 * torch.exp(-logvar))


def gaussian_kl(
    mu1: torch.Tensor, logvar1: torch.Tensor,
    mu2: torch.Tensor | None = None, logvar2: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(N(μ₁, diag σ₁²) ‖ N(μ₂, diag σ₂²)) summed over the last dim; (..., D) → (...).

    Per dimension: ½[log σ₂² − log σ₁² + (σ₁² + (μ₁ − μ₂)²)/σ₂² − 1]. Without ``mu2``/``logvar2`` the second
    Gaussian is the standard normal N(0, I) — the VAE prior — and this is ½Σ(σ₁² + μ₁² − 1 − log σ₁²).
    """
    mu1, logvar1 = _as_float_tensor("mu1", mu1), _as_float_tensor("logvar1", logvar1)
    if (mu2 is None) != (logvar2 is None):
        raise ValueError("give both mu2 and logvar2, or neither (standard normal)")
    mu2 = torch.zeros_like(mu1) if mu2 is None else _as_float_tensor("mu2", mu2)
    logvar2 = torch.zeros_like(logvar1) if logvar2 is None else _as_float_tensor("logvar2", logvar2)
    for name, t in (("mu1", mu1), ("logvar1", logvar1), ("mu2", mu2), ("logvar2", logvar2)):
        if t.ndim == 0:
            raise ValueError(f"{name} must have shape (..., D) (the KL sums over the last dim D), "
                             "got a scalar; use shape (1,) for a 1D Gaussian")
    _broadcast(mu1=mu1, logvar1=logvar1, mu2=mu2, logvar2=logvar2)
    per_dim = 0.5 * (logvar2 - logvar1 + (torch.exp(logvar1) + (mu1 - mu2) ** 2) * torch.exp(-logvar2) - 1.0)
    return per_dim.sum(dim=-1)


def gaussian_mle(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum-likelihood Gaussian for samples x of shape (N, ...): mean and *biased* variance (÷N), dim 0.

    Returns ``(mu, var)``, each of shape ``x.shape[1:]``.
    """
    x = _as_float_tensor("x", x)
    if x.ndim == 0 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (N, ...) with N ≥ 1 samples, got {tuple(x.shape)}")
    mu = x.mean(dim=0)
    return mu, ((x - mu) ** 2).mean(dim=0)


# --------------------------------------------------------------------------- 1D mixtures

class Mixture1D:
    """Mixture of K univariate Gaussians p(x) = Σ_k w_k N(x; μ_k, σ_k²).

    ``weights``, ``means``, ``stds`` have shape (K,); weights must be a probability vector, stds positive.
    """

    def __init__(self, weights, means, stds) -> None:
        w = _check_probs("weights", torch.as_tensor(weights, dtype=torch.float64))
        mu = torch.as_tensor(means, dtype=torch.float64)
        sd = torch.as_tensor(stds, dtype=torch.float64)
        if w.ndim != 1:
            raise ValueError(f"weights must have shape (K,), got {tuple(w.shape)}")
        for name, t in (("means", mu), ("stds", sd)):
            if t.shape != w.shape:
                raise ValueError(f"{name} must have shape (K,) = {tuple(w.shape)} like weights, "
                                 f"got {tuple(t.shape)}")
            if not torch.isfinite(t).all():
                raise ValueError(f"{name} must be finite")
        if (sd <= 0).any():
            raise ValueError(f"stds must be positive, got {sd.tolist()}")
        self.weights, self.means, self.stds = w, mu, sd

    def __repr__(self) -> str:
        return (f"Mixture1D(weights={self.weights.tolist()}, means={self.means.tolist()}, "
                f"stds={self.stds.tolist()})")

    def _x(self, x) -> torch.Tensor:
        x = _as_float_tensor("x", x)
        return x.to(torch.float64)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) for x of any shape (float64 result, same shape), via log-sum-exp over components."""
        x = self._x(x)
        comp = gaussian_log_prob(x.unsqueeze(-1), self.means, 2 * self.stds.log())  # (..., K)
        return torch.logsumexp(comp + self.weights.log(), dim=-1)

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        """P(X ≤ x) = Σ_k w_k Φ((x − μ_k)/σ_k), same shape as x."""
        z = (self._x(x).unsqueeze(-1) - self.means) / self.stds
        return (self.weights * 0.5 * torch.erfc(-z / math.sqrt(2))).sum(dim=-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling: pick a component k ~ w, then x ~ N(μ_k, σ_k²). Returns shape (n,)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator) if n else \
            torch.zeros(0, dtype=torch.long)
        eps = torch.randn(n, generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k] * eps

    def mean(self) -> torch.Tensor:
        """E[x] = Σ w_k μ_k."""
        return (self.weights * self.means).sum()

    def variance(self) -> torch.Tensor:
        """Var[x] = Σ w_k (σ_k² + μ_k²) − E[x]² (law of total variance)."""
        return (self.weights * (self.stds**2 + self.means**2)).sum() - self.mean() ** 2


# --------------------------------------------------------------------------- densities on a grid

def _check_grid(grid: object) -> torch.Tensor:
    if not isinstance(grid, torch.Tensor) or grid.ndim != 1 or grid.numel() < 3:
        raise ValueError("grid must be a 1D tensor of at least 3 equally spaced points, "
                         f"got {type(grid).__name__} {tuple(getattr(grid, 'shape', ()))}")
    dx = grid.diff()
    if (dx <= 0).any() or not torch.allclose(dx, dx[0].expand_as(dx), rtol=1e-4, atol=0):
        raise ValueError("grid must be increasing and equally spaced (e.g. torch.linspace(-8, 8, 2001))")
    return grid.to(torch.float64)


def discretize(log_density: torch.Tensor) -> torch.Tensor:
    """Log-density values on a uniform grid, shape (..., G) → probability vector of the cells, (..., G).

    The cell masses p(x_i)·Δx / Σ_j p(x_j)·Δx are a softmax of the log-density (Δx cancels), so the density
    may be unnormalised. Discrete divergences of these vectors approximate the continuous ones.
    """
    log_density = _as_float_tensor("log_density", log_density)
    if log_density.ndim == 0:
        raise ValueError("log_density must have shape (..., G) with the grid on the last dim, got a scalar")
    return torch.softmax(log_density, dim=-1)


def grid_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) between two densities given by (possibly unnormalised) log values on the same uniform grid.

    Shapes (..., G) and (..., G) → (...). Stable where a density underflows: works in log space.
    """
    log_p, log_q = _as_float_tensor("log_p", log_p), _as_float_tensor("log_q", log_q)
    if log_p.ndim == 0 or log_q.ndim == 0 or log_p.shape[-1] != log_q.shape[-1]:
        raise ValueError(f"log_p and log_q must have shape (..., G) with the same grid size G, "
                         f"got {tuple(log_p.shape)} and {tuple(log_q.shape)}")
    _broadcast(log_p=log_p, log_q=log_q)
    lp, lq = torch.log_softmax(log_p, dim=-1), torch.log_softmax(log_q, dim=-1)
    return (lp.exp() * (lp - lq)).sum(dim=-1)


@dataclass
class FitResult:
    """A fitted Gaussian q = N(mu, std²) and the objective value after each optimisation step."""

    mu: float
    std: float
    history: torch.Tensor  # (steps,)


def fit_gaussian(
    target_log_prob: Callable[[torch.Tensor], torch.Tensor],
    direction: Literal["forward", "reverse"] = "forward",
    init: tuple[float, float] = (0.0, 0.0),
    steps: int = 500,
    lr: float = 0.05,
    grid: torch.Tensor | None = None,
) -> FitResult:
    """Fit q = N(μ, σ²) to a 1D target p by gradient descent on KL(p‖q) ("forward") or KL(q‖p) ("reverse").

    Both KLs are computed by quadrature on ``grid`` (default 2401 points on [-12, 12]) with :func:`grid_kl`,
    so the objective is deterministic and the target may be unnormalised. ``init = (μ₀, log σ₀)``; the
    parameters are (μ, log σ), optimised with Adam for ``steps`` steps at learning rate ``lr``.
    """
    if direction not in ("forward", "reverse"):
        raise ValueError(f"direction must be 'forward' or 'reverse', got {direction!r}")
    if not callable(target_log_prob):
        raise TypeError("target_log_prob must be a callable x -> log p(x), "
                        f"got {type(target_log_prob).__name__}")
    if not (isinstance(init, (tuple, list)) and len(init) == 2):
        raise ValueError(f"init must be a pair (mu, log_std), got {init!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    grid = _check_grid(torch.linspace(-12.0, 12.0, 2401, dtype=torch.float64) if grid is None else grid)
    log_p = torch.as_tensor(target_log_prob(grid), dtype=torch.float64).detach()
    if log_p.shape != grid.shape or torch.isnan(log_p).any():
        raise ValueError(f"target_log_prob(grid) must return {tuple(grid.shape)} values without NaN")

    mu = torch.tensor(float(init[0]), dtype=torch.float64, requires_grad=True)
    log_std = torch.tensor(float(init[1]), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([mu, log_std], lr=lr)
    history = torch.empty(steps, dtype=torch.float64)
    for t in range(steps):
        log_q = gaussian_log_prob(grid, mu, 2 * log_std)
        loss = grid_kl(log_p, log_q) if direction == "forward" else grid_kl(log_q, log_p)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history[t] = loss.detach()
    return FitResult(mu=mu.item(), std=log_std.exp().item(), history=history)


# --------------------------------------------------------------------------- sampling

def inverse_cdf_sample(
    cdf: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    low: float,
    high: float,
    generator: torch.Generator | None = None,
    iters: int = 60,
) -> torch.Tensor:
    """Draw n samples x = F⁻¹(u), u ~ U(0, 1), inverting a monotone 1D ``cdf`` by bisection on [low, high].

    Needs F(low) ≈ 0 and F(high) ≈ 1; 60 halvings resolve x to (high − low)·2⁻⁶⁰. Returns shape (n,), float64.
    """
    if not callable(cdf):
        raise TypeError(f"cdf must be a callable x -> F(x), got {type(cdf).__name__}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not low < high:
        raise ValueError(f"need low < high, got low={low!r}, high={high!r}")
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    lo = torch.full_like(u, float(low))
    hi = torch.full_like(u, float(high))
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        below = torch.as_tensor(cdf(mid), dtype=torch.float64) < u
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def ks_statistic(samples: torch.Tensor, cdf: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """Kolmogorov–Smirnov distance sup_x |F_n(x) − F(x)| between the empirical CDF of 1D samples and ``cdf``.

    For n i.i.d. samples from F it is typically ≈ 0.87/√n; values above 1.36/√n (1.63/√n) reject F
    at the 5 % (1 %) level.
    """
    x = _as_float_tensor("samples", samples)
    if x.ndim != 1 or x.numel() == 0:
        raise ValueError(f"samples must have shape (n,) with n ≥ 1, got {tuple(x.shape)}")
    x, _ = x.to(torch.float64).sort()
    n = x.numel()
    f = torch.as_tensor(cdf(x), dtype=torch.float64)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    # the empirical CDF jumps from (i-1)/n to i/n at the i-th order statistic: check both sides of each jump
    return torch.maximum(i / n - f, f - (i - 1) / n).max().item()


def kde_log_prob(x: torch.Tensor, data: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Gaussian kernel density estimate log p̂(x) = log (1/N) Σ_i N(x; data_i, h²).

    Shapes: x (...), data (N,) → (...); ``bandwidth`` is the kernel std h.
    """
    x, data = _as_float_tensor("x", x), _as_float_tensor("data", data)
    if data.ndim != 1 or data.numel() == 0:
        raise ValueError(f"data must have shape (N,) with N ≥ 1, got {tuple(data.shape)}")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth!r}")
    comp = gaussian_log_prob(x.unsqueeze(-1), data, 2 * math.log(bandwidth))  # (..., N)
    return torch.logsumexp(comp, dim=-1) - math.log(data.numel())
