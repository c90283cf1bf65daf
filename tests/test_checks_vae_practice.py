"""Lesson 06 self-checks: a catalogue of planted mistakes per exercise, each rejected with its own hint, and of
correct answers written differently (softplus, logsigmoid, torch.distributions, NumPy, a loop, float64, a
hand-guarded max shift, scipy), each accepted.

To extend: add a row to the exercise's WRONG table (the answer, a regex of words that only its hint
contains, and its class) or RIGHT table.
"""

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from catalogue import assert_rejected, case_snapshot_test, catalogue_tests
from scipy.special import logsumexp as scipy_logsumexp

import aigc_course.checks.vae_practice as checks_vae
from aigc_course.checks import CheckFailed
from aigc_course.checks.vae_practice import (
    ACTIVE_UNITS_CHECK,
    BERNOULLI_LOG_LIKELIHOOD_CHECK,
    IWAE_BOUND_CHECK,
    CountResult,
    check_active_units,
    check_bernoulli_log_likelihood,
    check_iwae_bound,
)

# ----------------------------------------------------------------------------- 6.1 Bernoulli log-likelihood


def bll_softplus(logits, x):
    return (x * logits - F.softplus(logits)).flatten(1).sum(1)


def bll_logsigmoid(logits, x):
    return (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).flatten(1).sum(1)


def bll_distributions(logits, x):
    bern = torch.distributions.Bernoulli(logits=logits, validate_args=False)
    return bern.log_prob(x).reshape(len(x), -1).sum(-1)


def bll_numpy(logits, x):
    lg, xs = logits.double().numpy(), x.double().numpy()
    terms = xs * lg - np.logaddexp(0.0, lg)                      # softplus(l) = log(1 + e^l)
    return torch.from_numpy(terms.reshape(len(xs), -1).sum(1))


def bll_clamps_logits_in_place(logits, x):
    logits.clamp_(-50.0, 50.0)
    return bll_softplus(logits, x)


BERNOULLI_RIGHT = [
    pytest.param(checks_vae._bernoulli_ll, id="reference"),
    pytest.param(bll_softplus, id="x·l − softplus(l)"),
    pytest.param(bll_logsigmoid, id="logsigmoid"),
    pytest.param(bll_distributions, id="torch.distributions.Bernoulli"),
    pytest.param(bll_numpy, id="numpy logaddexp, float64"),
    pytest.param(lambda lg, x: -F.binary_cross_entropy_with_logits(lg, x, reduction="none").sum((1, 2, 3)),
                 id="sum over dims (1, 2, 3)"),
]
BERNOULLI_WRONG = [
    pytest.param(bll_clamps_logits_in_place, r"modified its argument `logits` in place", "in-place",
                 id="logits.clamp_"),
    pytest.param(lambda lg, x: bll_softplus(lg, x).numpy(), r"you returned a NumPy array", "type", id="numpy"),
    pytest.param(lambda lg, x: bll_softplus(lg, x).half(), r"wrong dtype: expected .* got torch.float16", "type",
                 id="float16"),
    pytest.param(lambda lg, x: (x * torch.log(torch.sigmoid(lg)) + (1 - x) * torch.log1p(-torch.sigmoid(lg)))
                 .flatten(1).sum(1), r"NaN from a saturated sigmoid", "unstable", id="log1p(−σ)"),
    pytest.param(checks_vae._naive_bernoulli, r"NaN from a saturated sigmoid", "edge", id="log σ, log(1 − σ)"),
    pytest.param(lambda lg, x: -F.binary_cross_entropy(torch.sigmoid(lg), x, reduction="none").sum((1, 2, 3)),
                 r"clamps every log at −100", "unstable", id="F.binary_cross_entropy on σ(l)"),
    pytest.param(lambda lg, x: -F.binary_cross_entropy_with_logits(lg, x, reduction="none").flatten(1).mean(1),
                 r"you averaged over the pixels", "formula", id="mean over pixels"),
    pytest.param(lambda lg, x: -F.binary_cross_entropy_with_logits(lg, x), r"averages over the batch \*and\*",
                 "formula", id="default reduction"),
    pytest.param(lambda lg, x: F.binary_cross_entropy_with_logits(lg, x, reduction="none").flatten(1).sum(1),
                 r"that is the binary cross-entropy", "formula", id="BCE, not −BCE"),
    pytest.param(lambda lg, x: bll_softplus(lg, x).sum(), r"summed over the batch as well", "formula",
                 id="summed over the batch"),
    pytest.param(lambda lg, x: (x * F.logsigmoid(lg)).sum((1, 2, 3)), r"left out the \(1 − x\)", "formula",
                 id="no (1 − x) term"),
    pytest.param(lambda lg, x: bll_softplus(torch.sigmoid(lg), x), r"applied the sigmoid twice", "formula",
                 id="σ twice"),
    pytest.param(lambda lg, x: -F.binary_cross_entropy_with_logits(x, lg, reduction="none").flatten(1).sum(1),
                 r"you swapped the arguments", "formula", id="swapped"),
    pytest.param(lambda lg, x: (x * lg - F.softplus(lg)).sum(-1), r"summed over the last axis only", "formula",
                 id="sum(-1)"),
]


