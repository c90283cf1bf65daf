"""Self-checks for lesson 00 (the AIGC pipeline): MLE from counts, perplexity, temperature, adaptation and
the n-gram context window.

Each ``*_CHECK`` is a :class:`~aigc_course.checks._core.Check` (cases, mistakes, return type); the
``check_*`` functions that the exercises call run it. Cases use float64, as lesson 00 does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..ngram import (
    categorical_mle,
    context_windows,
    dirichlet_map,
    perplexity_from_log_probs,
    softmax_with_temperature,
)
from ._core import Case, Check, Mistake, TensorResult, TupleResult

__all__ = [
    "check_adapted_probs",
    "check_categorical_mle",
    "check_context_windows",
    "check_perplexity",
    "check_softmax_with_temperature",
]

F64 = torch.float64


def _t(rows: list) -> torch.Tensor:
    return torch.tensor(rows, dtype=F64)


def _bigram_like_counts(seed: int, V: int = 40) -> torch.Tensor:
    """A realistic V × V count table: heavy-tailed counts, many zeros, row totals up to ~10⁵."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.exp(2.0 * torch.randn(V, V, generator=g, dtype=F64) + 5.0).floor()
    counts[torch.rand(V, V, generator=g) < 0.3] = 0.0
    counts[:, 0] += 1.0  # every context was seen at least once
    return counts


def _keepdim_hint(what: str) -> str:
    return (f"the sum in your denominator lost its last dimension: {what}.sum(-1) has shape (V,), so dividing "
            "a (V, V) table by it broadcasts along the wrong axis (entry [i, j] is divided by row j's total) "
            "and no error is raised on a square table. Keep the dimension: .sum(dim=-1, keepdim=True).")


# --------------------------------------------------------------------------- Exercise 0.1

def _mle_cases() -> list[Case]:
    return [
        Case((_t([3.0, 1.0, 0.0, 4.0]),), label="one context: counts [3, 1, 0, 4]"),
        Case((_t([[2.0, 6.0, 2.0], [1.0, 0.0, 4.0], [5.0, 5.0, 0.0]]),),
             label="a square table: 3 contexts × 3 symbols"),
        Case((_t([[7.0]]),), label="a single symbol (V = 1)"),
        Case((torch.randint(0, 9, (4, 6), generator=torch.Generator().manual_seed(0)).to(F64) + 1.0,),
             label="4 contexts × 6 symbols"),
        Case((_bigram_like_counts(0),), label="a realistic 40 × 40 table (row totals up to ~1e5)"),
    ]

_MLE_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake(_keepdim_hint("counts"), lambda c: c / c.sum(-1)),
    Mistake("you computed in half precision (float16): it keeps about 3 significant digits and a row total "
            "above 65 504 overflows to inf. Stay in float64 (or float32).",
            lambda c: (c.half() / c.half().sum(-1, keepdim=True)).to(c.dtype)),
    Mistake("you returned the raw counts — the MLE divides each count by the total of its row, so the "
            "probabilities sum to 1.", lambda c: c),
    Mistake("you normalised over the wrong axis: each *row* (one context) is a distribution over the V "
            "symbols, so divide by the row totals counts.sum(dim=-1, ...), not the column totals.",
            lambda c: c / c.sum(0, keepdim=True)),
    Mistake("you divided by the grand total of the whole table; each context (row) needs its own total "
            "N(c) = Σ_x N(c, x).", lambda c: c / c.sum()),
    Mistake("you took a softmax of the counts; the MLE is linear in the counts: N_x / N, not "
            "exp(N_x) / Σ exp(N_y).", lambda c: torch.softmax(c, dim=-1)),
]

CATEGORICAL_MLE_CHECK = Check("Exercise 0.1 (categorical MLE)", categorical_mle, _mle_cases, _MLE_MISTAKES,
                              TensorResult("float"), ("counts",))


