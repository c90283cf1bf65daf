"""Lesson 01 self-checks: a catalogue of planted mistakes per exercise, each rejected with its own hint, and of
correct answers written differently (another dtype, NumPy, scipy, torch.distributions, a loop), each accepted.

To extend: add a row to the exercise's WRONG table (the answer, a regex of words that only its hint
contains, and its class) or RIGHT table.
"""

import math

import numpy as np
import pytest
import torch
from catalogue import assert_rejected, case_snapshot_test, catalogue_tests
from scipy.spatial.distance import jensenshannon
from torch.distributions import Categorical, Normal, kl_divergence

import aigc_course.checks.divergences as checks_divergences
from aigc_course import divergences as ref
from aigc_course.checks import (
    CheckFailed,
    check_discrete_kl,
    check_gaussian_mle,
    check_js_divergence,
    check_kl_to_standard_normal,
)
from aigc_course.checks.divergences import (
    DISCRETE_KL_CHECK,
    GAUSSIAN_KL_CHECK,
    GAUSSIAN_MLE_CHECK,
    JS_DIVERGENCE_CHECK,
)

# The planted N = 1 mistakes call x.var() on one sample, which warns; that warning is the student's.
pytestmark = pytest.mark.filterwarnings(r"ignore:var\(\). degrees of freedom")







# ----------------------------------------------------------------------------- 1.1 discrete KL

def kl_xlogy(p, q):
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)


def kl_masked(p, q):
    return torch.where(p > 0, p * (p.log() - q.log()), torch.zeros_like(p)).sum(-1)


def kl_numpy_array(p, q):
    a, b = p.numpy(), q.numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(a > 0, a * (np.log(np.where(a > 0, a, 1.0)) - np.log(b)), 0.0)
    return terms.sum(-1)


def kl_loop(p, q):
    out = torch.zeros(p.shape[:-1], dtype=p.dtype)
    for k in range(p.shape[-1]):
        pk, qk = p[..., k], q[..., k]
        out += torch.where(pk > 0, pk * (pk.log() - qk.log()), torch.zeros_like(pk))
    return out


def kl_clamps_in_place(p, q):
    p.clamp_(min=1e-12)
    return (p * (p.log() - q.log())).sum(-1)


KL_RIGHT = [
    pytest.param(ref.kl_divergence, id="reference"),
    pytest.param(kl_xlogy, id="xlogy"),
    pytest.param(kl_masked, id="masked log difference"),
    pytest.param(lambda p, q: torch.as_tensor(kl_numpy_array(p, q)), id="numpy"),
    pytest.param(kl_loop, id="loop"),
    pytest.param(lambda p, q: kl_xlogy(p.double(), q.double()), id="float64"),
    pytest.param(lambda p, q: kl_divergence(Categorical(probs=p), Categorical(logits=q.log())),
                 id="torch.distributions"),
]
KL_WRONG = [
    pytest.param(kl_clamps_in_place, r"modified its argument `p` in place", "in-place", id="p.clamp_"),
    pytest.param(kl_numpy_array, r"you returned a NumPy (array|scalar)", "type", id="numpy"),
    pytest.param(lambda p, q: torch.complex(kl_xlogy(p, q), torch.zeros_like(kl_xlogy(p, q))),
                 r"your result is complex", "type", id="complex"),
    pytest.param(lambda p, q: kl_xlogy(p, q).tolist(), r"you returned a (list|Python float)", "type", id="list"),
    pytest.param(lambda p, q: torch.where(p > 0, p * torch.log(p / q), torch.zeros_like(p)).sum(-1),
                 r"overflow in the ratio", "unstable", id="log(p/q), tiny q"),
    pytest.param(lambda p, q: (p * torch.log(p / q)).sum(-1), r"0·\(−inf\) = NaN", "unstable", id="naive"),
    pytest.param(lambda p, q: torch.xlogy(p, p / q).sum(-1), r"xlogy\(p, p/q\) still forms", "edge",
                 id="xlogy(p, p/q), p = q = 0"),
    pytest.param(lambda p, q: (p * torch.log((p + 1e-10) / (q + 1e-10))).sum(-1), r"ε added inside the log",
                 "edge", id="epsilon, q = 0"),
    pytest.param(lambda p, q: kl_xlogy(q, p), r"arguments are swapped", "formula", id="swapped"),
    pytest.param(lambda p, q: -kl_xlogy(p, q), r"log\(q/p\) instead", "formula", id="sign"),
    pytest.param(lambda p, q: kl_xlogy(p, q) / math.log(2), r"log base 2", "formula", id="bits"),
    pytest.param(lambda p, q: kl_xlogy(p, q) / p.shape[-1], r"averaged over the outcomes", "formula",
                 id="mean"),
]