@pytest.mark.parametrize("fn", BERNOULLI_RIGHT)
def test_bernoulli_accepts(fn, capsys):
    check_bernoulli_log_likelihood(fn)
    assert "✓ Exercise 6.1" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", BERNOULLI_WRONG)
def test_bernoulli_rejects(fn, hint, kind):
    assert_rejected(BERNOULLI_LOG_LIKELIHOOD_CHECK, fn, hint)


def test_bernoulli_reference_by_hand():
    """The 2×2 case: ½·0 − log 2, log σ(ln 3) = log ¾, log σ(−ln 3) = log ¼, log σ(−2) = −softplus(2)."""
    (logits, x), *_ = [c.args for c in BERNOULLI_LOG_LIKELIHOOD_CHECK.case_list()]
    hand = -math.log(2) + math.log(0.75) + math.log(0.25) - math.log1p(math.exp(2.0))
    assert float(checks_vae._bernoulli_ll(logits, x)) == pytest.approx(hand, abs=1e-12)


def test_bernoulli_cases_break_what_they_are_meant_to_break():
    """σ(20) is exactly 1.0 in float32 (so the naive form gives NaN), and the float64 −150 pixel costs 150 nats,
    of which F.binary_cross_entropy reports only 100."""
    cases = BERNOULLI_LOG_LIKELIHOOD_CHECK.case_list()
    logits, x = cases[3].args
    assert torch.sigmoid(torch.tensor(20.0)) == 1.0 and x.dtype == torch.float32
    assert torch.isnan(checks_vae._naive_bernoulli(logits, x)).all()
    assert checks_vae._bernoulli_ll(logits, x).abs().max() < 1e-7
    logits, x = cases[4].args
    gap = checks_vae._clamped_bce(logits, x) - checks_vae._bernoulli_ll(logits, x)
    assert gap[0] == pytest.approx(50.0, abs=1e-6) and gap[1] == pytest.approx(0.0, abs=1e-6)


def test_nan_from_saturated_sigmoid_symptom():
    big, x = torch.tensor([[30.0]]), torch.tensor([[1.0]])
    nan, ok = (np.array([np.nan]),), (np.array([0.0]),)
    assert checks_vae._nan_from_saturated_sigmoid(nan, ok, big, x)
    assert not checks_vae._nan_from_saturated_sigmoid(nan, ok, torch.tensor([[17.0]]), x)   # not saturated
    assert not checks_vae._nan_from_saturated_sigmoid(ok, ok, big, x)                       # no NaN
    assert not checks_vae._nan_from_saturated_sigmoid(nan, (np.array([np.nan]),), big, x)   # NaN in both
    assert not checks_vae._nan_from_saturated_sigmoid((np.array([np.nan, 0.0]),), ok, big, x)   # shape


# ----------------------------------------------------------------------------- 6.2 active units


def au_centred(mu, threshold):
    return int((((mu - mu.mean(0)) ** 2).mean(0) > threshold).sum())


def au_unbiased_var(mu, threshold):
    return (mu.var(dim=0) > threshold).sum()          # N − 1: no case sits that close to the threshold


def au_numpy(mu, threshold):
    return np.count_nonzero(np.var(mu.double().numpy(), axis=0) > threshold)


def au_loop(mu, threshold):
    count = 0
    for u in range(mu.shape[1]):
        column = mu[:, u].double()
        count += int(column.var(unbiased=False) > threshold)
    return count


