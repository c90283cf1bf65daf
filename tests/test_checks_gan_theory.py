"""Lesson 02 self-checks: a catalogue of planted mistakes per exercise, each rejected with its own hint, and of
correct answers written differently (another dtype, NumPy, a loop, torch.nn.functional), each accepted.

To extend: add a row to the exercise's WRONG table (the answer, a regex of words that only its hint
contains, and its class) or RIGHT table.
"""

import math

import numpy as np
import pytest
import torch
from catalogue import assert_rejected, case_snapshot_test, catalogue_tests
from scipy.special import expit
from torch.nn import functional as F

import aigc_course.checks.gan_theory as checks_gan_theory
from aigc_course import gan as ref
from aigc_course.checks import CheckFailed
from aigc_course.checks.gan_theory import (
    DISCRIMINATOR_LOSS_CHECK,
    NON_SATURATING_LOSS_CHECK,
    OPTIMAL_DISCRIMINATOR_CHECK,
    check_discriminator_loss,
    check_non_saturating_generator_loss,
    check_optimal_discriminator,
)

# ----------------------------------------------------------------------------- 2.1 optimal discriminator

def od_where(log_p, log_q):
    both_zero = torch.isneginf(log_p) & torch.isneginf(log_q)
    return torch.where(both_zero, torch.full_like(log_p, 0.5), torch.sigmoid(log_p - log_q))


def od_logsumexp(log_p, log_q):
    """exp(log p − logsumexp(log p, log q)), with the 0/0 points set to 1/2 afterwards."""
    pair = torch.stack([log_p, log_q])
    d = (log_p - torch.logsumexp(pair, dim=0)).exp()
    return torch.nan_to_num(d, nan=0.5)


def od_numpy(log_p, log_q):
    lp, lq = log_p.numpy(), log_q.numpy()
    with np.errstate(invalid="ignore"):
        d = expit(lp - lq)
    return np.where(np.isneginf(lp) & np.isneginf(lq), 0.5, d)


def od_loop(log_p, log_q):
    out = torch.empty_like(log_p)
    for i, (a, b) in enumerate(zip(log_p.flatten().tolist(), log_q.flatten().tolist(), strict=True)):
        if a == b == -math.inf:
            out.view(-1)[i] = 0.5
        else:
            m = max(a, b)
            out.view(-1)[i] = math.exp(a - m) / (math.exp(a - m) + math.exp(b - m))
    return out


def od_in_place(log_p, log_q):
    log_p -= log_q
    return torch.where(log_p.isnan(), torch.full_like(log_p, 0.5), torch.sigmoid(log_p))


OD_RIGHT = [
    pytest.param(checks_gan_theory._optimal_discriminator, id="reference"),
    pytest.param(od_where, id="where after sigmoid"),
    pytest.param(od_logsumexp, id="softmax over the pair via logsumexp"),
    pytest.param(lambda lp, lq: torch.from_numpy(od_numpy(lp, lq)), id="numpy + scipy expit"),
    pytest.param(od_loop, id="loop with max shift"),
    pytest.param(lambda lp, lq: torch.softmax(torch.stack([lp, lq]).double(), dim=0)[0].nan_to_num(0.5),
                 id="float64 softmax"),
]
OD_WRONG = [
    pytest.param(od_in_place, r"modified its argument `log_p` in place", "in-place", id="log_p -= log_q"),
    pytest.param(od_numpy, r"you returned a NumPy array", "type", id="numpy"),
    pytest.param(lambda lp, lq: od_where(lp, lq).half(), r"expected .* got torch.float16", "type", id="half"),
    pytest.param(lambda lp, lq: lp.exp() / (lp.exp() + lq.exp()), r"underflow: exp\(−1000\)", "unstable",
                 id="p / (p + q)"),
    pytest.param(lambda lp, lq: lp.exp() / (lp.exp() + lq.exp() + 1e-12), r"underflow: exp\(−1000\)", "unstable",
                 id="p / (p + q + eps)"),
    pytest.param(lambda lp, lq: torch.sigmoid(lp - lq), r"−inf − \(−inf\) = NaN", "edge", id="no p = q = 0 rule"),
    pytest.param(lambda lp, lq: torch.sigmoid(lq - lp), r"probability that x is \*fake\*", "formula",
                 id="swapped"),
    pytest.param(lambda lp, lq: lp - lq, r"returned the logit", "formula", id="logit"),
    pytest.param(lambda lp, lq: F.logsigmoid(lp - lq), r"returned log D\*", "formula", id="log D*"),
    pytest.param(lambda lp, lq: torch.exp(lp - lq), r"density ratio p/q", "formula", id="p/q"),
    pytest.param(lambda lp, lq: lp / (lp + lq), r"not densities", "formula", id="log_p/(log_p + log_q)"),
]


