"""Lesson 04 self-checks: a catalogue of planted mistakes per exercise, each rejected with its own hint, and of
correct answers written differently (NumPy, scipy, a loop, another dtype), each accepted.

To extend: add a row to the exercise's WRONG table (the answer, a regex of words that only its hint
contains, and its class) or RIGHT table.
"""

import math

import numpy as np
import pytest
import torch
from catalogue import assert_rejected, case_snapshot_test, catalogue_tests
from scipy.stats import wasserstein_distance
from torch.nn import functional as F

import aigc_course.checks.wasserstein as checks_wasserstein
from aigc_course import gan
from aigc_course.checks import CheckFailed
from aigc_course.checks.wasserstein import (
    EARTH_MOVERS_1D_CHECK,
    GRADIENT_PENALTY_CHECK,
    WGAN_LOSSES_CHECK,
    check_earth_movers_1d,
    check_gradient_penalty_from_grads,
    check_wgan_losses,
)

# ----------------------------------------------------------------------------- 4.1 1-D earth-mover distance

def w1_sorted(x, y):
    xs, _ = torch.sort(x, dim=-1)
    ys, _ = torch.sort(y, dim=-1)
    return torch.mean(torch.abs(xs - ys), dim=-1)


def w1_scipy(x, y):
    rows = [wasserstein_distance(a, b) for a, b in zip(x.reshape(-1, x.shape[-1]).double().numpy(),
                                                        y.reshape(-1, y.shape[-1]).double().numpy(), strict=True)]
    return torch.tensor(rows, dtype=torch.float64).reshape(x.shape[:-1])


def w1_cdf_integral(x, y):
    """∫ |F_x − F_y| dt over the pooled sample: the CDFs are step functions, constant between pooled points."""
    n = x.shape[-1]
    pooled, order = torch.sort(torch.cat([x, y], dim=-1), dim=-1)
    steps = torch.cat([torch.ones_like(x), -torch.ones_like(y)], dim=-1).gather(-1, order)
    cdf_gap = steps.cumsum(dim=-1)[..., :-1] / n
    return (cdf_gap.abs() * pooled.diff(dim=-1)).sum(dim=-1)


def w1_loop(x, y):
    xs, ys = sorted(x.tolist()), sorted(y.tolist())
    return torch.tensor(sum(abs(a - b) for a, b in zip(xs, ys, strict=True)) / len(xs), dtype=torch.float64)


def w1_numpy_sort_in_place(x, y):
    a = x.numpy()
    a.sort(axis=-1)     # sorts the caller's tensor too: .numpy() shares its memory
    return torch.as_tensor(np.abs(a - np.sort(y.numpy(), axis=-1)).mean(axis=-1))