@pytest.mark.parametrize("fn", KL_RIGHT)
def test_discrete_kl_accepts(fn, capsys):
    check_discrete_kl(fn)
    assert "✓ Exercise 1.1" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", KL_WRONG)
def test_discrete_kl_rejects(fn, hint, kind):
    assert_rejected(DISCRETE_KL_CHECK, fn, hint)


# ----------------------------------------------------------------------------- 1.2 Gaussian KL to N(0, I)

def gkl_closed_form(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)


def gkl_loop(mu, logvar):
    out = torch.zeros(mu.shape[:-1], dtype=mu.dtype)
    for d in range(mu.shape[-1]):
        m, lv = mu[..., d], logvar[..., d]
        out += 0.5 * (lv.exp() + m**2 - 1 - lv)
    return out


def gkl_exp_in_place(mu, logvar):
    var = logvar.exp_()
    return 0.5 * (var + mu**2 - 1 - var.log()).sum(-1)


GKL_RIGHT = [
    pytest.param(ref.gaussian_kl, id="reference"),
    pytest.param(gkl_closed_form, id="-1/2 sum(1 + lv - mu^2 - e^lv)"),
    pytest.param(lambda mu, lv: kl_divergence(Normal(mu, (0.5 * lv).exp()),
                                              Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1),
                 id="torch.distributions"),
    pytest.param(lambda mu, lv: torch.from_numpy(0.5 * (np.exp(lv.numpy()) + mu.numpy() ** 2 - 1 - lv.numpy())
                                                 .sum(-1)), id="numpy"),
    pytest.param(lambda mu, lv: gkl_closed_form(mu.double(), lv.double()), id="float64"),
    pytest.param(gkl_loop, id="loop"),
]
GKL_WRONG = [
    pytest.param(gkl_exp_in_place, r"modified its argument `logvar` in place", "in-place", id="logvar.exp_()"),
    pytest.param(lambda mu, lv: gkl_closed_form(mu, lv).numpy(), r"you returned a NumPy array", "type",
                 id="numpy"),
    pytest.param(lambda mu, lv: 0.5 * (lv.exp().sum(-1) + (mu**2).sum(-1) - lv.shape[-1]
                                       - torch.log(torch.prod(lv.exp(), -1))),
                 r"log of the \*product\* of the variances", "unstable", id="log det via prod"),
    pytest.param(lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv.log()).sum(-1), r"log of the log-variance",
                 "edge", id="log(logvar), negative logvar"),
    pytest.param(lambda mu, lv: 0.5 * (lv + (1 + mu**2) / lv.exp() - 1).sum(-1), r"reverse divergence",
                 "formula", id="reversed KL"),
    pytest.param(lambda mu, lv: 2 * gkl_closed_form(mu, lv), r"missing the factor ½", "formula", id="no 1/2"),
    pytest.param(lambda mu, lv: 0.5 * ((0.5 * lv).exp() + mu**2 - 1 - 0.5 * lv).sum(-1),
                 r"used the standard deviation", "formula", id="std for var"),
    pytest.param(lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 + lv).sum(-1), r"log-variance term has the wrong sign",
                 "formula", id="+logvar"),
    pytest.param(lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv).mean(-1), r"averaged over the latent",
                 "formula", id="mean over D"),
    pytest.param(lambda mu, lv: 0.5 * (lv.exp() + mu**2 - lv).sum(-1), r"forgot the −1", "formula", id="no -1"),
    pytest.param(lambda mu, lv: -gkl_closed_form(mu, lv), r"wrong sign overall", "formula", id="sign"),
]


