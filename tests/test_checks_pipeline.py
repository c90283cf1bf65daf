"""Lesson 00 self-checks: a catalogue of planted mistakes per exercise, each rejected with its own hint, and of
correct answers written differently (another dtype, NumPy, a loop), each accepted.

To extend: add a row to the exercise's WRONG table (the answer, a regex of words that only its hint
contains, and its class) or RIGHT table.
"""

import math

import numpy as np
import pytest
import torch
from catalogue import assert_rejected, case_snapshot_test, catalogue_tests

import aigc_course.checks.pipeline as checks_pipeline
from aigc_course import ngram as ref
from aigc_course.checks import (
    CheckFailed,
    check_adapted_probs,
    check_categorical_mle,
    check_context_windows,
    check_perplexity,
    check_softmax_with_temperature,
)
from aigc_course.checks.pipeline import (
    ADAPTED_PROBS_CHECK,
    CATEGORICAL_MLE_CHECK,
    CONTEXT_WINDOWS_CHECK,
    PERPLEXITY_CHECK,
    SOFTMAX_CHECK,
)

# ----------------------------------------------------------------------------- 0.1 categorical MLE

def mle_in_place(counts):
    counts /= counts.sum(-1, keepdim=True)
    return counts


def mle_loop(counts):
    flat = counts.reshape(-1, counts.shape[-1])
    out = torch.empty_like(flat)
    for i, row in enumerate(flat):
        out[i] = row / row.sum()
    return out.reshape(counts.shape)


MLE_RIGHT = [
    pytest.param(ref.categorical_mle, id="reference"),
    pytest.param(lambda c: torch.from_numpy(c.numpy() / c.numpy().sum(-1, keepdims=True)), id="numpy"),
    pytest.param(mle_loop, id="loop"),
    pytest.param(lambda c: c.float() / c.float().sum(-1, keepdim=True), id="float32"),
    pytest.param(lambda c: torch.nn.functional.normalize(c, p=1, dim=-1), id="F.normalize"),
]
MLE_WRONG = [
    pytest.param(mle_in_place, r"modified its argument `counts` in place", "in-place", id="counts /= total"),
    pytest.param(lambda c: c.numpy() / c.numpy().sum(-1, keepdims=True), r"you returned a NumPy array",
                 "type", id="numpy array"),
    pytest.param(lambda c: (c / c.sum(-1, keepdim=True)).tolist(), r"you returned a list", "type", id="list"),
    pytest.param(lambda c: c.long() // c.long().sum(-1, keepdim=True), r"expected a floating-point tensor",
                 "type", id="integer division"),
    pytest.param(lambda c: c.half() / c.half().sum(-1, keepdim=True), r"got torch\.float16", "type",
                 id="float16 result"),
    pytest.param(lambda c: (c.half() / c.half().sum(-1, keepdim=True)).double(), r"computed in half precision",
                 "unstable", id="float16 inside"),
    pytest.param(lambda c: c / c.sum(-1), r"lost its last dimension", "edge", id="no keepdim (square)"),
    pytest.param(lambda c: c, r"raw counts", "formula", id="raw counts"),
    pytest.param(lambda c: c / c.sum(0, keepdim=True), r"column totals", "formula", id="wrong axis"),
    pytest.param(lambda c: c / c.sum(), r"grand total", "formula", id="grand total"),
    pytest.param(lambda c: torch.softmax(c, -1), r"softmax of the counts", "formula", id="softmax"),
]


@pytest.mark.parametrize("fn", MLE_RIGHT)
def test_categorical_mle_accepts(fn, capsys):
    check_categorical_mle(fn)
    assert "✓ Exercise 0.1" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", MLE_WRONG)
def test_categorical_mle_rejects(fn, hint, kind):
    assert_rejected(CATEGORICAL_MLE_CHECK, fn, hint)


# ----------------------------------------------------------------------------- 0.2 perplexity

def ppl_in_place(log_probs):
    log_probs.neg_()
    return log_probs.mean().exp()


def ppl_loop(log_probs):
    total = 0.0
    for v in log_probs.tolist():
        total += v
    return torch.tensor(math.exp(-total / len(log_probs)))


