"""Self-checks for lesson 07 (autoregressive language models): the per-token cross-entropy from logits (the
training loss and, exponentiated, the perplexity), nucleus (top-p) sampling probabilities, and the forward pass
of Bengio's MLP language model.

Each ``*_CHECK`` is a :class:`~aigc_course.checks._core.Check` (cases, mistakes, return type); the
``check_*`` functions that the exercises call run them. The references are the package's own functions
(:func:`aigc_course.sampling.top_p_filter`) or short torch expressions of the definitions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from ..sampling import top_p_filter
from ._core import Case, Check, Mistake, TensorResult

__all__ = ["check_token_cross_entropy", "check_top_p_probs", "check_mlp_logits"]

F64 = torch.float64


def _non_finite_where_finite(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> bool:
    return mine[0].shape == want[0].shape and bool((~np.isfinite(mine[0]) & np.isfinite(want[0])).any())


# --------------------------------------------------------------------------- Exercise 7.1

def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over N of −log softmax(logits[n])[targets[n]]: logits (N, V), targets (N,) → a 0-d tensor (nats)."""
    return -logits.log_softmax(dim=-1).gather(-1, targets[:, None]).mean()


def _log_of_softmax(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -torch.log(torch.softmax(logits, dim=-1)).gather(-1, targets[:, None]).mean()


def _log_softmax_unstable(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], logits: torch.Tensor,
                          targets: torch.Tensor) -> bool:
    """Symptom: inf or NaN where the reference is finite, on a case with logits spread beyond float32's exp range."""
    spread = (logits.amax(-1) - logits.amin(-1)).max()
    return bool(spread > 100) and _non_finite_where_finite(mine, want)


def _finite_where_inf(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], *args: object) -> bool:
    """Symptom: a finite loss where the reference is +inf (a target with probability 0, clamped away)."""
    return mine[0].shape == want[0].shape and bool((np.isfinite(mine[0]) & np.isposinf(want[0])).any())


def _logits(seed: int, n: int, v: int, scale: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, v, generator=g, dtype=F64)
    targets = torch.randint(v, (n,), generator=g)
    return logits.to(dtype), targets


def _cross_entropy_cases() -> list[Case]:
    ruled_out = _logits(3, 4, 6, 2.0, F64)
    ruled_out[0][2, ruled_out[1][2]] = -math.inf                       # the model gives token 2's target p = 0
    confident = _logits(4, 8, 30, 1.0, torch.float32)
    confident[0][:] *= 150.0                                            # logits spread over hundreds
    return [
        Case((torch.tensor([[0.0, math.log(3.0), 0.0], [math.log(2.0), 0.0, math.log(5.0)]], dtype=F64),
              torch.tensor([1, 0])),
             label="N = 2 tokens, V = 3: p(target) = 3/5 and 2/8"),
        Case(_logits(0, 50, 27, 1.5, torch.float32), label="N = 50 tokens, V = 27 characters, float32"),
        Case(_logits(1, 1, 10, 2.0, F64), label="a single token (N = 1)"),
        Case(_logits(2, 12, 12, 1.0, F64), label="N = V = 12 (a square table)"),
        Case(ruled_out, label="one target has logit −inf",
             note="a token the model rules out (logit −inf, probability exactly 0) costs −log 0 = +inf nats, and "
                  "so does the mean: the loss must say inf, not a large finite number."),
        Case(confident, label="a confident model: float32 logits spread over ±500",
             note="softmax gives exactly 0 in float32 to every token more than ~104 below the largest logit, "
                  "but its log-probability is a perfectly finite number (minus the gap)."),
    ]