@pytest.mark.parametrize("fn", OD_RIGHT)
def test_optimal_discriminator_accepts(fn, capsys):
    check_optimal_discriminator(fn)
    assert "✓ Exercise 2.1" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", OD_WRONG)
def test_optimal_discriminator_rejects(fn, hint, kind):
    assert_rejected(OPTIMAL_DISCRIMINATOR_CHECK, fn, hint)


# ----------------------------------------------------------------------------- 2.2 discriminator loss

def dl_bce_with_logits(r, f):
    return (F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
            + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)))


def dl_loop(r, f):
    softplus = lambda x: max(x, 0.0) + math.log1p(math.exp(-abs(x)))  # noqa: E731
    real = sum(softplus(-x) for x in r.tolist()) / r.numel()
    fake = sum(softplus(x) for x in f.tolist()) / f.numel()
    return torch.tensor(real + fake, dtype=r.dtype)


def dl_sigmoid_in_place(r, f):
    r.neg_()
    return F.softplus(r).mean() + F.softplus(f).mean()


DL_RIGHT = [
    pytest.param(ref.discriminator_loss, id="reference"),
    pytest.param(dl_bce_with_logits, id="BCE with logits"),
    pytest.param(lambda r, f: -(F.logsigmoid(r).mean() + F.logsigmoid(-f).mean()), id="logsigmoid"),
    pytest.param(dl_loop, id="loop with a stable softplus"),
    pytest.param(lambda r, f: torch.as_tensor(np.logaddexp(0, -r.double().numpy()).mean()
                                              + np.logaddexp(0, f.double().numpy()).mean()), id="numpy logaddexp"),
]
DL_WRONG = [
    pytest.param(dl_sigmoid_in_place, r"modified its argument `r` in place", "in-place", id="r.neg_()"),
    pytest.param(lambda r, f: dl_bce_with_logits(r, f).item(), r"you returned a Python float", "type", id=".item()"),
    pytest.param(lambda r, f: dl_bce_with_logits(r, f).numpy(), r"you returned a NumPy", "type", id="numpy"),
    pytest.param(lambda r, f: -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean(),
                 r"log\(sigmoid\(·\)\) is numerically unstable", "unstable", id="log(sigmoid)"),
    pytest.param(lambda r, f: -torch.log(torch.sigmoid(r)).mean() - torch.log(torch.sigmoid(-f)).mean(),
                 r"log\(sigmoid\(·\)\) is numerically unstable", "unstable", id="log(sigmoid(-f))"),
    pytest.param(lambda r, f: F.binary_cross_entropy(torch.sigmoid(r), torch.ones_like(r))
                 + F.binary_cross_entropy(torch.sigmoid(f), torch.zeros_like(f)),
                 r"torch clamps each log at −100", "unstable", id="BCE on probabilities"),
    pytest.param(lambda r, f: (F.softplus(-r) + F.softplus(f)).mean(), r"different sizes here", "edge",
                 id="elementwise sum of the two batches"),
    pytest.param(lambda r, f: F.binary_cross_entropy_with_logits(torch.cat([r, f]),
                                                                 torch.cat([torch.ones_like(r), torch.zeros_like(f)])),
                 r"real and fake samples together", "formula", id="one BCE over the concatenation"),
    pytest.param(lambda r, f: F.logsigmoid(r).mean() + F.logsigmoid(-f).mean(), r"wrong sign: you returned V",
                 "formula", id="V instead of -V"),
    pytest.param(lambda r, f: dl_bce_with_logits(f, r), r"real and fake are swapped", "formula", id="swapped"),
    pytest.param(lambda r, f: F.softplus(-r).sum() + F.softplus(f).sum(), r"summed over the batch; the expectations",
                 "formula", id="sum"),
    pytest.param(lambda r, f: F.softplus(-r).mean(), r"only the real-data term", "formula", id="real term only"),
    pytest.param(lambda r, f: -torch.log(r).mean() - torch.log(1 - f).mean(), r"not probabilities", "formula",
                 id="logits as probabilities"),
]