PPL_RIGHT = [
    pytest.param(ref.perplexity_from_log_probs, id="reference"),
    pytest.param(lambda lp: math.exp(-float(lp.sum()) / len(lp)), id="python float"),
    pytest.param(lambda lp: np.exp(-np.mean(lp.numpy())), id="numpy float64"),
    pytest.param(ppl_loop, id="loop"),
    pytest.param(lambda lp: torch.exp(-lp.float().mean()), id="float32"),
    pytest.param(lambda lp: 1 / torch.exp(lp.mean()), id="1 / exp(mean)"),
]
PPL_WRONG = [
    pytest.param(ppl_in_place, r"modified its argument `log_probs` in place", "in-place", id="neg_"),
    pytest.param(lambda lp: torch.exp(-lp.mean()).numpy(), r"you returned a NumPy array", "type", id="numpy"),
    pytest.param(lambda lp: [torch.exp(-lp.mean())], r"you returned a list", "type", id="list"),
    pytest.param(lambda lp: lp.exp().prod() ** (-1 / len(lp)), r"underflow: the product", "unstable",
                 id="prod(p)**(-1/N)"),
    pytest.param(lambda lp: (1 / lp.exp()).prod() ** (1 / len(lp)), r"underflow: the product", "unstable",
                 id="prod(1/p)**(1/N)"),
    pytest.param(lambda lp: torch.exp(-lp.clamp_min(-100).mean()), r"an impossible token", "edge",
                 id="clamped log p"),
    pytest.param(lambda lp: -lp.mean(), r"returned the average negative log-likelihood", "formula", id="NLL"),
    pytest.param(lambda lp: lp.mean().exp(), r"sign error", "formula", id="sign"),
    pytest.param(lambda lp: (-lp.sum()).exp(), r"summed the log-probs", "formula", id="sum"),
    pytest.param(lambda lp: 2.0 ** (-lp.mean()), r"base mix-up", "formula", id="base 2"),
    pytest.param(lambda lp: 1.0 / lp.exp().mean(), r"\*geometric\* mean", "formula", id="arithmetic mean"),
]


@pytest.mark.parametrize("fn", PPL_RIGHT)
def test_perplexity_accepts(fn, capsys):
    check_perplexity(fn)
    assert "✓ Exercise 0.2" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", PPL_WRONG)
def test_perplexity_rejects(fn, hint, kind):
    assert_rejected(PERPLEXITY_CHECK, fn, hint)


# ----------------------------------------------------------------------------- 0.3 temperature

def softmax_by_hand(z, T):
    e = torch.exp((z - z.max(-1, keepdim=True).values) / T)
    return e / e.sum(-1, keepdim=True)


def softmax_numpy(z, T):
    a = z.numpy()
    e = np.exp((a - a.max(-1, keepdims=True)) / T)
    return torch.from_numpy(e / e.sum(-1, keepdims=True))


def softmax_divides_in_place(logits, temperature):
    logits /= temperature
    return torch.softmax(logits, -1)


def softmax_shifts_in_place(logits, temperature):
    logits -= logits.max(-1, keepdim=True).values
    e = (logits / temperature).exp()
    return e / e.sum(-1, keepdim=True)


def softmax_unshifted(z, T):
    e = torch.exp(z / T)
    return e / e.sum(-1, keepdim=True)


def softmax_mean_shift(z, T):
    e = torch.exp((z - z.mean(-1, keepdim=True)) / T)
    return e / e.sum(-1, keepdim=True)


