"""Self-checks for lesson 08 (attention and GPT): scaled dot-product attention with an optional causal mask,
one attention step with a key/value cache, and the parameter count of a GPT from its configuration.

Each ``*_CHECK`` is a :class:`~aigc_course.checks._core.Check` (cases, mistakes, return type); the ``check_*``
functions that the exercises call run them. The references are short torch expressions of the definitions and
:func:`aigc_course.gpt.gpt_parameter_count`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..gpt import GPTConfig, gpt_parameter_count
from ._core import Case, Check, IntResult, Mistake, TensorResult, TupleResult

__all__ = ["check_attention", "check_cached_attention", "check_gpt_parameter_count"]

F64 = torch.float64


def _bottom_right_mask(T: int, S: int) -> torch.Tensor:
    """(T, S) bool: the T queries are the last T of S positions; query i sees key j iff j <= S - T + i."""
    return torch.ones(T, S, dtype=torch.bool).tril(S - T)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    return scores.softmax(dim=-1) @ v


def _naive_softmax_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                          mask: torch.Tensor | None) -> torch.Tensor:
    """exp(s) / Σ exp(s) without subtracting the row maximum: overflows to inf/inf = NaN for scores > 88."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    w = scores.exp()
    if mask is not None:
        w = w * mask
    return (w / w.sum(-1, keepdim=True)) @ v