def au_covariance_diagonal(mu, threshold):
    return (torch.cov(mu.double().T, correction=0).reshape(mu.shape[1], -1).diagonal() > threshold).sum()


def au_centres_in_place(mu, threshold):
    mu -= mu.mean(0)
    return ((mu ** 2).mean(0) > threshold).sum()


def au_one_pass(mu, threshold):
    second = (mu * mu).mean(dim=0)
    return (second - mu.mean(dim=0).pow(2) > threshold).sum()


ACTIVE_RIGHT = [
    pytest.param(checks_vae._active_units, id="reference"),
    pytest.param(au_centred, id="centred, Python int"),
    pytest.param(au_unbiased_var, id="torch.var (N − 1)"),
    pytest.param(au_numpy, id="numpy count_nonzero"),
    pytest.param(au_loop, id="loop over units"),
    pytest.param(au_covariance_diagonal, id="diagonal of torch.cov"),
    pytest.param(lambda mu, thr: int(sum(v > thr for v in mu.double().var(0, unbiased=False).tolist())),
                 id="sum of Python bools"),
]
ACTIVE_WRONG = [
    pytest.param(au_centres_in_place, r"modified its argument `mu` in place", "in-place", id="mu -= mean"),
    pytest.param(lambda mu, thr: (mu.var(0) > thr).float().sum(), r"a count is a whole number", "type",
                 id="float sum"),
    pytest.param(lambda mu, thr: mu.var(0) > thr, r"one value per unit", "type", id="the mask"),
    pytest.param(lambda mu, thr: float((mu.var(0) > thr).sum()), r"you returned a float", "type",
                 id="Python float"),
    pytest.param(lambda mu, thr: (mu.var(0) > thr).any(), r"0-d bool tensor", "type", id=".any()"),
    pytest.param(au_one_pass, r"catastrophic cancellation: E\[μ²\] − E\[μ\]²", "unstable", id="E[μ²] − E[μ]²"),
    pytest.param(lambda mu, thr: (mu.var(0) >= thr).sum(), r"you used ≥", "edge", id=">="),
    pytest.param(lambda mu, thr: ((mu ** 2).mean(0) > thr).sum(), r"not centred", "edge", id="mean of μ²"),
    pytest.param(lambda mu, thr: (mu.std(0) > thr).sum(), r"compared the standard deviation", "formula",
                 id="std"),
    pytest.param(lambda mu, thr: (mu.var(1) > thr).sum(), r"variance along the wrong axis", "formula",
                 id="var(dim=1)"),
    pytest.param(lambda mu, thr: (mu.var(0) <= thr).sum(), r"counted the inactive units", "formula",
                 id="inactive"),
]


@pytest.mark.parametrize("fn", ACTIVE_RIGHT)
def test_active_units_accepts(fn, capsys):
    check_active_units(fn)
    assert "✓ Exercise 6.2" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", ACTIVE_WRONG)
def test_active_units_rejects(fn, hint, kind):
    assert_rejected(ACTIVE_UNITS_CHECK, fn, hint)


def test_active_units_cases_by_hand():
    """The counts the cases were built for: spreads s give variances s² exactly (1/N)."""
    counts = [int(checks_vae._active_units(*c.args)) for c in ACTIVE_UNITS_CHECK.case_list()]
    assert counts == [3, 4, 3, 6, 0, 1, 4]
    mu = checks_vae._posterior_means(0, 200, [1.0, 0.02, 0.5], [3.0, 0.0, -1.0])
    assert torch.allclose(mu.var(0, unbiased=False), torch.tensor([1.0, 0.0004, 0.25], dtype=torch.float64))
    assert torch.allclose(mu.mean(0), torch.tensor([3.0, 0.0, -1.0], dtype=torch.float64))


def test_no_case_sits_where_n_or_n_minus_1_matters():
    """Both variance conventions give the same count on every case (the task allows either)."""
    for case in ACTIVE_UNITS_CHECK.case_list():
        mu, thr = case.args
        var = mu.double().var(0, unbiased=False)
        assert torch.equal(var > thr, var * len(mu) / (len(mu) - 1) > thr), case.label


