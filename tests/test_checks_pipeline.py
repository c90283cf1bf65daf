"""Lesson 00 self-checks: accept correct answers, reject each planted mistake with its targeted hint."""

import math

import pytest
import torch

from aigc_course import ngram as ref
from aigc_course.checks import (
    CheckFailed,
    check_adapted_probs,
    check_categorical_mle,
    check_perplexity,
    check_softmax_with_temperature,
)


def not_implemented(*args, **kwargs):
    raise NotImplementedError("Exercise 0.x: replace this line with your code")


# ----------------------------------------------------------------------------- 0.1 categorical MLE

def mle_by_hand(counts):
    """A correct answer written differently from the reference."""
    return counts / counts.sum(-1).unsqueeze(-1)


@pytest.mark.parametrize("fn", [ref.categorical_mle, mle_by_hand])
def test_categorical_mle_accepts_correct(fn, capsys):
    check_categorical_mle(fn)
    assert "✓ Exercise 0.1" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda c: c, "raw counts"),
    (lambda c: c / c.sum(0, keepdim=True), "wrong axis"),
    (lambda c: c / c.sum(), "grand total"),
    (lambda c: torch.softmax(c, -1), "softmax of the counts"),
])
def test_categorical_mle_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_categorical_mle(wrong)


# ----------------------------------------------------------------------------- 0.2 perplexity

def perplexity_as_float(log_probs):
    return math.exp(-float(log_probs.sum()) / len(log_probs))


@pytest.mark.parametrize("fn", [ref.perplexity_from_log_probs, perplexity_as_float])
def test_perplexity_accepts_correct(fn, capsys):
    check_perplexity(fn)
    assert "✓ Exercise 0.2" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda lp: -lp.mean(), "exponential"),
    (lambda lp: lp.mean().exp(), "sign error"),
    (lambda lp: (-lp.sum()).exp(), "summed the log-probs"),
    (lambda lp: 2.0 ** (-lp.mean()), "base mix-up"),
    (lambda lp: 1.0 / lp.exp().mean(), "geometric"),
])
def test_perplexity_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_perplexity(wrong)


# ----------------------------------------------------------------------------- 0.3 temperature

def softmax_by_hand(z, T):
    e = torch.exp((z - z.max(-1, keepdim=True).values) / T)
    return e / e.sum(-1, keepdim=True)


@pytest.mark.parametrize("fn", [ref.softmax_with_temperature, softmax_by_hand])
def test_softmax_with_temperature_accepts_correct(fn, capsys):
    check_softmax_with_temperature(fn)
    assert "✓ Exercise 0.3" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda z, T: torch.softmax(z * T, -1), "multiplied the logits by T"),
    (lambda z, T: z / T, "without the softmax"),
    (lambda z, T: torch.softmax(z, -1) / T, "divided the \\*probabilities\\*"),
    (lambda z, T: torch.softmax(z, -1), "ignored the temperature"),
    (lambda z, T: torch.softmax(z / T, 0), "wrong axis"),
])
def test_softmax_with_temperature_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_softmax_with_temperature(wrong)


# ----------------------------------------------------------------------------- 0.4 adaptation

def adapted_as_interpolation(n, q, lam):
    """The same estimate written as w · MLE + (1 - w) · q with w = N / (N + λ)."""
    total = n.sum(-1, keepdim=True)
    w = total / (total + lam)
    return w * n / total + (1 - w) * q


@pytest.mark.parametrize("fn", [ref.dirichlet_map, adapted_as_interpolation])
def test_adapted_probs_accepts_correct(fn, capsys):
    check_adapted_probs(fn)
    assert "✓ Exercise 0.4" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda n, q, lam: n + lam * q, "forgot to normalise"),
    (lambda n, q, lam: (n + lam) / (n.sum(-1, keepdim=True) + lam * n.shape[-1]), "add-λ smoothing"),
    (lambda n, q, lam: 0.5 * n / n.sum(-1, keepdim=True) + 0.5 * q, "fixed weight 1/2"),
    (lambda n, q, lam: (lam * n / n.sum(-1, keepdim=True) + n.sum(-1, keepdim=True) * q)
     / (n.sum(-1, keepdim=True) + lam), "weights are swapped"),
    (lambda n, q, lam: (n + lam * q) / (n.sum(-1, keepdim=True) + lam * n.shape[-1]), "divided by N \\+ λ·V"),
])
def test_adapted_probs_rejects_mistakes(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_adapted_probs(wrong)


# ----------------------------------------------------------------------------- shared behaviour

@pytest.mark.parametrize("check", [check_categorical_mle, check_perplexity, check_softmax_with_temperature,
                                   check_adapted_probs])
def test_not_implemented_gives_the_not_implemented_message(check):
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check(not_implemented)


@pytest.mark.parametrize("check", [check_categorical_mle, check_perplexity, check_softmax_with_temperature,
                                   check_adapted_probs])
def test_an_unrelated_wrong_answer_gets_a_generic_message(check):
    def off_by_a_bit(*args):
        ok = {check_categorical_mle: ref.categorical_mle, check_perplexity: ref.perplexity_from_log_probs,
              check_softmax_with_temperature: ref.softmax_with_temperature,
              check_adapted_probs: ref.dirichlet_map}[check]
        return ok(*args) * 1.5

    with pytest.raises(CheckFailed, match="max \\|yours - reference\\|"):
        check(off_by_a_bit)
