"""Lesson 01 self-checks: accept the reference, reject each planted mistake with its targeted hint."""

import math

import pytest
import torch

from aigc_course import divergences as ref
from aigc_course.checks import (
    CheckFailed,
    check_discrete_kl,
    check_gaussian_mle,
    check_js_divergence,
    check_kl_to_standard_normal,
)


def not_implemented(*args, **kwargs):
    raise NotImplementedError("Exercise 1.x: replace this line with your code")


# ----------------------------------------------------------------------------- 1.1 discrete KL

def kl_masked(p, q):
    """A correct student answer written differently from the reference."""
    terms = torch.where(p > 0, p * torch.log(p / q), torch.zeros_like(p))
    return terms.sum(-1)


@pytest.mark.parametrize("fn", [ref.kl_divergence, kl_masked])
def test_discrete_kl_accepts_correct(fn, capsys):
    check_discrete_kl(fn)
    assert "✓ Exercise 1.1" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda p, q: kl_masked(q, p), "arguments are swapped"),
    (lambda p, q: torch.where(p > 0, p * torch.log(q / p), torch.zeros_like(p)).sum(-1), "wrong sign"),
    (lambda p, q: (p * torch.log(p / q)).sum(-1), "0·log"),
    (lambda p, q: kl_masked(p, q) / math.log(2), "log base 2"),
    (lambda p, q: kl_masked(p, q).div(p.shape[-1]), "averaged over the outcomes"),
    (lambda p, q: kl_masked(p, q).sum(), "wrong shape"),
    (not_implemented, "not implemented"),
])
def test_discrete_kl_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_discrete_kl(wrong)


# ----------------------------------------------------------------------------- 1.2 Gaussian KL to N(0, I)

def kl_std_normal(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)


@pytest.mark.parametrize("fn", [ref.gaussian_kl, kl_std_normal])
def test_kl_std_normal_accepts_correct(fn, capsys):
    check_kl_to_standard_normal(fn)
    assert "✓ Exercise 1.2" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda mu, lv: 2 * kl_std_normal(mu, lv), "missing the factor ½"),
    (lambda mu, lv: 0.5 * ((0.5 * lv).exp() + mu**2 - 1 - 0.5 * lv).sum(-1), "standard deviation"),
    (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 + lv).sum(-1), "log-variance term has the wrong sign"),
    (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv).mean(-1), "averaged over the latent dimensions"),
    (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - lv).sum(-1), "forgot the −1"),
    (lambda mu, lv: 0.5 * (lv.exp() + mu**2 - 1 - lv), "wrong shape"),
    (not_implemented, "not implemented"),
])
def test_kl_std_normal_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_kl_to_standard_normal(wrong)


# ----------------------------------------------------------------------------- 1.3 JS divergence

def js_student(p, q):
    m = (p + q) / 2
    return 0.5 * kl_masked(p, m) + 0.5 * kl_masked(q, m)


@pytest.mark.parametrize("fn", [ref.js_divergence, js_student])
def test_js_accepts_correct(fn, capsys):
    check_js_divergence(fn)
    assert "✓ Exercise 1.3" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda p, q: 0.5 * (kl_masked(p, q) + kl_masked(q, p)), "symmetrised the KL"),
    (lambda p, q: kl_masked(p, q) + kl_masked(q, p), "Jeffreys"),
    (lambda p, q: kl_masked(p, (p + q) / 2) + kl_masked(q, (p + q) / 2), "forgot the ½ weights"),
    (lambda p, q: 0.5 * kl_masked(p, p + q) + 0.5 * kl_masked(q, p + q), "m = p \\+ q"),
    (lambda p, q: kl_masked(p, (p + q) / 2), "only one half"),
    (not_implemented, "not implemented"),
])
def test_js_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_js_divergence(wrong)


# ----------------------------------------------------------------------------- 1.4 Gaussian MLE

def mle_student(x):
    mu = x.sum() / len(x)
    return mu, ((x - mu) ** 2).sum() / len(x)


def mle_floats(x):
    return x.mean().item(), x.var(0, False).item()


@pytest.mark.parametrize("fn", [ref.gaussian_mle, mle_student, mle_floats])
def test_mle_accepts_correct(fn, capsys):
    check_gaussian_mle(fn)
    assert "✓ Exercise 1.4" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda x: (x.mean(), x.var()), "divided by N − 1"),
    (lambda x: (x.mean(), x.std(unbiased=False)), "returned the standard deviation;"),
    (lambda x: (x.mean(), x.std()), "standard deviation with the N − 1"),
    (lambda x: (x.mean(), (x**2).mean()), "raw second moment"),
    (lambda x: (x.median(), x.var(unbiased=False)), "wrong"),
    (lambda x: x.mean(), "return a pair"),
    (lambda x: None, "returned None"),
    (not_implemented, "not implemented"),
])
def test_mle_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_gaussian_mle(wrong)


def test_checks_are_exported():
    import aigc_course.checks as checks
    from aigc_course.checks import divergences

    assert set(divergences.__all__) <= set(checks.__all__)
    assert len(divergences.__all__) == 4
    with pytest.raises(TypeError, match="your function"):
        check_gaussian_mle("not a function")