def _non_finite_where_finite(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> bool:
    return all(m.shape == w.shape for m, w in zip(mine, want, strict=True)) and any(
        bool((~np.isfinite(m) & np.isfinite(w)).any()) for m, w in zip(mine, want, strict=True))


def _big_scores(q: torch.Tensor, k: torch.Tensor) -> bool:
    return float((q @ k.transpose(-2, -1)).abs().max() / math.sqrt(q.shape[-1])) > 88


def _random(seed: int, shape: tuple[int, ...], dtype: torch.dtype, scale: float = 1.0) -> list[torch.Tensor]:
    """q, k, v of ``shape`` from N(0, 1) (q and k times ``scale``), drawn in float64 and cast to ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(shape, generator=g, dtype=F64) for _ in range(3))
    return [(scale * q).to(dtype), (scale * k).to(dtype), v.to(dtype)]


# --------------------------------------------------------------------------- Exercise 8.1

def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """softmax(q kᵀ / √d + M) v for q, k, v (B, h, T, d); M = −∞ above the diagonal when ``causal``."""
    T = q.shape[-2]
    return _attend(q, k, v, _bottom_right_mask(T, T) if causal else None)


def _attention_cases() -> list[Case]:
    one = (torch.tensor([[[[0.0], [1.0]]]], dtype=F64), torch.tensor([[[[1.0], [math.log(3.0)]]]], dtype=F64),
           torch.tensor([[[[2.0, 0.0], [-2.0, 4.0]]]], dtype=F64))
    big = _random(5, (1, 2, 8, 16), torch.float32, scale=10.0)                 # scores up to 236
    return [
        Case(one, label="one head, T = 2, d = 1: q = (0, 1), k = (1, ln 3)"),
        Case(tuple(_random(1, (2, 3, 5, 4), torch.float32)), label="B = 2, h = 3, T = 5, d = 4, float32"),
        Case(tuple(_random(2, (2, 3, 5, 4), F64)), {"causal": True}, label="the same shapes with causal=True, float64",
             note="with the causal mask position t attends to positions 0 … t: itself included, nothing later."),
        Case(tuple(_random(3, (3, 2, 1, 8), torch.float32)), {"causal": True},
             label="a single position (T = 1), causal",
             note="one position sees only itself: its weight is 1 and the output is its own value."),
        Case(tuple(_random(4, (2, 4, 7, 8), torch.float32)), {"causal": True},
             label="B = 2, h = 4, T = 7, d = 8, causal"),
        Case(tuple(big), {"causal": True}, label="float32 scores beyond 100 (a sharp, trained head), causal",
             note="exp(89) is already inf in float32; a softmax must subtract each row's maximum first "
                  "(torch.softmax does)."),
    ]


def _a_with(mask_fn: Callable[[int], torch.Tensor | None]) -> Callable[..., torch.Tensor]:
    def wrong(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
        return _attend(q, k, v, mask_fn(q.shape[-2]) if causal else None)
    return wrong


def _a_zero_fill(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        scores = scores.masked_fill(~_bottom_right_mask(q.shape[-2], q.shape[-2]), 0.0)
    return scores.softmax(-1) @ v


def _a_mask_after_softmax(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
    if causal:
        w = w * _bottom_right_mask(q.shape[-2], q.shape[-2])
    return w @ v


def _a_scaled(factor: Callable[[int], float]) -> Callable[..., torch.Tensor]:
    def wrong(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
        return _attention(q * factor(q.shape[-1]), k, v, causal)
    return wrong


def _a_weights(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        scores = scores.masked_fill(~_bottom_right_mask(q.shape[-2], q.shape[-2]), -math.inf)
    return scores.softmax(-1)


def _a_wrong_axis(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        scores = scores.masked_fill(~_bottom_right_mask(q.shape[-2], q.shape[-2]), -math.inf)
    return scores.softmax(-2).nan_to_num(0.0) @ v


def _a_naive(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    T = q.shape[-2]
    return _naive_softmax_attend(q, k, v, _bottom_right_mask(T, T) if causal else None)


def _a_overflow(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], q: torch.Tensor, k: torch.Tensor,
                v: torch.Tensor, causal: bool = False) -> bool:
    """Symptom: inf or NaN where the reference is finite, on a case with scores beyond float32's exp range."""
    return _big_scores(q, k) and _non_finite_where_finite(mine, want)


_ATTENTION_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("your softmax overflows: exp of a score above 88 is inf in float32, and inf / inf = NaN. Subtract each "
            "row's maximum before exp (softmax(s) = softmax(s − max s)), or use torch.softmax / .softmax(dim=-1), "
            "which does it for you.", _a_naive, symptom=_a_overflow),
    Mistake("your mask hides the diagonal too (tril(-1) or triu(0) of the forbidden part): a position must attend to "
            "itself, and the first position, which sees nothing else, gets a row of −inf only: softmax of it is "
            "0/0 = NaN. Keep j <= t: torch.ones(T, T, dtype=torch.bool).tril().",
            _a_with(lambda T: _bottom_right_mask(T, T).tril(-1))),
    Mistake("with causal=True nothing was masked: position t must not see positions after t. Add −inf above the "
            "diagonal before the softmax (scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), "
            "float('-inf'))).", _a_with(lambda T: None)),
    Mistake("your mask keeps the wrong triangle: each position attends to itself and the *future* (j >= t) instead "
            "of the past (j <= t). The allowed entries are the lower triangle, .tril(), and masked_fill needs the "
            "forbidden ones, ~allowed.", _a_with(lambda T: _bottom_right_mask(T, T).T)),
    Mistake("you filled the masked scores with 0 instead of −inf: exp(0) = 1, so future positions still get weight. "
            "Use float('-inf') (or torch.finfo(dtype).min).", _a_zero_fill),
    Mistake("you zeroed the future weights after the softmax, so each row no longer sums to 1. Mask the *scores* "
            "with −inf before the softmax, which then renormalises over the allowed positions.",
            _a_mask_after_softmax),
    Mistake("you forgot to scale the scores: divide q·k by √d (d = q.shape[-1], the head size), so that they have "
            "unit variance whatever d is.", _a_scaled(lambda d: math.sqrt(d))),
    Mistake("you divided the scores by d; the scale is 1/√d (the dot product of two unit-variance vectors has "
            "variance d, so its standard deviation is √d).", _a_scaled(lambda d: 1 / math.sqrt(d))),
    Mistake("you returned the attention weights softmax(q kᵀ/√d), shape (B, h, T, T); the output is those weights "
            "times the values: weights @ v, shape (B, h, T, d).", _a_weights),
    Mistake("your softmax runs over the wrong axis (dim=-2, the queries): each query's weights over the keys must "
            "sum to 1, so normalise along the last axis, .softmax(dim=-1).", _a_wrong_axis),
]