SOFTMAX_RIGHT = [
    pytest.param(ref.softmax_with_temperature, id="reference"),
    pytest.param(softmax_by_hand, id="max-shifted by hand"),
    pytest.param(softmax_numpy, id="numpy"),
    pytest.param(lambda z, T: torch.softmax(z.float() / T, -1), id="float32"),
    pytest.param(lambda z, T: torch.log_softmax(z / T, -1).exp(), id="exp(log_softmax)"),
]
SOFTMAX_WRONG = [
    pytest.param(softmax_divides_in_place, r"modified its argument `logits` in place", "in-place",
                 id="logits /= T"),
    pytest.param(softmax_shifts_in_place, r"modified its argument `logits` in place", "in-place",
                 id="logits -= max"),
    pytest.param(lambda z, T: softmax_numpy(z, T).numpy(), r"you returned a NumPy array", "type", id="numpy"),
    pytest.param(softmax_unshifted, r"exp overflow", "unstable", id="unshifted exp"),
    pytest.param(softmax_mean_shift, r"shifted the logits by their mean", "edge", id="mean shift, -inf logits"),
    pytest.param(lambda z, T: torch.exp((z - z.max(-1, keepdim=True).values) / T)
                 / torch.exp((z - z.max(-1, keepdim=True).values) / T).sum(-1), r"lost its last dimension",
                 "edge", id="no keepdim (square)"),
    pytest.param(lambda z, T: torch.log_softmax(z / T, -1), r"returned log-probabilities", "formula",
                 id="log_softmax"),
    pytest.param(lambda z, T: torch.softmax(z * T, -1), r"multiplied the logits by T", "formula", id="z * T"),
    pytest.param(lambda z, T: z / T, r"without the softmax", "formula", id="no softmax"),
    pytest.param(lambda z, T: torch.softmax(z, -1) / T, r"divided the \*probabilities\*", "formula",
                 id="probs / T"),
    pytest.param(lambda z, T: torch.softmax(z, -1), r"ignored the temperature", "formula", id="no T"),
    pytest.param(lambda z, T: torch.softmax(z / T, 0), r"\(dim=-1\)", "formula", id="dim 0"),
]


@pytest.mark.parametrize("fn", SOFTMAX_RIGHT)
def test_softmax_with_temperature_accepts(fn, capsys):
    check_softmax_with_temperature(fn)
    assert "✓ Exercise 0.3" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", SOFTMAX_WRONG)
def test_softmax_with_temperature_rejects(fn, hint, kind):
    assert_rejected(SOFTMAX_CHECK, fn, hint)


# ----------------------------------------------------------------------------- 0.4 adaptation

def adapted_lerp(counts, prior_probs, strength):
    """w · MLE + (1 − w) · q with torch.lerp, guarded for unseen contexts (N = 0)."""
    total = counts.sum(-1, keepdim=True)
    return torch.lerp(prior_probs, counts / total.clamp_min(1e-300), total / (total + strength))


def adapted_guarded_interpolation(n, q, lam):
    total = n.sum(-1, keepdim=True)
    w = total / (total + lam)
    return torch.where(total > 0, w * n / total.clamp_min(1) + (1 - w) * q, q)


def adapted_in_place(counts, prior_probs, strength):
    counts += strength * prior_probs
    return counts / counts.sum(-1, keepdim=True)


def adapted_interpolation(n, q, lam):
    total = n.sum(-1, keepdim=True)
    w = total / (total + lam)
    return w * n / total + (1 - w) * q


ADAPT_RIGHT = [
    pytest.param(ref.dirichlet_map, id="reference"),
    pytest.param(adapted_lerp, id="torch.lerp"),
    pytest.param(adapted_guarded_interpolation, id="guarded interpolation"),
    pytest.param(lambda n, q, lam: torch.from_numpy((n.numpy() + lam * q.numpy())
                                                    / (n.numpy().sum(-1, keepdims=True) + lam)), id="numpy"),
    pytest.param(lambda n, q, lam: (n.float() + lam * q.float()) / (n.float().sum(-1, keepdim=True) + lam),
                 id="float32"),
]
ADAPT_WRONG = [
    pytest.param(adapted_in_place, r"modified its argument `counts` in place", "in-place", id="counts +="),
    pytest.param(lambda n, q, lam: ref.dirichlet_map(n, q, lam).tolist(), r"you returned a list", "type",
                 id="list"),
    pytest.param(lambda n, q, lam: (n / lam + q) / (n.sum(-1, keepdim=True) / lam + 1), r"you divided by λ",
                 "unstable", id="divide by λ"),
    pytest.param(adapted_interpolation, r"interpolation form", "edge", id="interpolation, N = 0"),
    pytest.param(lambda n, q, lam: (n + lam * q) / (n.sum(-1) + lam), r"lost its last dimension", "edge",
                 id="no keepdim (square)"),
    pytest.param(lambda n, q, lam: n + lam * q, r"forgot to normalise", "formula", id="unnormalised"),
    pytest.param(lambda n, q, lam: (n + lam) / (n.sum(-1, keepdim=True) + lam * n.shape[-1]),
                 r"add-λ smoothing", "formula", id="add-λ"),
    pytest.param(lambda n, q, lam: 0.5 * n / n.sum(-1, keepdim=True) + 0.5 * q, r"fixed weight 1/2", "formula",
                 id="fixed 1/2"),
    pytest.param(lambda n, q, lam: (lam * n / n.sum(-1, keepdim=True) + n.sum(-1, keepdim=True) * q)
                 / (n.sum(-1, keepdim=True) + lam), r"weights are swapped", "formula", id="swapped weights"),
    pytest.param(lambda n, q, lam: (n + lam * q) / (n.sum(-1, keepdim=True) + lam * n.shape[-1]),
                 r"divided by N \+ λ·V", "formula", id="N + λV"),
]