EMD_RIGHT = [
    pytest.param(checks_wasserstein._w1_sorted, id="reference"),
    pytest.param(w1_sorted, id="torch.sort"),
    pytest.param(w1_scipy, id="scipy per row"),
    pytest.param(w1_cdf_integral, id="integral of |F - G|"),
    pytest.param(lambda x, y: torch.as_tensor(np.abs(np.sort(x.numpy(), -1) - np.sort(y.numpy(), -1))
                                              .mean(-1)), id="numpy"),
    pytest.param(lambda x, y: w1_sorted(x.double(), y.double()), id="float64"),
    pytest.param(lambda x, y: torch.stack([w1_loop(a, b) for a, b in zip(x.reshape(-1, x.shape[-1]),
                                                                          y.reshape(-1, y.shape[-1]), strict=True)])
                 .reshape(x.shape[:-1]), id="loop"),
]
EMD_WRONG = [
    pytest.param(w1_numpy_sort_in_place, r"modified its argument `x` in place", "in-place", id="a.sort() on .numpy()"),
    pytest.param(lambda x, y: np.abs(np.sort(x.numpy(), -1) - np.sort(y.numpy(), -1)).mean(-1),
                 r"you returned a NumPy (array|scalar)", "type", id="numpy result"),
    pytest.param(lambda x, y: w1_sorted(x, y).tolist(), r"you returned a (list|Python float)", "type", id="list"),
    pytest.param(lambda x, y: w1_sorted(x.float(), y.float()), r"float32 keeps about 7 significant digits",
                 "unstable", id="cast to float32"),
    pytest.param(lambda x, y: w1_sorted(torch.tensor(x.numpy(), dtype=torch.float32),
                                        torch.tensor(y.numpy(), dtype=torch.float32)),
                 r"float32 keeps about 7 significant digits", "unstable", id="torch.tensor(..., float32)"),
    pytest.param(lambda x, y: (torch.sort(x, dim=0)[0] - torch.sort(y, dim=0)[0]).abs().mean(-1),
                 r"sorted along the wrong dimension", "edge", id="sort dim=0, batch"),
    pytest.param(lambda x, y: w1_sorted(x, y).mean(), r"reduced over the whole batch", "edge", id="mean over batch"),
    pytest.param(lambda x, y: (x - y).abs().mean(-1), r"paired the samples in the order they came", "formula",
                 id="not sorted"),
    pytest.param(lambda x, y: (torch.sort(x)[0] - y).abs().mean(-1), r"sorted only one", "formula",
                 id="only x sorted"),
    pytest.param(lambda x, y: (x - torch.sort(y)[0]).abs().mean(-1), r"sorted only one", "formula",
                 id="only y sorted"),
    pytest.param(lambda x, y: (torch.sort(x, descending=True)[0] - torch.sort(y)[0]).abs().mean(-1),
                 r"opposite orders", "formula", id="descending"),
    pytest.param(lambda x, y: ((torch.sort(x)[0] - torch.sort(y)[0]) ** 2).mean(-1), r"W2², the squared",
                 "formula", id="squared"),
    pytest.param(lambda x, y: ((torch.sort(x)[0] - torch.sort(y)[0]) ** 2).mean(-1).sqrt(),
                 r"you computed W2 = sqrt", "formula", id="W2"),
    pytest.param(lambda x, y: (torch.sort(x)[0] - torch.sort(y)[0]).abs().sum(-1), r"summed instead of averaging",
                 "formula", id="sum"),
    pytest.param(lambda x, y: (torch.sort(x)[0] - torch.sort(y)[0]).abs().sum(-1) / (x.shape[-1] - 1),
                 r"divided by N − 1", "formula", id="N - 1"),
    pytest.param(lambda x, y: (torch.sort(x)[0] - torch.sort(y)[0]).mean(-1), r"forgot the absolute value",
                 "formula", id="no abs"),
    pytest.param(lambda x, y: (x.mean(-1) - y.mean(-1)).abs(), r"only a lower bound on W1", "formula",
                 id="|mean difference|"),
    pytest.param(lambda x, y: torch.cdist(x.reshape(-1, 1), y.reshape(-1, 1), p=1).mean()
                 if x.ndim == 1 else (x[..., :, None] - y[..., None, :]).abs().mean((-2, -1)),
                 r"over all pairs", "formula", id="all pairs"),
]


@pytest.mark.parametrize("fn", EMD_RIGHT)
def test_earth_movers_1d_accepts(fn, capsys):
    check_earth_movers_1d(fn)
    assert "✓ Exercise 4.1" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", EMD_WRONG)
def test_earth_movers_1d_rejects(fn, hint, kind):
    assert_rejected(EARTH_MOVERS_1D_CHECK, fn, hint)


def test_the_reference_w1_is_the_hand_value_and_the_shift():
    x = torch.tensor([0.0, 2.0, 1.0, -0.5], dtype=torch.float64)
    y = torch.tensor([-1.0, 4.0, 5.0, 1.0], dtype=torch.float64)
    # sorted: [-0.5, 0, 1, 2] against [-1, 1, 4, 5]: |0.5| + |-1| + |-3| + |-3| = 7.5, over 4 samples
    assert checks_wasserstein._w1_sorted(x, y).item() == pytest.approx(1.875)
    assert checks_wasserstein._w1_sorted(x, x + 2.5).item() == pytest.approx(2.5)  # shifted copy: the shift
    batch = checks_wasserstein._w1_sorted(torch.stack([x, y]), torch.stack([y, y]))
    assert batch.shape == (2,) and batch.tolist() == pytest.approx([1.875, 0.0])


# ----------------------------------------------------------------------------- 4.2 WGAN losses

def losses_plain(real_scores, fake_scores):
    real, fake = real_scores.float(), fake_scores.float()
    return fake.mean() - real.mean(), -fake.mean()