@pytest.mark.parametrize("fn", GKL_RIGHT)
def test_kl_std_normal_accepts(fn, capsys):
    check_kl_to_standard_normal(fn)
    assert "✓ Exercise 1.2" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", GKL_WRONG)
def test_kl_std_normal_rejects(fn, hint, kind):
    assert_rejected(GAUSSIAN_KL_CHECK, fn, hint)


# ----------------------------------------------------------------------------- 1.3 JS divergence

def js_from(kl):
    def js(p, q):
        m = 0.5 * (p + q)
        return 0.5 * kl(p, m) + 0.5 * kl(q, m)
    return js


def js_entropy_form(p, q):
    h = lambda a: -torch.xlogy(a, a).sum(-1)  # noqa: E731
    return h(0.5 * (p + q)) - 0.5 * (h(p) + h(q))


def js_mixture_in_place(p, q):
    m = p.add_(q).mul_(0.5)
    return 0.5 * kl_xlogy(p, m) + 0.5 * kl_xlogy(q, m)


JS_RIGHT = [
    pytest.param(ref.js_divergence, id="reference"),
    pytest.param(js_from(kl_xlogy), id="xlogy"),
    pytest.param(js_from(kl_loop), id="loop"),
    pytest.param(lambda p, q: torch.as_tensor(jensenshannon(p.numpy(), q.numpy(), axis=-1) ** 2), id="scipy squared"),
    pytest.param(lambda p, q: js_from(kl_xlogy)(p.double(), q.double()), id="float64"),
    pytest.param(js_entropy_form, id="H(m) - (H(p) + H(q))/2"),
]
JS_WRONG = [
    pytest.param(js_mixture_in_place, r"modified its argument `p` in place", "in-place", id="p.add_(q)"),
    pytest.param(lambda p, q: jensenshannon(p.numpy(), q.numpy(), axis=-1) ** 2, r"you returned a NumPy",
                 "type", id="scipy, numpy result"),
    pytest.param(js_from(lambda a, b: (a * torch.log(a / b)).sum(-1)), r"0·\(−inf\) = NaN", "unstable",
                 id="naive KL"),
    pytest.param(js_from(lambda a, b: torch.xlogy(a, a / b).sum(-1)), r"there m_k = 0 too", "edge",
                 id="xlogy(p, p/m), p = q = 0"),
    pytest.param(lambda p, q: torch.as_tensor(jensenshannon(p.numpy(), q.numpy(), axis=-1)), r"returned √JS",
                 "formula", id="scipy distance"),
    pytest.param(lambda p, q: js_from(kl_xlogy)(p, q) / math.log(2), r"measured JS in bits", "formula",
                 id="bits"),
    pytest.param(lambda p, q: 0.5 * (kl_xlogy(p, q) + kl_xlogy(q, p)), r"symmetrised the KL", "formula",
                 id="symmetrised KL"),
    pytest.param(lambda p, q: kl_xlogy(p, q) + kl_xlogy(q, p), r"Jeffreys", "formula", id="Jeffreys"),
    pytest.param(lambda p, q: 2 * js_from(kl_xlogy)(p, q), r"forgot the ½ weights", "formula", id="no 1/2"),
    pytest.param(lambda p, q: 0.5 * kl_xlogy(p, p + q) + 0.5 * kl_xlogy(q, p + q), r"m = p \+ q", "formula",
                 id="m = p + q"),
    pytest.param(lambda p, q: kl_xlogy(p, (p + q) / 2), r"only one half, KL\(p‖m\) \(or", "formula",
                 id="one half"),
]


@pytest.mark.parametrize("fn", JS_RIGHT)
def test_js_accepts(fn, capsys):
    check_js_divergence(fn)
    assert "✓ Exercise 1.3" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", JS_WRONG)
def test_js_rejects(fn, hint, kind):
    assert_rejected(JS_DIVERGENCE_CHECK, fn, hint)


# ----------------------------------------------------------------------------- 1.4 Gaussian MLE

def mle_two_pass(x):
    mu = x.sum() / len(x)
    return mu, ((x - mu) ** 2).sum() / len(x)


def mle_loop(x):
    values = x.tolist()
    mu = sum(values) / len(values)
    return mu, sum((v - mu) ** 2 for v in values) / len(values)