ATTENTION_CHECK = Check(
    "Exercise 8.1 (scaled dot-product attention)", _attention, _attention_cases, _ATTENTION_MISTAKES,
    TensorResult("float"), ("q", "k", "v"), atol=1e-5, rtol=1e-5)


def check_attention(student_fn: Callable[..., torch.Tensor]) -> None:
    """Exercise 8.1: ``attention(q, k, v, causal=False)`` for q, k, v (B, h, T, d) → (B, h, T, d)."""
    ATTENTION_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 8.2

def _cached(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past_k: torch.Tensor,
            past_v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """T new positions q, k, v (B, h, T, d) after S0 cached ones past_k, past_v (B, h, S0, d) →
    (y (B, h, T, d), keys (B, h, S0 + T, d), values (B, h, S0 + T, d)); new position i sees keys j <= S0 + i."""
    keys, values = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
    return _attend(q, keys, values, _bottom_right_mask(q.shape[2], keys.shape[2])), keys, values


def _cache_case(seed: int, B: int, h: int, T: int, S0: int, d: int, dtype: torch.dtype,
                scale: float = 1.0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    new = [torch.randn(B, h, T, d, generator=g, dtype=F64) for _ in range(3)]
    past = [torch.randn(B, h, S0, d, generator=g, dtype=F64) for _ in range(2)]
    new[0], new[1], past[0] = new[0] * scale, new[1] * scale, past[0] * scale
    return tuple(t.to(dtype) for t in (*new, *past))


def _cache_cases() -> list[Case]:
    return [
        Case(_cache_case(0, 1, 2, 1, 3, 4, torch.float32), label="one new token after 3 cached ones (h = 2, d = 4)"),
        Case(_cache_case(1, 2, 2, 4, 0, 4, F64), label="an empty cache (S0 = 0): the prompt's 4 tokens at once",
             note="with nothing cached the T new tokens are the whole prompt: token i may see tokens 0 … i only, "
                  "so a causal mask is needed whenever T > 1."),
        Case(_cache_case(2, 1, 3, 3, 5, 8, torch.float32), label="3 new tokens after 5 cached ones"),
        Case(_cache_case(3, 2, 4, 1, 20, 8, F64), label="a generation step: B = 2, h = 4, one new token, 20 cached"),
        Case(_cache_case(4, 1, 2, 2, 6, 16, torch.float32, scale=6.0),
             label="float32 scores beyond 100, 2 new tokens after 6 cached",
             note="exp(89) is already inf in float32; subtract each row's maximum before exp (torch.softmax does)."),
    ]


def _c_top_left(q, k, v, past_k, past_v):
    keys, values = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
    return F.scaled_dot_product_attention(q, keys, values, is_causal=True), keys, values


def _c_no_mask(q, k, v, past_k, past_v):
    keys, values = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
    return _attend(q, keys, values, None), keys, values


def _c_ignores_cache(q, k, v, past_k, past_v):
    return _attend(q, k, v, _bottom_right_mask(q.shape[2], q.shape[2])), k, v


def _c_new_first(q, k, v, past_k, past_v):
    keys, values = torch.cat([k, past_k], dim=2), torch.cat([v, past_v], dim=2)
    return _attend(q, keys, values, _bottom_right_mask(q.shape[2], keys.shape[2])), keys, values


def _c_returns_new_only(q, k, v, past_k, past_v):
    return _cached(q, k, v, past_k, past_v)[0], k.clone(), v.clone()


def _c_unscaled(q, k, v, past_k, past_v):
    return _cached(q * math.sqrt(q.shape[-1]), k, v, past_k, past_v)


def _c_order(q, k, v, past_k, past_v):
    y, keys, values = _cached(q, k, v, past_k, past_v)
    return keys, values, y


def _c_naive(q, k, v, past_k, past_v):
    keys, values = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
    return _naive_softmax_attend(q, keys, values, _bottom_right_mask(q.shape[2], keys.shape[2])), keys, values


def _c_overflow(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], q, k, v, past_k, past_v) -> bool:
    """Symptom: inf or NaN where the reference is finite, on a case with scores beyond float32's exp range."""
    return _big_scores(q, torch.cat([past_k, k], dim=2)) and _non_finite_where_finite(mine, want)


_CACHE_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("your softmax overflows: exp of a score above 88 is inf in float32, and inf / inf = NaN. Subtract each "
            "row's maximum before exp, or use torch.softmax / .softmax(dim=-1).", _c_naive, symptom=_c_overflow),
    Mistake("no mask among the new tokens: with T > 1 new tokens (a prompt, or an empty cache) token i must not "
            "see the new tokens after it. Mask key j for query i unless j <= S0 + i; with T = 1 no mask is needed.",
            _c_no_mask),
    Mistake("your causal mask is aligned top-left (this is what is_causal=True in F.scaled_dot_product_attention "
            "does): it lets query i see keys 0 … i, but the queries are the *last* T of the S0 + T positions, so "
            "query i must see keys 0 … S0 + i. Build the mask yourself: torch.ones(T, S, dtype=torch.bool)"
            ".tril(S - T), and pass it as attn_mask (True = may attend).", _c_top_left),
    Mistake("the new tokens attended only to each other: prepend the cached keys and values "
            "(torch.cat([past_k, k], dim=2), the same for v) and attend to all of them.", _c_ignores_cache),
    Mistake("you put the new keys and values *before* the cached ones: the cache holds the earlier positions, so "
            "the order is torch.cat([past_k, k], dim=2).", _c_new_first),
    Mistake("y is right, but you returned only the new keys and values: the caller keeps what you return as the "
            "next step's cache, so return the whole concatenation (past + new), shape (B, h, S0 + T, d).",
            _c_returns_new_only),
    Mistake("you forgot to scale the scores by 1/√d (d = q.shape[-1]).", _c_unscaled),
    Mistake("return (y, keys, values) in that order: the output first, then the updated cache.", _c_order),
]