@pytest.mark.parametrize("fn", DL_RIGHT)
def test_discriminator_loss_accepts(fn, capsys):
    check_discriminator_loss(fn)
    assert "✓ Exercise 2.2" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", DL_WRONG)
def test_discriminator_loss_rejects(fn, hint, kind):
    assert_rejected(DISCRIMINATOR_LOSS_CHECK, fn, hint)


# ----------------------------------------------------------------------------- 2.3 non-saturating generator loss

def ng_in_place(f):
    f.mul_(-1)
    return F.softplus(f).mean()


NG_RIGHT = [
    pytest.param(checks_gan_theory._non_saturating, id="reference"),
    pytest.param(lambda f: F.binary_cross_entropy_with_logits(f, torch.ones_like(f)), id="BCE with logits, label 1"),
    pytest.param(lambda f: -F.logsigmoid(f).mean(), id="-logsigmoid"),
    pytest.param(lambda f: (torch.clamp(-f, min=0) + torch.log1p(torch.exp(-f.abs()))).mean(),
                 id="hand-written stable softplus"),
    pytest.param(lambda f: torch.as_tensor(np.logaddexp(0.0, -f.double().numpy()).mean()), id="numpy logaddexp"),
]
NG_WRONG = [
    pytest.param(ng_in_place, r"modified its argument `f` in place", "in-place", id="f.mul_(-1)"),
    pytest.param(lambda f: [F.softplus(-f).mean().item()], r"you returned a list", "type", id="list"),
    pytest.param(lambda f: -torch.log(torch.sigmoid(f)).mean(), r"−log\(sigmoid\(f\)\) is numerically unstable",
                 "unstable", id="-log(sigmoid)"),
    pytest.param(lambda f: torch.log1p(torch.exp(-f)).mean(), r"−log\(sigmoid\(f\)\) is numerically unstable",
                 "unstable", id="log1p(exp(-f))"),
    pytest.param(lambda f: F.binary_cross_entropy(torch.sigmoid(f), torch.ones_like(f)),
                 r"torch clamps the log at −100", "unstable", id="BCE on probabilities"),
    pytest.param(lambda f: F.softplus(-f.clamp(-20, 20)).mean(), r"you clamped the logits", "edge",
                 id="logits clamped to ±20"),
    pytest.param(lambda f: -torch.log(torch.sigmoid(f).clamp(min=1e-7)).mean(), r"you clamped the logits", "edge",
                 id="probabilities clamped at 1e-7"),
    pytest.param(lambda f: F.logsigmoid(f).mean(), r"article's L_G", "formula", id="article's sign"),
    pytest.param(lambda f: -F.softplus(f).mean(), r"minimax \(saturating\) loss", "formula", id="minimax"),
    pytest.param(lambda f: F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)), r"labelled \*real\*",
                 "formula", id="BCE with label 0"),
    pytest.param(lambda f: F.softplus(-f).sum(), r"summed over the batch; the expectation is", "formula", id="sum"),
]


@pytest.mark.parametrize("fn", NG_RIGHT)
def test_non_saturating_loss_accepts(fn, capsys):
    check_non_saturating_generator_loss(fn)
    assert "✓ Exercise 2.3" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", NG_WRONG)
def test_non_saturating_loss_rejects(fn, hint, kind):
    assert_rejected(NON_SATURATING_LOSS_CHECK, fn, hint)


# ----------------------------------------------------------------------------- every catalogue

CATALOGUES = {
    "2.1": (check_optimal_discriminator, OPTIMAL_DISCRIMINATOR_CHECK, OD_WRONG, OD_RIGHT),
    "2.2": (check_discriminator_loss, DISCRIMINATOR_LOSS_CHECK, DL_WRONG, DL_RIGHT),
    "2.3": (check_non_saturating_generator_loss, NON_SATURATING_LOSS_CHECK, NG_WRONG, NG_RIGHT),
}
SYMPTOM_STUDENTS = {"you clamped the logits": lambda f: F.softplus(-f.clamp(-10, 10)).mean()}


(test_catalogue_is_complete, test_hint_words_are_not_in_labels_or_generic_messages,
 test_every_mistake_hint_is_reachable, test_not_implemented_gives_the_not_implemented_message) = \
    catalogue_tests(CATALOGUES, SYMPTOM_STUDENTS)