def check_categorical_mle(student_fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Exercise 0.1: ``fn(counts (..., V)) -> probs (..., V)``, the MLE ``counts / row total``."""
    CATEGORICAL_MLE_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 0.2

def _realistic_log_probs() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (-2.5 + 0.8 * torch.randn(900, generator=g, dtype=F64)).clamp_max(-1e-3)


def _ppl_cases() -> list[Case]:
    return [
        Case((torch.log(_t([0.5, 0.25, 0.125, 0.5])),), label="p = [1/2, 1/4, 1/8, 1/2]"),
        Case((torch.full((7,), -math.log(20.0), dtype=F64),), label="uniform over 20 symbols"),
        Case((torch.log_softmax(torch.randn(12, 5, generator=torch.Generator().manual_seed(1), dtype=F64),
                                dim=-1)[:, 0],), label="12 random log-probs"),
        Case((_t([math.log(0.3)]),), label="a single token (N = 1)"),
        Case((_t([0.0, math.log(0.5), -math.inf, math.log(0.25)]),),
             label="a certain token (log p = 0) and an impossible one (log p = -inf)"),
        Case((_realistic_log_probs(),), label="900 tokens with log p around -2.5 (the length of the Zen)"),
    ]


def _finite_where_inf(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], *args: object) -> bool:
    """Symptom: the reference is +inf somewhere and the answer is finite there."""
    inf = np.isposinf(want[0])
    return bool(inf.any() and np.isfinite(mine[0][inf]).all())


_PPL_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("underflow: the product of hundreds of probabilities is below the smallest float64 "
            "(e^-2250 here), so prod(p) rounds to 0 and prod(p) ** (-1/N) becomes inf. Stay in log space: "
            "exp(-mean(log p)).", lambda lp: lp.exp().prod() ** (-1.0 / lp.numel())),
    Mistake("you returned the average negative log-likelihood; perplexity is its exponential, "
            "exp(NLL).", lambda lp: -lp.mean()),
    Mistake("sign error: exp(mean log p) is 1 / perplexity. Perplexity uses the *negative* "
            "log-likelihood: exp(-mean(log p)).", lambda lp: lp.mean().exp()),
    Mistake("you summed the log-probs instead of averaging them: perplexity is per token, "
            "exp(-(1/N) Σ log p).", lambda lp: (-lp.sum()).exp()),
    Mistake("base mix-up: the log-probs are natural logs (nats), so exponentiate with e, not 2 "
            "(2**NLL is only right when the NLL is in bits).", lambda lp: 2.0 ** (-lp.mean())),
    Mistake("you averaged the probabilities instead of the log-probabilities: perplexity is the inverse "
            "*geometric* mean, exp(-mean(log p)), not 1 / mean(p).", lambda lp: 1.0 / lp.exp().mean()),
    Mistake("an impossible token (log p = -inf) makes the perplexity +inf, and that is the right answer "
            "(lesson 00: unseen n-grams give an infinite loss). Do not clamp or drop the -inf log-probs.",
            symptom=_finite_where_inf),
]

PERPLEXITY_CHECK = Check("Exercise 0.2 (perplexity)", perplexity_from_log_probs, _ppl_cases, _PPL_MISTAKES,
                         TensorResult("float", scalar_ok=True), ("log_probs",))


def check_perplexity(student_fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Exercise 0.2: ``fn(log_probs (N,)) -> perplexity``, i.e. ``exp(-mean(log p))`` (natural logs)."""
    PERPLEXITY_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 0.3

def _softmax_cases() -> list[Case]:
    logits = _t([2.0, 1.0, 0.0, -1.0])
    return [
        Case((logits, 1.0), label="logits [2, 1, 0, -1], T = 1"),
        Case((logits, 0.5), label="logits [2, 1, 0, -1], T = 0.5"),
        Case((logits, 3.0), label="logits [2, 1, 0, -1], T = 3"),
        Case((torch.randn(4, 4, generator=torch.Generator().manual_seed(2), dtype=F64), 1.5),
             label="a square 4 × 4 batch of logits, T = 1.5"),
        Case((torch.randn(3, 5, generator=torch.Generator().manual_seed(3), dtype=F64), 0.7),
             label="3 × 5 batch of logits, T = 0.7"),
        Case((_t([[0.3]]), 2.0), label="a single symbol (V = 1)"),
        Case((_t([[0.5, -math.inf, 1.0, -math.inf], [2.0, 0.1, -math.inf, -0.3]]), 0.8),
             label="impossible symbols (-inf logits, from log 0), T = 0.8"),
        Case((_t([[1000.0, 999.0, -1000.0, 0.0]]), 1.0), label="large logits ±1000, T = 1"),
        Case((logits, 1e-3), label="logits [2, 1, 0, -1], tiny T = 0.001"),
    ]


def _unshifted_softmax(z: torch.Tensor, T: float) -> torch.Tensor:
    e = torch.exp(z / T)
    return e / e.sum(-1, keepdim=True)


def _mean_shifted_softmax(z: torch.Tensor, T: float) -> torch.Tensor:
    e = torch.exp((z - z.mean(-1, keepdim=True)) / T)
    return e / e.sum(-1, keepdim=True)


def _softmax_no_keepdim(z: torch.Tensor, T: float) -> torch.Tensor:
    e = torch.exp((z - z.max(-1, keepdim=True).values) / T)
    return e / e.sum(-1)


_SOFTMAX_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake(_keepdim_hint("e"), _softmax_no_keepdim),
    Mistake("exp overflow: exp(logits / T) is inf once logits / T exceeds ~709 (float64; ~88 in float32), "
            "and inf / inf = NaN. Subtract the row's max logit before exp (the softmax does not change), "
            "or use torch.softmax.", _unshifted_softmax),
    Mistake("you shifted the logits by their mean: with an impossible symbol (logit -inf) the mean is -inf "
            "and -inf - (-inf) = NaN. Shift by the row's max instead (the max is finite when any symbol is "
            "possible).", _mean_shifted_softmax),
    Mistake("you multiplied the logits by T; temperature *divides* them: softmax(logits / T), so a small "
            "T sharpens and a large T flattens the distribution.", lambda z, T: torch.softmax(z * T, dim=-1)),
    Mistake("you returned logits / T without the softmax; probabilities need exp and normalisation.",
            lambda z, T: z / T),
    Mistake("you divided the *probabilities* by T; scale the logits before the softmax instead.",
            lambda z, T: torch.softmax(z, dim=-1) / T),
    Mistake("you ignored the temperature: the result must change with T.", lambda z, T: torch.softmax(z, dim=-1)),
    Mistake("you normalised over the wrong axis: each row is one distribution over the V symbols "
            "(dim=-1).", lambda z, T: torch.softmax(z / T, dim=0)),
    Mistake("you returned log-probabilities (log_softmax); the exercise asks for the probabilities.",
            lambda z, T: torch.log_softmax(z / T, dim=-1)),
]

