"""Densities and divergences: entropy, KL, JS, Gaussian KL, 1D mixtures, fitting q by forward/reverse KL.

Discrete distributions are probability tensors whose *last* dimension sums to one, shape ``(..., K)``;
every divergence reduces that dimension, so a batch ``(B, K)`` gives ``(B,)``. Natural logs throughout
(units: nats). Conventions follow the limits: ``0·log 0 = 0`` and ``p·log(p/0) = +inf`` for ``p > 0``.

Dtypes: integer tensors are converted to float64; bool and complex tensors are refused. float16 and
bfloat16 inputs are computed in float32 and the result is returned in the input's dtype. Probability
vectors must sum to 1 within ``max(1e-4, 4·eps)`` of their dtype, so a valid fp16/bf16 distribution passes.

>>> p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])
>>> kl_divergence(p, q)          # KL(p || q) = 0.5 log(0.5/0.9) + 0.5 log(0.5/0.1) ≈ 0.511
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from .validation import check_finite as _check_finite
from .validation import check_generator as _check_generator

__all__ = [
    "entropy", "cross_entropy", "kl_divergence", "js_divergence",
    "gaussian_log_prob", "gaussian_kl", "gaussian_mle", "Mixture1D",
    "discretize", "grid_kl", "fit_gaussian", "FitResult",
    "inverse_cdf_sample", "ks_statistic", "kde_log_prob",
]

LOG_2PI = math.log(2 * math.pi)
_HALF = (torch.float16, torch.bfloat16)


# --------------------------------------------------------------------------- input validation
# (shared with aigc_course.ngram)

def _real_tensor(name: str, x: object, numbers: bool = True) -> torch.Tensor:
    """``x`` as a real floating tensor: integer tensors → float64, Python numbers → 0-d float64.

    Bool and complex tensors, and anything else, raise a TypeError naming ``name``.
    """
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool or x.is_complex():
            raise TypeError(f"{name} must be a real-valued (float or int) tensor, got dtype {x.dtype}")
        return x if x.is_floating_point() else x.to(torch.float64)
    if numbers and isinstance(x, (int, float)) and not isinstance(x, bool):
        try:
            return torch.tensor(float(x), dtype=torch.float64)
        except OverflowError:
            raise ValueError(f"{name} must be finite, got an int too large for a float") from None
    what = "a torch.Tensor (or a float)" if numbers else "a torch.Tensor"
    raise TypeError(f"{name} must be {what}, got {type(x).__name__}")


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype to compute in: float32 for float16/bfloat16 (too few bits for sums and exps), else dtype."""
    return torch.float32 if dtype in _HALF else dtype


def _result_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """torch's promotion for float tensors: 0-d tensors (e.g. from Python numbers) don't widen the others."""
    dtypes = [t.dtype for t in tensors if t.ndim] or [t.dtype for t in tensors]
    return functools.reduce(torch.promote_types, dtypes)


def _check_not_nan(name: str, t: torch.Tensor) -> None:
    if torch.isnan(t).any():
        raise ValueError(f"{name} must not contain NaN")


def _check_log_values(name: str, t: torch.Tensor) -> None:
    """Log-density values (..., G): -inf allowed (zero density), NaN and +inf not, each row not all -inf."""
    _check_not_nan(name, t)
    if (t == math.inf).any():
        raise ValueError(f"{name} must not contain +inf (an infinite density)")
    if not (t > -math.inf).any(dim=-1).all():
        raise ValueError(f"{name} must have a finite value in every row (shape (..., G)); "
                         "a row of -inf is a density that is zero everywhere")


def _sum_tolerance(dtype: torch.dtype, k: int) -> float:
    """How far from 1 the sum of a valid K-outcome probability vector stored in ``dtype`` may be."""
    fi = torch.finfo(dtype)
    # rounding each p_k to dtype moves the sum by ≤ eps/2 (relative) plus ≤ one subnormal step per entry
    return max(1e-4, 4 * fi.eps + k * fi.eps * fi.tiny)