def mle_centres_in_place(x):
    mu = x.mean()
    x -= mu
    return mu, (x**2).mean()


def mle_var_mean(x):
    var, mu = torch.var_mean(x, correction=0)
    return mu, var


MLE_RIGHT = [
    pytest.param(ref.gaussian_mle, id="reference"),
    pytest.param(mle_two_pass, id="two-pass"),
    pytest.param(lambda x: (x.mean().item(), x.var(correction=0).item()), id="python floats"),
    pytest.param(lambda x: (np.mean(x.numpy()), np.var(x.numpy())), id="numpy float64"),
    pytest.param(mle_loop, id="loop"),
    pytest.param(mle_var_mean, id="var_mean"),
    pytest.param(lambda x: torch.stack(mle_var_mean(x)), id="stacked (2,) tensor"),
    pytest.param(lambda x: list(mle_var_mean(x)), id="list"),
]
MLE_WRONG = [
    pytest.param(mle_centres_in_place, r"modified its argument `x` in place", "in-place", id="x -= mu"),
    pytest.param(lambda x: x.mean(), r"return a tuple \(mu, var\)", "type", id="one tensor"),
    pytest.param(lambda x: (x.mean().numpy(), x.var(correction=0).numpy()), r"`mu`: you returned a NumPy array",
                 "type", id="numpy arrays"),
    pytest.param(lambda x: (x.mean(), (x**2).mean() - x.mean() ** 2), r"catastrophic cancellation", "unstable",
                 id="E[x^2] - E[x]^2"),
    pytest.param(lambda x: (x.mean(), (x * x).sum() / len(x) - (x.sum() / len(x)) ** 2),
                 r"catastrophic cancellation", "unstable", id="E[x^2] - E[x]^2, other rounding"),
    pytest.param(lambda x: (x.mean(), x.var() * (len(x) - 1) / len(x)), r"for a single sample", "edge",
                 id="var * (N-1)/N, N = 1"),
    pytest.param(lambda x: torch.var_mean(x, correction=0), r"torch\.var_mean gives the variance \*first\*",
                 "formula", id="(var, mean)"),
    pytest.param(lambda x: (x.mean(), x.var()), r"divided by N − 1", "formula", id="N-1"),
    pytest.param(lambda x: (x.mean(), x.std(correction=0)), r"returned the standard deviation;", "formula",
                 id="std"),
    pytest.param(lambda x: (x.mean(), x.std()), r"standard deviation with the N − 1", "formula", id="std N-1"),
    pytest.param(lambda x: (x.mean(), (x**2).mean()), r"raw second moment", "formula", id="E[x^2]"),
]


@pytest.mark.parametrize("fn", MLE_RIGHT)
def test_mle_accepts(fn, capsys):
    check_gaussian_mle(fn)
    assert "✓ Exercise 1.4" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", MLE_WRONG)
def test_mle_rejects(fn, hint, kind):
    assert_rejected(GAUSSIAN_MLE_CHECK, fn, hint)


def test_mle_stacked_tensor_of_the_wrong_length_is_a_type_hint_not_a_crash():
    with pytest.raises(CheckFailed, match=r"return a tuple \(mu, var\).*tensor of shape \(3,\)"):
        check_gaussian_mle(lambda x: torch.stack([x.mean(), x.var(correction=0), x.std()]))


# ----------------------------------------------------------------------------- every catalogue

CATALOGUES = {
    "1.1": (check_discrete_kl, DISCRETE_KL_CHECK, KL_WRONG, KL_RIGHT),
    "1.2": (check_kl_to_standard_normal, GAUSSIAN_KL_CHECK, GKL_WRONG, GKL_RIGHT),
    "1.3": (check_js_divergence, JS_DIVERGENCE_CHECK, JS_WRONG, JS_RIGHT),
    "1.4": (check_gaussian_mle, GAUSSIAN_MLE_CHECK, MLE_WRONG, MLE_RIGHT),
}
SYMPTOM_STUDENTS = {"your KL is finite where": lambda p, q: (p * torch.log((p + 1e-8) / (q + 1e-8))).sum(-1)}