def test_one_pass_variance_symptom():
    far = torch.full((4, 2), 1000.0)
    near = torch.full((4, 2), 1.0)
    two, three = (np.array(2.0),), (np.array(3.0),)
    assert checks_vae._one_pass_variance(two, three, far, 0.01)
    assert not checks_vae._one_pass_variance(three, three, far, 0.01)               # the right count
    assert not checks_vae._one_pass_variance(two, three, near, 0.01)                # means near 0
    assert not checks_vae._one_pass_variance(two, three, far.double(), 0.01)        # float64


@pytest.mark.parametrize("value, message", [
    (None, r"returned None"),
    (torch.tensor([True, False]), r"tensor of shape \(2,\) and dtype torch.bool: one value per unit"),
    (torch.tensor(True), r"0-d bool tensor"),
    (torch.tensor(2.0), r"torch.float32 number; a count is a whole number"),
    (True, r"you returned a bool \(True\)"),
    (2.0, r"you returned a float \(2.0\)"),
    (np.float64(2.0), r"you returned a float"),
    (np.array([1, 0]), r"NumPy array of shape \(2,\); return one number"),
    ([2], r"a list of length 1; return one number"),
    ("2", r"Python str; return the number of active units as an int"),
])
def test_count_result_refuses(value, message):
    problem = CountResult().problem(value, torch.tensor(2))
    assert problem is not None and re.search(message, problem), problem


@pytest.mark.parametrize("value", [2, np.int64(2), np.int32(2), torch.tensor(2), torch.tensor(2, dtype=torch.int32)])
def test_count_result_accepts(value):
    spec = CountResult()
    assert spec.problem(value, torch.tensor(2)) is None
    assert spec.parts(value)[0] == 2.0 and spec.part_names == ("",)


# ----------------------------------------------------------------------------- 6.3 IWAE bound


def iwae_scipy(log_px_z, log_pz, log_qz):
    log_w = (log_px_z + log_pz - log_qz).double().numpy()
    return torch.from_numpy(scipy_logsumexp(log_w, axis=1, b=1.0 / log_w.shape[1]))


def iwae_guarded_shift(log_px_z, log_pz, log_qz):
    log_w = log_px_z + log_pz - log_qz
    m = log_w.max(dim=1, keepdim=True).values
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    return (m + torch.log(torch.exp(log_w - m).mean(1, keepdim=True))).squeeze(1)


def iwae_loop(log_px_z, log_pz, log_qz):
    rows = [torch.logsumexp(a + b - c, dim=0) - math.log(len(a)) for a, b, c in zip(log_px_z, log_pz, log_qz,
                                                                                   strict=True)]
    return torch.stack(rows)


def iwae_adds_in_place(log_px_z, log_pz, log_qz):
    log_px_z += log_pz - log_qz
    return torch.logsumexp(log_px_z, dim=1) - math.log(log_px_z.shape[1])


IWAE_RIGHT = [
    pytest.param(checks_vae._iwae, id="reference"),
    pytest.param(iwae_scipy, id="scipy logsumexp with b = 1/k"),
    pytest.param(iwae_guarded_shift, id="max shift, guarded"),
    pytest.param(iwae_loop, id="loop over x"),
    pytest.param(lambda a, b, c: (torch.logsumexp((a + b - c).double(), 1) - math.log(a.shape[1])),
                 id="float64"),
    pytest.param(lambda a, b, c: torch.logsumexp(a + b - c - math.log(a.shape[1]), dim=1), id="log k inside"),
]
IWAE_WRONG = [
    pytest.param(iwae_adds_in_place, r"modified its argument `log_px_z` in place", "in-place", id="+="),
    pytest.param(lambda a, b, c: checks_vae._iwae(a, b, c).tolist(), r"you returned a list", "type", id="list"),
    pytest.param(lambda a, b, c: checks_vae._iwae(a, b, c).numpy(), r"you returned a NumPy array", "type",
                 id="numpy"),
    pytest.param(checks_vae._naive_iwae, r"exp of the log-weights under- or overflows", "unstable",
                 id="log(mean(exp))"),
    pytest.param(lambda a, b, c: torch.log((torch.exp(a) * torch.exp(b) / torch.exp(c)).mean(1)),
                 r"exp of the log-weights under- or overflows", "unstable", id="product of densities"),
    pytest.param(checks_vae._unguarded_shift, r"the maximum gives −inf − \(−inf\)", "edge", id="unguarded shift"),
    pytest.param(lambda a, b, c: torch.logsumexp(a + b - c, dim=1), r"you forgot the 1/k", "formula",
                 id="no − log k"),
    pytest.param(lambda a, b, c: (a + b - c).mean(1), r"you averaged the log-weights", "formula",
                 id="mean of log w"),
    pytest.param(lambda a, b, c: checks_vae._iwae(a, b, -c), r"must be \*subtracted\*", "formula", id="+ log q"),
    pytest.param(lambda a, b, c: checks_vae._iwae(a, 0 * b, c), r"you left out the prior", "formula",
                 id="no log p(z)"),
    pytest.param(lambda a, b, c: torch.logsumexp(a - c, 1) - math.log(a.shape[1]), r"you left out the prior",
                 "formula", id="no log p(z), written out"),
    pytest.param(lambda a, b, c: torch.logsumexp(a + b, 1) - math.log(a.shape[1]), r"you left out log q",
                 "formula", id="no log q"),
    pytest.param(lambda a, b, c: torch.logsumexp(a + b - c, 0) - math.log(len(a)), r"reduced over the batch",
                 "formula", id="dim 0"),
    pytest.param(lambda a, b, c: torch.logsumexp(a + b - c, 1) - math.log(len(a)), r"divided by the batch size",
                 "formula", id="log B"),
]