def _check_probs(name: str, p: object) -> torch.Tensor:
    """Validate a probability tensor of shape (..., K): finite, non-negative, last dim sums to 1."""
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of probabilities with shape (..., K), "
                        f"got {type(p).__name__}")
    p = _real_tensor(name, p)
    if p.ndim == 0:
        raise ValueError(f"{name} must have shape (..., K) with the probabilities on the last dim, "
                         "got a scalar")
    if p.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one outcome on its last dim, got shape {tuple(p.shape)}")
    _check_finite(name, p)
    if (p < 0).any():
        raise ValueError(f"{name} must be non-negative, got min {p.min().item():.3g}")
    sums = p.to(torch.float64).sum(dim=-1)
    worst = (sums - 1).abs().max().item() if sums.numel() else 0.0
    if worst > _sum_tolerance(p.dtype, p.shape[-1]):
        raise ValueError(f"{name} must sum to 1 over its last dim (shape {tuple(p.shape)}); "
                         f"off by up to {worst:.3g}")
    return p


def _check_pair(p: object, q: object) -> tuple[torch.Tensor, torch.Tensor, torch.dtype]:
    """Validated p, q in a common compute dtype, and the dtype of the result."""
    p, q = _check_probs("p", p), _check_probs("q", q)
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(f"p and q must have the same number of outcomes K on the last dim, "
                         f"got p {tuple(p.shape)} and q {tuple(q.shape)}")
    _broadcast(p=p, q=q)
    dtype = torch.promote_types(p.dtype, q.dtype)
    work = _work_dtype(dtype)
    return p.to(work), q.to(work), dtype


def _broadcast(**tensors: torch.Tensor) -> None:
    try:
        torch.broadcast_shapes(*(t.shape for t in tensors.values()))
    except RuntimeError:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items())
        raise ValueError(f"shapes must broadcast, got {shapes}") from None


def _number(name: str, x: object, positive: bool = False) -> float:
    """A finite real Python number (bool refused); ``positive`` also refuses x <= 0."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(x).__name__}")
    try:
        x = float(x)
    except OverflowError:
        x = math.inf
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x!r}")
    if positive and x <= 0:
        raise ValueError(f"{name} must be positive, got {x!r}")
    return x


def _check_count(name: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{name} must be a non-negative int, got {n!r}")
    return n


# --------------------------------------------------------------------------- discrete distributions

def entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy H(p) = -Σ_k p_k log p_k in nats; (..., K) → (...)."""
    p = _check_probs("p", p)
    w = p.to(_work_dtype(p.dtype))
    return (-torch.xlogy(w, w).sum(dim=-1) + 0.0).to(p.dtype)