_CROSS_ENTROPY_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("log of a softmax underflows: softmax rounds the probability of a target far below the top logit to "
            "exactly 0 (and exp of a logit above ~88 is inf in float32), so log gives −inf or NaN. Stay in log "
            "space: logits.log_softmax(dim=-1) (or logits − logits.logsumexp(dim=-1, keepdim=True)), then pick the "
            "targets' entries.", _log_of_softmax, symptom=_log_softmax_unstable),
    Mistake("you clamped the probabilities before the log: a target the model rules out (p = 0) must cost +inf "
            "nats, and a clamp at ε turns it into the finite −log ε. Do not clamp; use log_softmax.",
            lambda lg, t: -lg.softmax(-1).clamp_min(1e-12).log().gather(-1, t[:, None]).mean(),
            symptom=_finite_where_inf),
    Mistake("you summed over the tokens: the loss per token is the *mean* NLL, (1/N) Σ_n −log p(x_n | context), "
            "so that it does not grow with the batch (F.cross_entropy averages by default).",
            lambda lg, t: F.cross_entropy(lg, t, reduction="sum")),
    Mistake("you returned one loss per token (shape (N,)); the exercise asks for their mean, one number.",
            lambda lg, t: F.cross_entropy(lg, t, reduction="none")),
    Mistake("your loss is ≤ 0: that is the mean log-probability. The cross-entropy is its negative, "
            "−(1/N) Σ log p(target).", lambda lg, t: -_cross_entropy(lg, t)),
    Mistake("you applied the softmax twice: F.cross_entropy takes raw logits and applies log_softmax itself. "
            "Pass the logits unchanged, not probabilities.", lambda lg, t: F.cross_entropy(lg.softmax(-1), t)),
    Mistake("you normalised over the wrong axis: logits are (N, V), one row per token, and each row is a "
            "distribution over the V tokens: log_softmax(dim=-1), not dim=0.",
            lambda lg, t: -lg.log_softmax(dim=0).gather(-1, t[:, None]).mean()),
    Mistake("you averaged −log p over the whole vocabulary: only the probability of each row's *target* token "
            "counts, logp[torch.arange(N), targets].", lambda lg, t: -lg.log_softmax(-1).mean()),
    Mistake("your loss is in bits (log base 2); the course measures it in nats (natural log), so that "
            "perplexity = exp(loss).", lambda lg, t: _cross_entropy(lg, t) / math.log(2.0)),
    Mistake("you returned the perplexity exp(loss); the exercise asks for the loss itself (nats per token).",
            lambda lg, t: _cross_entropy(lg, t).exp()),
]

TOKEN_CROSS_ENTROPY_CHECK = Check(
    "Exercise 7.1 (per-token cross-entropy from logits)", _cross_entropy, _cross_entropy_cases,
    _CROSS_ENTROPY_MISTAKES, TensorResult("float"), ("logits", "targets"), atol=1e-5, rtol=1e-5)


def check_token_cross_entropy(student_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 7.1: ``token_cross_entropy(logits, targets)`` for logits (N, V) and targets (N,) → the mean
    negative log-likelihood in nats, a 0-d tensor."""
    TOKEN_CROSS_ENTROPY_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 7.2

def _top_p_probs(logits: torch.Tensor, p: float) -> torch.Tensor:
    """softmax of the nucleus-filtered logits: (..., V) → (..., V), zero outside the smallest set of most
    probable tokens whose mass reaches p."""
    return top_p_filter(logits, p).softmax(dim=-1)


def _keep_desc(logits: torch.Tensor, p: float, rule: str) -> torch.Tensor:
    """The keep mask of a descending-sort implementation with the given cut ``rule``, in the original order."""
    probs = logits.softmax(dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    cum = sorted_probs.cumsum(dim=-1)
    keep = cum < p if rule == "strict" else cum - sorted_probs < p
    return keep.scatter(-1, order, keep)


def _one_too_few(logits: torch.Tensor, p: float) -> torch.Tensor:
    probs = logits.softmax(dim=-1) * _keep_desc(logits, p, "strict")
    return probs / probs.sum(-1, keepdim=True)


def _not_renormalised(logits: torch.Tensor, p: float) -> torch.Tensor:
    return logits.softmax(dim=-1) * _keep_desc(logits, p, "right")


def _sorted_order(logits: torch.Tensor, p: float) -> torch.Tensor:
    sorted_probs = logits.softmax(dim=-1).sort(dim=-1, descending=True).values
    kept = sorted_probs * (sorted_probs.cumsum(-1) - sorted_probs < p)
    return kept / kept.sum(-1, keepdim=True)


def _naive_exp(logits: torch.Tensor, p: float) -> torch.Tensor:
    e = logits.exp()
    probs = e / e.sum(-1, keepdim=True)
    kept = probs * _keep_desc(logits, p, "right")
    return kept / kept.sum(-1, keepdim=True)


def _ascending_without_guard(logits: torch.Tensor, p: float) -> torch.Tensor:
    sorted_logits, order = logits.sort(dim=-1)
    drop = sorted_logits.softmax(-1).cumsum(-1) <= 1 - p
    drop = drop.scatter(-1, order, drop)
    return logits.masked_fill(drop, -math.inf).softmax(-1)


def _nan_from_overflow(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], logits: torch.Tensor,
                       p: float) -> bool:
    """Symptom: NaN where the reference is a number, on logits above float32's exp range (~88)."""
    return bool(logits.max() > 88) and bool((np.isnan(mine[0]) & ~np.isnan(want[0])).any())


def _nan_with_tiny_p(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], logits: torch.Tensor,
                     p: float) -> bool:
    """Symptom: NaN on a case with p so small that 1 − p rounds to 1 (nothing may be kept but the top token)."""
    return p < 1e-6 and bool((np.isnan(mine[0]) & ~np.isnan(want[0])).any())


