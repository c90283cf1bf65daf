"""Muon: momentum SGD whose update for a weight matrix is orthogonalised (Jordan et al. 2024).

For a hidden weight matrix W (out, in), Muon keeps a momentum buffer M of the gradients and steps along the
*orthogonalised* momentum O ≈ U Vᵀ, where M = U S Vᵀ is its SVD: every singular direction of the update
moves by the same amount, so directions with small gradients are not drowned by a few large ones.

    M_t = μ M_{t-1} + (1 − μ) G_t                 (momentum, as an exponential average)
    N_t = (1 − μ) G_t + μ M_t                     (Nesterov look-ahead; N_t = M_t without it)
    O_t = NS_k(N_t)                               (k Newton–Schulz steps ≈ U Vᵀ, no SVD needed)
    W_t = (1 − η λ) W_{t-1} − η √max(1, out/in) · O_t

NS_k never forms the SVD: with X_0 = N / ‖N‖_F (so every singular value is ≤ 1) it repeats
X ← a X + b (X Xᵀ) X + c (X Xᵀ)² X, which maps each singular value s to p(s) = a s + b s³ + c s⁵ and leaves
U and V alone. The coefficients (a, b, c) = (3.4445, −4.7750, 2.0315) push every s in (0, 1] towards 1
quickly (p'(0) = a is large) and, after 5 steps, leave them in about [0.7, 1.2]: not exactly U Vᵀ, but an
update of the same shape.

Muon is for the 2-D weights of hidden layers. Embeddings, the output layer, biases and norm gains keep
AdamW: :class:`Muon` takes both kinds of parameter group (``"muon": True`` or ``False``) so one optimizer —
one state dict, one learning-rate schedule — trains the whole model. :func:`muon_param_groups` splits a
model that way.

>>> opt = Muon(muon_param_groups(model, lr=0.02, adamw_lr=5e-3, weight_decay=0.1))
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from .validation import int_at_least

__all__ = ["NS_COEFFICIENTS", "newton_schulz", "Muon", "muon_param_groups"]

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(g: torch.Tensor, steps: int = 5, coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                  eps: float = 1e-7) -> torch.Tensor:
    """≈ U Vᵀ for g = U S Vᵀ (m, n), or for each matrix of a stack (..., m, n), by ``steps`` Newton–Schulz
    iterations in float32; same shape and dtype.

    Each step maps every singular value s of X to a s + b s³ + c s⁵ (U, V unchanged), starting from
    X = g / ‖g‖_F. A tall g is transposed first so the Gram matrix X Xᵀ is the smaller one.
    """
    if not isinstance(g, torch.Tensor) or g.ndim < 2:
        what = f"shape {tuple(g.shape)}" if isinstance(g, torch.Tensor) else type(g).__name__
        raise ValueError(f"g must be a matrix (m, n) or a stack of them (..., m, n), got {what}")
    if not g.is_floating_point():
        raise TypeError(f"g must be a floating-point tensor, got dtype {g.dtype}")
    steps = int_at_least("steps", steps, 0)
    a, b, c = coefficients
    x = g.float()
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = x.mT
    x = x / torch.linalg.matrix_norm(x, keepdim=True).clamp_min(eps)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.mT if tall else x).to(g.dtype)


def _real(name: str, v: object, low: float, below: float | None = None) -> float:
    """A finite number >= low (and < below, if given), else a ValueError naming it."""
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))
    if not ok or float(v) < low or (below is not None and float(v) >= below):
        expected = f"in [{low:g}, {below:g})" if below is not None else f">= {low:g}"
        raise ValueError(f"{name} must be a number {expected}, got {v!r}")
    return float(v)


class Muon(torch.optim.Optimizer):
    """Muon for groups with ``"muon": True`` (2-D weights only), AdamW for groups with ``"muon": False``.

    lr: the Muon groups' learning rate η (the update is scaled by √max(1, out/in), as in the reference
        implementation); adamw_lr: the AdamW groups' (a group's own ``"lr"`` overrides either).
    momentum / nesterov / ns_steps: Muon's μ, look-ahead and Newton–Schulz steps.
    betas / eps: AdamW's. weight_decay: decoupled, W ← (1 − η λ) W, for both kinds (a group may set its own).
    """

    def __init__(self, params: Iterable[Any], lr: float = 0.02, adamw_lr: float = 3e-3, momentum: float = 0.95,
                 nesterov: bool = True, ns_steps: int = 5, betas: tuple[float, float] = (0.9, 0.95),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        _real("lr", lr, 0.0)
        _real("adamw_lr", adamw_lr, 0.0)
        _real("momentum", momentum, 0.0, 1.0)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        int_at_least("ns_steps", ns_steps, 1)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        for i, beta in enumerate(betas):
            _real(f"betas[{i}]", beta, 0.0, 1.0)
        _real("eps", eps, 0.0)
        _real("weight_decay", weight_decay, 0.0)
        defaults = {"lr": lr, "adamw_lr": adamw_lr, "momentum": momentum, "nesterov": nesterov,
                    "ns_steps": ns_steps, "betas": tuple(float(b) for b in betas), "eps": eps,
                    "weight_decay": weight_decay, "muon": True}
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not isinstance(param_group, Mapping):
            raise TypeError(f"a parameter group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        if not isinstance(group.get("muon", True), bool):
            raise TypeError(f"a group's 'muon' must be True or False, got {group['muon']!r}")
        if group.get("muon", True) is False and "lr" not in group:
            group["lr"] = self.defaults["adamw_lr"]     # the scheduler scales each group's own lr
        # a group's own settings get the same checks as the constructor's defaults
        for key, below in (("lr", None), ("adamw_lr", None), ("momentum", 1.0), ("eps", None),
                           ("weight_decay", None)):
            if key in group:
                _real(f"a group's {key!r}", group[key], 0.0, below)
        params = group.get("params", [])
        group["params"] = [params] if isinstance(params, torch.Tensor) else list(params)
        if group.get("muon", True):
            for p in group["params"]:
                if isinstance(p, torch.Tensor) and p.ndim != 2:
                    raise ValueError(f"Muon groups take 2-D weight matrices only, got a parameter of shape "
                                     f"{tuple(p.shape)}; put it in a group with 'muon': False (AdamW)")
        super().add_param_group(group)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 (torch's signature)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            params = [p for p in group["params"] if p.grad is not None]
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("Muon does not support sparse gradients")
            if group["muon"]:
                # matrices of one shape are orthogonalised together, as one (k, m, n) stack
                same_shape: dict[tuple, list[torch.Tensor]] = {}
                for p in params:
                    same_shape.setdefault((p.shape, p.dtype, p.device), []).append(p)
                for same in same_shape.values():
                    self._muon_update(same, group, lr, wd)
            else:
                for p in params:
                    self._adamw_update(p, p.grad, self.state[p], group, lr, wd)
        return loss

    def _muon_update(self, params: list[torch.Tensor], group: dict, lr: float, wd: float) -> None:
        mu, directions = group["momentum"], []
        for p in params:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"]
            buf.lerp_(p.grad, 1 - mu)
            directions.append(p.grad.lerp(buf, mu) if group["nesterov"] else buf)
        updates = newton_schulz(torch.stack(directions), group["ns_steps"])
        rows, cols = params[0].shape
        for p, update in zip(params, updates, strict=True):
            p.mul_(1 - lr * wd)
            p.add_(update, alpha=-lr * math.sqrt(max(1.0, rows / cols)))

    @staticmethod
    def _adamw_update(p: torch.Tensor, grad: torch.Tensor, state: dict, group: dict, lr: float, wd: float) -> None:
        if "step" not in state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = float(state["step"])
        (b1, b2), m, v = group["betas"], state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(grad, 1 - b1)
        v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        p.mul_(1 - lr * wd)
        denom = (v / (1 - b2 ** t)).sqrt_().add_(group["eps"])
        p.addcdiv_(m, denom, value=-lr / (1 - b1 ** t))


def _tied_to_embedding(model: nn.Module) -> set[int]:
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}


def muon_param_groups(model: nn.Module, lr: float = 0.02, adamw_lr: float = 3e-3, weight_decay: float = 0.0,
                      head_features: int | None = None) -> list[dict[str, Any]]:
    """Split ``model``'s trainable parameters for :class:`Muon`: the weights of ``nn.Linear`` layers go to
    Muon, except a weight shared with an ``nn.Embedding`` (tied input/output embeddings) and a layer with
    ``head_features`` outputs (the classifier over the vocabulary); everything else goes to AdamW. Weight
    decay applies to the 2-D tensors of both kinds (as nanoGPT: embeddings yes, biases and gains no).

    Returns up to three non-empty groups: Muon weights, AdamW 2-D tensors, AdamW 1-D tensors.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _real("lr", lr, 0.0)
    _real("adamw_lr", adamw_lr, 0.0)
    _real("weight_decay", weight_decay, 0.0)
    if head_features is not None:
        head_features = int_at_least("head_features", head_features, 1)
    tied = _tied_to_embedding(model)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    # the output layer: the last Linear with head_features outputs (a hidden layer may be as wide)
    head = next((m for m in reversed(linears) if m.out_features == head_features), None)
    hidden: dict[int, nn.Parameter] = {}
    for m in linears:
        if m.weight.requires_grad and id(m.weight) not in tied and m is not head:
            hidden[id(m.weight)] = m.weight
    matrices, vectors = [], []
    for p in model.parameters():                     # model order; a tied tensor is listed once
        if not p.requires_grad or id(p) in hidden:
            continue
        (matrices if p.ndim >= 2 else vectors).append(p)
    groups = [{"params": list(hidden.values()), "muon": True, "lr": lr, "weight_decay": weight_decay},
              {"params": matrices, "muon": False, "lr": adamw_lr, "weight_decay": weight_decay},
              {"params": vectors, "muon": False, "lr": adamw_lr, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("model has no trainable parameters")
    return groups