def losses_double(real_scores, fake_scores):
    real, fake = real_scores.double(), fake_scores.double()
    estimate = real.mean() - fake.mean()      # the Wasserstein estimate; the critic maximises it
    return -estimate, -fake.mean()


def losses_negating_in_place(r, f):
    r.neg_()
    return f.float().mean() + r.float().mean(), -f.float().mean()


LOSS_RIGHT = [
    pytest.param(checks_wasserstein._wgan_losses, id="reference"),
    pytest.param(losses_plain, id="float32 means"),
    pytest.param(losses_double, id="float64, via the estimate"),
    pytest.param(lambda r, f: [gan.critic_loss(r, f), gan.wasserstein_generator_loss(f)], id="list, package"),
    pytest.param(lambda r, f: (f.float().sum() / f.numel() - r.float().sum() / r.numel(),
                               -f.float().sum() / f.numel()), id="sum / numel in float32"),
]
LOSS_WRONG = [
    pytest.param(losses_negating_in_place, r"modified its argument `r` in place", "in-place", id="r.neg_()"),
    pytest.param(lambda r, f: tuple(v.item() for v in losses_plain(r, f)),
                 r"`critic_loss`: you returned a Python float", "type", id=".item()"),
    pytest.param(lambda r, f: losses_plain(r, f)[0], r"return a tuple \(critic_loss, generator_loss\)", "type",
                 id="one tensor"),
    pytest.param(lambda r, f: (f.mean() - r.mean(), -f.mean()), r"overflows above 65 504", "type",
                 id="float16 result"),
    pytest.param(lambda r, f: ((f.sum() / len(f) - r.sum() / len(r)).float(), (-f.sum() / len(f)).float()),
                 r"exceeds float16's largest number", "unstable", id="sum in float16"),
    pytest.param(lambda r, f: ((f.mean() - r.mean()).float(), (-f.mean()).float()), r"went through float16",
                 "unstable", id="mean in float16, then .float()"),
    pytest.param(lambda r, f: ((f.float() - r.float()).mean(), -f.float().mean()),
                 r"each expectation is the mean over its own batch", "edge", id="mean of f - r, sizes differ"),
    pytest.param(lambda r, f: (r.float().mean() - f.float().mean(), -f.float().mean()),
                 r"critic's loss has the wrong sign", "formula", id="critic sign"),
    pytest.param(lambda r, f: (f.float().mean() - r.float().mean(), f.float().mean()),
                 r"generator's loss has the wrong sign", "formula", id="generator sign"),
    pytest.param(lambda r, f: (r.float().mean() - f.float().mean(), f.float().mean()), r"both signs are flipped",
                 "formula", id="both signs"),
    pytest.param(lambda r, f: losses_plain(r, f)[::-1], r"you returned \(generator_loss, critic_loss\)", "formula",
                 id="order"),
    pytest.param(lambda r, f: (losses_plain(r, f)[0], -losses_plain(r, f)[0]), r"is the Wasserstein estimate",
                 "formula", id="generator loss = estimate"),
    pytest.param(lambda r, f: (F.softplus(-r.float()).mean() + F.softplus(f.float()).mean(),
                               F.softplus(-f.float()).mean()), r"original GAN's losses", "formula", id="softplus"),
    pytest.param(lambda r, f: (f.float().sum() - r.float().sum(), -f.float().sum()), r"summed the scores",
                 "formula", id="sum"),
]


@pytest.mark.parametrize("fn", LOSS_RIGHT)
def test_wgan_losses_accepts(fn, capsys):
    check_wgan_losses(fn)
    assert "✓ Exercise 4.2" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", LOSS_WRONG)
def test_wgan_losses_rejects(fn, hint, kind):
    assert_rejected(WGAN_LOSSES_CHECK, fn, hint)


# ----------------------------------------------------------------------------- 4.3 gradient penalty

def penalty_explicit(grads):
    g = grads.reshape(grads.shape[0], -1).float()
    return ((g.pow(2).sum(dim=1).sqrt() - 1) ** 2).mean()


def penalty_scaled(grads):
    """Overflow-safe norm: divide by the largest entry, guarded for all-zero rows."""
    g = grads.flatten(1).double()
    top = g.abs().amax(dim=1, keepdim=True).clamp_min(1e-300)
    norms = top.squeeze(1) * (g / top).pow(2).sum(dim=1).sqrt()
    return ((norms - 1) ** 2).mean()