def _probs_logits(probs: list[float], dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.tensor(probs, dtype=F64).log().to(dtype)


def _top_p_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    batch = (2.0 * torch.randn(3, 10, generator=g, dtype=F64)).float()
    dominant = torch.randn(2, 20, generator=g, dtype=F64).float()
    dominant[:, 7] += 6.0                                               # one token holds ~90 % of the mass
    confident = (torch.randn(2, 50, generator=g, dtype=F64) * 3.0 + 1.0).float()
    confident[:, :] = confident * 60.0                                  # logits in the hundreds
    return [
        Case((_probs_logits([0.125, 0.5, 0.125, 0.25]), 0.7),
             label="V = 4, p(token) = (1/8, 1/2, 1/8, 1/4), p = 0.7",
             note="1/2 alone is less than 0.7, so the nucleus needs the next token too: {1/2, 1/4} (mass 3/4 ≥ 0.7), "
                  "renormalised to (0, 2/3, 0, 1/3)."),
        Case((batch, 0.9), label="a batch (3, 10) of float32 logits, p = 0.9"),
        Case((torch.randn(4, 8, generator=g, dtype=F64), 1.0), label="p = 1 (keep every token)"),
        Case((dominant, 0.5), label="(2, 20) logits where one token holds ~90 % of the mass, p = 0.5"),
        Case((_probs_logits([1.0]), 0.3), label="a single-token vocabulary (V = 1)"),
        Case((torch.randn(3, 16, generator=g, dtype=F64).float(), 1e-9),
             label="p = 1e-9, float32 logits: only the most probable token stays",
             note="1 − 1e-9 rounds to exactly 1.0, so any test written as `mass ≤ 1 − p` is true for every token; "
                  "the most probable token must be kept whatever p is."),
        Case((confident, 0.8), label="float32 logits in the hundreds, p = 0.8"),
    ]


_TOP_P_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("exp of the logits overflows: above ~88 float32's exp is inf, and inf/inf = NaN. Use "
            "torch.softmax (it subtracts the row maximum first), or subtract it yourself.",
            _naive_exp, symptom=_nan_from_overflow),
    Mistake("NaN when p is tiny: 1 − p rounds to 1.0 and the test `cumulative mass ≤ 1 − p` drops every token, so "
            "nothing is left to renormalise. Always keep the most probable token (Hugging Face's "
            "min_tokens_to_keep = 1), or test the mass *before* each token in descending order: keep while it is "
            "< p.", _ascending_without_guard, symptom=_nan_with_tiny_p),
    Mistake("one token too few: you kept the tokens whose cumulative mass (including themselves) is < p, which "
            "stops *before* the mass reaches p (and keeps nothing when the top token alone exceeds p). Keep a token "
            "when the mass of the tokens *before* it is still < p: (cum − sorted_probs) < p.", _one_too_few),
    Mistake("you did not renormalise: after zeroing the tail the kept probabilities sum to less than 1. Divide by "
            "their sum (or set the dropped logits to −inf and take the softmax).", _not_renormalised),
    Mistake("your result is in sorted order: sort gives the probabilities in descending order *and* the indices "
            "`order`; put the kept values back at their tokens, e.g. keep.scatter(-1, order, keep) or "
            "torch.empty_like(x).scatter_(-1, order, sorted_x).", _sorted_order),
    Mistake("you returned the filtered logits (−inf outside the nucleus); the exercise asks for the sampling "
            "probabilities: their softmax.", top_p_filter),
]

