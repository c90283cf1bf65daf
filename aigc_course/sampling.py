"""Choosing the next token from a language model's logits: temperature, top-k, top-p (nucleus) and greedy.

A model gives logits ``l`` (..., V) over a vocabulary of V tokens; sampling draws from
``softmax(l / T)``. The filters reshape that distribution before the draw by setting logits to ``-inf``:

* top-k keeps the k largest logits of each row (Fan et al. 2018);
* top-p keeps the smallest set of most probable tokens whose probability mass reaches p (Holtzman et al. 2020).

Both keep exactly what Hugging Face's ``TopKLogitsWarper`` / ``TopPLogitsWarper`` keep, ties included: top-k
keeps every logit equal to the k-th largest, so a row may keep more than k; top-p breaks ties by
``torch.sort``'s order. :func:`sample_next_token` applies temperature → top-k → top-p (HF's order) and draws.

>>> next_ids = sample_next_token(logits[:, -1], temperature=0.8, top_k=50, top_p=0.95, rng=g)   # (B,)
"""

from __future__ import annotations

import math
import numbers

import torch

from .validation import float_tensor as _float_tensor
from .validation import int_at_least as _int_at_least

__all__ = ["top_k_filter", "top_p_filter", "sample_next_token", "check_sampling_args"]


# --------------------------------------------------------------------------- input validation

def _check_logits(name: str, logits: object, *, two_d: bool = False) -> torch.Tensor:
    """Float logits (..., V) (or (B, V)) with V >= 1: finite or -inf, at least one finite entry per row."""
    logits = _float_tensor(name, logits)
    if two_d and logits.ndim != 2:
        raise ValueError(f"{name} must have shape (B, V), got {tuple(logits.shape)}")
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (..., V) with V >= 1, got {tuple(logits.shape)}")
    if torch.isnan(logits).any() or (logits == math.inf).any():
        raise ValueError(f"{name} must be finite or -inf, got NaN or +inf")
    if logits.numel() and not torch.isfinite(logits).any(dim=-1).all():
        raise ValueError(f"{name} must have at least one finite entry in every row, got a row of -inf")
    return logits


def _check_rng(rng: object) -> torch.Generator | None:
    if rng is not None and not isinstance(rng, torch.Generator):
        raise TypeError(f"rng must be a torch.Generator or None, got {type(rng).__name__}")
    return rng


def _check_k(name: str, k: object) -> int:
    return _int_at_least(name, k, 1)


def _check_p(name: str, p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{name} must be a float in (0, 1], got {type(p).__name__}")
    if not 0.0 < float(p) <= 1.0:  # also refuses NaN
        raise ValueError(f"{name} must be in (0, 1], got {p!r}")
    return float(p)


def _check_temperature(t: object) -> float:
    if isinstance(t, bool) or not isinstance(t, numbers.Real):
        raise TypeError(f"temperature must be a float >= 0, got {type(t).__name__}")
    if not (math.isfinite(float(t)) and float(t) >= 0.0):
        raise ValueError(f"temperature must be finite and >= 0, got {t!r}")
    return float(t)


# --------------------------------------------------------------------------- the filters

def _top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]   # k-th largest per row
    return logits.masked_fill(logits < kth, -math.inf)


def _top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    # Sort ascending: a token goes when the mass of itself and every smaller token is <= 1 - p, i.e. when the
    # tokens above it already hold >= p. The largest token always stays.
    sorted_logits, order = torch.sort(logits, dim=-1, descending=False)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cum <= 1.0 - p
    drop_sorted[..., -1] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, -math.inf)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Logits (..., V) with every entry below the k-th largest of its row set to -inf; same shape, new tensor.

    Entries tied with the k-th largest are kept (as Hugging Face does), so a row keeps k entries unless there
    are ties at the cut. ``k`` >= V keeps everything.
    """
    logits = _check_logits("logits", logits)
    return _top_k(logits, _check_k("k", k))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: logits (..., V) → same shape, keeping per row the smallest set of most probable
    tokens (of softmax(logits)) whose total probability reaches ``p`` in (0, 1], at least one; the rest -inf."""
    logits = _check_logits("logits", logits)
    return _top_p(logits, _check_p("p", p))


def sample_next_token(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, rng: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of logits (B, V) → int64 (B,) on the logits' device.

    ``temperature`` 0 is greedy (argmax, the first index on ties; the filters and ``rng`` are not used);
    otherwise logits / temperature → top-k → top-p → one draw from the softmax with ``torch.multinomial`` on
    ``rng`` (or torch's global RNG). The draw happens on ``rng``'s device, so a CPU generator gives the same
    tokens for the same probabilities on any device.
    """
    logits = _check_logits("logits", logits, two_d=True)
    return _sample(logits, **check_sampling_args(temperature, top_k, top_p, rng))


def check_sampling_args(temperature: object = 1.0, top_k: object = None, top_p: object = None,
                        rng: object = None) -> dict:
    """The keyword arguments of :func:`sample_next_token`, validated (for callers that check them once)."""
    return dict(temperature=_check_temperature(temperature),
                top_k=None if top_k is None else _check_k("top_k", top_k),
                top_p=None if top_p is None else _check_p("top_p", top_p), rng=_check_rng(rng))


def _sample(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
            rng: torch.Generator | None) -> torch.Tensor:
    """sample_next_token without the checks."""
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    # shift so that each row's largest logit is 0: dividing by a tiny temperature cannot overflow to +inf
    logits = logits.float()
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature
    if top_k is not None:
        logits = _top_k(logits, top_k)
    if top_p is not None:
        logits = _top_p(logits, top_p)
    probs = logits.softmax(dim=-1)
    if rng is not None:
        probs = probs.to(rng.device)
    return torch.multinomial(probs, 1, generator=rng).squeeze(-1).to(logits.device)
