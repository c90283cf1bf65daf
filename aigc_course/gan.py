"""GANs: the losses named after the math (Goodfellow 2014; WGAN, Arjovsky 2017; WGAN-GP, Gulrajani 2017).

The discriminator outputs *logits* ``l`` with ``D(x) = σ(l)``; every log-probability is formed from the logit
with ``softplus`` so that logits of ±100 give exact, finite losses and gradients:

    −log D(x)       = −log σ(l)     = softplus(−l)
    −log(1 − D(x))  = −log σ(−l)    = softplus(l)

A Wasserstein critic outputs unbounded *scores* ``f(x)`` instead. Logits and scores have shape ``(B,)`` or
``(B, 1)``; every loss returns a 0-d tensor (float32 for float16/bfloat16 inputs). Real and fake batches may
have different sizes (each expectation is its own mean).

>>> discriminator_loss(torch.zeros(4), torch.zeros(4))   # D = 1/2 everywhere: log 4 ≈ 1.386, V(D, G) = −log 4
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from .divergences import _check_finite, _check_generator

__all__ = [
    "discriminator_loss", "generator_loss", "critic_loss", "wasserstein_generator_loss",
    "clip_weights", "gradient_penalty",
]

GeneratorLossKind = Literal["non_saturating", "minimax"]
_KINDS = ("non_saturating", "minimax")


# --------------------------------------------------------------------------- input validation

def _float_tensor(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _batch_values(name: str, x: object) -> torch.Tensor:
    """Logits or scores of shape (B,) or (B, 1), B ≥ 1, finite → a (B,) view."""
    x = _float_tensor(name, x)
    if not (x.ndim == 1 or (x.ndim == 2 and x.shape[1] == 1)):
        raise ValueError(f"{name} must have shape (B,) or (B, 1), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch, got batch size 0")
    _check_finite(name, x)
    if x.dtype in (torch.float16, torch.bfloat16):   # e.g. under autocast: reduce in float32
        x = x.float()
    return x.reshape(-1)


# --------------------------------------------------------------------------- the original GAN

def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """−E_x[log D(x)] − E_z[log(1 − D(G(z)))] from logits: (B,) or (B, 1) each → 0-d.

    This is −V(D, G), so minimising it maximises the value function; at D = 1/2 it equals log 4.
    """
    real = _batch_values("real_logits", real_logits)
    fake = _batch_values("fake_logits", fake_logits)
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def generator_loss(fake_logits: torch.Tensor, kind: GeneratorLossKind = "non_saturating") -> torch.Tensor:
    """The generator's loss from the discriminator's logits on fakes: (B,) or (B, 1) → 0-d.

    - ``"minimax"``: minimise E_z[log(1 − D(G(z)))], the value function's own term. Its gradient w.r.t. the
      logit is −D(G(z)), which vanishes when D confidently rejects fakes (D(G(z)) → 0): it saturates.
    - ``"non_saturating"`` (default): minimise −E_z[log D(G(z))]; the gradient is −(1 − D(G(z))) → −1 there.

    Sign note: the article this course corrects writes L_G = E_z[log D(G(z))] *to be minimised*. That is the
    wrong sign — minimising it pushes D(G(z)) towards 0, i.e. helps the discriminator. The non-saturating loss
    minimises the *negative*, −E_z[log D(G(z))].
    """
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"kind must be one of 'non_saturating', 'minimax', got {kind!r}")
    fake = _batch_values("fake_logits", fake_logits)
    if kind == "minimax":
        return -F.softplus(fake).mean()      # log(1 − σ(l)) = −softplus(l)
    return F.softplus(-fake).mean()          # −log σ(l) = softplus(−l)


# --------------------------------------------------------------------------- Wasserstein GAN

def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E_z[f(G(z))] − E_x[f(x)] (the negated Kantorovich–Rubinstein estimate): (B,) or (B, 1) each → 0-d."""
    real = _batch_values("real_scores", real_scores)
    fake = _batch_values("fake_scores", fake_scores)
    return fake.mean() - real.mean()


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """−E_z[f(G(z))]: (B,) or (B, 1) → 0-d."""
    return -_batch_values("fake_scores", fake_scores).mean()


def clip_weights(module: nn.Module, c: float) -> nn.Module:
    """Clamp every parameter of ``module`` to [−c, c] in place (WGAN's crude Lipschitz constraint); returns it.

    Buffers (e.g. batch-norm running statistics) are left alone.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if isinstance(c, bool) or not isinstance(c, (int, float)):
        raise TypeError(f"c must be a number, got {type(c).__name__}")
    if not c > 0 or c == float("inf"):
        raise ValueError(f"c must be a positive finite number, got {c}")
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-c, c)
    return module


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP's penalty without its weight λ: mean over the batch of (‖∇f(x̂)‖₂ − 1)², a 0-d tensor.

    ``real`` and ``fake`` have the same shape (B, ...), e.g. (B, D) or (B, C, H, W). x̂ = ε·real + (1 − ε)·fake
    with one ε ~ U(0, 1) per sample, drawn from ``generator`` (or the global RNG); the norm is taken over all
    non-batch dimensions. ``real`` and ``fake`` are detached (the penalty trains the critic only); the gradient
    is built with ``create_graph=True``, so the result backpropagates into the critic's parameters.
    """
    if not callable(critic):
        raise TypeError(f"critic must be callable, got {type(critic).__name__}")
    real = _float_tensor("real", real)
    fake = _float_tensor("fake", fake)
    if real.ndim < 2:
        raise ValueError(f"real must have shape (B, ...) with at least 2 dimensions, got {tuple(real.shape)}")
    if fake.shape != real.shape:
        raise ValueError(f"fake must have the same shape as real {tuple(real.shape)}, got {tuple(fake.shape)}")
    if real.dtype != fake.dtype:
        raise TypeError(f"fake must have the same dtype as real ({real.dtype}), got {fake.dtype}")
    if real.device != fake.device:
        raise ValueError(f"fake must be on the same device as real ({real.device}), got {fake.device}")
    if real.shape[0] == 0:
        raise ValueError("real must be a non-empty batch, got batch size 0")
    _check_finite("real", real)
    _check_finite("fake", fake)
    _check_generator(generator)
    if generator is not None:
        if generator.device.type != real.device.type:
            raise ValueError(f"generator must be on real's device type ({real.device.type}), "
                             f"got {generator.device.type}")

    batch = real.shape[0]
    eps = torch.rand(batch, generator=generator, device=real.device, dtype=real.dtype)
    eps = eps.reshape(batch, *([1] * (real.ndim - 1)))
    with torch.enable_grad():
        x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
        scores = critic(x_hat)
        if not isinstance(scores, torch.Tensor):
            raise TypeError(f"critic must return a torch.Tensor, got {type(scores).__name__}")
        if not (scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] == 1)) or scores.shape[0] != batch:
            raise ValueError(f"critic must return scores of shape ({batch},) or ({batch}, 1), "
                             f"got {tuple(scores.shape)}")
        if not scores.requires_grad:
            raise ValueError("critic's output must depend on its input through autograd (it does not require grad)")
        (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True, allow_unused=True)
        if grad is None:                        # the critic ignores x̂: its gradient is zero
            grad = torch.zeros_like(x_hat)
        # Each score depends only on its own sample, so the gradient of the sum gives every ∇f(x̂_i) at once.
        grad = grad.flatten(1)
        if grad.dtype in (torch.float16, torch.bfloat16):   # too few bits for a sum of squares
            grad = grad.float()
        norms = torch.linalg.vector_norm(grad, dim=1)
        return ((norms - 1) ** 2).mean()
