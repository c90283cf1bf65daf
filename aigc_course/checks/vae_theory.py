"""Self-checks for lesson 05 (VAE theory): the exact log-marginal of probabilistic PCA, the score-function
(REINFORCE) gradient estimator, and a Monte Carlo estimate of KL(q ‖ N(0, I)).

Each ``*_CHECK`` is a :class:`~aigc_course.checks._core.Check` (cases, mistakes, return type); the
``check_*`` functions that the exercises call run it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..divergences import gaussian_kl
from ._core import Case, Check, Mistake, TensorResult

__all__ = ["check_ppca_log_marginal", "check_score_function_gradient", "check_mc_kl"]

F64 = torch.float64
_LOG_2PI = math.log(2 * math.pi)


def _randn(seed: int, *shape: int, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64).to(dtype)


def _nonfinite_where_finite(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], min_dim: int,
                            dim: int) -> bool:
    """Symptom of an underflowing product (or overflowing det): a case of at least ``min_dim`` dimensions where
    the answer is NaN or ±inf but the reference is finite."""
    m, w = mine[0], want[0]
    return bool(dim >= min_dim and m.shape == w.shape and np.isfinite(w).all() and not np.isfinite(m).all())


# --------------------------------------------------------------------------- Exercise 5.1

def _ppca_log_marginal(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, sigma2: float) -> torch.Tensor:
    """log N(x; b, WWᵀ + σ²I) per row of x (B, D) → (B,), through a Cholesky factor (in float64)."""
    D = x.shape[-1]
    x64, W64, b64 = x.to(F64), W.to(F64), b.to(F64)
    L = torch.linalg.cholesky(W64 @ W64.T + sigma2 * torch.eye(D, dtype=F64))
    r = torch.linalg.solve_triangular(L, (x64 - b64).T, upper=False)   # L r = (x − b)ᵀ, (D, B)
    log_det = 2 * L.diagonal().log().sum()
    return (-0.5 * (D * _LOG_2PI + log_det + r.pow(2).sum(0))).to(x.dtype)


def _gauss_log_pdf(x: torch.Tensor, b: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """log N(x; b, C) by the textbook formula with det and inverse (what the planted mistakes start from)."""
    D = x.shape[-1]
    r = x - b
    quad = ((r @ torch.linalg.inv(C)) * r).sum(-1)
    return -0.5 * (D * _LOG_2PI + torch.log(torch.det(C)) + quad)


def _eye_like(x: torch.Tensor) -> torch.Tensor:
    return torch.eye(x.shape[-1], dtype=x.dtype)


def _ppca_case(seed: int, B: int, D: int, d: int, sigma2: float, dtype: torch.dtype = F64,
               label: str = "", note: str = "") -> Case:
    W = _randn(seed, D, d)
    b = 0.5 * _randn(seed + 1, D)
    z = _randn(seed + 2, B, d)
    x = z @ W.T + b + math.sqrt(sigma2) * _randn(seed + 3, B, D)
    return Case((x.to(dtype), W.to(dtype), b.to(dtype), sigma2), label=label, note=note)


def _pm_cases() -> list[Case]:
    return [
        _ppca_case(0, 3, 3, 3, 0.5, label="3 points, D = 3 and d = 3 (a square W), σ² = 0.5"),
        _ppca_case(10, 4, 5, 2, 0.25, torch.float32, label="float32: 4 points, D = 5, d = 2, σ² = 0.25"),
        _ppca_case(20, 1, 4, 2, 1.0, label="a single point (B = 1), D = 4, d = 2",
                   note="with one point the answer still has shape (B,) = (1,): do not .squeeze() or .item() it."),
        _ppca_case(30, 3, 1, 1, 0.5, label="one-dimensional x and z (D = d = 1)",
                   note="D = 1: C = WWᵀ + σ²I is a 1×1 matrix; keep x − b as a (B, 1) matrix."),
        _ppca_case(40, 2, 2, 4, 0.3, label="more latent than data dimensions (D = 2, d = 4)"),
        _ppca_case(50, 64, 16, 4, 0.5, torch.float32, label="float32: a batch of 64 points, D = 16, d = 4"),
        _ppca_case(60, 3, 200, 4, 0.01, label="x of 200 dimensions with σ² = 0.01 (float64)",
                   note="here det(C) is about 1e-383, below the smallest float64 (about 5e-324)."),
        _ppca_case(70, 2, 200, 4, 100.0, label="x of 200 dimensions with σ² = 100 (float64)",
                   note="here det(C) is about 1e402, above the largest float64 (about 1.8e308)."),
    ]


def _pm_naive(x, W, b, s2):
    return _gauss_log_pdf(x, b, W @ W.T + s2 * _eye_like(x))


_PM_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("torch.log(torch.det(C)) is numerically unstable: for 200 dimensions det(C) underflows to 0 (or "
            "overflows to inf), so its log is ∓inf although log det C is an ordinary number. Take the log "
            "determinant from a Cholesky factor, log det C = 2 Σ log diag(L) with L = torch.linalg.cholesky(C) "
            "(or torch.linalg.slogdet), and solve with L instead of inverting C.",
            _pm_naive, symptom=lambda mine, want, x, W, b, s2: _nonfinite_where_finite(mine, want, 100, x.shape[-1])),
    Mistake("you summed (or averaged) over the batch: return one log-density per point, shape (B,).",
            lambda x, W, b, s2: _ppca_log_marginal(x, W, b, s2).sum()),
    Mistake("you used WᵀW (d×d); the marginal covariance is C = WWᵀ + σ²I, a D×D matrix "
            "(Cov[Wz] = W Cov[z] Wᵀ = WWᵀ).",
            lambda x, W, b, s2: _gauss_log_pdf(x, b, W.T @ W + s2 * _eye_like(x))),
    Mistake("your covariance lacks the noise term σ²I: x = Wz + b + σε, so C = WWᵀ + σ²I (WWᵀ alone has rank d "
            "and is singular when d < D).", lambda x, W, b, s2: _gauss_log_pdf(x, b, W @ W.T)),
    Mistake("sigma2 is already the variance σ²: you squared it (σ⁴I in C).",
            lambda x, W, b, s2: _gauss_log_pdf(x, b, W @ W.T + s2**2 * _eye_like(x))),
    Mistake("sigma2 is already the variance σ²: you took its square root (σI in C).",
            lambda x, W, b, s2: _gauss_log_pdf(x, b, W @ W.T + math.sqrt(s2) * _eye_like(x))),
    Mistake("you evaluated the likelihood at z = 0, log N(x; b, σ²I), instead of integrating over z: the "
            "marginal is log N(x; b, WWᵀ + σ²I).",
            lambda x, W, b, s2: _gauss_log_pdf(x, b, s2 * _eye_like(x))),
    Mistake("you forgot the normalising constant −(D/2)·log(2π).",
            lambda x, W, b, s2: _ppca_log_marginal(x, W, b, s2) + 0.5 * x.shape[-1] * _LOG_2PI),
    Mistake("you forgot the mean b: the quadratic form is (x − b)ᵀ C⁻¹ (x − b).",
            lambda x, W, b, s2: _ppca_log_marginal(x, W, torch.zeros_like(b), s2)),
    Mistake("you are missing the factor −½: log N(x; b, C) = −½ [D log 2π + log det C + (x − b)ᵀC⁻¹(x − b)].",
            lambda x, W, b, s2: 2 * _ppca_log_marginal(x, W, b, s2)),
    Mistake("you returned the density p(x); the exercise asks for its log (densities of 200-dimensional x "
            "under- or overflow).", lambda x, W, b, s2: _ppca_log_marginal(x, W, b, s2).exp()),
]

PPCA_LOG_MARGINAL_CHECK = Check("Exercise 5.1 (pPCA log-marginal log N(x; b, WWᵀ + σ²I))", _ppca_log_marginal,
                                _pm_cases, _PM_MISTAKES, TensorResult("float"), ("x", "W", "b", "sigma2"),
                                atol=1e-5, rtol=1e-5)


def check_ppca_log_marginal(student_fn: Callable[..., torch.Tensor]) -> None:
    """Exercise 5.1: ``log_marginal(x, W, b, sigma2)`` = log N(x; b, WWᵀ + σ²I) per row: (B, D) → (B,)."""
    PPCA_LOG_MARGINAL_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 5.2

def _score_function_gradient(f_values: torch.Tensor, z: torch.Tensor, mu: torch.Tensor,
                             logvar: torch.Tensor) -> torch.Tensor:
    """(1/S) Σ_s f(z_s)·(z_s − μ)/σ²: f (S,), z (S, D), μ and logvar (D,) → (D,)."""
    return (f_values[:, None] * (z - mu) * torch.exp(-logvar)).mean(0)


def _sf_via_density(f_values, z, mu, logvar):
    """Autograd through log of the product of the D one-dimensional densities (underflows for large D)."""
    mu = mu.detach().clone().requires_grad_(True)
    std = torch.exp(0.5 * logvar)
    density = torch.exp(-0.5 * ((z - mu) / std) ** 2) / (std * math.sqrt(2 * math.pi))
    log_q = torch.log(density.prod(-1))
    (grad,) = torch.autograd.grad((f_values * log_q).mean(), mu)
    return grad


def _sf_case(seed: int, S: int, D: int, lv_low: float, lv_high: float, dtype: torch.dtype = F64,
             label: str = "", note: str = "") -> Case:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(D, generator=g, dtype=F64)
    logvar = lv_low + (lv_high - lv_low) * torch.rand(D, generator=g, dtype=F64)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(S, D, generator=g, dtype=F64)
    f_values = -0.5 * (z - 1.0).pow(2).sum(-1)        # f(z) = −½‖z − 1‖², as in the lesson
    return Case(tuple(t.to(dtype) for t in (f_values, z, mu, logvar)), label=label, note=note)


def _sf_cases() -> list[Case]:
    return [
        _sf_case(0, 3, 3, -1.0, 1.0, label="3 samples in 3 dimensions"),
        _sf_case(1, 5, 2, 0.0, 0.0, label="5 samples in 2 dimensions, q = N(μ, I)"),
        _sf_case(2, 200, 4, -1.0, 1.0, torch.float32, label="float32: 200 samples in 4 dimensions"),
        _sf_case(3, 1, 3, -0.5, 0.5, label="a single sample (S = 1)",
                 note="one sample still gives a (D,) estimate: f(z)·(z − μ)/σ²."),
        _sf_case(4, 16, 64, 0.5, 2.5, torch.float32, label="float32: 16 samples of a 64-dimensional latent"),
        _sf_case(5, 6, 4, -6.0, 6.0, label="variances from e⁻⁶ to e⁶"),
    ]


_SF_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("the product of 64 one-dimensional densities underflows to 0 in float32, so log q(z) = log 0 = −inf "
            "and its gradient is NaN. Never form q(z) itself: ∇_μ log q(z) = (z − μ)/σ² in closed form (or sum "
            "per-dimension log-densities, Normal(mu, std).log_prob(z).sum(-1)).",
            _sf_via_density, symptom=lambda mine, want, f, z, mu, lv: _nonfinite_where_finite(mine, want, 64,
                                                                                              z.shape[-1])),
    Mistake("f_values (S,) was broadcast along the dimensions instead of the samples: write "
            "f_values[:, None] * (z − mu) so that f(z_s) scales row s.",
            lambda f, z, mu, lv: (f * (z - mu) * torch.exp(-lv)).mean(0)),
    Mistake("you returned the S per-sample estimates; the estimator is their average over the samples, shape (D,).",
            lambda f, z, mu, lv: f[:, None] * (z - mu) * torch.exp(-lv)),
    Mistake("you forgot to divide by σ²: ∇_μ log q(z) = (z − μ)/σ², with σ² = exp(logvar) (it only looks "
            "right when the variances are 1).", lambda f, z, mu, lv: (f[:, None] * (z - mu)).mean(0)),
    Mistake("you divided by σ instead of σ²: ∇_μ log q(z) = (z − μ)/σ² (that is ε/σ with ε = (z − μ)/σ).",
            lambda f, z, mu, lv: (f[:, None] * (z - mu) * torch.exp(-0.5 * lv)).mean(0)),
    Mistake("you multiplied by σ² = exp(logvar) instead of dividing: ∇_μ log q(z) = (z − μ)/σ² = (z − μ)·exp(−logvar).",
            lambda f, z, mu, lv: (f[:, None] * (z - mu) * torch.exp(lv)).mean(0)),
    Mistake("logvar is log σ², not σ²: divide by exp(logvar).",
            lambda f, z, mu, lv: (f[:, None] * (z - mu) / lv).mean(0)),
    Mistake("wrong sign: ∇_μ log q(z) = +(z − μ)/σ² (the log-density grows as μ moves towards z).",
            lambda f, z, mu, lv: -_score_function_gradient(f, z, mu, lv)),
    Mistake("you summed over the samples; the expectation is estimated by their mean.",
            lambda f, z, mu, lv: (f[:, None] * (z - mu) * torch.exp(-lv)).sum(0)),
]

SCORE_FUNCTION_GRADIENT_CHECK = Check("Exercise 5.2 (score-function gradient estimator)", _score_function_gradient,
                                      _sf_cases, _SF_MISTAKES, TensorResult("float"),
                                      ("f_values", "z", "mu", "logvar"), atol=1e-6, rtol=1e-5)


def check_score_function_gradient(student_fn: Callable[..., torch.Tensor]) -> None:
    """Exercise 5.2: ``score_grad(f_values, z, mu, logvar)`` = mean_s f(z_s)(z_s − μ)/σ²: (S,), (S, D) → (D,)."""
    SCORE_FUNCTION_GRADIENT_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 5.3

def _log_ratio(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log q(z) − log N(z; 0, I) per sample, in float64: (S, B, D) → (S, B)."""
    z, mu, logvar = z.to(F64), mu.to(F64), logvar.to(F64)
    log_q = -0.5 * ((z - mu) ** 2 * torch.exp(-logvar) + logvar + _LOG_2PI).sum(-1)
    log_p = -0.5 * (z**2 + _LOG_2PI).sum(-1)
    return log_q - log_p