def cross_entropy(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Cross-entropy H(p, q) = -Σ_k p_k log q_k; (..., K), (..., K) → (...). Equals H(p) + KL(p‖q)."""
    p, q, dtype = _check_pair(p, q)
    return (-torch.xlogy(p, q).sum(dim=-1) + 0.0).to(dtype)  # xlogy(0, 0) = 0; p > 0 = q gives +inf


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) = Σ_k p_k log(p_k / q_k); (..., K), (..., K) → (...).

    Terms with ``p_k = 0`` contribute 0; ``q_k = 0`` where ``p_k > 0`` gives ``+inf``.
    """
    p, q, dtype = _check_pair(p, q)
    kl = (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(dim=-1)
    return kl.clamp_min(0.0).to(dtype)  # Gibbs: KL ≥ 0; clamp only removes round-off of order 1e-16


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence ½KL(p‖m) + ½KL(q‖m) with m = (p+q)/2; (..., K) → (...), in [0, log 2]."""
    p, q, dtype = _check_pair(p, q)
    # KL(p‖m) = Σ p log(2p / (p+q)); dividing by p+q rather than forming m = (p+q)/2 avoids m underflowing
    # to 0 for tiny (subnormal) q, which would make a term p log(p/0) = inf.
    total = p + q
    safe = lambda a: torch.where(total > 0, 2 * a / total, torch.ones_like(a))  # noqa: E731
    js = 0.5 * (torch.xlogy(p, safe(p)) + torch.xlogy(q, safe(q))).sum(dim=-1)
    return js.clamp_min(0.0).to(dtype)


# --------------------------------------------------------------------------- Gaussians

def gaussian_log_prob(
    x: torch.Tensor, mu: torch.Tensor | float, logvar: torch.Tensor | float
) -> torch.Tensor:
    """Elementwise log N(x; μ, exp(logvar)); all arguments broadcast, the result has the broadcast shape.

    ``mu`` and ``logvar`` must be finite; ``x = ±inf`` gives ``-inf``. For a diagonal Gaussian over vectors
    of shape (..., D), sum the result over the last dim.
    """
    x, mu, logvar = (_real_tensor(n, v) for n, v in (("x", x), ("mu", mu), ("logvar", logvar)))
    _broadcast(x=x, mu=mu, logvar=logvar)
    _check_not_nan("x", x)
    _check_finite("mu", mu)
    _check_finite("logvar", logvar)
    dtype = _result_dtype(x, mu, logvar)
    work = _work_dtype(dtype)
    x, mu, logvar = x.to(work), mu.to(work), logvar.to(work)
    return (-0.5 * (LOG_2PI + logvar + (x - mu) ** 2 * torch.exp(-logvar))).to(dtype)


def gaussian_kl(
    mu1: torch.Tensor, logvar1: torch.Tensor,
    mu2: torch.Tensor | None = None, logvar2: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(N(μ₁, diag σ₁²) ‖ N(μ₂, diag σ₂²)) summed over the last dim; (..., D) → (...).

    Per dimension: ½[log σ₂² − log σ₁² + (σ₁² + (μ₁ − μ₂)²)/σ₂² − 1]. Without ``mu2``/``logvar2`` the second
    Gaussian is the standard normal N(0, I) — the VAE prior — and this is ½Σ(σ₁² + μ₁² − 1 − log σ₁²).
    """
    mu1, logvar1 = _real_tensor("mu1", mu1), _real_tensor("logvar1", logvar1)
    if (mu2 is None) != (logvar2 is None):
        raise ValueError("give both mu2 and logvar2, or neither (standard normal)")
    mu2 = torch.zeros_like(mu1) if mu2 is None else _real_tensor("mu2", mu2)
    logvar2 = torch.zeros_like(logvar1) if logvar2 is None else _real_tensor("logvar2", logvar2)
    args = {"mu1": mu1, "logvar1": logvar1, "mu2": mu2, "logvar2": logvar2}
    for name, t in args.items():
        if t.ndim == 0:
            raise ValueError(f"{name} must have shape (..., D) (the KL sums over the last dim D), "
                             "got a scalar; use shape (1,) for a 1D Gaussian")
    _broadcast(**args)
    for name, t in args.items():
        _check_finite(name, t)
    dtype = _result_dtype(*args.values())
    mu1, logvar1, mu2, logvar2 = (t.to(_work_dtype(dtype)) for t in args.values())
    per_dim = 0.5 * (logvar2 - logvar1 + (torch.exp(logvar1) + (mu1 - mu2) ** 2) * torch.exp(-logvar2) - 1.0)
    return per_dim.sum(dim=-1).to(dtype)


def gaussian_mle(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum-likelihood Gaussian for samples x of shape (N, ...): mean and *biased* variance (÷N), dim 0.

    Returns ``(mu, var)``, each of shape ``x.shape[1:]``.
    """
    x = _real_tensor("x", x, numbers=False)
    if x.ndim == 0 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (N, ...) with N ≥ 1 samples, got {tuple(x.shape)}")
    _check_finite("x", x)
    dtype = x.dtype
    x = x.to(_work_dtype(dtype))
    mu = x.mean(dim=0)
    return mu.to(dtype), ((x - mu) ** 2).mean(dim=0).to(dtype)


# --------------------------------------------------------------------------- 1D mixtures

def _vector(name: str, v: object) -> torch.Tensor:
    """A sequence or tensor of K ≥ 1 real numbers, shape (K,); keeps a tensor's dtype."""
    if not isinstance(v, torch.Tensor):
        try:
            v = torch.as_tensor(v, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a sequence of numbers or a tensor of shape (K,), "
                            f"got {type(v).__name__}") from None
    v = _real_tensor(name, v)
    if v.ndim != 1 or v.numel() == 0:
        raise ValueError(f"{name} must have shape (K,) with K ≥ 1, got {tuple(v.shape)}")
    return v


class Mixture1D:
    """Mixture of K univariate Gaussians p(x) = Σ_k w_k N(x; μ_k, σ_k²).

    ``weights``, ``means``, ``stds`` have shape (K,); weights must be a probability vector, stds positive.
    Everything is stored and computed in float64 (the weights are renormalised there).
    """

    def __init__(self, weights, means, stds) -> None:
        w = _check_probs("weights", _vector("weights", weights)).to(torch.float64)
        mu = _vector("means", means).to(torch.float64)
        sd = _vector("stds", stds).to(torch.float64)
        for name, t in (("means", mu), ("stds", sd)):
            if t.shape != w.shape:
                raise ValueError(f"{name} must have shape (K,) = {tuple(w.shape)} like weights, "
                                 f"got {tuple(t.shape)}")
            _check_finite(name, t)
        if (sd <= 0).any():
            raise ValueError(f"stds must be positive, got {sd.tolist()}")
        self.weights, self.means, self.stds = w / w.sum(), mu, sd

    def __repr__(self) -> str:
        return (f"Mixture1D(weights={self.weights.tolist()}, means={self.means.tolist()}, "
                f"stds={self.stds.tolist()})")

    def _x(self, x) -> torch.Tensor:
        x = _real_tensor("x", x)
        _check_not_nan("x", x)
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
        n = _check_count("n", n)
        _check_generator(generator)
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
    if isinstance(grid, torch.Tensor):
        grid = _real_tensor("grid", grid)
    if not isinstance(grid, torch.Tensor) or grid.ndim != 1 or grid.numel() < 3:
        raise ValueError("grid must be a 1D tensor of at least 3 equally spaced points, "
                         f"got {type(grid).__name__} {tuple(getattr(grid, 'shape', ()))}")
    _check_finite("grid", grid)
    grid = grid.to(torch.float64)
    dx = grid.diff()
    if (dx <= 0).any() or not torch.allclose(dx, dx[0].expand_as(dx), rtol=1e-4, atol=0):
        raise ValueError("grid must be increasing and equally spaced (e.g. torch.linspace(-8, 8, 2001))")
    return grid


def _log_density(name: str, t: object) -> torch.Tensor:
    t = _real_tensor(name, t, numbers=False)
    if t.ndim == 0 or t.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (..., G) with G ≥ 1 grid values on the last dim, "
                         f"got {tuple(t.shape)}")
    _check_log_values(name, t)
    return t


def discretize(log_density: torch.Tensor) -> torch.Tensor:
    """Log-density values on a uniform grid, shape (..., G) → probability vector of the cells, (..., G).

    The cell masses p(x_i)·Δx / Σ_j p(x_j)·Δx are a softmax of the log-density (Δx cancels), so the density
    may be unnormalised; ``-inf`` (zero density) is allowed. Discrete divergences of these vectors
    approximate the continuous ones.
    """
    log_density = _log_density("log_density", log_density)
    return torch.softmax(log_density.to(_work_dtype(log_density.dtype)), dim=-1).to(log_density.dtype)


def grid_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) between two densities given by (possibly unnormalised) log values on the same uniform grid.

    Shapes (..., G) and (..., G) → (...). Stable where a density underflows: works in log space. ``-inf``
    marks zero density: cells with p = 0 contribute 0 (0·log 0 = 0), and p > 0 where q = 0 gives +inf.
    """
    log_p, log_q = _log_density("log_p", log_p), _log_density("log_q", log_q)
    if log_p.shape[-1] != log_q.shape[-1]:
        raise ValueError(f"log_p and log_q must have shape (..., G) with the same grid size G, "
                         f"got {tuple(log_p.shape)} and {tuple(log_q.shape)}")
    _broadcast(log_p=log_p, log_q=log_q)
    dtype = torch.promote_types(log_p.dtype, log_q.dtype)
    work = _work_dtype(dtype)
    lp, lq = torch.log_softmax(log_p.to(work), dim=-1), torch.log_softmax(log_q.to(work), dim=-1)
    p = lp.exp()
    # where p = 0 the difference is -inf - log q (or NaN for -inf - -inf): select 0 *before* multiplying,
    # so neither the value nor the gradient sees 0·inf
    diff = torch.where(p > 0, lp - lq, torch.zeros((), dtype=work))
    return (p * diff).sum(dim=-1).to(dtype)


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
    parameters are (μ, log σ), optimised with Adam for ``steps`` steps at learning rate ``lr``. Raises a
    ValueError if the objective stops being finite (e.g. reverse KL to a target with zero density on part
    of the grid, or a learning rate that diverges).
    """
    if not isinstance(direction, str) or direction not in ("forward", "reverse"):
        raise ValueError(f"direction must be 'forward' or 'reverse', got {direction!r}")
    if not callable(target_log_prob):
        raise TypeError("target_log_prob must be a callable x -> log p(x), "
                        f"got {type(target_log_prob).__name__}")
    if not (isinstance(init, (tuple, list)) and len(init) == 2):
        raise ValueError(f"init must be a pair (mu, log_std), got {init!r}")
    mu0, log_std0 = _number("init[0] (mu)", init[0]), _number("init[1] (log_std)", init[1])
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    lr = _number("lr", lr, positive=True)
    grid = _check_grid(torch.linspace(-12.0, 12.0, 2401, dtype=torch.float64) if grid is None else grid)
    try:
        log_p = torch.as_tensor(target_log_prob(grid), dtype=torch.float64).detach()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"target_log_prob(grid) must return a tensor of {tuple(grid.shape)} log-density "
                        f"values ({err})") from None
    if log_p.shape != grid.shape:
        raise ValueError(f"target_log_prob(grid) must return {tuple(grid.shape)} values, "
                         f"got {tuple(log_p.shape)}")
    _check_log_values("target_log_prob(grid)", log_p)

    mu = torch.tensor(mu0, dtype=torch.float64, requires_grad=True)
    log_std = torch.tensor(log_std0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([mu, log_std], lr=lr)
    history = torch.empty(steps, dtype=torch.float64)
    def diverged(t: int, what: str) -> ValueError:
        return ValueError(f"the {direction} {what} at step {t} (mu={mu.item():.4g}, log_std={log_std.item():.4g}):"
                          " lower lr, or for reverse KL use a target whose density is positive on the whole grid")

    for t in range(steps):
        try:
            log_q = gaussian_log_prob(grid, mu, 2 * log_std)
            loss = grid_kl(log_p, log_q) if direction == "forward" else grid_kl(log_q, log_p)
        except ValueError:  # mu or log_std overflowed, or q underflowed to 0 on the whole grid
            raise diverged(t, "fit diverged") from None
        if not torch.isfinite(loss):
            raise diverged(t, f"KL is {loss.item()}")
        opt.zero_grad()
        loss.backward()
        opt.step()
        history[t] = loss.detach()
    std = log_std.exp().item()
    if not (math.isfinite(mu.item()) and 0 < std < math.inf):
        raise diverged(steps, "fit diverged")
    return FitResult(mu=mu.item(), std=std, history=history)


# --------------------------------------------------------------------------- sampling

def _eval_cdf(cdf: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """cdf(x) as float64 of x's shape, with values in [0, 1]; a clear error otherwise."""
    try:
        f = torch.as_tensor(cdf(x), dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"cdf(x) must return a tensor of x's shape {tuple(x.shape)} ({err})") from None
    if f.shape != x.shape:
        raise ValueError(f"cdf(x) must return x's shape {tuple(x.shape)}, got {tuple(f.shape)}")
    if torch.isnan(f).any() or (f < -1e-6).any() or (f > 1 + 1e-6).any():
        raise ValueError("cdf(x) must return probabilities in [0, 1] (no NaN)")
    return f


def inverse_cdf_sample(
    cdf: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    low: float,
    high: float,
    generator: torch.Generator | None = None,
    iters: int = 60,
) -> torch.Tensor:
    """Draw n samples x = F⁻¹(u), u ~ U(0, 1), inverting a monotone 1D ``cdf`` by bisection on [low, high].

    Needs F(low) ≤ 1e-3 and F(high) ≥ 1 − 1e-3 (checked); ``iters`` halvings resolve x to
    (high − low)·2⁻ⁱᵗᵉʳˢ (60: float64 precision). Returns shape (n,), float64.
    """
    if not callable(cdf):
        raise TypeError(f"cdf must be a callable x -> F(x), got {type(cdf).__name__}")
    n = _check_count("n", n)
    low, high = _number("low", low), _number("high", high)
    if not low < high:
        raise ValueError(f"need low < high, got low={low!r}, high={high!r}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be a positive int, got {iters!r}")
    _check_generator(generator)
    ends = _eval_cdf(cdf, torch.tensor([low, high], dtype=torch.float64))
    if ends[0] > 1e-3 or ends[1] < 1 - 1e-3:
        raise ValueError(f"[low, high] must hold the distribution: need cdf(low) ≈ 0 and cdf(high) ≈ 1, "
                         f"got cdf({low:g}) = {ends[0]:.3g} and cdf({high:g}) = {ends[1]:.3g}")
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    lo = torch.full_like(u, low)
    hi = torch.full_like(u, high)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        below = _eval_cdf(cdf, mid) < u
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def ks_statistic(samples: torch.Tensor, cdf: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """Kolmogorov–Smirnov distance sup_x |F_n(x) − F(x)| between the empirical CDF of 1D samples and ``cdf``.

    For n i.i.d. samples from F it is typically ≈ 0.87/√n; values above 1.36/√n (1.63/√n) reject F
    at the 5 % (1 %) level.
    """
    x = _real_tensor("samples", samples, numbers=False)
    if not callable(cdf):
        raise TypeError(f"cdf must be a callable x -> F(x), got {type(cdf).__name__}")
    if x.ndim != 1 or x.numel() == 0:
        raise ValueError(f"samples must have shape (n,) with n ≥ 1, got {tuple(x.shape)}")
    _check_not_nan("samples", x)
    x, _ = x.to(torch.float64).sort()
    n = x.numel()
    f = _eval_cdf(cdf, x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    # the empirical CDF jumps from (i-1)/n to i/n at the i-th order statistic: check both sides of each jump
    return torch.maximum(i / n - f, f - (i - 1) / n).max().item()


def kde_log_prob(x: torch.Tensor, data: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Gaussian kernel density estimate log p̂(x) = log (1/N) Σ_i N(x; data_i, h²).

    Shapes: x (...), data (N,) → (...); ``bandwidth`` is the kernel std h (a positive number).
    """
    x, data = _real_tensor("x", x), _real_tensor("data", data, numbers=False)
    if data.ndim != 1 or data.numel() == 0:
        raise ValueError(f"data must have shape (N,) with N ≥ 1, got {tuple(data.shape)}")
    _check_not_nan("x", x)
    _check_finite("data", data)
    h = _number("bandwidth", bandwidth, positive=True)
    comp = gaussian_log_prob(x.unsqueeze(-1), data, 2 * math.log(h))  # (..., N)
    return torch.logsumexp(comp, dim=-1) - math.log(data.numel())