CACHED_ATTENTION_CHECK = Check(
    "Exercise 8.2 (attention with a key/value cache)", _cached, _cache_cases, _CACHE_MISTAKES,
    TupleResult((TensorResult("float"),) * 3, ("y", "keys", "values")), ("q", "k", "v", "past_k", "past_v"),
    atol=1e-5, rtol=1e-5)


def check_cached_attention(student_fn: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
    """Exercise 8.2: ``attend_with_cache(q, k, v, past_k, past_v)`` → (y, keys, values)."""
    CACHED_ATTENTION_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 8.3

def _config(vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int,
            bias: bool = True) -> dict[str, Any]:
    return dataclasses.asdict(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                                        n_embd=n_embd, bias=bias))


def _count(config: dict[str, Any]) -> int:
    """Parameters of GPT(GPTConfig(**config)): the closed form of aigc_course.gpt.gpt_parameter_count."""
    return gpt_parameter_count(GPTConfig(**config))


def _count_cases() -> list[Case]:
    return [
        Case((_config(65, 64, 4, 4, 128),), label="nanoGPT's CPU recipe: V = 65, block 64, 4 layers, C = 128"),
        Case((_config(50257, 1024, 12, 12, 768),), label="GPT-2 small (the 124 M model)"),
        Case((_config(65, 64, 4, 4, 128, bias=False),), label="nanoGPT's CPU recipe with bias=False",
             note="bias=False removes the biases of every Linear layer *and* of every LayerNorm; each LayerNorm "
                  "keeps its gain (d numbers)."),
        Case((_config(11, 5, 1, 1, 8),), label="one layer, one head: V = 11, block 5, C = 8"),
        Case((_config(30, 7, 1, 2, 6, bias=False),), label="one layer and bias=False: V = 30, block 7, C = 6"),
        Case((_config(50257, 1024, 48, 25, 1600),), label="GPT-2 XL: 48 layers, C = 1600",
             note="1.56 billion is far beyond what float32 stores exactly (integers up to 2²⁴ ≈ 16.8 M)."),
    ]