TOP_P_PROBS_CHECK = Check(
    "Exercise 7.2 (nucleus sampling probabilities)", _top_p_probs, _top_p_cases, _TOP_P_MISTAKES,
    TensorResult("float"), ("logits", "p"), atol=1e-6, rtol=1e-5)


def check_top_p_probs(student_fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """Exercise 7.2: ``top_p_probs(logits, p)`` for logits (..., V) and p in (0, 1] → the probabilities
    (..., V) that nucleus sampling draws from."""
    TOP_P_PROBS_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 7.3

def _mlp_logits(idx: torch.Tensor, C: torch.Tensor, W_h: torch.Tensor, b_h: torch.Tensor, W_out: torch.Tensor,
                b_out: torch.Tensor) -> torch.Tensor:
    """Bengio et al. (2003): x = [C[idx_1]; …; C[idx_n]] (B, n·d), h = tanh(x W_h + b_h), logits = h W_out + b_out."""
    x = C[idx].reshape(idx.shape[0], -1)
    return torch.tanh(x @ W_h + b_h) @ W_out + b_out


def _hand_tanh(idx, C, W_h, b_h, W_out, b_out):
    a = C[idx].reshape(idx.shape[0], -1) @ W_h + b_h
    h = (torch.exp(2 * a) - 1) / (torch.exp(2 * a) + 1)
    return h @ W_out + b_out


def _nan_from_saturation(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], idx, C, W_h, b_h, W_out,
                         b_out) -> bool:
    """Symptom: NaN or inf where the reference is finite, on a case whose pre-activations leave exp's range."""
    a = C[idx].reshape(idx.shape[0], -1).double() @ W_h.double() + b_h.double()
    return bool(a.abs().max() > 45) and _non_finite_where_finite(mine, want)


def _weights(seed: int, batch: int, n: int, vocab: int, d: int, hidden: int, scale: float = 1.0,
             dtype: torch.dtype = F64) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(vocab, (batch, n), generator=g)
    C = torch.randn(vocab, d, generator=g, dtype=F64)
    W_h = scale * torch.randn(n * d, hidden, generator=g, dtype=F64) / math.sqrt(n * d)
    b_h = 0.1 * torch.randn(hidden, generator=g, dtype=F64)
    W_out = torch.randn(hidden, vocab, generator=g, dtype=F64) / math.sqrt(hidden)
    b_out = 0.1 * torch.randn(vocab, generator=g, dtype=F64)
    return (idx, *(t.to(dtype) for t in (C, W_h, b_h, W_out, b_out)))