(test_catalogue_is_complete, test_hint_words_are_not_in_labels_or_generic_messages,
 test_every_mistake_hint_is_reachable, test_not_implemented_gives_the_not_implemented_message) = \
    catalogue_tests(CATALOGUES, SYMPTOM_STUDENTS)



def test_checks_are_exported():
    import aigc_course.checks as checks
    from aigc_course.checks import divergences

    assert set(divergences.__all__) <= set(checks.__all__)
    assert len(divergences.__all__) == 4
    with pytest.raises(TypeError, match="pass your function itself"):
        check_gaussian_mle("not a function")


# Generated from the catalogue (see test_the_cases_are_the_ones_students_see); one entry per check.
CASE_SNAPSHOT = {'DISCRETE_KL_CHECK': [('3 outcomes, no zeros', '', (),
                        (((3,), 'torch.float64', 0, 0, 0, 0, 1.0, 1.7000000000000002, 0.38, 0.04666666666666666),
                         ((3,), 'torch.float64', 0, 0, 0, 0, 1.0, 2.0999999999999996, 0.38, 0.04666666666666667))),
                       ('batch of 2 pairs, shape (2, 4)', '', (),
                        (((2, 4), 'torch.float64', 0, 0, 0, 0, 2.0, 8.8, 0.67, 0.16999999999999998),
                         ((2, 4), 'torch.float64', 0, 0, 0, 0, 2.0, 7.6000000000000005, 0.82,
                          0.31999999999999995))),
                       ("float32, as in the lesson's demo", '', (),
                        (((3,), 'torch.float32', 0, 0, 0, 0, 0.9999999925494194, 1.3999999985098839,
                          0.5399999848008157, 0.2066666564345361),
                         ((3,), 'torch.float32', 0, 0, 0, 0, 1.0000000149011612, 2.2000000327825546,
                          0.36000001072883614, 0.026666667461395267))),
                       ('a single outcome (K = 1)', '', (),
                        (((1,), 'torch.float64', 0, 0, 0, 0, 1.0, 1.0, 1.0, 0.0),
                         ((1,), 'torch.float64', 0, 0, 0, 0, 1.0, 1.0, 1.0, 0.0))),
                       ('p has a zero entry', '', (),
                        (((3,), 'torch.float64', 0, 0, 0, 1, 1.0, 2.5, 0.5, 0.16666666666666669),
                         ((3,), 'torch.float64', 0, 0, 0, 0, 1.0, 2.2, 0.3600000000000001, 0.02666666666666667))),
                       ('q = 0 where p > 0: KL is +inf', '', (),
                        (((3,), 'torch.float64', 0, 0, 0, 1, 1.0, 1.5, 0.5, 0.16666666666666669),
                         ((3,), 'torch.float64', 0, 0, 0, 1, 1.0, 2.5, 0.5, 0.16666666666666669))),
                       ('p_k = q_k = 0 for the last outcome', '', (),
                        (((4,), 'torch.float64', 0, 0, 0, 2, 1.0, 1.5, 0.5, 0.25),
                         ((4,), 'torch.float64', 0, 0, 0, 1, 1.0, 2.25, 0.375, 0.125))),
                       ('8 sparse pairs over 1000 outcomes (float32)', '', (),
                        (((8, 1000), 'torch.float32', 0, 0, 0, 3973, 7.999999954039421, 32013.95243838434,
                          0.044624667111045235, 0.03662466720296639),
                         ((8, 1000), 'torch.float32', 0, 0, 0, 2015, 7.999999899017505, 31975.206041134392,
                          0.029278061816556754, 0.021278062018521737))),
                       ('q_k = 1e-310 (tiny, not zero)', '', (),
                        (((3,), 'torch.float64', 0, 0, 0, 0, 1.0, 1.7000000000000002, 0.38, 0.04666666666666666),
                         ((3,), 'torch.float64', 0, 0, 0, 0, 1.0, 2.4000000000000004, 0.52, 0.18666666666666668)))],
 'GAUSSIAN_KL_CHECK': [('one row, D = 3', '', (),
                        (((1, 3), 'torch.float64', 0, 0, 0, 1, -0.5, -1.5, 1.25, 1.1666666666666665),
                         ((1, 3), 'torch.float64', 0, 0, 0, 0, 2.2, 5.3, 2.02, 0.4066666666666666))),
                       ('batch of 3, D = 2 (first row is the prior itself: KL 0)', '', (),
                        (((3, 2), 'torch.float64', 0, 0, 0, 2, -0.3999999999999999, -1.5999999999999996, 5.2,
                          5.173333333333333),
                         ((3, 2), 'torch.float64', 0, 0, 0, 2, 1.2, 7.199999999999999, 5.34, 5.1))),
                       ('B = 1, D = 1', '', (),
                        (((1, 1), 'torch.float64', 0, 0, 0, 0, 0.7, 0.7, 0.48999999999999994, 0.0),
                         ((1, 1), 'torch.float64', 0, 0, 0, 0, -0.4, -0.4, 0.16000000000000003, 0.0))),
                       ('float32, B = 3, D = 64, log σ² around -12, +12 and 0', '', (),
                        (((3, 64), 'torch.float32', 0, 0, 0, 0, -11.857931031729095, -827.6334768838715,
                          166.2561483327631, 165.52380183092328),
                         ((3, 64), 'torch.float32', 0, 0, 0, 0, -2.342487482354045, 49510.39808449708,
                          18994.648936844253, 18994.620357429645)))],
 'GAUSSIAN_MLE_CHECK': [('x = [1, 2, 4, 5]', '', (),
                         (((4,), 'torch.float64', 0, 0, 0, 0, 12.0, 37.0, 46.0, 10.0),)),
                        ('25 samples of N(3, 2²)', '', (),
                         (((25,), 'torch.float64', 0, 0, 0, 0, 90.70059053060669, 1306.9224379800771,
                           408.0215112287915, 78.9576263247603),)),
                        ('7 samples of N(-1, 0.5²)', '', (),
                         (((7,), 'torch.float64', 0, 0, 0, 0, -7.185731010887135, -28.199390985431926,
                           8.266063351893543, 0.8896733289185369),)),
                        ('50 float32 samples', '', (),
                         (((50,), 'torch.float32', 0, 0, 0, 0, 43.55262526869774, 1231.0741291046143,
                           149.58423826999004, 111.64761491407785),)),
                        ('a single sample (N = 1): variance 0', '', (),
                         (((1,), 'torch.float64', 0, 0, 0, 0, 2.5, 2.5, 6.25, 0.0),)),
                        ('10 000 samples of N(1e8, 1)', '', (),
                         (((10000,), 'torch.float64', 0, 0, 0, 0, 999999999830.5166, 5000499998820994.0,
                           9.99999999661033e+19, 10165.72035055717),))],
 'JS_DIVERGENCE_CHECK': [('3 outcomes, no zeros', '', (),
                          (((3,), 'torch.float64', 0, 0, 0, 0, 1.0, 1.7000000000000002, 0.38, 0.04666666666666666),
                           ((3,), 'torch.float64', 0, 0, 0, 0, 1.0, 2.5, 0.45999999999999996,
                            0.12666666666666665))),
                         ('batch of 2 pairs', '', (),
                          (((2, 3), 'torch.float64', 0, 0, 0, 0, 2.0, 6.65, 0.915, 0.2483333333333333),
                           ((2, 3), 'torch.float64', 0, 0, 0, 0, 2.0, 7.4, 1.1000000000000003,
                            0.43333333333333335))),
                         ('float32', '', (),
                          (((3,), 'torch.float32', 0, 0, 0, 0, 0.9999999925494194, 1.3999999985098839,
                            0.5399999848008157, 0.2066666564345361),
                           ((3,), 'torch.float32', 0, 0, 0, 0, 1.0000000149011612, 2.2000000327825546,
                            0.36000001072883614, 0.026666667461395267))),
                         ('a single outcome (K = 1)', '', (),
                          (((1,), 'torch.float64', 0, 0, 0, 0, 1.0, 1.0, 1.0, 0.0),
                           ((1,), 'torch.float64', 0, 0, 0, 0, 1.0, 1.0, 1.0, 0.0))),
                         ('disjoint supports: JS = log 2', '', (),
                          (((4,), 'torch.float64', 0, 0, 0, 2, 1.0, 1.5, 0.5, 0.25),
                           ((4,), 'torch.float64', 0, 0, 0, 2, 1.0, 3.6, 0.52, 0.27))),
                         ('p_k = q_k = 0 for the last outcome', '', (),
                          (((3,), 'torch.float64', 0, 0, 0, 1, 1.0, 1.4, 0.52, 0.18666666666666665),
                           ((3,), 'torch.float64', 0, 0, 0, 1, 1.0, 1.7, 0.58, 0.24666666666666665))),
                         ('8 sparse pairs over 1000 outcomes (float32)', '', (),
                          (((8, 1000), 'torch.float32', 0, 0, 0, 4014, 7.999999741804514, 31947.69129772815,
                            0.044776119367679036, 0.036776119884069994),
                           ((8, 1000), 'torch.float32', 0, 0, 0, 2005, 7.999999986683125, 31995.111682151033,
                            0.02895564212064581, 0.020955642147279557)))]}