SOFTMAX_CHECK = Check("Exercise 0.3 (temperature softmax)", softmax_with_temperature, _softmax_cases,
                      _SOFTMAX_MISTAKES, TensorResult("float"), ("logits", "temperature"))


def check_softmax_with_temperature(student_fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """Exercise 0.3: ``fn(logits (..., V), T) -> probs (..., V)``, ``softmax(logits / T)`` over dim -1."""
    SOFTMAX_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 0.4

def _adapt_cases() -> list[Case]:
    q = _t([0.1, 0.2, 0.3, 0.4])
    g = torch.Generator().manual_seed(3)
    q_square = torch.softmax(torch.randn(4, 4, generator=g, dtype=F64), dim=-1)
    q_row = torch.softmax(torch.randn(6, generator=g, dtype=F64), dim=-1)
    n_rows = torch.randint(0, 7, (3, 6), generator=g).to(F64)
    big = _bigram_like_counts(4)
    big[5] = 0.0  # one unseen context
    q_big = torch.softmax(torch.randn(40, 40, generator=g, dtype=F64), dim=-1)
    unseen = "an unseen context has N = 0, so counts / N is 0/0; the estimate there is the prior q itself."
    return [
        Case((_t([6.0, 0.0, 2.0, 0.0]), q, 4.0), label="N = [6, 0, 2, 0], q = [.1 .2 .3 .4], λ = 4"),
        Case((_t([1.0, 1.0, 0.0, 0.0]), q, 10.0), label="N = [1, 1, 0, 0], q as above, λ = 10"),
        Case((_t([0.0, 3.0, 0.0, 9.0]), q, 0.0), label="λ = 0 (no prior: plain MLE)"),
        Case((_t([0.0, 0.0, 0.0, 0.0]), q, 4.0), label="an unseen context: N = [0, 0, 0, 0], λ = 4",
             note=unseen),
        Case((_t([[3.0, 0.0, 1.0, 2.0], [1.0, 2.0, 0.0, 4.0], [5.0, 1.0, 0.0, 0.0], [2.0, 2.0, 2.0, 1.0]]),
              q_square, 2.5), label="a square table: 4 contexts × 4 symbols, λ = 2.5"),
        Case((n_rows, q_row, 7.0), label="3 contexts × 6 symbols sharing one prior q of shape (6,), λ = 7"),
        Case((_t([5.0, 1.0, 0.0, 2.0]), q, 1e12), label="a very strong prior (λ = 1e12)"),
        Case((big, q_big, 20.0), label="a realistic 40 × 40 table with an unseen context, λ = 20", note=unseen),
    ]


def _wrong_fixed_average(n: torch.Tensor, q: torch.Tensor, lam: float) -> torch.Tensor:
    return 0.5 * n / n.sum(-1, keepdim=True) + 0.5 * q


def _wrong_swapped_weights(n: torch.Tensor, q: torch.Tensor, lam: float) -> torch.Tensor:
    total = n.sum(-1, keepdim=True)
    return (lam * n / total + total * q) / (total + lam)


def _interpolation(n: torch.Tensor, q: torch.Tensor, lam: float) -> torch.Tensor:
    total = n.sum(-1, keepdim=True)
    w = total / (total + lam)
    return w * (n / total) + (1 - w) * q


_ADAPT_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("the interpolation form w · counts/N + (1 − w) · q is NaN for an unseen context: counts/N is "
            "0/0 and 0 · NaN is still NaN, although lesson 00 says unseen contexts keep the prior. Use "
            "(N_x + λ q_x) / (N + λ), which needs no division by N (or guard N = 0).", _interpolation),
    Mistake(_keepdim_hint("counts"), lambda n, q, lam: (n + lam * q) / (n.sum(-1) + lam)),
    Mistake("you divided by λ ((N_x/λ + q_x) / (N/λ + 1)): at λ = 0 that is inf/inf or 0/0 = NaN. "
            "Multiply instead: (N_x + λ q_x) / (N + λ) is exact for every λ ≥ 0.",
            lambda n, q, lam: (n / lam + q) / (n.sum(-1, keepdim=True) / lam + 1)),
    Mistake("you forgot to normalise: divide (N_x + λ q_x) by N + λ so the result sums to 1.",
            lambda n, q, lam: n + lam * q),
    Mistake("you used add-λ smoothing (N_x + λ) / (N + λV), which shrinks towards the *uniform* "
            "distribution; adaptation shrinks towards the pre-trained q: (N_x + λ q_x) / (N + λ).",
            lambda n, q, lam: (n + lam) / (n.sum(-1, keepdim=True) + lam * n.shape[-1])),
    Mistake("you averaged the target MLE and q with a fixed weight 1/2; the weight on the target must "
            "grow with the data: w = N / (N + λ).", _wrong_fixed_average),
    Mistake("the weights are swapped: the target MLE gets weight N / (N + λ) and the prior λ / (N + λ), "
            "so more target data means less prior.", _wrong_swapped_weights),
    Mistake("you divided by N + λ·V; the prior q already sums to 1, so the pseudo-counts λ q_x add "
            "exactly λ to the total: divide by N + λ.",
            lambda n, q, lam: (n + lam * q) / (n.sum(-1, keepdim=True) + lam * n.shape[-1])),
]