@pytest.mark.parametrize("fn", IWAE_RIGHT)
def test_iwae_accepts(fn, capsys):
    check_iwae_bound(fn)
    assert "✓ Exercise 6.3" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", IWAE_WRONG)
def test_iwae_rejects(fn, hint, kind):
    assert_rejected(IWAE_BOUND_CHECK, fn, hint)


def test_iwae_reference_by_hand():
    """First case: log mean(e^−2.5, e^−4.5, e^−3) and log mean(e^−9, e^−12, e^−9); the −inf row stays −inf."""
    cases = IWAE_BOUND_CHECK.case_list()
    got = checks_vae._iwae(*cases[0].args)
    hand = [math.log((math.exp(-2.5) + math.exp(-4.5) + math.exp(-3.0)) / 3),
            math.log((2 * math.exp(-9.0) + math.exp(-12.0)) / 3)]
    assert got.tolist() == pytest.approx(hand, abs=1e-12)
    rows = checks_vae._iwae(*cases[4].args)
    assert rows[1] == -math.inf and torch.isfinite(rows[[0, 2]]).all()
    one = cases[3].args
    assert torch.equal(checks_vae._iwae(*one), (one[0] + one[1] - one[2])[:, 0])     # k = 1: log w itself


def test_iwae_bound_lies_between_the_mean_and_the_max_log_weight():
    """Jensen: mean log w ≤ log mean w ≤ max log w, on every finite case."""
    for case in IWAE_BOUND_CHECK.case_list():
        log_w = (case.args[0] + case.args[1] - case.args[2]).double()
        bound = checks_vae._iwae(*(a.double() for a in case.args))
        finite = torch.isfinite(bound)
        assert (log_w.mean(1)[finite] <= bound[finite] + 1e-9).all()
        assert (bound[finite] <= log_w.max(1).values[finite] + 1e-9).all()


def test_iwae_symptoms():
    far = tuple(torch.full((1, 2), v) for v in (-500.0, 0.0, 0.0))
    near = tuple(torch.full((1, 2), v) for v in (-50.0, 0.0, 0.0))
    inf, fin = (np.array([-np.inf]),), (np.array([-500.0]),)
    assert checks_vae._overflow_or_underflow(inf, fin, *far)
    assert not checks_vae._overflow_or_underflow(inf, fin, *near)                      # within exp's range
    assert not checks_vae._overflow_or_underflow(fin, fin, *far)                       # no inf
    assert not checks_vae._overflow_or_underflow(inf, fin, *(a.double() for a in far))   # float64 copes
    nan, minus_inf = (np.array([np.nan]),), (np.array([-np.inf]),)
    assert checks_vae._nan_where_minus_inf(nan, minus_inf)
    assert not checks_vae._nan_where_minus_inf(nan, fin)
    assert not checks_vae._nan_where_minus_inf(minus_inf, minus_inf)


# ----------------------------------------------------------------------------- every catalogue