def _mc_kl(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(1/S) Σ_s [log q(z_s) − log N(z_s; 0, I)] for z (S, B, D) from q = N(μ, diag e^logvar), μ (B, D) → (B,)."""
    return _log_ratio(z, mu, logvar).mean(0).to(z.dtype)


def _mc_kl_via_density(z, mu, logvar):
    """log of the product of D densities, for q and for the prior (underflows for large D)."""
    std = torch.exp(0.5 * logvar)
    q = (torch.exp(-0.5 * ((z - mu) / std) ** 2) / (std * math.sqrt(2 * math.pi))).prod(-1)
    p = (torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)).prod(-1)
    return (torch.log(q) - torch.log(p)).mean(0)


def _kl_case(seed: int, S: int, B: int, D: int, lv_low: float, lv_high: float, dtype: torch.dtype = F64,
             label: str = "", note: str = "", prior: bool = False) -> Case:
    g = torch.Generator().manual_seed(seed)
    mu = torch.zeros(B, D, dtype=F64) if prior else torch.randn(B, D, generator=g, dtype=F64)
    logvar = torch.zeros(B, D, dtype=F64) if prior else lv_low + (lv_high - lv_low) * torch.rand(
        B, D, generator=g, dtype=F64)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(S, B, D, generator=g, dtype=F64)
    return Case(tuple(t.to(dtype) for t in (z, mu, logvar)), label=label, note=note)


def _one_sample_case() -> Case:
    """S = 1, q close to the prior, and samples chosen so that two of the three estimates are negative."""
    mu = torch.tensor([[0.1, -0.2], [0.3, 0.0], [1.0, 1.0]], dtype=F64)
    logvar = torch.tensor([[0.0, 0.1], [-0.1, 0.0], [-0.5, -0.5]], dtype=F64)
    z = torch.tensor([[[-1.0, 1.0], [-1.5, 0.5], [1.2, 0.8]]], dtype=F64)
    return Case((z, mu, logvar), label="one sample per point (S = 1), 3 points in 2 dimensions",
                note="a single sample's log q(z) − log p(z) can be negative although the KL is not; the estimate "
                     "is the plain average, do not clamp it at 0.")


def _kl_cases() -> list[Case]:
    return [
        _kl_case(0, 3, 3, 2, -1.0, 1.0, label="3 samples of 3 points in 2 dimensions"),
        _kl_case(1, 5, 2, 3, 0.0, 0.0, prior=True, label="q equal to the prior N(0, I): 5 samples, 2 points",
                 note="here q = p, so every sample's log q(z) − log p(z) is exactly 0, and so is the estimate."),
        _kl_case(2, 4, 2, 3, -1.0, 1.0, label="4 samples, 2 points, 3 dimensions"),
        _one_sample_case(),
        _kl_case(4, 50, 4, 8, -2.0, 1.0, torch.float32, label="float32: 50 samples, 4 points, 8 dimensions"),
        _kl_case(5, 8, 2, 64, 0.5, 2.5, torch.float32, label="float32: 8 samples, 2 points, a 64-dimensional latent"),
        _kl_case(6, 6, 2, 4, -20.0, -10.0, label="a very confident q (logvar from −20 to −10)"),
    ]


def _log2pi_once(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], z: torch.Tensor, mu: torch.Tensor,
                 logvar: torch.Tensor) -> bool:
    """Symptom: the answer is off by exactly ±(D/2)·log 2π (the constant left out of one of the two log-densities)."""
    m, w = mine[0], want[0]
    shift = 0.5 * z.shape[-1] * _LOG_2PI
    return bool(m.shape == w.shape and np.allclose(np.abs(m - w), shift, rtol=1e-4, atol=1e-4))


_KL_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("the product of 64 one-dimensional densities underflows to 0 in float32, and log 0 − log 0 = NaN. "
            "Work with log-densities throughout: log q(z) = −½ Σ_j [(z_j − μ_j)²/σ_j² + log σ_j² + log 2π], "
            "a sum of logs instead of the log of a product.",
            _mc_kl_via_density, symptom=lambda mine, want, z, mu, lv: _nonfinite_where_finite(mine, want, 64,
                                                                                              z.shape[-1])),
    Mistake("you clamped the estimate at 0. A KL is ≥ 0, but its Monte Carlo estimate is an average of terms "
            "log q(z) − log p(z) that can be negative; clamping biases it upwards.",
            lambda z, mu, lv: _mc_kl(z, mu, lv).clamp_min(0.0)),
    Mistake("you averaged over the points (dim 1) instead of the samples (dim 0): z has shape (S, B, D).",
            lambda z, mu, lv: _log_ratio(z, mu, lv).mean(1).to(z.dtype)),
    Mistake("you returned the closed-form KL (gaussian_kl); the exercise asks for the Monte Carlo estimate from "
            "the given samples z, (1/S) Σ_s [log q(z_s) − log p(z_s)].",
            lambda z, mu, lv: gaussian_kl(mu, lv)),
    Mistake("that is log p(z) − log q(z): the KL from q to the prior averages log q − log p under q.",
            lambda z, mu, lv: -_mc_kl(z, mu, lv)),
    Mistake("logvar is log σ², not log σ: q's variance is exp(logvar), its standard deviation exp(logvar / 2).",
            lambda z, mu, lv: _mc_kl(z, mu, 2 * lv)),
    Mistake("log q(z) lacks its normaliser −½ Σ log σ_j² (the −log σ of each Gaussian density).",
            lambda z, mu, lv: _mc_kl(z, mu, lv) + 0.5 * lv.sum(-1)),
    Mistake("the two log-densities must both contain −(D/2)·log 2π (then it cancels); you kept it in only one.",
            symptom=_log2pi_once),
    Mistake("you summed over the samples; the Monte Carlo estimate is their mean.",
            lambda z, mu, lv: _log_ratio(z, mu, lv).sum(0).to(z.dtype)),
    Mistake("you averaged over the latent dimensions; the log-density of a diagonal Gaussian sums over them.",
            lambda z, mu, lv: (_log_ratio(z, mu, lv).mean(0) / z.shape[-1]).to(z.dtype)),
]

MC_KL_CHECK = Check("Exercise 5.3 (Monte Carlo KL(q ‖ N(0, I)))", _mc_kl, _kl_cases, _KL_MISTAKES,
                    TensorResult("float"), ("z", "mu", "logvar"), atol=1e-5, rtol=1e-5)


def check_mc_kl(student_fn: Callable[..., torch.Tensor]) -> None:
    """Exercise 5.3: ``mc_kl(z, mu, logvar)`` = mean_s [log q(z_s) − log N(z_s; 0, I)]: (S, B, D), (B, D) → (B,)."""
    MC_KL_CHECK.run(student_fn)