def test_checks_module_exports_three_checks():
    assert checks_gan_theory.__all__ == ["check_optimal_discriminator", "check_discriminator_loss",
                                         "check_non_saturating_generator_loss"]
    with pytest.raises(TypeError, match="pass your function itself"):
        check_discriminator_loss("not a function")


# ----------------------------------------------------------------------------- the planted wrong answers

def test_reference_optimal_discriminator_by_hand():
    """D* = p/(p + q) at hand-computed points, the −inf conventions, and the tails at −1000."""
    lp = torch.tensor([math.log(0.3), -math.inf, -1.0, -math.inf, -1000.0], dtype=torch.float64)
    lq = torch.tensor([math.log(0.1), -1.0, -math.inf, -math.inf, -1000.0 - math.log(3.0)], dtype=torch.float64)
    got = checks_gan_theory._optimal_discriminator(lp, lq)
    assert torch.allclose(got, torch.tensor([0.75, 0.0, 1.0, 0.5, 0.75], dtype=torch.float64), atol=1e-15)


def test_density_ratio_form_underflows_where_the_reference_does_not():
    lp, lq = torch.tensor([-1000.0], dtype=torch.float64), torch.tensor([-1001.0], dtype=torch.float64)
    assert checks_gan_theory._density_ratio_form(lp, lq).isnan().all()
    assert checks_gan_theory._optimal_discriminator(lp, lq).item() == pytest.approx(1 / (1 + math.exp(-1)))


def _parts(*values):
    return tuple(np.array(v, dtype=np.float64) for v in values)


@pytest.mark.parametrize("mine, want, lp, lq, expected", [
    ([math.nan], [0.7], [-1000.0], [-1000.85], True),     # 0/0
    ([0.0], [0.7], [-1000.0], [-1000.85], True),          # ε in the denominator
    ([1.0], [0.73], [-745.0], [-746.0], True),            # p subnormal, q = 0
    ([0.5], [0.7], [-1000.0], [-1000.85], False),         # a wrong value, but not an underflow symptom
    ([math.nan], [0.7], [-600.0], [-600.85], False),      # not deep enough for exp to underflow
    ([math.nan], [0.5], [-math.inf], [-math.inf], False),  # p = q = 0 is the edge case, not underflow
    ([0.0], [0.0], [-1000.0], [-math.inf], False),        # D* really is 0 there
])
def test_underflow_symptom(mine, want, lp, lq, expected):
    got = checks_gan_theory._underflow_symptom(_parts(mine), _parts(want), torch.tensor(lp, dtype=torch.float64),
                                               torch.tensor(lq, dtype=torch.float64))
    assert got is expected


@pytest.mark.parametrize("mine, want, f, expected", [
    (20.0, 30.0, [-30.0], True),
    (16.1, 30.0, [-30.0], True),
    (31.0, 30.0, [-30.0], False),             # larger: not a clamp
    (math.inf, 30.0, [-30.0], False),         # overflow, a different mistake
    (0.5, 0.7, [0.5], False),                 # no confidently rejected fake in the case
    (29.9999, 30.0, [-30.0], False),          # within the margin
])
def test_too_small_when_rejected_symptom(mine, want, f, expected):
    got = checks_gan_theory._too_small_when_rejected(_parts(mine), _parts(want), torch.tensor(f))
    assert got is expected


def test_bce_mistake_is_the_clamped_log():
    """The planted BCE form costs 100 (not 200) for a fake rejected with logit −200, in float32."""
    f = torch.tensor([-200.0])
    assert F.binary_cross_entropy(torch.sigmoid(f), torch.ones_like(f)).item() == pytest.approx(100.0)
    assert checks_gan_theory._non_saturating(f).item() == pytest.approx(200.0)
    real, fake = torch.tensor([-200.0]), torch.tensor([200.0])
    assert checks_gan_theory._bce_d_loss(real, fake).item() == pytest.approx(100.0 + 100.0)
    assert ref.discriminator_loss(real, fake).item() == pytest.approx(200.0 + 200.0)
    assert checks_gan_theory._naive_d_loss(torch.tensor([-100.0]), torch.tensor([0.0])).item() == math.inf