@pytest.mark.parametrize("fn", ADAPT_RIGHT)
def test_adapted_probs_accepts(fn, capsys):
    check_adapted_probs(fn)
    assert "✓ Exercise 0.4" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", ADAPT_WRONG)
def test_adapted_probs_rejects(fn, hint, kind):
    assert_rejected(ADAPTED_PROBS_CHECK, fn, hint)


# ----------------------------------------------------------------------------- 0.5 context windows

def windows_loop(ids, order):
    contexts, targets = [], []
    for t in range(order - 1, len(ids)):
        contexts.append(ids[t - order + 1:t].tolist())
        targets.append(int(ids[t]))
    return (torch.tensor(contexts, dtype=torch.long).reshape(len(targets), order - 1),
            torch.tensor(targets, dtype=torch.long))


def windows_numpy(ids, order):
    if len(ids) < order:
        return torch.zeros(0, order - 1, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    w = np.lib.stride_tricks.sliding_window_view(ids.numpy(), order)
    return torch.from_numpy(w[:, :-1].copy()), torch.from_numpy(w[:, -1].copy())


def windows_unfold_views(ids, order):
    if len(ids) < order:
        return ids.new_zeros(0, order - 1), ids.new_zeros(0)
    w = ids.unfold(0, order, 1)
    return w[:, :-1], w[:, -1]


def windows_unguarded(ids, order):
    w = ids.unfold(0, order, 1)  # raises when T < order
    return w[:, :-1].clone(), w[:, -1].clone()


def windows_stack_columns(ids, order):
    k = len(ids) - order + 1
    return torch.stack([ids[i:i + k] for i in range(order - 1)], dim=1), ids[order - 1:].clone()


def windows_rebase_in_place(ids, order):
    ids -= ids.min()
    return windows_loop(ids, order)


def loop_windows(start, lo, hi):
    def fn(ids, order):
        rows = [ids[t + lo(order):t + hi(order)].tolist() for t in range(start(order), len(ids))]
        return torch.tensor(rows, dtype=torch.long), ids[start(order):].clone()
    return fn


WINDOWS_RIGHT = [
    pytest.param(ref.context_windows, id="reference"),
    pytest.param(windows_loop, id="loop"),
    pytest.param(windows_numpy, id="numpy sliding_window_view"),
    pytest.param(lambda ids, n: tuple(t.clone() for t in windows_unfold_views(ids, n)), id="unfold + clone"),
]
WINDOWS_WRONG = [
    pytest.param(windows_rebase_in_place, r"modified its argument `ids` in place", "in-place", id="ids -= min"),
    pytest.param(windows_unfold_views, r"shares memory with the argument `ids`", "in-place", id="views"),
    pytest.param(lambda ids, n: tuple(t.tolist() for t in windows_loop(ids, n)), r"`contexts`: you returned a list",
                 "type", id="lists"),
    pytest.param(lambda ids, n: tuple(t.float() for t in windows_loop(ids, n)),
                 r"expected torch\.int64 \(a LongTensor of ids\), got torch\.float32", "type", id="float"),
    pytest.param(lambda ids, n: torch.cat([t.reshape(-1) for t in windows_loop(ids, n)]),
                 r"return a tuple \(contexts, targets\)", "type", id="one tensor"),
    pytest.param(lambda ids, n: tuple(t.to(torch.int16).long() for t in windows_loop(ids, n)),
                 r"integer overflow", "unstable", id="int16 ids"),
    pytest.param(windows_unguarded, r"no complete window", "edge", id="T < order raises"),
    pytest.param(windows_stack_columns, r"has no context: contexts has shape \(T, 0\)", "edge", id="order 1 raises"),
    pytest.param(loop_windows(lambda n: n - 1, lambda n: -n + 1, lambda n: 1), r"includes the target itself",
                 "formula", id="ids[t-n+1:t+1]"),
    pytest.param(loop_windows(lambda n: n, lambda n: -n, lambda n: -1), r"off by one", "formula",
                 id="ids[t-n:t-1]"),
    pytest.param(loop_windows(lambda n: n, lambda n: -n + 1, lambda n: 0), r"skipped the first pair", "formula",
                 id="start at t = n"),
    pytest.param(loop_windows(lambda n: n, lambda n: -n, lambda n: 0), r"n ids before t instead of n - 1",
                 "formula", id="n ids"),
    pytest.param(lambda ids, n: (windows_loop(ids, n)[0], ids[n - 2:-1].clone()), r"targets are misaligned",
                 "formula", id="target = last context id"),
]


@pytest.mark.parametrize("fn", WINDOWS_RIGHT)
def test_context_windows_accepts(fn, capsys):
    check_context_windows(fn)
    assert "✓ Exercise 0.5" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", WINDOWS_WRONG)
def test_context_windows_rejects(fn, hint, kind):
    assert_rejected(CONTEXT_WINDOWS_CHECK, fn, hint)


# ----------------------------------------------------------------------------- every catalogue

CATALOGUES = {
    "0.1": (check_categorical_mle, CATEGORICAL_MLE_CHECK, MLE_WRONG, MLE_RIGHT),
    "0.2": (check_perplexity, PERPLEXITY_CHECK, PPL_WRONG, PPL_RIGHT),
    "0.3": (check_softmax_with_temperature, SOFTMAX_CHECK, SOFTMAX_WRONG, SOFTMAX_RIGHT),
    "0.4": (check_adapted_probs, ADAPTED_PROBS_CHECK, ADAPT_WRONG, ADAPT_RIGHT),
    "0.5": (check_context_windows, CONTEXT_WINDOWS_CHECK, WINDOWS_WRONG, WINDOWS_RIGHT),
}
# Mistakes recognised by a symptom only: a planted answer that shows it.
SYMPTOM_STUDENTS = {"an impossible token": lambda lp: torch.exp(-lp.clamp_min(-50).mean())}


(test_catalogue_is_complete, test_hint_words_are_not_in_labels_or_generic_messages,
 test_every_mistake_hint_is_reachable, test_not_implemented_gives_the_not_implemented_message) = \
    catalogue_tests(CATALOGUES, SYMPTOM_STUDENTS)



@pytest.mark.parametrize("exercise", CATALOGUES)
def test_cases_use_the_lessons_dtypes(exercise):
    """Lesson 00 works in float64 (counts and priors alike) and int64 ids: no float32 mixed in."""
    for case in CATALOGUES[exercise][1].case_list():
        for a in case.args:
            if isinstance(a, torch.Tensor):
                assert a.dtype in (torch.float64, torch.int64), (case.label, a.dtype)


def test_context_windows_edge_shapes():
    """The cases the exercise promises: (T, 0) for order 1, (0, n-1)/(0,) without pairs, one pair at T = n."""
    shapes = {c.label: tuple(tuple(t.shape) for t in ref.context_windows(*c.args))
              for c in CONTEXT_WINDOWS_CHECK.case_list()}
    assert shapes["order 1: contexts of shape (T, 0)"] == ((4, 0), (4,))
    assert shapes["T = order - 1 = 2"] == ((0, 2), (0,))
    assert shapes["T = 1 with order 4"] == ((0, 3), (0,))
    assert shapes["T = order = 3: exactly one pair"] == ((1, 2), (1,))


def test_checks_are_exported():
    import aigc_course.checks as checks
    from aigc_course.checks import pipeline

    assert set(pipeline.__all__) <= set(checks.__all__)
    assert "check_context_windows" in checks.__all__
    with pytest.raises(TypeError, match="pass your function itself"):
        check_context_windows(ref.context_windows(torch.arange(3), 2))


# Generated from the catalogue (see test_the_cases_are_the_ones_students_see); one entry per check.
CASE_SNAPSHOT = {'ADAPTED_PROBS_CHECK': [('N = [6, 0, 2, 0], q = [.1 .2 .3 .4], λ = 4', '', (),
                          (((4,), 'torch.float64', 0, 0, 0, 2, 8.0, 12.0, 40.0, 24.0),
                           ((4,), 'torch.float64', 0, 0, 0, 0, 1.0, 3.0, 0.30000000000000004, 0.05), 4.0)),
                         ('N = [1, 1, 0, 0], q as above, λ = 10', '', (),
                          (((4,), 'torch.float64', 0, 0, 0, 2, 2.0, 3.0, 2.0, 1.0),
                           ((4,), 'torch.float64', 0, 0, 0, 0, 1.0, 3.0, 0.30000000000000004, 0.05), 10.0)),
                         ('λ = 0 (no prior: plain MLE)', '', (),
                          (((4,), 'torch.float64', 0, 0, 0, 2, 12.0, 42.0, 90.0, 54.0),
                           ((4,), 'torch.float64', 0, 0, 0, 0, 1.0, 3.0, 0.30000000000000004, 0.05), 0.0)),
                         ('an unseen context: N = [0, 0, 0, 0], λ = 4',
                          'an unseen context has N = 0, so counts / N is 0/0; the estimate there is the prior q '
                          'itself.',
                          (),
                          (((4,), 'torch.float64', 0, 0, 0, 4, 0.0, 0.0, 0.0, 0.0),
                           ((4,), 'torch.float64', 0, 0, 0, 0, 1.0, 3.0, 0.30000000000000004, 0.05), 4.0)),
                         ('a square table: 4 contexts × 4 symbols, λ = 2.5', '', (),
                          (((4, 4), 'torch.float64', 0, 0, 0, 4, 26.0, 218.0, 74.0, 31.75),
                           ((4, 4), 'torch.float64', 0, 0, 0, 0, 4.0, 34.899713163053434, 1.4915241972580455,
                            0.49152419725804547),
                           2.5)),
                         ('3 contexts × 6 symbols sharing one prior q of shape (6,), λ = 7', '', (),
                          (((3, 6), 'torch.float64', 0, 0, 0, 3, 56.0, 504.0, 272.0, 97.77777777777777),
                           ((6,), 'torch.float64', 0, 0, 0, 0, 1.0, 2.4578615524183425, 0.23116558494147868,
                            0.06449891827481198),
                           7.0)),
                         ('a very strong prior (λ = 1e12)', '', (),
                          (((4,), 'torch.float64', 0, 0, 0, 1, 8.0, 15.0, 30.0, 14.0),
                           ((4,), 'torch.float64', 0, 0, 0, 0, 1.0, 3.0, 0.30000000000000004, 0.05),
                           1000000000000.0)),
                         ('a realistic 40 × 40 table with an unseen context, λ = 20',
                          'an unseen context has N = 0, so counts / N is 0/0; the estimate there is the prior q '
                          'itself.',
                          (),
                          (((40, 40), 'torch.float64', 0, 0, 0, 485, 1114600.0, 850393200.0, 18258184118.0,
                            17481725893.0),
                           ((40, 40), 'torch.float64', 0, 0, 0, 0, 40.0, 32024.94354327725, 2.3124555094558183,
                            1.3124555094558183),
                           20.0))],
 'CATEGORICAL_MLE_CHECK': [('one context: counts [3, 1, 0, 4]', '', (),
                            (((4,), 'torch.float64', 0, 0, 0, 1, 8.0, 21.0, 26.0, 10.0),)),
                           ('a square table: 3 contexts × 3 symbols', '', (),
                            (((3, 3), 'torch.float64', 0, 0, 0, 2, 25.0, 123.0, 111.0, 41.55555555555556),)),
                           ('a single symbol (V = 1)', '', (),
                            (((1, 1), 'torch.float64', 0, 0, 0, 0, 7.0, 7.0, 49.0, 0.0),)),
                           ('4 contexts × 6 symbols', '', (),
                            (((4, 6), 'torch.float64', 0, 0, 0, 0, 112.0, 1353.0, 728.0, 205.33333333333334),)),
                           ('a realistic 40 × 40 table (row totals up to ~1e5)', '', (),
                            (((40, 40), 'torch.float64', 0, 0, 0, 484, 1104923.0, 912249331.0, 14368529317.0,
                              13605495044.544376),))],
 'CONTEXT_WINDOWS_CHECK': [('T = 7, order 3', '', (),
                            (((7,), 'torch.int64', 0, 0, 0, 0, 30.0, 125.0, 168.0, 39.42857142857142), 3)),
                           ('T = 6, order 2 (bigrams)', '', (),
                            (((6,), 'torch.int64', 0, 0, 0, 1, 13.0, 42.0, 39.0, 10.833333333333332), 2)),
                           ('order 1: contexts of shape (T, 0)',
                            'an order-1 (unigram) model has no context: contexts has shape (T, 0) and every id is '
                            'a target.',
                            (), (((4,), 'torch.int64', 0, 0, 0, 1, 6.0, 11.0, 14.0, 5.0), 1)),
                           ('T = order = 3: exactly one pair', '', (),
                            (((3,), 'torch.int64', 0, 0, 0, 0, 13.0, 25.0, 65.0, 8.666666666666666), 3)),
                           ('T = order - 1 = 2',
                            'a sequence shorter than the order has no complete window: return empty tensors of '
                            'shapes (0, n - 1) and (0,), so that counting over it simply adds nothing.',
                            (), (((2,), 'torch.int64', 0, 0, 0, 0, 3.0, 5.0, 5.0, 0.5), 3)),
                           ('T = 1 with order 4',
                            'a sequence shorter than the order has no complete window: return empty tensors of '
                            'shapes (0, n - 1) and (0,), so that counting over it simply adds nothing.',
                            (), (((1,), 'torch.int64', 0, 0, 0, 0, 4.0, 4.0, 16.0, 0.0), 4)),
                           ('2000 ids from a 50 257-token vocabulary, order 4', '', (),
                            (((2000,), 'torch.int64', 0, 0, 0, 0, 50657288.0, 50887782964.0, 1705972414780.0,
                              422892001022.528),
                             4))],
 'PERPLEXITY_CHECK': [('p = [1/2, 1/4, 1/8, 1/2]', '', (),
                       (((4,), 'torch.float64', 0, 0, 0, 0, -4.852030263919617, -12.476649250079015,
                         7.206795208773021, 1.3212457882750537),)),
                      ('uniform over 20 symbols', '', (),
                       (((7,), 'torch.float64', 0, 0, 0, 0, -20.970125914877936, -83.88050365951175,
                         62.820882983690744, 0.0),)),
                      ('12 random log-probs', '', (),
                       (((12,), 'torch.float64', 0, 0, 0, 0, -21.67383898922786, -152.48483411925966,
                         48.17789422628379, 9.031619515369313),)),
                      ('a single token (N = 1)', '', (),
                       (((1,), 'torch.float64', 0, 0, 0, 0, -1.2039728043259361, -1.2039728043259361,
                         1.4495505135564588, 0.0),)),
                      ('a certain token (log p = 0) and an impossible one (log p = -inf)', '', (),
                       (((4,), 'torch.float64', 0, 1, 0, 1, -2.0794415416798357, -6.931471805599453,
                         2.402265069591007, 1.321245788275054),)),
                      ('900 tokens with log p around -2.5 (the length of the Zen)', '', (),
                       (((900,), 'torch.float64', 0, 0, 0, 0, -2240.329151851098, -1016435.7556286784,
                         6178.442684012159, 601.6930077523132),))],
 'SOFTMAX_CHECK': [('logits [2, 1, 0, -1], T = 1', '', (),
                    (((4,), 'torch.float64', 0, 0, 0, 1, 2.0, 0.0, 6.0, 5.0), 1.0)),
                   ('logits [2, 1, 0, -1], T = 0.5', '', (),
                    (((4,), 'torch.float64', 0, 0, 0, 1, 2.0, 0.0, 6.0, 5.0), 0.5)),
                   ('logits [2, 1, 0, -1], T = 3', '', (),
                    (((4,), 'torch.float64', 0, 0, 0, 1, 2.0, 0.0, 6.0, 5.0), 3.0)),
                   ('a square 4 × 4 batch of logits, T = 1.5', '', (),
                    (((4, 4), 'torch.float64', 0, 0, 0, 0, -7.045648387634914, -66.33658449349979,
                      16.475789559935347, 13.373216984798942),
                     1.5)),
                   ('3 × 5 batch of logits, T = 0.7', '', (),
                    (((3, 5), 'torch.float64', 0, 0, 0, 0, 1.6356668307711808, 18.126477913064488,
                      9.903713292213233, 9.725352893460894),
                     0.7)),
                   ('a single symbol (V = 1)', '', (),
                    (((1, 1), 'torch.float64', 0, 0, 0, 0, 0.3, 0.3, 0.09, 0.0), 2.0)),
                   ('impossible symbols (-inf logits, from log 0), T = 0.8', '', (),
                    (((2, 4), 'torch.float64', 0, 3, 0, 0, 3.3000000000000003, 11.7, 5.35, 3.98875), 0.8)),
                   ('large logits ±1000, T = 1', '', (),
                    (((1, 4), 'torch.float64', 0, 0, 0, 1, 999.0, -2.0, 2998001.0, 2748500.75), 1.0)),
                   ('logits [2, 1, 0, -1], tiny T = 0.001', '', (),
                    (((4,), 'torch.float64', 0, 0, 0, 1, 2.0, 0.0, 6.0, 5.0), 0.001))]}
test_the_cases_are_the_ones_students_see = case_snapshot_test(checks_pipeline, CASE_SNAPSHOT)


# ----------------------------------------------------------------------------- the planted wrong answers

def test_mistake_functions_compute_the_mistake_they_name():
    """Each helper that computes a wrong answer is the formula its hint describes, on a (3, 5) batch."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 5, generator=g, dtype=torch.float64)
    T = 0.7
    assert torch.allclose(checks_pipeline._unshifted_softmax(z, T), torch.softmax(z / T, -1))
    assert torch.allclose(checks_pipeline._mean_shifted_softmax(z, T), torch.softmax(z / T, -1))
    n = torch.tensor([[3.0, 0.0, 1.0, 2.0, 4.0], [1.0, 1.0, 1.0, 0.0, 0.0], [9.0, 0.0, 0.0, 0.0, 1.0]],
                     dtype=torch.float64)
    q = torch.softmax(z, -1)
    lam = 4.0
    N = n.sum(-1, keepdim=True)
    mle = n / N
    assert torch.allclose(checks_pipeline._interpolation(n, q, lam), ref.dirichlet_map(n, q, lam))
    assert torch.allclose(checks_pipeline._wrong_fixed_average(n, q, lam), (mle + q) / 2)
    assert torch.allclose(checks_pipeline._wrong_swapped_weights(n, q, lam),
                          lam / (N + lam) * mle + N / (N + lam) * q)
    ids = torch.tensor([5, 2, 7, 1, 3])
    contexts, targets = checks_pipeline._pairs(ids, 2, -2, 0)
    assert contexts.tolist() == [[5, 2], [2, 7], [7, 1]] and targets.tolist() == [7, 1, 3]
    contexts, targets = checks_pipeline._pairs(ids[:1], 2, -2, 0)
    assert contexts.shape == (0, 2) and contexts.dtype == torch.long and targets.shape == (0,)


def test_a_global_normalisation_is_not_taken_for_a_listed_mistake():
    """Softmax over the whole batch (no row structure) fails on the first batch with a generic message."""
    def global_softmax(z, T):
        e = torch.exp((z - z.max()) / T)
        return e / e.sum()

    with pytest.raises(CheckFailed) as exc:
        check_softmax_with_temperature(global_softmax)
    assert str(exc.value).startswith("✗ Exercise 0.3 (temperature softmax): wrong value: ")