def penalty_loop(grads):
    terms = [(math.sqrt(sum(v * v for v in row.double().flatten().tolist())) - 1) ** 2 for row in grads]
    return torch.tensor(sum(terms) / len(terms), dtype=torch.float64)


def penalty_squares_in_place(grads):
    sq = grads.flatten(1)
    sq.pow_(2)          # flatten of a contiguous tensor is a view: this squares the caller's gradients
    return ((sq.float().sum(dim=1).sqrt() - 1) ** 2).mean()


def penalty_scaled_unguarded(grads):
    g = grads.flatten(1).double()
    top = g.abs().amax(dim=1, keepdim=True)
    norms = top.squeeze(1) * (g / top).pow(2).sum(dim=1).sqrt()
    return ((norms - 1) ** 2).mean()


PENALTY_RIGHT = [
    pytest.param(checks_wasserstein._penalty, id="reference"),
    pytest.param(penalty_explicit, id="sqrt of sum of squares, float32"),
    pytest.param(penalty_scaled, id="scaled norm, guarded"),
    pytest.param(penalty_loop, id="loop"),
    pytest.param(lambda g: torch.as_tensor(((np.linalg.norm(g.double().numpy().reshape(len(g), -1), axis=1) - 1)
                                            ** 2).mean()), id="numpy"),
]
PENALTY_WRONG = [
    pytest.param(penalty_squares_in_place, r"modified its argument `grads` in place", "in-place", id="pow_"),
    pytest.param(lambda g: penalty_explicit(g).numpy(), r"you returned a NumPy (array|scalar)", "type", id="numpy"),
    pytest.param(lambda g: penalty_explicit(g).item(), r"you returned a Python float", "type", id=".item()"),
    pytest.param(lambda g: (((g.flatten(1) ** 2).sum(1).sqrt() - 1) ** 2).mean().float(),
                 r"exceed float16's largest number", "unstable", id="sum of squares in float16"),
    pytest.param(lambda g: ((torch.linalg.vector_norm(g.flatten(1), dim=1).float() - 1) ** 2).mean(),
                 r"went through float16", "unstable", id="norm in float16"),
    pytest.param(penalty_scaled_unguarded, r"dividing by the largest entry", "edge", id="scaled norm, 0/0"),
    pytest.param(lambda g: ((g.double().norm(dim=-1) - 1) ** 2).mean(), r"norm over the last dimension only",
                 "edge", id="norm over dim=-1, images"),
    pytest.param(lambda g: ((g.double().flatten(1).pow(2).sum(1) - 1) ** 2).mean(), r"\(‖g‖² − 1\)²", "formula",
                 id="squared norm"),
    pytest.param(lambda g: (F.relu(g.double().flatten(1).norm(dim=1) - 1) ** 2).mean(), r"one-sided", "formula",
                 id="one-sided"),
    pytest.param(lambda g: (g.double().flatten(1).norm(dim=1) - 1).abs().mean(), r"forgot to square", "formula",
                 id="no square"),
    pytest.param(lambda g: (g.double().norm() - 1) ** 2, r"one norm over the whole batch", "formula",
                 id="batch norm"),
    pytest.param(lambda g: ((g.double().flatten(1).pow(2).mean(1).sqrt() - 1) ** 2).mean(), r"\(an RMS\)",
                 "formula", id="RMS"),
    pytest.param(lambda g: ((g.double().flatten(1).norm(dim=1) - 1) ** 2).sum(), r"summed over the batch",
                 "formula", id="sum"),
    pytest.param(lambda g: 10 * penalty_explicit(g), r"multiplied by λ = 10", "formula", id="lambda"),
]


@pytest.mark.parametrize("fn", PENALTY_RIGHT)
def test_gradient_penalty_accepts(fn, capsys):
    check_gradient_penalty_from_grads(fn)
    assert "✓ Exercise 4.3" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", PENALTY_WRONG)
def test_gradient_penalty_rejects(fn, hint, kind):
    assert_rejected(GRADIENT_PENALTY_CHECK, fn, hint)


