"""Self-checks for lesson 10 (scaling up): a GPT's forward FLOPs per token, a gradient accumulated over
micro-batches, and the spacing of bfloat16 numbers.

Each ``*_CHECK`` is a :class:`~aigc_course.checks._core.Check` (cases built when it runs, mistakes, return
type); the ``check_*`` functions that the exercises call run them. The references are
:func:`aigc_course.scaling.forward_flops_per_token`, the full-batch least-squares gradient, and
``torch.frexp`` on the absolute value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..gpt import GPTConfig, gpt_parameter_count
from ..scaling import forward_flops_per_token
from ._core import Case, Check, IntResult, Mistake, TensorResult

__all__ = ["check_flops_per_token", "check_accumulated_gradient", "check_bf16_spacing"]

F64, F32 = torch.float64, torch.float32


# --------------------------------------------------------------------------- Exercise 10.1

def _gpt(vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int,
         bias: bool = True) -> dict[str, Any]:
    return dataclasses.asdict(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer,
                                        n_head=n_head, n_embd=n_embd, bias=bias))


def _flops(config: dict[str, Any], context: int) -> int:
    """Forward matmul FLOPs per token of GPT(GPTConfig(**config)) on windows of ``context`` tokens."""
    return forward_flops_per_token(GPTConfig(**config), context)


def _flops_cases() -> list[Case]:
    return [
        Case((_gpt(65, 64, 4, 4, 128), 64), label="nanoGPT's CPU recipe (V = 65, L = 4, d = 128), windows of 64"),
        Case((_gpt(11, 1, 1, 1, 8), 1), label="one layer, d = 8, block_size 1: a window of a single token"),
        Case((_gpt(65, 64, 4, 4, 128), 16), label="the same model on windows of 16 tokens (block_size 64)",
             note="the attention term depends on the window actually processed, `context`, not on the longest "
                  "window the model accepts (config['block_size'])."),
        Case((_gpt(30, 8, 2, 2, 16, bias=False), 8), label="bias=False, 2 layers, d = 16, windows of 8"),
        Case((_gpt(50257, 1024, 12, 12, 768), 1024), label="GPT-2 small, windows of 1024"),
        Case((_gpt(50257, 2048, 96, 96, 12288), 2048), label="GPT-3 (175 B: L = 96, d = 12288), windows of 2048",
             note="3.6·10¹¹ FLOPs per token is far beyond what float32 stores exactly (integers up to 2²⁴)."),
    ]


def _f_float32(config: dict[str, Any], context: int) -> int:
    return int(torch.tensor(float(_flops(config, context)), dtype=F32).item())


def _f_block_size(config: dict[str, Any], context: int) -> int:
    return _flops(config, config["block_size"])


def _attention(config: dict[str, Any], context: int) -> int:
    return 4 * config["n_layer"] * context * config["n_embd"]


def _f_no_attention(config: dict[str, Any], context: int) -> int:
    return _flops(config, context) - _attention(config, context)


def _f_attention_once(config: dict[str, Any], context: int) -> int:
    return _flops(config, context) - _attention(config, context) // 2


def _f_no_head(config: dict[str, Any], context: int) -> int:
    return _flops(config, context) - 2 * config["vocab_size"] * config["n_embd"]


def _f_macs(config: dict[str, Any], context: int) -> int:
    return _flops(config, context) // 2


def _f_training(config: dict[str, Any], context: int) -> int:
    return 3 * _flops(config, context)


def _f_two_n(config: dict[str, Any], context: int) -> int:
    return 2 * gpt_parameter_count(GPTConfig(**config))


def _f_mlp_width_d(config: dict[str, Any], context: int) -> int:
    d = config["n_embd"]
    return _flops(config, context) - config["n_layer"] * 12 * d * d


def _f_one_layer(config: dict[str, Any], context: int) -> int:
    L, d = config["n_layer"], config["n_embd"]
    return _flops(config, context) - (L - 1) * (24 * d * d + 4 * context * d)


_FLOPS_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("your count is rounded: float32 (the default dtype of torch tensors) stores integers exactly only up to "
            "2²⁴ ≈ 16.8 M, so GPT-3's 3.6·10¹¹ comes out as a multiple of 2¹⁴. Count with Python ints.", _f_float32),
    Mistake("you used config['block_size'] for the window: the attention term is 4·T·d per layer for the window "
            "actually processed, T = context, which may be shorter than the longest window the model accepts.",
            _f_block_size),
    Mistake("you used the rule of thumb 2N with N = all parameters: the embedding look-ups (token and position) "
            "are not matrix products and cost nothing, biases and LayerNorms are not matmuls either, attention "
            "(4·T·d per layer) has no parameters but costs FLOPs, and the output layer (2·V·d) is tied to the "
            "embedding: no parameters of its own, but a full matrix product.", _f_two_n),
    Mistake("you left out attention itself: the scores QKᵀ and the weighted sum of the values have no weights but "
            "cost 2·T·d FLOPs each per token and layer, 4·T·d in all.", _f_no_attention),
    Mistake("you counted only one of attention's two products: the scores QKᵀ (2·T·d per token) *and* the weighted "
            "sum of the values AV (another 2·T·d), so 4·T·d per layer.", _f_attention_once),
    Mistake("you left out the output layer: it shares its weights with the token embedding (no new parameters), "
            "but multiplying every position by the V × d matrix still costs 2·V·d FLOPs per token.", _f_no_head),
    Mistake("you counted multiply-adds (MACs), not FLOPs: each weight does one multiplication *and* one addition "
            "per token, 2 FLOPs.", _f_macs),
    Mistake("you counted a training step (forward + backward = 3 × forward, ≈ 6N); the question asks for the "
            "forward pass only (≈ 2N).", _f_training),
    Mistake("your MLP is too narrow: its hidden layer has 4d units, so its two matrices cost 2·(d·4d + 4d·d) = "
            "16d² FLOPs per token, and a layer 24d² with the 8d² of the four attention projections.",
            _f_mlp_width_d),
    Mistake("you counted one layer: every one of the n_layer blocks costs 24d² + 4·T·d per token.", _f_one_layer),
]

FLOPS_CHECK = Check(
    "Exercise 10.1 (forward FLOPs per token)", _flops, _flops_cases, _FLOPS_MISTAKES, IntResult("the FLOP count per token"),
    ("config", "context"), atol=0.0, rtol=0.0)


def check_flops_per_token(student_fn: Callable[[dict[str, Any], int], int]) -> None:
    """Exercise 10.1: ``flops_per_token(config, context)`` → the forward matmul FLOPs per token, an int."""
    FLOPS_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 10.2

def _gradient(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """∇_w of mean_i (x_i·w − y_i)² over the whole batch x (B, D), y (B,) → (D,); ``k`` does not change it."""
    return 2.0 * x.T @ (x @ w - y) / x.shape[0]


def _regression(seed: int, B: int, D: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g, dtype=F64)
    w = torch.randn(D, generator=g, dtype=F64)
    y = x @ torch.randn(D, generator=g, dtype=F64) + 0.1 * torch.randn(B, generator=g, dtype=F64)
    return w.to(dtype), x.to(dtype), y.to(dtype)


def _offset_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """float32 features near 1000 and residuals of ±0.25, all exact in float32: the residual form is exact,
    the expanded form XᵀXw − Xᵀy cancels sums of about 7·10⁷ (float32 numbers 8 apart there)."""
    g = torch.Generator().manual_seed(10)
    i = torch.arange(64, dtype=F64)
    x = torch.stack([1000.0 + i, 1000.0 - (i * 7) % 64, torch.ones(64, dtype=F64)], dim=1)
    w = torch.tensor([0.5, -0.25, 3.0], dtype=F64)
    signs = torch.randint(0, 2, (64,), generator=g).to(F64) * 2 - 1
    y = x @ w + 0.25 * signs
    return w.to(F32), x.to(F32), y.to(F32)


def _grad_cases() -> list[Case]:
    return [
        Case((*_regression(0, 8, 3, F64), 4), label="B = 8 examples in k = 4 micro-batches of 2, D = 3"),
        Case((*_regression(1, 10, 3, F64), 4), label="B = 10 in k = 4 micro-batches (sizes 3, 3, 2, 2)",
             note="when k does not divide B the micro-batches differ in size: the mean over the batch weights each "
                  "micro-batch's mean loss by its size b_j / B, not by 1/k."),
        Case((*_regression(2, 6, 2, F32), 1), label="k = 1: the whole batch at once, float32"),
        Case((*_regression(3, 5, 4, F64), 5), label="k = B = 5: one example per micro-batch"),
        Case((*_offset_case(), 4), label="float32 features near 1000, residuals ±0.25, B = 64, k = 4",
             note="x ≈ 1000 makes the entries of XᵀX about 7·10⁷, where float32 numbers are 8 apart, while the "
                  "gradient itself is below 1."),
        Case((*_regression(4, 4096, 16, F32), 8), label="a realistic batch: B = 4096, D = 16, k = 8, float32"),
    ]


def _chunks(x: torch.Tensor, y: torch.Tensor, k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(zip(x.tensor_split(k), y.tensor_split(k), strict=True))


def _g_mean_of_means(w, x, y, k):
    return sum(_gradient(w, xj, yj, 1) for xj, yj in _chunks(x, y, k)) / k


def _g_no_division(w, x, y, k):
    return sum(_gradient(w, xj, yj, 1) for xj, yj in _chunks(x, y, k))


def _g_last_only(w, x, y, k):
    xj, yj = _chunks(x, y, k)[-1]
    return _gradient(w, xj, yj, 1) / k


def _g_sum_loss(w, x, y, k):
    return _gradient(w, x, y, k) * x.shape[0]


def _g_no_two(w, x, y, k):
    return _gradient(w, x, y, k) / 2


def _g_sign(w, x, y, k):
    return -_gradient(w, x, y, k)


def _g_expanded(w, x, y, k):
    return 2.0 * (x.T @ x @ w - x.T @ y) / x.shape[0]


def _g_cancelled(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], w, x, y, k) -> bool:
    """Symptom: a finite answer of the right shape, but wrong on the float32 case with large features (only an
    answer right on every earlier case gets here: rounding, not a formula)."""
    m, r = mine[0], want[0]
    return x.dtype == F32 and float(x.abs().max()) >= 100 and m.shape == r.shape and bool(np.isfinite(m).all())


_GRAD_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("your gradient has lost its precision: expanding 2/B·(XᵀX w − Xᵀy) builds two sums of about 7·10⁷, "
            "where float32 numbers are 8 apart, and subtracts them to get a gradient below 1: only rounding error "
            "is left. Compute the residual first, r = x @ w − y, then 2/B · xᵀ r (or let autograd do it): no "
            "large sums cancel.",
            _g_expanded, symptom=_g_cancelled),
    Mistake("with micro-batches of different sizes the mean of their mean gradients is not the mean over the batch: "
            "weight micro-batch j's mean loss by its size b_j / B (or add up per-example sums and divide by B once).",
            _g_mean_of_means),
    Mistake("you added the k micro-batch gradients without dividing by k: the result is k times the large-batch "
            "gradient. Backward each micro-batch's mean loss times b_j / B (= 1/k for equal sizes).",
            _g_no_division),
    Mistake("only the last micro-batch's gradient survived: the gradients must *add up* over the micro-batches "
            "(`grad = grad + g_j`, or call backward k times without zero_grad in between).", _g_last_only),
    Mistake("you differentiated the *sum* of the squared errors: the loss is their mean over the B examples, so "
            "divide by B.", _g_sum_loss),
    Mistake("the factor 2 of d/dw (x·w − y)² = 2 (x·w − y) x is missing.", _g_no_two),
    Mistake("your gradient points the wrong way: d/dw (x·w − y)² = +2 (x·w − y) x; with (y − x·w) the sign flips.",
            _g_sign),
]

GRAD_CHECK = Check(
    "Exercise 10.2 (gradient accumulation)", _gradient, _grad_cases, _GRAD_MISTAKES, TensorResult("float"),
    ("w", "x", "y", "k"), atol=1e-6, rtol=1e-5)


def check_accumulated_gradient(student_fn: Callable[..., torch.Tensor]) -> None:
    """Exercise 10.2: ``accumulated_gradient(w, x, y, k)`` → ∇_w of the mean squared error over the batch, (D,)."""
    GRAD_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 10.3

MIN_NORMAL = 2.0**-126      # bf16 has float32's exponent range
SUBNORMAL_SPACING = 2.0**-133


def _spacing(x: torch.Tensor) -> torch.Tensor:
    """The gap between the bf16 number at or below |x| and the next larger one: 2^(floor(log2|x|) − 7) for
    |x| >= 2^-126, 2^-133 below (subnormals and 0); float32 (x's shape)."""
    a = x.abs().to(F32)
    _, e = torch.frexp(a)                                   # |x| = m·2^e with m in [0.5, 1): leading bit 2^(e−1)
    out = torch.ldexp(torch.ones_like(a), e - 8)
    return torch.where(a < MIN_NORMAL, torch.full_like(a, SUBNORMAL_SPACING), out)


def _spacing_cases() -> list[Case]:
    below = torch.nextafter(torch.tensor([16.0, 1024.0, 2.0**20, 2.0**60]), torch.zeros(4))
    g = torch.Generator().manual_seed(0)
    weights = 0.02 * torch.randn(1000, generator=g)
    return [
        Case((torch.tensor([1.0, 1.5, 2.0, 3.0, 0.75, 1000.0]),), label="1, 1.5, 2, 3, 0.75, 1000"),
        Case((torch.tensor([0.5, 2.0**20 - 2.0**11, 255.0, 7.0]),), label="0.5, 2²⁰ − 2¹¹, 255, 7",
             note="the spacing of x itself: 2²⁰ − 2¹¹ lies below 2²⁰ (bf16's nearest number to it happens to be 2²⁰, "
                  "a tie rounded to even), so its spacing is the one of [2¹⁹, 2²⁰)."),
        Case((torch.tensor([-1.0, -0.001, -300.0]),), label="negative numbers",
             note="a spacing is a distance: the same for −x as for x, and positive."),
        Case((torch.tensor([0.0, 1e-39, MIN_NORMAL, 2.0**-130, -0.0]),), label="0, float32 subnormals and 2⁻¹²⁶",
             note="below 2⁻¹²⁶ (the smallest normal number) bf16 numbers are subnormal: evenly spaced 2⁻¹³³ apart, "
                  "down to 0."),
        Case((below,), label="the float32 numbers just below 16, 1024, 2²⁰ and 2⁶⁰",
             note="just below a power of two 2^k the exponent is k − 1, but log2 in float32 rounds "
                  "k − 10⁻⁸ up to k."),
        Case((torch.cat([weights, torch.tensor([3e38, -1e-20])]),),
             label="1000 weights of a layer (std 0.02), 3·10³⁸ and −10⁻²⁰"),
    ]


def _s_log2(x: torch.Tensor) -> torch.Tensor:
    """floor(log2|x|) in float32 (0 and subnormals clamped to 2^-126 first)."""
    e = torch.log2(x.abs().clamp_min(MIN_NORMAL)).floor()
    out = torch.exp2(e - 7)
    return torch.where(x.abs() < MIN_NORMAL, torch.full_like(out, SUBNORMAL_SPACING), out)


def _s_rounded_first(x: torch.Tensor) -> torch.Tensor:
    return _spacing(x.to(torch.bfloat16).float())


def _s_bits(fraction_bits: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def wrong(x: torch.Tensor) -> torch.Tensor:
        return _spacing(x) * 2.0 ** (7 - fraction_bits)
    return wrong


def _s_frexp_exponent(x: torch.Tensor) -> torch.Tensor:
    return _spacing(x) * 2.0


def _s_signed(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x < 0, -_spacing(x), _spacing(x))


def _s_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x.abs() < MIN_NORMAL, torch.zeros_like(x), _spacing(x))


def _s_subnormal_continued(x: torch.Tensor) -> torch.Tensor:
    """2^(e − 8) from frexp also below 2^-126 (and 0 for x = 0)."""
    a = x.abs()
    _, e = torch.frexp(a)
    return torch.where(a == 0, torch.zeros_like(a), torch.ldexp(torch.ones_like(a), e - 8))


_SPACING_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("just below a power of two your spacing is twice too large: torch.log2 in float32 rounds "
            "log2(2^k − tiny) = k − 10⁻⁸ up to k, so floor() gives the next binade. Read the exponent exactly with "
            "torch.frexp (|x| = m·2^e, m in [0.5, 1), so the leading bit is 2^(e − 1)).", _s_log2),
    Mistake("you rounded x to bf16 first: a value just below a power of two can round *up* to it (2²⁰ − 2¹¹ becomes "
            "2²⁰) and land in the next binade. Take the exponent of x itself.", _s_rounded_first),
    Mistake("below 2⁻¹²⁶ the bf16 numbers are subnormal: the exponent stops at −126 and the spacing stays 2⁻¹³³ "
            "down to 0. Your spacing keeps shrinking there (or is 0 at x = 0).", _s_subnormal_continued),
    Mistake("at x = 0 (and for subnormals) the spacing is not 0: the bf16 numbers next to 0 are 2⁻¹³³ apart.",
            _s_zero),
    Mistake("your spacing is negative for negative x: a spacing is a distance, so use |x|.", _s_signed),
    Mistake("your spacing is half the right one: bf16 stores 7 fraction bits; the 8th significant bit is the "
            "implicit leading 1, so between 1 and 2 the numbers are 2⁻⁷ apart (torch.finfo(torch.bfloat16).eps), "
            "not 2⁻⁸ (2⁻⁸ is the largest rounding error there, half a spacing).", _s_bits(8)),
    Mistake("that is float16's spacing (10 fraction bits, 2⁻¹⁰ at 1); bf16 has 7 fraction bits.", _s_bits(10)),
    Mistake("that is float32's spacing (23 fraction bits, 2⁻²³ at 1); bf16 keeps only the top 7 fraction bits.",
            _s_bits(23)),
    Mistake("your spacing is twice too large everywhere: torch.frexp returns m in [0.5, 1), so |x| = m·2^e has its "
            "leading bit at 2^(e − 1) and the spacing is 2^(e − 1 − 7).", _s_frexp_exponent),
]

SPACING_CHECK = Check(
    "Exercise 10.3 (bf16 spacing)", _spacing, _spacing_cases, _SPACING_MISTAKES, TensorResult("float"), ("x",),
    atol=0.0, rtol=1e-6)


def check_bf16_spacing(student_fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Exercise 10.3: ``bf16_spacing(x)`` → the gap between consecutive bf16 numbers at |x|, float32, x's shape."""
    SPACING_CHECK.run(student_fn)