def _ln_params(config: dict[str, Any]) -> int:
    return 2 * config["n_embd"] if config["bias"] else config["n_embd"]


def _k_float32(config: dict[str, Any]) -> int:
    return int(torch.tensor(float(_count(config)), dtype=torch.float32).item())


def _k_no_final_ln(config: dict[str, Any]) -> int:
    return _count(config) - _ln_params(config)


def _k_untied(config: dict[str, Any]) -> int:
    return _count(config) + config["vocab_size"] * config["n_embd"]


def _k_no_wpe(config: dict[str, Any]) -> int:
    return _count(config) - config["block_size"] * config["n_embd"]


def _k_ln_bias_kept(config: dict[str, Any]) -> int:
    return _count(config) + (0 if config["bias"] else (2 * config["n_layer"] + 1) * config["n_embd"])


def _k_mlp_width_d(config: dict[str, Any]) -> int:
    d, L = config["n_embd"], config["n_layer"]
    return _count(config) - L * (6 * d * d + (3 * d if config["bias"] else 0))


def _k_one_block(config: dict[str, Any]) -> int:
    d, L = config["n_embd"], config["n_layer"]
    per_block = 12 * d * d + (13 * d if config["bias"] else 2 * d)
    return _count(config) - (L - 1) * per_block


def _k_one_layernorm_per_block(config: dict[str, Any]) -> int:
    return _count(config) - config["n_layer"] * _ln_params(config)


_COUNT_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("your count is rounded: float32 (the default dtype of torch tensors) stores integers exactly only up "
            "to 2²⁴ ≈ 16.8 M, so 1.56 billion comes out as a multiple of 128. Count with Python ints.",
            _k_float32),
    Mistake("with bias=False you still counted the LayerNorm biases: GPTConfig.bias removes them too, so each "
            "LayerNorm has d parameters (its gain), not 2d.", _k_ln_bias_kept),
    Mistake("you left out the final LayerNorm ln_f (2d parameters, d with bias=False) that GPT-2 applies before "
            "the output layer.", _k_no_final_ln),
    Mistake("you counted the output layer as a separate V × d matrix: GPT-2 ties it to the token embedding "
            "(lm_head.weight is wte.weight), so it adds nothing.", _k_untied),
    Mistake("you left out the position embedding wpe (block_size × d): it is a parameter of the model, learnt like "
            "the token embedding.", _k_no_wpe),
    Mistake("your MLP is too narrow: its hidden layer has 4d units, so its two matrices hold d·4d + 4d·d = 8d² "
            "weights (plus 4d + d biases).", _k_mlp_width_d),
    Mistake("you counted one block's parameters once: there are n_layer blocks, each with its own "
            "12d² + 13d (12d² + 2d without biases).", _k_one_block),
    Mistake("each block has two LayerNorms (ln_1 before attention, ln_2 before the MLP); you counted one.",
            _k_one_layernorm_per_block),
]

GPT_PARAMETER_COUNT_CHECK = Check(
    "Exercise 8.3 (GPT parameter count)", _count, _count_cases, _COUNT_MISTAKES, IntResult(), ("config",),
    atol=0.0, rtol=0.0)


def check_gpt_parameter_count(student_fn: Callable[[dict[str, Any]], int]) -> None:
    """Exercise 8.3: ``parameter_count(config)`` for a GPT config as a dict (dataclasses.asdict) → an int."""
    GPT_PARAMETER_COUNT_CHECK.run(student_fn)