def test_the_reference_penalty_is_the_hand_value_and_matches_the_package():
    grads = torch.tensor([[3.0, 4.0], [0.6, 0.8]], dtype=torch.float64)          # norms 5 and 1
    assert checks_wasserstein._penalty(grads).item() == pytest.approx(8.0)       # ((5-1)² + 0) / 2
    half = torch.full((2, 64), 300.0, dtype=torch.float16)                        # norm 2400 each
    assert checks_wasserstein._penalty(half).dtype == torch.float32
    assert checks_wasserstein._penalty(half).item() == pytest.approx(2399.0**2)
    # gan.gradient_penalty on a linear critic f(x) = <w, x>: every gradient is w, so the penalty is (‖w‖ − 1)².
    w = torch.tensor([[1.0, -2.0], [2.0, 0.5]], dtype=torch.float64)
    real, fake = torch.randn(5, 2, 2, dtype=torch.float64), torch.randn(5, 2, 2, dtype=torch.float64)
    package = gan.gradient_penalty(lambda x: (x * w).sum((1, 2)), real, fake)
    assert package.item() == pytest.approx(checks_wasserstein._penalty(w.expand(5, 2, 2)).item())


# ----------------------------------------------------------------------------- every catalogue

CATALOGUES = {
    "4.1": (check_earth_movers_1d, EARTH_MOVERS_1D_CHECK, EMD_WRONG, EMD_RIGHT),
    "4.2": (check_wgan_losses, WGAN_LOSSES_CHECK, LOSS_WRONG, LOSS_RIGHT),
    "4.3": (check_gradient_penalty_from_grads, GRADIENT_PENALTY_CHECK, PENALTY_WRONG, PENALTY_RIGHT),
}
SYMPTOM_STUDENTS = {
    "your loss is inf or NaN": lambda r, f: ((f.sum() / len(f) - r.sum() / len(r)).float(),
                                             (-f.sum() / len(f)).float()),
    "(scores.float())": lambda r, f: ((f.mean() - r.mean()).float(), (-f.mean()).float()),
    "your penalty is inf or NaN": lambda g: (((g.flatten(1) ** 2).sum(1).sqrt() - 1) ** 2).mean().float(),
    "(grads.float())": lambda g: ((torch.linalg.vector_norm(g.flatten(1), dim=1).float() - 1) ** 2).mean(),
    "you got NaN for an all-zero gradient": penalty_scaled_unguarded,
}


(test_catalogue_is_complete, test_hint_words_are_not_in_labels_or_generic_messages,
 test_every_mistake_hint_is_reachable, test_not_implemented_gives_the_not_implemented_message) = \
    catalogue_tests(CATALOGUES, SYMPTOM_STUDENTS)


GENERIC_WRONG_ANSWERS = {  # as tests/test_notebooks.py feeds every check exported by aigc_course.checks
    "forgot to return": lambda *args: None,
    "returned its first argument unchanged": lambda *args: args[0],
    "returned a NaN scalar": lambda *args: torch.tensor(math.nan, dtype=torch.float64),
    "returned a Python list": lambda *args: [0.0, 1.0],
}


@pytest.mark.parametrize("check", [check_earth_movers_1d, check_wgan_losses, check_gradient_penalty_from_grads])
@pytest.mark.parametrize("label", list(GENERIC_WRONG_ANSWERS))
def test_generic_wrong_answers_are_rejected(check, label):
    with pytest.raises(CheckFailed) as caught:
        check(GENERIC_WRONG_ANSWERS[label])
    assert str(caught.value).strip()


def test_checks_are_listed():
    assert checks_wasserstein.__all__ == ["check_earth_movers_1d", "check_wgan_losses",
                                          "check_gradient_penalty_from_grads"]
    with pytest.raises(TypeError, match="pass your function itself"):
        check_earth_movers_1d("not a function")


# ----------------------------------------------------------------------------- the symptoms

def _parts(*values):
    return tuple(np.array(v, dtype=np.float64) for v in values)


HALF, SINGLE = torch.zeros(2, dtype=torch.float16), torch.zeros(2, dtype=torch.float32)


@pytest.mark.parametrize("mine, want, args, expected", [
    (_parts(math.inf), _parts(1.0), (HALF,), True),
    (_parts(1.0, math.nan), _parts(1.0, 2.0), (SINGLE, HALF), True),       # any argument in float16
    (_parts(math.inf), _parts(1.0), (SINGLE,), False),                     # not half precision
    (_parts(math.inf), _parts(math.inf), (HALF,), False),                  # the reference is not finite either
    (_parts(1.5), _parts(1.0), (HALF,), False),                            # wrong, but finite
])
def test_nonfinite_symptom(mine, want, args, expected):
    assert checks_wasserstein._nonfinite_where_finite(mine, want, *args) is expected