CATALOGUES = {
    "6.1": (check_bernoulli_log_likelihood, BERNOULLI_LOG_LIKELIHOOD_CHECK, BERNOULLI_WRONG, BERNOULLI_RIGHT),
    "6.2": (check_active_units, ACTIVE_UNITS_CHECK, ACTIVE_WRONG, ACTIVE_RIGHT),
    "6.3": (check_iwae_bound, IWAE_BOUND_CHECK, IWAE_WRONG, IWAE_RIGHT),
}
SYMPTOM_STUDENTS = {}  # every mistake here also has a `wrong` answer that shows it
TENSOR_RESULTS = {k: v for k, v in CATALOGUES.items() if k != "6.2"}

(test_catalogue_is_complete, _, test_every_mistake_hint_is_reachable,
 test_not_implemented_gives_the_not_implemented_message) = catalogue_tests(CATALOGUES, SYMPTOM_STUDENTS)
# The shared generic-message test perturbs tensor results; 6.2 returns a count (tested below).
test_hint_words_are_not_in_labels_or_generic_messages = catalogue_tests(TENSOR_RESULTS, SYMPTOM_STUDENTS)[1]


def test_active_units_hint_words_are_not_in_labels_or_generic_messages():
    """6.2's version of the shared test: counts far off (no listed mistake gives them) get the generic message,
    and no WRONG regex matches it or a case label."""
    ref = checks_vae._active_units
    generic = []
    for change in (lambda n: n + 100, lambda n: n + 1000):
        with pytest.raises(CheckFailed) as exc:
            check_active_units(lambda mu, thr, change=change: change(ref(mu, thr)))
        generic.append(str(exc.value))
    assert all("max |yours - reference|" in g for g in generic)
    texts = generic + [c.label for c in ACTIVE_UNITS_CHECK.case_list()]
    for p in ACTIVE_WRONG:
        for text in texts:
            assert not re.search(p.values[1], text), (p.values[1], text)


def test_checks_are_listed_and_refuse_a_non_function():
    assert checks_vae.__all__ == ["check_bernoulli_log_likelihood", "check_active_units", "check_iwae_bound"]
    for check in (check_bernoulli_log_likelihood, check_active_units, check_iwae_bound):
        with pytest.raises(TypeError, match="pass your function itself"):
            check("not a function")


def test_generic_wrong_answers_are_refused():
    """The answers tests/test_notebooks.py feeds every exported check."""
    for check in (check_bernoulli_log_likelihood, check_active_units, check_iwae_bound):
        for wrong in (lambda *a: None, lambda *a: a[0], lambda *a: torch.tensor(math.nan, dtype=torch.float64),
                      lambda *a: [0.0, 1.0]):
            with pytest.raises(CheckFailed):
                check(wrong)