test_the_cases_are_the_ones_students_see = case_snapshot_test(checks_divergences, CASE_SNAPSHOT)


# ----------------------------------------------------------------------------- the planted wrong answers

def test_mistake_functions_compute_the_mistake_they_name():
    """Each helper that computes a wrong answer is the formula its hint describes, on a batch (3, 5)."""
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(3, 5, generator=g, dtype=torch.float64), -1)
    q = torch.softmax(torch.randn(3, 5, generator=g, dtype=torch.float64), -1)
    p[0, 1] = 0.0
    p = p / p.sum(-1, keepdim=True)
    naive = (p * (p.log() - q.log())).sum(-1)
    assert torch.isnan(checks_divergences._naive_kl(p, q)[0])
    assert torch.allclose(checks_divergences._naive_kl(p, q)[1:], naive[1:])
    assert torch.allclose(checks_divergences._ratio_kl(p, q), ref.kl_divergence(p, q))
    m = 0.5 * (p + q)
    js = checks_divergences._js_with(ref.kl_divergence)(p, q)
    assert torch.allclose(js, 0.5 * ref.kl_divergence(p, m) + 0.5 * ref.kl_divergence(q, m))
    x = torch.tensor([1.0, 2.0, 4.0, 7.0], dtype=torch.float64)
    mu, var = checks_divergences._one_pass_variance(x)
    assert float(mu) == 3.5 and float(var) == pytest.approx(((x - 3.5) ** 2).mean().item())