ADAPTED_PROBS_CHECK = Check("Exercise 0.4 (adaptation as Dirichlet MAP)", dirichlet_map, _adapt_cases,
                            _ADAPT_MISTAKES, TensorResult("float"), ("counts", "prior_probs", "strength"))


def check_adapted_probs(student_fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> None:
    """Exercise 0.4: ``fn(counts (..., V), prior_probs (..., V), λ) -> (N_x + λ q_x) / (N + λ)``."""
    ADAPTED_PROBS_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 0.5

def _ids(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


def _pairs(ids: torch.Tensor, start: int, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows for t = start .. T-1: (ids[t+lo : t+hi], ids[t]). A loop, like a student's first version."""
    rows = [ids[t + lo:t + hi] for t in range(start, ids.numel())]
    width = hi - lo
    contexts = torch.stack(rows) if rows else ids.new_empty((0, width))
    return contexts, ids[start:].clone()


_NO_PAIR = ("a sequence shorter than the order has no complete window: return empty tensors of shapes "
            "(0, n - 1) and (0,), so that counting over it simply adds nothing.")

def _window_cases() -> list[Case]:
    return [
        Case((_ids([5, 2, 7, 1, 3, 8, 4]), 3), label="T = 7, order 3"),
        Case((_ids([4, 0, 3, 3, 1, 2]), 2), label="T = 6, order 2 (bigrams)"),
        Case((_ids([3, 1, 2, 0]), 1), label="order 1: contexts of shape (T, 0)",
             note="an order-1 (unigram) model has no context: contexts has shape (T, 0) and every id is a target."),
        Case((_ids([6, 2, 5]), 3), label="T = order = 3: exactly one pair"),
        Case((_ids([1, 2]), 3), label="T = order - 1 = 2", note=_NO_PAIR),
        Case((_ids([4]), 4), label="T = 1 with order 4", note=_NO_PAIR),
        Case((torch.randint(0, 50_257, (2000,), generator=torch.Generator().manual_seed(5)), 4),
             label="2000 ids from a 50 257-token vocabulary, order 4"),
    ]

_INCLUDES_TARGET = ("your context includes the target itself: the context of position t is the n - 1 ids "
                    "*before* t, ids[t-n+1 : t] (the slice end t is excluded), so it must not contain ids[t].")

_MISALIGNED = ("your targets are misaligned with the contexts: row j's target is the id right *after* its "
               "context, ids[j + n - 1].")

_WINDOW_MISTAKES = [
    Mistake("integer overflow: your ids passed through a narrow integer type (int16 holds at most 32 767, "
            "uint8 255), so large ids of a realistic vocabulary wrapped around. Keep the ids int64.",
            lambda ids, n: tuple(t.to(torch.int16).long() for t in context_windows(ids, n))),
    Mistake(_INCLUDES_TARGET, lambda ids, n: _pairs(ids, n - 1, -n + 1, 1)),
    Mistake(_INCLUDES_TARGET, lambda ids, n: _pairs(ids, n - 1, -n + 2, 1)),
    Mistake("you took n ids before t instead of n - 1: an order-n model conditions on the previous n - 1 "
            "ids (a bigram, n = 2, on one id).", lambda ids, n: _pairs(ids, n, -n, 0)),
    Mistake("off by one: your context for target ids[t] is ids[t-n : t-1], which skips the id right before "
            "t and reaches one too far back. It is ids[t-n+1 : t].", lambda ids, n: _pairs(ids, n, -n, -1)),
    Mistake("you skipped the first pair: the first position with a full context is t = n - 1 (targets "
            "start at ids[n-1]), which gives T - n + 1 pairs, not T - n.", lambda ids, n: _pairs(ids, n, -n + 1, 0)),
    Mistake(_MISALIGNED, lambda ids, n: (_pairs(ids, n - 1, -n + 1, 0)[0], ids[n - 2:-1].clone())),
    Mistake(_MISALIGNED, lambda ids, n: (_pairs(ids, n - 1, -n + 1, 0)[0], ids[:ids.numel() - n + 1].clone())),
]

CONTEXT_WINDOWS_CHECK = Check(
    "Exercise 0.5 (n-gram context windows)", context_windows, _window_cases, _WINDOW_MISTAKES,
    TupleResult((TensorResult("long"), TensorResult("long")), ("contexts", "targets")), ("ids", "order"))


def check_context_windows(
    student_fn: Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]],
) -> None:
    """Exercise 0.5: ``fn(ids (T,), order n) -> (contexts (T-n+1, n-1), targets (T-n+1,))``, both int64:
    the context of position t is the n - 1 ids before t."""
    CONTEXT_WINDOWS_CHECK.run(student_fn)