# Generated from the catalogue (see test_the_cases_are_the_ones_students_see); one entry per check.
CASE_SNAPSHOT = {'ACTIVE_UNITS_CHECK': [('N = 200 means of 5 units, spreads (1, 0.02, 0.5, 0.001, 0.3)', '', (),
                                          (((200, 5), 'torch.float64', 0, 0, 0, 0, 5.773159728050814e-15,
                                            6897.182553442481, 268.0801999999999, 268.0801999999999),
                                           0.01)),
                                         ('N = 50 means of 8 units (float32)', '', (),
                                          (((50, 8), 'torch.float32', 0, 0, 0, 0, -1.4621036825701594e-07,
                                            1039.7207884881864, 56.115000658807915, 56.115000658807915),
                                           0.01)),
                                         ('only N = 4 data points, 6 units', '', (),
                                          (((4, 6), 'torch.float64', 0, 0, 0, 0, 2.498001805406602e-16,
                                            -11.710079371183248, 2.6296, 2.6296),
                                           0.01)),
                                         ('N = 7 data points and 7 units (a square table), units offset from 0', '',
                                          (),
                                          (((7, 7), 'torch.float64', 0, 0, 0, 0, 21.0, 620.2464617709693, 233.4752,
                                            224.4752),
                                           0.01)),
                                         ('every unit collapsed: μ_u(x) = 0.5 for every x',
                                          'a unit whose mean is the same for every x tells the decoder nothing '
                                          'about x: none is active.',
                                          (), (((6, 4), 'torch.float64', 0, 0, 0, 0, 12.0, 150.0, 6.0, 0.0), 0.01)),
                                         ('threshold 0, units constant at 0 and at 3, and one that moves',
                                          'the criterion is strict: Var > threshold. A unit whose mean never moves '
                                          'has variance exactly 0, which is not > 0, whatever its constant value.',
                                          (),
                                          (((8, 3), 'torch.float64', 0, 0, 0, 8, 24.0, 294.0, 74.0, 50.0), 0.0)),
                                         ('N = 1000 float32 means around ±1000, spreads 0.05 to 0.3', '', (),
                                          (((1000, 6), 'torch.float32', 0, 0, 0, 0, 2799999.9996643066,
                                            8400393354.62854, 4340000194.627841, 3033333528.2744884),
                                           0.01))],
                  'BERNOULLI_LOG_LIKELIHOOD_CHECK': [('one 2×2 image: logits (0, ln 3, −ln 3, 2), pixels (½, 1, 1, '
                                                      '0)',
                                                      '', (),
                                                      (((1, 1, 2, 2), 'torch.float64', 0, 0, 0, 1, 2.0,
                                                        6.901387711331891, 6.413897921625164, 5.413897921625164),
                                                       ((1, 1, 2, 2), 'torch.float64', 0, 0, 0, 1, 2.5, 5.5, 2.25,
                                                        0.6875))),
                                                     ('4 grey 8×8 images, float64', '', (),
                                                      (((4, 1, 8, 8), 'torch.float64', 0, 0, 0, 0,
                                                        -19.632429108146518, -7932.195287834361, 2307.519629639979,
                                                        2306.014034824798),
                                                       ((4, 1, 8, 8), 'torch.float64', 0, 0, 0, 131,
                                                        95.14426488665082, 12226.314831173915, 76.00013840489169,
                                                        40.63907926105898))),
                                                     ('16 grey 8×8 images, float32', '', (),
                                                      (((16, 1, 8, 8), 'torch.float32', 0, 0, 0, 0,
                                                        44.26153246103786, 16108.596735452767, 9573.636499200806,
                                                        9571.723331958814),
                                                       ((16, 1, 8, 8), 'torch.float32', 0, 0, 0, 518,
                                                        394.2778781056404, 199847.35149538517, 321.47088597628897,
                                                        169.6593184338219))),
                                                     ('a trained decoder, float32: logits ±20, pixels exactly 0 or '
                                                      '1 (and right)',
                                                      'σ(20) rounds to exactly 1.0 in float32, so log(1 − σ(20)) = '
                                                      'log 0 = −inf, and (1 − x)·(−inf) with x = 1 is 0·(−inf) = '
                                                      'NaN. The true term is 0.',
                                                      (),
                                                      (((2, 1, 2, 3), 'torch.float32', 0, 0, 0, 0, 0.0, -80.0,
                                                        4800.0, 4800.0),
                                                       ((2, 1, 2, 3), 'torch.float32', 0, 0, 0, 6, 6.0, 37.0, 6.0,
                                                        3.0))),
                                                     ('one full-ink pixel decoded with logit −150, float64', '', (),
                                                      (((2, 1, 2, 3), 'torch.float64', 0, 0, 0, 0, -170.0, -420.0,
                                                        26900.0, 24491.666666666668),
                                                       ((2, 1, 2, 3), 'torch.float64', 0, 0, 0, 6, 6.0, 37.0, 6.0,
                                                        3.0))),
                                                     ('2 grey 28×28 images (MNIST-sized), float32', '', (),
                                                      (((2, 1, 28, 28), 'torch.float32', 0, 0, 0, 0,
                                                        -3.044934208970517, -41182.40676628379, 13899.244703690809,
                                                        13899.238790665086),
                                                       ((2, 1, 28, 28), 'torch.float32', 0, 0, 0, 795,
                                                        590.2410667538643, 465025.1573141217, 472.9832917961726,
                                                        250.79928868218047)))],
                  'IWAE_BOUND_CHECK': [("two x's, k = 3: log w = (−2.5, −4.5, −3) and (−9, −12, −9)", '', (),
                                        (((2, 3), 'torch.float64', 0, 0, 0, 0, -42.0, -185.0, 394.0, 100.0),
                                         ((2, 3), 'torch.float64', 0, 0, 0, 0, -7.5, -25.0, 10.25, 0.875),
                                         ((2, 3), 'torch.float64', 0, 0, 0, 0, -9.5, -39.5, 19.25,
                                          4.208333333333332))),
                                       ('B = 4 images, k = 10 samples each, log w ≈ −25', '', (),
                                        (((4, 10), 'torch.float64', 0, 0, 0, 0, -892.6604085837641,
                                          -18382.704386543577, 20210.15637345947, 289.0912471361576),
                                         ((4, 10), 'torch.float64', 0, 0, 0, 0, -449.30623596791986,
                                          -9064.615941818181, 5223.606619226729, 176.70427723522613),
                                         ((4, 10), 'torch.float64', 0, 0, 0, 0, -366.1030201083599,
                                          -7419.202928052979, 3763.7056594551022, 412.9201261435481))),
                                       ('B = k = 5 (a square table)', '', (),
                                        (((5, 5), 'torch.float64', 0, 0, 0, 0, -455.8332260895549,
                                          -6022.545374360847, 8525.17454390335, 213.81734361490163),
                                         ((5, 5), 'torch.float64', 0, 0, 0, 0, -296.9537744028827,
                                          -3791.5340919571136, 3756.17846896531, 228.9167036805843),
                                         ((5, 5), 'torch.float64', 0, 0, 0, 0, -219.06797722538076,
                                          -2835.1232014756097, 2250.5281226547045, 330.8969768299067))),
                                       ('k = 1: the bound is the one-sample ELBO',
                                        'with k = 1 the bound is log w₁ itself (log 1 = 0).', (),
                                        (((6, 1), 'torch.float64', 0, 0, 0, 0, -129.2951552829295,
                                          -464.10032072088995, 2833.6327661163386, 47.42656951019718),
                                         ((6, 1), 'torch.float64', 0, 0, 0, 0, -68.2257428691491,
                                          -233.75340906370099, 785.6219452876387, 9.829946946430594),
                                         ((6, 1), 'torch.float64', 0, 0, 0, 0, -54.00093649768433,
                                          -178.1110224151746, 539.8211896967439, 53.80433259225462))),
                                       ("x_2's samples all have p(x|z) = 0 (log −inf)",
                                        'every weight of x_2 is 0, so its bound is log 0 = −inf; the other rows '
                                        'stay finite.',
                                        (),
                                        (((3, 4), 'torch.float64', 0, 4, 0, 0, -225.15191956569134,
                                          -1494.8806977871209, 6379.574753639285, 2155.1258466296567),
                                         ((3, 4), 'torch.float64', 0, 0, 0, 0, -127.04872907277809,
                                          -834.1935343570246, 1362.158671370119, 17.04370811943838),
                                         ((3, 4), 'torch.float64', 0, 0, 0, 0, -114.49039139993468,
                                          -737.1385055152109, 1169.6168915126625, 77.27941460347606))),
                                       ('k = 1000, float32, log w ≈ −500 (28×28 images)', '', (),
                                        (((3, 1000), 'torch.float32', 0, 0, 0, 0, -1494309.09765625,
                                          -2242067306.9742737, 744346391.7622464, 26498.64950106537),
                                         ((3, 1000), 'torch.float32', 0, 0, 0, 0, -34126.66004657745,
                                          -51189759.636529446, 400303.0407765588, 12093.398798336882),
                                         ((3, 1000), 'torch.float32', 0, 0, 0, 0, -28184.193334901705,
                                          -42301730.0133253, 304793.93430881226, 40011.01632910636))),
                                       ("k = 100, float32, log w ≈ +150 (a Gaussian decoder's density can exceed 1)",
                                        '', (),
                                        (((2, 100), 'torch.float32', 0, 0, 0, 0, 30383.24021911621,
                                          3053497.380996704, 4617676.921602185, 1970.490539580629),
                                         ((2, 100), 'torch.float32', 0, 0, 0, 0, -2277.8957204818726,
                                          -226608.04072856903, 26784.660461234038, 840.6158942858907),
                                         ((2, 100), 'torch.float32', 0, 0, 0, 0, -1871.4753941446543,
                                          -185384.4248522371, 19726.038131004778, 2213.937376560334)))]}
test_the_cases_are_the_ones_students_see = case_snapshot_test(checks_vae, CASE_SNAPSHOT)