@pytest.mark.parametrize("mine, want, args, expected", [
    (_parts(1.005), _parts(1.0), (HALF,), True),
    (_parts(-1.005, 2.0), _parts(-1.0, 2.0), (SINGLE, HALF), True),
    (_parts(1.005), _parts(1.0), (SINGLE,), False),                        # not half precision
    (_parts(1.02), _parts(1.0), (HALF,), False),                           # off by more than 1 %
    (_parts(math.inf), _parts(1.0), (HALF,), False),                       # not finite: the other symptom
    (_parts([1.0, 1.0]), _parts(1.0), (HALF,), False),                     # another shape
])
def test_rounded_through_half_symptom(mine, want, args, expected):
    assert checks_wasserstein._rounded_through_half(mine, want, *args) is expected


# Generated from the catalogue (see test_the_cases_are_the_ones_students_see); one entry per check.
CASE_SNAPSHOT = {'EARTH_MOVERS_1D_CHECK': [('x = [0, 2, 1, -0.5], y = [-1, 4, 5, 1]',
                            '',
                            (),
                            (((4,), 'torch.float64', 0, 0, 0, 1, 2.5, 5.0, 5.25, 3.6875),
                             ((4,), 'torch.float64', 0, 0, 0, 0, 9.0, 26.0, 43.0, 22.75))),
                           ('25 samples of N(0, 1) and of N(0.5, 2²)',
                            '',
                            (),
                            (((25,),
                              'torch.float64',
                              0,
                              0,
                              0,
                              0,
                              7.850295265303342,
                              165.96121899003862,
                              22.204492011287844,
                              19.739406581190078),
                             ((25,),
                              'torch.float64',
                              0,
                              0,
                              0,
                              0,
                              0.5838158616534947,
                              64.15223563237379,
                              68.24127795542441,
                              68.2276443170117))),
                           ('batch of 3 pairs, shape (3, 6)',
                            '',
                            (),
                            (((3, 6),
                              'torch.float64',
                              0,
                              0,
                              0,
                              0,
                              -2.871136179297933,
                              -8.831280966019571,
                              12.086394956855088,
                              11.628427014628778),
                             ((3, 6),
                              'torch.float64',
                              0,
                              0,
                              0,
                              0,
                              18.45802922032732,
                              158.18150694941573,
                              33.2727993166818,
                              14.34508583343418))),
                           ("float32, 200 samples each, as in the lesson's demo",
                            '',
                            (),
                            (((200,),
                              'torch.float32',
                              0,
                              0,
                              0,
                              0,
                              -12.990912834065966,
                              -1047.6027288443875,
                              171.32070007056333,
                              170.4768809892518),
                             ((200,),
                              'torch.float32',
                              0,
                              0,
                              0,
                              0,
                              406.1112998723984,
                              39152.737189650536,
                              1013.654646081043,
                              189.02270666079758))),
                           ('a single sample each (N = 1)',
                            '',
                            (),
                            (((1,), 'torch.float64', 0, 0, 0, 0, 2.5, 2.5, 6.25, 0.0),
                             ((1,), 'torch.float64', 0, 0, 0, 0, -0.5, -0.5, 0.25, 0.0))),
                           ('y is x shuffled: W1 = 0',
                            '',
                            (),
                            (((40,),
                              'torch.float64',
                              0,
                              0,
                              0,
                              0,
                              2.1020281809977783,
                              59.89721111448796,
                              40.540567392749026,
                              40.430104330906296),
                             ((40,),
                              'torch.float64',
                              0,
                              0,
                              0,
                              0,
                              2.10202818099778,
                              190.65202115218938,
                              40.540567392749026,
                              40.4301043309063))),
                           ('1000 samples around 1e8 (float64)',
                            '',
                            (),
                            (((1000,),
                              'torch.float64',
                              0,
                              0,
                              0,
                              0,
                              100000000048.26663,
                              50050000028175.984,
                              1.0000000009653324e+19,
                              985.5605267297067),
                             ((1000,),
                              'torch.float64',
                              0,
                              0,
                              0,
                              0,
                              100000000319.20148,
                              50050000151184.59,
                              1.0000000063840301e+19,
                              1242.4840770250953)))],
 'GRADIENT_PENALTY_CHECK': [('grads [[3, 4], [0.6, 0.8]]',
                             '',
                             (),
                             (((2, 2), 'torch.float64', 0, 0, 0, 0, 8.4, 16.0, 26.0, 8.36),)),
                            ('image-shaped gradients (4, 1, 3, 3)',
                             '',
                             (),
                             (((4, 1, 3, 3),
                               'torch.float64',
                               0,
                               0,
                               0,
                               0,
                               -3.168619497434773,
                               -27.01791470299015,
                               33.99607929553887,
                               33.71718625332988),)),
                            ('16 float32 gradients with norms in (0.7, 1.3)',
                             '',
                             (),
                             (((16, 2),
                               'torch.float32',
                               0,
                               0,
                               0,
                               0,
                               0.5389505065977573,
                               28.948507364839315,
                               16.99766350980448,
                               16.988586395786918),)),
                            ('4 gradients, the third all zero (a flat critic there)',
                             '',
                             (),
                             (((4, 3),
                               'torch.float64',
                               0,
                               0,
                               0,
                               3,
                               -3.704063172887377,
                               -23.548000311793064,
                               10.83122734672274,
                               9.6878870143277),)),
                            ('a single gradient (B = 1)',
                             '',
                             (),
                             (((1, 5),
                               'torch.float64',
                               0,
                               0,
                               0,
                               0,
                               2.3720488155997788,
                               4.635853974188598,
                               1.7563839662120078,
                               0.6310608494943454),)),
                            ('float16 gradients of size about 300, (8, 64)',
                             '',
                             (),
                             (((8, 64),
                               'torch.float16',
                               0,
                               0,
                               0,
                               0,
                               -1768.7679443359375,
                               2045939.7850341797,
                               44422320.643539265,
                               44416210.213771865),))],
 'WGAN_LOSSES_CHECK': [('real scores [2, 1, 0.5, 1.5], fake scores [-0.5, 0.25, 0, -1]',
                        '',
                        (),
                        (((4,), 'torch.float64', 0, 0, 0, 0, 5.0, 11.5, 7.5, 1.25),
                         ((4,), 'torch.float64', 0, 0, 0, 1, -1.25, -4.0, 1.3125, 0.921875))),
                       ('a float32 batch of 64 scores each',
                        '',
                        (),
                        (((64,),
                          'torch.float32',
                          0,
                          0,
                          0,
                          0,
                          17.625800848007202,
                          390.3017205744982,
                          61.29500475687744,
                          56.440803889164776),
                         ((64,),
                          'torch.float32',
                          0,
                          0,
                          0,
                          0,
                          -12.669906854629517,
                          -320.1597631275654,
                          58.22597228647104,
                          55.717745103580604))),
                       ('scores of shape (B, 1), as a critic returns them',
                        '',
                        (),
                        (((8, 1),
                          'torch.float64',
                          0,
                          0,
                          0,
                          0,
                          6.072976005790168,
                          32.91227938521414,
                          9.47827859927558,
                          4.868148903412692),
                         ((8, 1),
                          'torch.float64',
                          0,
                          0,
                          0,
                          0,
                          -18.380915494283244,
                          -94.84893236009731,
                          50.40269177490149,
                          8.170434973903776))),
                       ('5 real scores, 3 fake scores',
                        'real and fake batches may differ in size: each expectation is the mean over its own '
                        'batch.',
                        (),
                        (((5,), 'torch.float64', 0, 0, 0, 0, 6.0, 16.5, 16.5, 9.300000000000002),
                         ((3,), 'torch.float64', 0, 0, 0, 1, -1.0, 1.0, 5.0, 4.666666666666667))),
                       ('float16 scores from a mixed-precision critic, batch 4096',
                        '',
                        (),
                        (((4096,),
                          'torch.float16',
                          0,
                          0,
                          0,
                          0,
                          81960.671875,
                          167882856.125,
                          1644239.3942871094,
                          4212.115429341793),
                         ((4096,),
                          'torch.float16',
                          0,
                          0,
                          0,
                          0,
                          -81968.703125,
                          -167947437.921875,
                          1644400.4885253906,
                          4051.784425199032)))]}
test_the_cases_are_the_ones_students_see = case_snapshot_test(checks_wasserstein, CASE_SNAPSHOT)
