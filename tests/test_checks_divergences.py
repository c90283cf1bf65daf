"""Lesson 01 self-checks: a catalogue of planted mistakes per exercise, each rejected with its own hint, and of
correct answers written differently (another dtype, NumPy, scipy, torch.distributions, a loop), each accepted.

To extend: add a row to the exercise's WRONG table (the answer, a regex of words that only its hint
contains, and its class) or RIGHT table.
"""

import math
import re

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from torch.distributions import Categorical, Normal, kl_divergence

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

REQUIRED = {"in-place", "type", "unstable", "edge"}
# The planted N = 1 mistakes call x.var() on one sample, which warns; that warning is the student's.
pytestmark = pytest.mark.filterwarnings(r"ignore:var\(\). degrees of freedom")


def not_implemented(*args, **kwargs):
    raise NotImplementedError("Exercise 1.x: replace this line with your code")


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
    with pytest.raises(CheckFailed, match=hint):
        check_discrete_kl(fn)


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
    with pytest.raises(CheckFailed, match=hint):
        check_kl_to_standard_normal(fn)


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
    with pytest.raises(CheckFailed, match=hint):
        check_js_divergence(fn)


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
    with pytest.raises(CheckFailed, match=hint):
        check_gaussian_mle(fn)


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


def _off(x):
    if isinstance(x, tuple):
        return tuple(_off(v) for v in x)
    return x * 1.5 + 0.25


def _nan(x):
    return tuple(_nan(v) for v in x) if isinstance(x, tuple) else x * math.nan


def _reshaped(x):
    return tuple(v[None] for v in x) if isinstance(x, tuple) else x[..., None]


def generic_messages(check):
    out = []
    for change in (_off, _nan, _reshaped):
        with pytest.raises(CheckFailed) as exc:
            check.run(lambda *a, change=change: change(check.reference(*a)))
        out.append(str(exc.value))
    return out


@pytest.mark.parametrize("exercise", CATALOGUES)
def test_catalogue_is_complete(exercise):
    _, _, wrong, right = CATALOGUES[exercise]
    kinds = {p.values[2] for p in wrong}
    assert REQUIRED <= kinds, f"missing classes {REQUIRED - kinds}"
    assert len(wrong) >= 5 and len(right) >= 2


@pytest.mark.parametrize("exercise", CATALOGUES)
def test_hint_words_are_not_in_labels_or_generic_messages(exercise):
    _, check, wrong, _ = CATALOGUES[exercise]
    generic = generic_messages(check)
    assert any("max |yours - reference|" in g for g in generic)
    texts = generic + [c.label for c in check.cases]
    for p in wrong:
        for text in texts:
            assert not re.search(p.values[1], text), (p.values[1], text)


@pytest.mark.parametrize("exercise", CATALOGUES)
def test_every_mistake_hint_is_reachable(exercise):
    checker, check, _, _ = CATALOGUES[exercise]
    for m in check.mistakes:
        student = m.wrong or next(s for k, s in SYMPTOM_STUDENTS.items() if k in m.hint)
        with pytest.raises(CheckFailed) as exc:
            checker(student)
        assert m.hint in str(exc.value)


@pytest.mark.parametrize("exercise", CATALOGUES)
def test_not_implemented_gives_the_not_implemented_message(exercise):
    with pytest.raises(CheckFailed, match="not implemented yet"):
        CATALOGUES[exercise][0](not_implemented)


def test_checks_are_exported():
    import aigc_course.checks as checks
    from aigc_course.checks import divergences

    assert set(divergences.__all__) <= set(checks.__all__)
    assert len(divergences.__all__) == 4
    with pytest.raises(TypeError, match="pass your function itself"):
        check_gaussian_mle("not a function")
