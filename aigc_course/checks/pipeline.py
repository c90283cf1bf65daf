"""Self-checks for lesson 00 (the AIGC pipeline): MLE from counts, perplexity, temperature, adaptation."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..ngram import categorical_mle, dirichlet_map, perplexity_from_log_probs, softmax_with_temperature
from ._core import Case, Mistake, check_function

__all__ = [
    "check_adapted_probs",
    "check_categorical_mle",
    "check_perplexity",
    "check_softmax_with_temperature",
]


def _counts_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    return [
        Case((torch.tensor([3.0, 1.0, 0.0, 4.0]),), label="one context: counts [3, 1, 0, 4]"),
        Case((torch.tensor([[2.0, 6.0, 2.0], [1.0, 0.0, 4.0], [5.0, 5.0, 0.0]]),),
             label="3 contexts × 3 symbols"),
        Case((torch.randint(0, 9, (4, 6), generator=g).double() + 1.0,), label="4 contexts × 6 symbols"),
    ]


def check_categorical_mle(student_fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Exercise 0.1: ``fn(counts (..., V)) -> probs (..., V)``, the MLE ``counts / row total``."""
    mistakes = [
        Mistake("you returned the raw counts — the MLE divides each count by the total of its row, so the "
                "probabilities sum to 1.", lambda c: c),
        Mistake("you normalised over the wrong axis: each *row* (one context) is a distribution over the V "
                "symbols, so divide by counts.sum(dim=-1, keepdim=True).",
                lambda c: c / c.sum(0, keepdim=True)),
        Mistake("you divided by the grand total of the whole table; each context (row) needs its own total "
                "N(c) = Σ_x N(c, x).", lambda c: c / c.sum()),
        Mistake("you took a softmax of the counts; the MLE is linear in the counts: N_x / N, not "
                "exp(N_x) / Σ exp(N_y).", lambda c: torch.softmax(c, dim=-1)),
    ]
    check_function("Exercise 0.1 (categorical MLE)", student_fn, categorical_mle,
                   _counts_cases(), mistakes)


def _log_prob_cases() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    random_lp = torch.log_softmax(torch.randn(12, 5, generator=g, dtype=torch.float64), dim=-1)[:, 0]
    return [
        Case((torch.log(torch.tensor([0.5, 0.25, 0.125, 0.5])),), label="p = [1/2, 1/4, 1/8, 1/2]"),
        Case((torch.full((7,), -math.log(20.0), dtype=torch.float64),), label="uniform over 20 symbols"),
        Case((random_lp,), label="12 random log-probs"),
    ]


def check_perplexity(student_fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Exercise 0.2: ``fn(log_probs (N,)) -> perplexity``, i.e. ``exp(-mean(log p))`` (natural logs)."""
    mistakes = [
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
    ]
    check_function("Exercise 0.2 (perplexity)", student_fn, perplexity_from_log_probs,
                   _log_prob_cases(), mistakes)


def _logit_cases() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0], dtype=torch.float64)
    batch = torch.randn(3, 5, generator=g, dtype=torch.float64)
    return [
        Case((logits, 1.0), label="logits [2, 1, 0, -1], T = 1"),
        Case((logits, 0.5), label="logits [2, 1, 0, -1], T = 0.5"),
        Case((logits, 3.0), label="logits [2, 1, 0, -1], T = 3"),
        Case((batch, 0.7), label="3 × 5 batch of logits, T = 0.7"),
    ]


def check_softmax_with_temperature(student_fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """Exercise 0.3: ``fn(logits (..., V), T) -> probs (..., V)``, ``softmax(logits / T)`` over dim -1."""
    mistakes = [
        Mistake("you multiplied the logits by T; temperature *divides* them: softmax(logits / T), so a small "
                "T sharpens and a large T flattens the distribution.",
                lambda z, T: torch.softmax(z * T, dim=-1)),
        Mistake("you returned logits / T without the softmax; probabilities need exp and normalisation.",
                lambda z, T: z / T),
        Mistake("you divided the *probabilities* by T; scale the logits before the softmax instead.",
                lambda z, T: torch.softmax(z, dim=-1) / T),
        Mistake("you ignored the temperature: the result must change with T.",
                lambda z, T: torch.softmax(z, dim=-1)),
        Mistake("you normalised over the wrong axis: each row is one distribution over the V symbols "
                "(dim=-1).", lambda z, T: torch.softmax(z / T, dim=0)),
    ]
    check_function("Exercise 0.3 (temperature softmax)", student_fn, softmax_with_temperature,
                   _logit_cases(), mistakes)


def _adapt_cases() -> list[Case]:
    q = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    q_rows = torch.softmax(torch.randn(2, 6, generator=g, dtype=torch.float64), dim=-1)
    n_rows = torch.randint(0, 7, (2, 6), generator=g).double()
    return [
        Case((torch.tensor([6.0, 0.0, 2.0, 0.0]), q, 4.0), label="N = [6, 0, 2, 0], q = [.1 .2 .3 .4], λ=4"),
        Case((torch.tensor([1.0, 1.0, 0.0, 0.0]), q, 10.0), label="N = [1, 1, 0, 0], q as above, λ = 10"),
        Case((torch.tensor([0.0, 3.0, 0.0, 9.0]), q, 0.0), label="λ = 0 (no prior: plain MLE)"),
        Case((n_rows, q_rows, 2.5), label="2 contexts × 6 symbols, λ = 2.5"),
    ]


def _wrong_fixed_average(n: torch.Tensor, q: torch.Tensor, lam: float) -> torch.Tensor:
    return 0.5 * n / n.sum(-1, keepdim=True) + 0.5 * q


def _wrong_swapped_weights(n: torch.Tensor, q: torch.Tensor, lam: float) -> torch.Tensor:
    total = n.sum(-1, keepdim=True)
    return (lam * n / total + total * q) / (total + lam)


def check_adapted_probs(student_fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> None:
    """Exercise 0.4: ``fn(counts (..., V), prior_probs (..., V), λ) -> (N_x + λ q_x) / (N + λ)``."""
    mistakes = [
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
    check_function("Exercise 0.4 (adaptation as Dirichlet MAP)", student_fn, dirichlet_map,
                   _adapt_cases(), mistakes)