def _mlp_cases() -> list[Case]:
    C = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]], dtype=F64)
    W_h = torch.tensor([[0.5, 0.0], [0.0, 0.5], [1.0, 0.0], [0.0, -1.0]], dtype=F64)
    hand = (torch.tensor([[0, 2], [1, 1]]), C, W_h, torch.tensor([0.0, 0.25], dtype=F64),
            torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]], dtype=F64), torch.tensor([0.0, 0.0, 0.5], dtype=F64))
    return [
        Case(hand, label="V = 3, d = 2, n = 2, hidden 2: contexts (0, 2) and (1, 1)"),
        Case(_weights(0, 5, 3, 27, 4, 16), label="B = 5 contexts of n = 3 characters, V = 27, d = 4, hidden 16"),
        Case(_weights(1, 6, 4, 20, 3, 8, dtype=torch.float32), label="float32, B = 6, n = 4, V = 20, d = 3"),
        Case(_weights(2, 1, 1, 10, 5, 12), label="one context of one token (B = 1, n = 1)",
             note="a batch of one is still a batch: the logits have shape (1, V)."),
        Case(_weights(3, 4, 3, 15, 6, 10, scale=40.0, dtype=torch.float32),
             label="float32, weights 40× too large: pre-activations in the hundreds"),
    ]


_MLP_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("tanh written as (e^{2a} − 1)/(e^{2a} + 1) overflows: for a pre-activation above ~44 (float32) e^{2a} is "
            "inf and inf/inf = NaN, while tanh(a) is just 1. Use torch.tanh.", _hand_tanh,
            symptom=_nan_from_saturation),
    Mistake("the batch dimension disappeared for a batch of one: .squeeze() removes every axis of size 1, the "
            "batch axis too. Reshape to (B, n·d) with idx.shape[0] (or .flatten(1)) and do not squeeze.",
            lambda i, C, Wh, bh, Wo, bo: torch.tanh(C[i].flatten(1).squeeze() @ Wh + bh) @ Wo + bo),
    Mistake("the context is in the wrong order: concatenate the embeddings from the oldest token to the newest, "
            "C[idx[:, 0]], C[idx[:, 1]], …, as C[idx].reshape(B, n·d) does. Each block of rows of W_h belongs to "
            "one position.", lambda i, *w: _mlp_logits(i.flip(1), *w)),
    Mistake("the embeddings are interleaved, not concatenated: (B, n, d) → (B, n·d) must keep each token's d "
            "numbers together; a transpose before the reshape mixes the positions.",
            lambda i, C, Wh, bh, Wo, bo: torch.tanh(C[i].transpose(1, 2).reshape(i.shape[0], -1) @ Wh + bh) @ Wo + bo),
    Mistake("you left out the tanh: without a non-linearity the two layers collapse into one linear map.",
            lambda i, C, Wh, bh, Wo, bo: (C[i].reshape(i.shape[0], -1) @ Wh + bh) @ Wo + bo),
    Mistake("you used a ReLU; Bengio's model (and the package's MLPLanguageModel) uses tanh.",
            lambda i, C, Wh, bh, Wo, bo: torch.relu(C[i].reshape(i.shape[0], -1) @ Wh + bh) @ Wo + bo),
    Mistake("the hidden bias b_h is missing: h = tanh(x W_h + b_h).",
            lambda i, C, Wh, bh, Wo, bo: torch.tanh(C[i].reshape(i.shape[0], -1) @ Wh) @ Wo + bo),
    Mistake("the output bias b_out is missing: logits = h W_out + b_out.",
            lambda i, C, Wh, bh, Wo, bo: torch.tanh(C[i].reshape(i.shape[0], -1) @ Wh + bh) @ Wo),
    Mistake("you returned probabilities (a softmax); the exercise asks for the logits, the scores before the "
            "softmax (the loss applies log_softmax itself).", lambda *a: _mlp_logits(*a).softmax(-1)),
]

MLP_LOGITS_CHECK = Check(
    "Exercise 7.3 (the forward pass of Bengio's MLP language model)", _mlp_logits, _mlp_cases, _MLP_MISTAKES,
    TensorResult("float"), ("idx", "C", "W_h", "b_h", "W_out", "b_out"), atol=1e-5, rtol=1e-5)


def check_mlp_logits(student_fn: Callable[..., torch.Tensor]) -> None:
    """Exercise 7.3: ``mlp_logits(idx, C, W_h, b_h, W_out, b_out)`` for contexts idx (B, n) → logits (B, V)."""
    MLP_LOGITS_CHECK.run(student_fn)