def _spread(centre, dx=1.0):
    """Three points centre - dx, centre, centre + dx: mean `centre`, unbiased std `dx`."""
    return torch.tensor([centre - dx, centre, centre + dx], dtype=torch.float64)


@pytest.mark.parametrize("x, mine, want, expected", [
    (_spread(1e8), (1e8, 1.5), (1e8, 2 / 3), True),  # the cancellation itself
    (_spread(-1e8), (-1e8, 1.5), (-1e8, 2 / 3), True),  # far below 0 too
    (_spread(1e8), (1e8 * (1 + 1e-8), 1.5), (1e8, 2 / 3), False),  # the mean is wrong as well
    (_spread(1e8), (1e8, 2 / 3 * (1 + 1e-7)), (1e8, 2 / 3), False),  # the variance is right
    (_spread(1e8), (1e8, 1.0), (1e8, 0.5), True),  # off by 0.5: not within any tolerance
    (_spread(1e8), (1e8, 1.5e-6), (1e8, 0.0), True),  # off by 1.5e-6 from 0
    (_spread(1000.0), (1000.0, 1.5), (1000.0, 2 / 3), False),  # |mean| = 1000 std: not far enough
    (_spread(1000.5), (1000.5, 1.5), (1000.5, 2 / 3), True),  # just beyond
    (_spread(1e3, 2.0), (1e3, 9.0), (1e3, 8 / 3), False),  # |mean| = 500 std
])
def test_cancellation_symptom(x, mine, want, expected):
    as_parts = tuple(np.array(v, dtype=np.float64) for v in mine), tuple(np.array(v, dtype=np.float64) for v in want)
    assert checks_divergences._cancellation(*as_parts, x) is expected