def test_the_lessons_corrections_are_named_by_the_checks():
    """The article's sign error, the underflowing density ratio and −V as a loss each get their own hint."""
    with pytest.raises(CheckFailed, match=r"article's L_G = E_z\[log D\(G\(z\)\)\]"):
        check_non_saturating_generator_loss(lambda f: F.logsigmoid(f).mean())
    with pytest.raises(CheckFailed, match=r"underflow: exp\(−1000\) is 0"):
        check_optimal_discriminator(lambda lp, lq: lp.exp() / (lp.exp() + lq.exp()))
    with pytest.raises(CheckFailed, match=r"wrong sign: you returned V\(D, G\)"):
        check_discriminator_loss(lambda r, f: F.logsigmoid(r).mean() + F.logsigmoid(-f).mean())


def test_a_crash_on_unequal_batches_shows_the_case_note():
    with pytest.raises(CheckFailed, match=r"raised RuntimeError(.|\n)*different sizes here"):
        check_discriminator_loss(lambda r, f: (F.softplus(-r) + F.softplus(f)).mean())


# Generated from the catalogue (see test_the_cases_are_the_ones_students_see); one entry per check.
CASE_SNAPSHOT = {'DISCRIMINATOR_LOSS_CHECK': [('3 real and 3 fake logits',
                               '',
                               (),
                               (((3,),
                                 'torch.float32',
                                 0,
                                 0,
                                 0,
                                 0,
                                 1.7000000029802322,
                                 3.1000000536441803,
                                 1.2099999868869793,
                                 0.2466666501760494),
                                ((3,),
                                 'torch.float32',
                                 0,
                                 0,
                                 0,
                                 0,
                                 0.19999999552965164,
                                 0.6999999955296516,
                                 0.26000001221895236,
                                 0.24666667948166549))),
                              ('all logits 0 (D = 1/2 everywhere): log 4',
                               '',
                               (),
                               (((4,), 'torch.float32', 0, 0, 0, 4, 0.0, 0.0, 0.0, 0.0),
                                ((4,), 'torch.float32', 0, 0, 0, 4, 0.0, 0.0, 0.0, 0.0))),
                              ('one real and one fake sample (float64)',
                               '',
                               (),
                               (((1,), 'torch.float64', 0, 0, 0, 0, 2.0, 2.0, 4.0, 0.0),
                                ((1,), 'torch.float64', 0, 0, 0, 0, -1.0, -1.0, 1.0, 0.0))),
                              ('5 real, 3 fake (float64)',
                               'the real and fake batches have different sizes here: each expectation is its own '
                               'mean, −mean(log D(x_real)) − mean(log(1 − D(x_fake))); do not add, stack or '
                               'concatenate them elementwise.',
                               (),
                               (((5,),
                                 'torch.float64',
                                 0,
                                 0,
                                 0,
                                 0,
                                 2.2,
                                 0.30000000000000004,
                                 15.54,
                                 14.572000000000001),
                                ((3,), 'torch.float64', 0, 0, 0, 0, -3.5, -9.0, 10.25, 6.166666666666666))),
                              ('a batch of 64 each, logits ~ N(0, 3²)',
                               '',
                               (),
                               (((64,),
                                 'torch.float32',
                                 0,
                                 0,
                                 0,
                                 0,
                                 17.797074735164642,
                                 1210.9653443396091,
                                 630.5803763404205,
                                 625.6313783852793),
                                ((64,),
                                 'torch.float32',
                                 0,
                                 0,
                                 0,
                                 0,
                                 -21.689767122268677,
                                 10.147230044007301,
                                 591.4597122399801,
                                 584.10899352407))),
                              ('float32 logits ±100 and ±200 (a very confident D)',
                               '',
                               (),
                               (((4,), 'torch.float32', 0, 0, 0, 0, 0.0, -300.0, 100000.0, 100000.0),
                                ((4,), 'torch.float32', 0, 0, 0, 0, 0.0, 300.0, 100000.0, 100000.0))),
                              ('float64 logits ±1000',
                               '',
                               (),
                               (((2,), 'torch.float64', 0, 0, 0, 0, 0.0, -1000.0, 2000000.0, 2000000.0),
                                ((2,), 'torch.float64', 0, 0, 0, 0, 0.0, 1000.0, 2000000.0, 2000000.0)))],
 'NON_SATURATING_LOSS_CHECK': [('4 fake logits',
                                '',
                                (),
                                (((4,),
                                  'torch.float32',
                                  0,
                                  0,
                                  0,
                                  0,
                                  1.199999988079071,
                                  3.299999952316284,
                                  5.3400000071525575,
                                  4.980000014305114),)),
                               ('all logits 0 (D(G(z)) = 1/2): log 2',
                                '',
                                (),
                                (((3,), 'torch.float32', 0, 0, 0, 3, 0.0, 0.0, 0.0, 0.0),)),
                               ('a single fake sample (float64)',
                                '',
                                (),
                                (((1,), 'torch.float64', 0, 0, 0, 0, 1.5, 1.5, 2.25, 0.0),)),
                               ('a batch of 64, logits ~ N(0, 3²)',
                                '',
                                (),
                                (((64,),
                                  'torch.float32',
                                  0,
                                  0,
                                  0,
                                  0,
                                  -19.593189485371113,
                                  -555.740389496088,
                                  551.376481057395,
                                  545.3781517728692),)),
                               ('D rejects the fakes confidently (logits −18 to −40), as early in training',
                                'this is the regime the non-saturating loss exists for: the loss is about −logit '
                                '(≈ 30) and its gradient about −1 per sample.',
                                (),
                                (((4,), 'torch.float32', 0, 0, 0, 0, -113.0, -294.0, 3449.0, 256.75),)),
                               ('float32 logits ±100 and ±200',
                                '',
                                (),
                                (((4,), 'torch.float32', 0, 0, 0, 0, 0.0, 300.0, 100000.0, 100000.0),)),
                               ('float64 logits −1000, 1000 and 0',
                                '',
                                (),
                                (((3,), 'torch.float64', 0, 0, 0, 1, 0.0, 1000.0, 2000000.0, 2000000.0),))],
 'OPTIMAL_DISCRIMINATOR_CHECK': [('four points, ordinary log-densities',
                                  '',
                                  (),
                                  (((4,), 'torch.float64', 0, 0, 0, 1, -3.5, -10.0, 5.25, 2.1875),
                                   ((4,), 'torch.float64', 0, 0, 0, 1, -6.0, -16.0, 14.0, 5.0))),
                                 ('float32, p = N(2, 0.5²) and q = N(0, 1) on 9 grid points',
                                  '',
                                  (),
                                  (((9,),
                                    'torch.float32',
                                    0,
                                    0,
                                    0,
                                    0,
                                    -140.03212393820286,
                                    -460.16061624884605,
                                    4370.777375076907,
                                    2192.000071227552),
                                   ((9,),
                                    'torch.float32',
                                    0,
                                    0,
                                    0,
                                    0,
                                    -42.7704473733902,
                                    -273.85223722457886,
                                    340.2567990056107,
                                    137.00000250339508))),
                                 ('a (2, 3) batch of points',
                                  '',
                                  (),
                                  (((2, 3), 'torch.float64', 0, 0, 0, 0, -9.5, -31.9, 27.79, 12.748333333333333),
                                   ((2, 3), 'torch.float64', 0, 0, 0, 0, -6.7, -24.7, 9.99, 2.508333333333333))),
                                 ('log-densities near −1000 (far out in both tails)',
                                  '',
                                  (),
                                  (((4,), 'torch.float64', 0, 0, 0, 0, -3946.0, -9582.0, 3997026.0, 104297.0),
                                   ((4,), 'torch.float64', 0, 0, 0, 0, -3746.5, -8984.5, 3557516.25, 48450.6875))),
                                 ('p = 0 or q = 0 at some points (log-density −inf)',
                                  'where only q = 0 the point is certainly real (D* = 1); where only p = 0 it is '
                                  'certainly fake (D* = 0).',
                                  (),
                                  (((3,), 'torch.float32', 0, 1, 0, 0, -2.5, -6.5, 4.25, 2.1666666666666665),
                                   ((3,), 'torch.float32', 0, 1, 0, 0, -2.5, -7.0, 4.25, 2.1666666666666665))),
                                 ('p = q = 0 at two points (outside both supports)',
                                  "where p = q = 0, p/(p + q) is 0/0; the lesson's convention is D* = 1/2 there "
                                  '(no evidence either way). torch.where(both −inf, 1/2, σ(log p − log q)) does '
                                  'it.',
                                  (),
                                  (((3,), 'torch.float64', 0, 2, 0, 0, -1.0, -2.0, 1.0, 0.6666666666666667),
                                   ((3,), 'torch.float64', 0, 2, 0, 0, -2.0, -4.0, 4.0, 2.666666666666667)))]}
test_the_cases_are_the_ones_students_see = case_snapshot_test(checks_gan_theory, CASE_SNAPSHOT)
