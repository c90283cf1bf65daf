"""Lesson 07 self-checks: a catalogue of planted mistakes per exercise, each rejected with its own hint, and of
correct answers written differently (F.cross_entropy, logsumexp, a hand-written max shift, NumPy, a Python loop,
F.linear, torch.cat), each accepted.

To extend: add a row to the exercise's WRONG table (the answer, a regex of words that only its hint
contains, and its class) or RIGHT table.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from catalogue import assert_rejected, case_snapshot_test, catalogue_tests

import aigc_course.checks.lm_basics as checks_lm
from aigc_course.checks import CheckFailed
from aigc_course.checks.lm_basics import (
    MLP_LOGITS_CHECK,
    TOKEN_CROSS_ENTROPY_CHECK,
    TOP_P_PROBS_CHECK,
    check_mlp_logits,
    check_token_cross_entropy,
    check_top_p_probs,
)
from aigc_course.lm import MLPLanguageModel
from aigc_course.sampling import top_p_filter

# ----------------------------------------------------------------------------- 7.1 per-token cross-entropy


def ce_logsumexp(logits, targets):
    return (logits.logsumexp(-1) - logits[torch.arange(len(targets)), targets]).mean()


def ce_shifted_by_hand(logits, targets):
    z = logits - logits.max(dim=-1, keepdim=True).values
    return (torch.log(torch.exp(z).sum(-1)) - z[torch.arange(len(targets)), targets]).mean()


def ce_numpy(logits, targets):
    z = logits.double().numpy()
    m = z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return torch.as_tensor(np.mean(lse - z[np.arange(len(z)), targets.numpy()]))


def ce_shift_in_place(logits, targets):
    logits -= logits.max(dim=-1, keepdim=True).values
    return ce_logsumexp(logits, targets)


CE_RIGHT = [
    pytest.param(checks_lm._cross_entropy, id="reference"),
    pytest.param(lambda lg, t: F.cross_entropy(lg, t), id="F.cross_entropy"),
    pytest.param(ce_logsumexp, id="logsumexp − target logit"),
    pytest.param(ce_shifted_by_hand, id="max shift by hand"),
    pytest.param(ce_numpy, id="numpy, float64"),
    pytest.param(lambda lg, t: F.nll_loss(F.log_softmax(lg, dim=1), t), id="nll_loss of log_softmax"),
]
CE_WRONG = [
    pytest.param(ce_shift_in_place, r"modified its argument `logits` in place", "in-place", id="logits -= max"),
    pytest.param(lambda lg, t: F.cross_entropy(lg, t).item(), r"you returned a Python float", "type", id=".item()"),
    pytest.param(lambda lg, t: ce_numpy(lg, t).numpy(), r"you returned a NumPy", "type", id="numpy"),
    pytest.param(checks_lm._log_of_softmax, r"log of a softmax underflows", "unstable", id="log(softmax)"),
    pytest.param(lambda lg, t: -torch.log(lg.exp() / lg.exp().sum(-1, keepdim=True))[torch.arange(len(t)), t].mean(),
                 r"log of a softmax underflows", "unstable", id="exp / sum exp"),
    pytest.param(lambda lg, t: -lg.softmax(-1).clamp_min(1e-9).log()[torch.arange(len(t)), t].mean(),
                 r"clamped the probabilities", "edge", id="clamp at 1e-9"),
    pytest.param(lambda lg, t: F.cross_entropy(lg, t, reduction="sum"), r"you summed over the tokens", "formula",
                 id="sum"),
    pytest.param(lambda lg, t: F.cross_entropy(lg, t, reduction="none"), r"one loss per token", "formula",
                 id="reduction none"),
    pytest.param(lambda lg, t: -F.cross_entropy(lg, t), r"mean log-probability", "formula", id="sign"),
    pytest.param(lambda lg, t: F.cross_entropy(lg.softmax(-1), t), r"softmax twice", "formula", id="probs in"),
    pytest.param(lambda lg, t: -lg.log_softmax(0)[torch.arange(len(t)), t].mean(), r"wrong axis", "formula",
                 id="dim=0"),
    pytest.param(lambda lg, t: -lg.log_softmax(-1).mean(), r"whole vocabulary", "formula", id="mean over V"),
    pytest.param(lambda lg, t: F.cross_entropy(lg, t) / math.log(2), r"in bits", "formula", id="bits"),
    pytest.param(lambda lg, t: F.cross_entropy(lg, t).exp(), r"returned the perplexity", "formula", id="exp"),
]


@pytest.mark.parametrize("fn", CE_RIGHT)
def test_cross_entropy_accepts(fn, capsys):
    check_token_cross_entropy(fn)
    assert "✓ Exercise 7.1" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", CE_WRONG)
def test_cross_entropy_rejects(fn, hint, kind):
    assert_rejected(TOKEN_CROSS_ENTROPY_CHECK, fn, hint)


def test_cross_entropy_reference_by_hand():
    """Case 1: p(target) = 3/5 and 2/8, so the loss is −(log 3/5 + log 1/4)/2; the −inf case gives +inf."""
    cases = TOKEN_CROSS_ENTROPY_CHECK.case_list()
    hand = -(math.log(3 / 5) + math.log(2 / 8)) / 2
    assert float(checks_lm._cross_entropy(*cases[0].args)) == pytest.approx(hand, abs=1e-12)
    assert float(checks_lm._cross_entropy(*cases[4].args)) == math.inf


def test_cross_entropy_cases_break_what_they_are_meant_to_break():
    """The confident float32 case: log(softmax) gives inf while the true loss is finite and large."""
    logits, targets = TOKEN_CROSS_ENTROPY_CHECK.case_list()[5].args
    assert logits.dtype == torch.float32
    assert math.isinf(float(checks_lm._log_of_softmax(logits, targets)))
    assert 10 < float(checks_lm._cross_entropy(logits, targets)) < 1e4


def test_finite_where_inf_symptom():
    inf, ok = (np.array(np.inf),), (np.array(3.0),)
    assert checks_lm._finite_where_inf(ok, inf)
    assert not checks_lm._finite_where_inf(inf, inf)
    assert not checks_lm._finite_where_inf(ok, ok)
    assert not checks_lm._finite_where_inf((np.array(-3.0),), (np.array(-np.inf),))   # only +inf counts


def test_log_softmax_unstable_symptom():
    wide = torch.tensor([[0.0, 200.0]])
    inf, ok = (np.array(np.inf),), (np.array(3.0),)
    assert checks_lm._log_softmax_unstable(inf, ok, wide, torch.tensor([0]))
    assert not checks_lm._log_softmax_unstable(inf, ok, torch.tensor([[0.0, 50.0]]), torch.tensor([0]))  # narrow
    assert not checks_lm._log_softmax_unstable(ok, ok, wide, torch.tensor([0]))                         # finite
    assert not checks_lm._log_softmax_unstable(inf, inf, wide, torch.tensor([0]))                       # inf in both


# ----------------------------------------------------------------------------- 7.2 nucleus probabilities


def tp_descending(logits, p):
    probs = logits.softmax(-1)
    sorted_probs, order = probs.sort(-1, descending=True)
    keep = sorted_probs.cumsum(-1) - sorted_probs < p                  # the mass before each token is < p
    kept = probs * keep.scatter(-1, order, keep)
    return kept / kept.sum(-1, keepdim=True)


def tp_loop(logits, p):
    flat = logits.reshape(-1, logits.shape[-1])
    out = torch.zeros(flat.shape, dtype=logits.dtype)
    for r in range(flat.shape[0]):
        probs = flat[r].double().softmax(-1)
        keep, mass = [], 0.0
        for i in probs.argsort(descending=True).tolist():
            keep.append(i)
            mass += probs[i].item()
            if mass >= p:
                break
        out[r, keep] = (probs[keep] / probs[keep].sum()).to(logits.dtype)
    return out.reshape(logits.shape)


def tp_hf_style(logits, p):
    sorted_logits, order = torch.sort(logits, descending=False)
    drop = sorted_logits.softmax(-1).cumsum(-1) <= 1 - p
    drop[..., -1:] = False                                             # min_tokens_to_keep = 1
    return logits.masked_fill(drop.scatter(-1, order, drop), -math.inf).softmax(-1)


def tp_masks_in_place(logits, p):
    drop = top_p_filter(logits, p) == -math.inf
    logits[drop] = -math.inf
    return logits.softmax(-1)


TOP_P_RIGHT = [
    pytest.param(checks_lm._top_p_probs, id="reference"),
    pytest.param(tp_descending, id="descending sort, mass before < p"),
    pytest.param(tp_loop, id="python loop"),
    pytest.param(tp_hf_style, id="HF TopPLogitsWarper style"),
]
TOP_P_WRONG = [
    pytest.param(tp_masks_in_place, r"modified its argument `logits` in place", "in-place", id="logits[drop] = -inf"),
    pytest.param(lambda lg, p: (top_p_filter(lg, p) > -math.inf), r"expected a floating-point tensor .* got torch.bool",
                 "type", id="keep mask"),
    pytest.param(lambda lg, p: tp_descending(lg, p).tolist(), r"you returned a list", "type", id="list"),
    pytest.param(checks_lm._naive_exp, r"exp of the logits overflows", "unstable", id="exp / sum exp"),
    pytest.param(checks_lm._ascending_without_guard, r"NaN when p is tiny", "edge", id="no min_tokens_to_keep"),
    pytest.param(checks_lm._one_too_few, r"one token too few", "formula", id="cum < p"),
    pytest.param(checks_lm._not_renormalised, r"did not renormalise", "formula", id="not renormalised"),
    pytest.param(checks_lm._sorted_order, r"in sorted order", "formula", id="sorted order"),
    pytest.param(top_p_filter, r"returned the filtered logits", "formula", id="logits"),
]


@pytest.mark.parametrize("fn", TOP_P_RIGHT)
def test_top_p_accepts(fn, capsys):
    check_top_p_probs(fn)
    assert "✓ Exercise 7.2" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", TOP_P_WRONG)
def test_top_p_rejects(fn, hint, kind):
    assert_rejected(TOP_P_PROBS_CHECK, fn, hint)


def test_top_p_reference_by_hand():
    """Case 1: (1/8, 1/2, 1/8, 1/4) with p = 0.7 keeps 1/2 and 1/4, renormalised to 2/3 and 1/3; p = 1e-9 keeps
    exactly the top token; the one-token vocabulary gives [1]."""
    cases = TOP_P_PROBS_CHECK.case_list()
    got = checks_lm._top_p_probs(*cases[0].args)
    assert torch.allclose(got, torch.tensor([0.0, 2 / 3, 0.0, 1 / 3], dtype=torch.float64), atol=1e-12)
    logits, p = cases[5].args
    got = checks_lm._top_p_probs(logits, p)
    assert torch.equal(got, F.one_hot(logits.argmax(-1), logits.shape[-1]).float())
    assert torch.equal(checks_lm._top_p_probs(*cases[4].args), torch.tensor([1.0], dtype=torch.float64))


def test_top_p_symptoms():
    nan, ok = (np.array([np.nan, 0.0]),), (np.array([1.0, 0.0]),)
    assert checks_lm._nan_from_overflow(nan, ok, torch.tensor([100.0, 0.0]), 0.5)
    assert not checks_lm._nan_from_overflow(nan, ok, torch.tensor([80.0, 0.0]), 0.5)          # exp is finite
    assert not checks_lm._nan_from_overflow(ok, ok, torch.tensor([100.0, 0.0]), 0.5)
    assert checks_lm._nan_with_tiny_p(nan, ok, torch.tensor([1.0, 0.0]), 1e-9)
    assert not checks_lm._nan_with_tiny_p(nan, ok, torch.tensor([1.0, 0.0]), 0.5)             # p not tiny
    assert not checks_lm._nan_with_tiny_p(ok, ok, torch.tensor([1.0, 0.0]), 1e-9)


# ----------------------------------------------------------------------------- 7.3 Bengio's MLP forward


def mlp_cat(idx, C, W_h, b_h, W_out, b_out):
    x = torch.cat([C[idx[:, k]] for k in range(idx.shape[1])], dim=1)
    return F.linear(torch.tanh(F.linear(x, W_h.T, b_h)), W_out.T, b_out)


def mlp_one_hot(idx, C, W_h, b_h, W_out, b_out):
    x = (F.one_hot(idx, C.shape[0]).to(C.dtype) @ C).flatten(1)        # one-hot rows times C = the lookup
    return torch.addmm(b_out, torch.tanh(torch.addmm(b_h, x, W_h)), W_out)


def mlp_transposes_in_place(idx, C, W_h, b_h, W_out, b_out):
    # F.linear wants (out, in) weights; .t_() transposes the caller's tensors themselves
    h = torch.tanh(F.linear(C[idx].flatten(1), W_h.t_(), b_h))
    return F.linear(h, W_out.t_(), b_out)


MLP_RIGHT = [
    pytest.param(checks_lm._mlp_logits, id="reference"),
    pytest.param(mlp_cat, id="torch.cat + F.linear"),
    pytest.param(mlp_one_hot, id="one-hot @ C, addmm"),
]
MLP_WRONG = [
    pytest.param(mlp_transposes_in_place, r"modified its argument `W_h` in place", "in-place", id="W_h.t_()"),
    pytest.param(lambda i, C, Wh, bh, Wo, bo: np.tanh((C[i].flatten(1) @ Wh + bh).numpy()) @ Wo.numpy() + bo.numpy(),
                 r"you returned a NumPy array", "type", id="np.tanh on .numpy()"),
    pytest.param(checks_lm._hand_tanh, r"tanh written as", "unstable", id="tanh by hand"),
    pytest.param(lambda i, C, Wh, bh, Wo, bo: torch.tanh(C[i].flatten(1).squeeze() @ Wh + bh) @ Wo + bo,
                 r"batch dimension disappeared", "edge", id="squeeze"),
    pytest.param(lambda i, *w: checks_lm._mlp_logits(i.flip(1), *w), r"context is in the wrong order", "formula",
                 id="reversed"),
    pytest.param(lambda i, C, Wh, bh, Wo, bo: torch.tanh(C[i].transpose(1, 2).flatten(1) @ Wh + bh) @ Wo + bo,
                 r"interleaved", "formula", id="transposed"),
    pytest.param(lambda i, C, Wh, bh, Wo, bo: (C[i].flatten(1) @ Wh + bh) @ Wo + bo, r"left out the tanh",
                 "formula", id="no tanh"),
    pytest.param(lambda i, C, Wh, bh, Wo, bo: torch.relu(C[i].flatten(1) @ Wh + bh) @ Wo + bo, r"used a ReLU",
                 "formula", id="relu"),
    pytest.param(lambda i, C, Wh, bh, Wo, bo: torch.tanh(C[i].flatten(1) @ Wh) @ Wo + bo, r"hidden bias b_h",
                 "formula", id="no b_h"),
    pytest.param(lambda i, C, Wh, bh, Wo, bo: torch.tanh(C[i].flatten(1) @ Wh + bh) @ Wo, r"output bias b_out",
                 "formula", id="no b_out"),
    pytest.param(lambda *a: checks_lm._mlp_logits(*a).softmax(-1), r"returned probabilities", "formula",
                 id="softmax"),
]


@pytest.mark.parametrize("fn", MLP_RIGHT)
def test_mlp_accepts(fn, capsys):
    check_mlp_logits(fn)
    assert "✓ Exercise 7.3" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", MLP_WRONG)
def test_mlp_rejects(fn, hint, kind):
    assert_rejected(MLP_LOGITS_CHECK, fn, hint)


def test_mlp_reference_by_hand_and_against_the_package_model():
    """Case 1 by hand: context (0, 2) → x = (1, 0, 1, −1), a = (1.5, 1.25); and the reference equals
    MLPLanguageModel's last position on a full context (nn.Linear stores W transposed)."""
    idx, C, W_h, b_h, W_out, b_out = MLP_LOGITS_CHECK.case_list()[0].args
    h = torch.tanh(torch.tensor([1.5, 1.25], dtype=torch.float64))
    hand = torch.stack([h[0], 2 * h[1], -h[0] + 0.5])
    assert torch.allclose(checks_lm._mlp_logits(idx, C, W_h, b_h, W_out, b_out)[0], hand, atol=1e-12)
    torch.manual_seed(0)
    model = MLPLanguageModel(11, context=3, embed_dim=4, hidden=7).double()
    ctx = torch.tensor([[3, 0, 10], [5, 5, 2]])
    with torch.no_grad():
        want = model(ctx)[:, -1]
        got = checks_lm._mlp_logits(ctx, model.token_embeddings, model.hidden.weight.T, model.hidden.bias,
                                    model.out.weight.T, model.out.bias)
    assert torch.allclose(got, want, atol=1e-12)


def test_saturation_symptom():
    args = MLP_LOGITS_CHECK.case_list()[4].args
    nan, ok = (np.array([[np.nan]]),), (np.array([[1.0]]),)
    assert checks_lm._nan_from_saturation(nan, ok, *args)
    assert not checks_lm._nan_from_saturation(nan, ok, *MLP_LOGITS_CHECK.case_list()[1].args)   # moderate weights
    assert not checks_lm._nan_from_saturation(ok, ok, *args)
    assert torch.isnan(checks_lm._hand_tanh(*args)).any()                                     # the case breaks it


# ----------------------------------------------------------------------------- every catalogue

CATALOGUES = {
    "7.1": (check_token_cross_entropy, TOKEN_CROSS_ENTROPY_CHECK, CE_WRONG, CE_RIGHT),
    "7.2": (check_top_p_probs, TOP_P_PROBS_CHECK, TOP_P_WRONG, TOP_P_RIGHT),
    "7.3": (check_mlp_logits, MLP_LOGITS_CHECK, MLP_WRONG, MLP_RIGHT),
}
SYMPTOM_STUDENTS = {}  # every mistake here also has a `wrong` answer that shows it

(test_catalogue_is_complete, test_hint_words_are_not_in_labels_or_generic_messages,
 test_every_mistake_hint_is_reachable, test_not_implemented_gives_the_not_implemented_message) = catalogue_tests(
    CATALOGUES, SYMPTOM_STUDENTS)


def test_checks_are_listed_and_refuse_a_non_function():
    assert checks_lm.__all__ == ["check_token_cross_entropy", "check_top_p_probs", "check_mlp_logits"]
    for check in (check_token_cross_entropy, check_top_p_probs, check_mlp_logits):
        with pytest.raises(TypeError, match="pass your function itself"):
            check("not a function")


def test_generic_wrong_answers_are_refused():
    """The answers tests/test_notebooks.py feeds every exported check."""
    for check in (check_token_cross_entropy, check_top_p_probs, check_mlp_logits):
        for wrong in (lambda *a: None, lambda *a: a[0], lambda *a: torch.tensor(math.nan, dtype=torch.float64),
                      lambda *a: [0.0, 1.0]):
            with pytest.raises(CheckFailed):
                check(wrong)


# Generated from the catalogue (see test_the_cases_are_the_ones_students_see); one entry per check.
CASE_SNAPSHOT = {'MLP_LOGITS_CHECK': [('V = 3, d = 2, n = 2, hidden 2: contexts (0, 2) and (1, 1)',
                       '',
                       (),
                       (((2, 2), 'torch.int64', 0, 0, 0, 1, 4.0, 11.0, 6.0, 2.0),
                        ((3, 2), 'torch.float64', 0, 0, 0, 2, 2.0, 4.0, 4.0, 3.333333333333334),
                        ((4, 2), 'torch.float64', 0, 0, 0, 4, 1.0, -0.5, 2.5, 2.375),
                        ((2,), 'torch.float64', 0, 0, 0, 1, 0.25, 0.5, 0.0625, 0.03125),
                        ((2, 3), 'torch.float64', 0, 0, 0, 3, 2.0, 8.0, 6.0, 5.333333333333334),
                        ((3,), 'torch.float64', 0, 0, 0, 2, 0.5, 1.5, 0.25, 0.16666666666666669))),
                      ('B = 5 contexts of n = 3 characters, V = 27, d = 4, hidden 16',
                       '',
                       (),
                       (((5, 3), 'torch.int64', 0, 0, 0, 0, 256.0, 1826.0, 5196.0, 826.9333333333334),
                        ((27, 4),
                         'torch.float64',
                         0,
                         0,
                         0,
                         0,
                         -18.350433762798723,
                         -1359.9715595040552,
                         110.11582390416945,
                         106.99787557747626),
                        ((12, 16),
                         'torch.float64',
                         0,
                         0,
                         0,
                         0,
                         5.765909859964546,
                         615.4225743298927,
                         15.729218031069905,
                         15.556063257563466),
                        ((16,),
                         'torch.float64',
                         0,
                         0,
                         0,
                         0,
                         0.4142987713125783,
                         3.924431472285557,
                         0.06386246404711902,
                         0.05313474705267452),
                        ((16, 27),
                         'torch.float64',
                         0,
                         0,
                         0,
                         0,
                         0.23468124099713827,
                         251.55787162444804,
                         24.05782544975074,
                         24.057697960665383),
                        ((27,),
                         'torch.float64',
                         0,
                         0,
                         0,
                         0,
                         -0.17157145651084563,
                         1.6670559291652125,
                         0.19001317746655313,
                         0.18892292692250673))),
                      ('float32, B = 6, n = 4, V = 20, d = 3',
                       '',
                       (),
                       (((6, 4), 'torch.int64', 0, 0, 0, 1, 198.0, 2337.0, 2436.0, 802.5),
                        ((20, 3),
                         'torch.float32',
                         0,
                         0,
                         0,
                         0,
                         10.709141529747285,
                         138.86661231913604,
                         53.59282284476958,
                         51.68139430636695),
                        ((12, 8),
                         'torch.float32',
                         0,
                         0,
                         0,
                         0,
                         3.3718501697294414,
                         63.15617515007034,
                         9.24508830270244,
                         9.126657328045104),
                        ((8,),
                         'torch.float32',
                         0,
                         0,
                         0,
                         0,
                         0.30375775194261223,
                         1.1145579756703228,
                         0.024075176697624347,
                         0.012541580214470653),
                        ((8, 20),
                         'torch.float32',
                         0,
                         0,
                         0,
                         0,
                         6.574927792098606,
                         314.84324591138284,
                         21.966674442841143,
                         21.696488971145452),
                        ((20,),
                         'torch.float32',
                         0,
                         0,
                         0,
                         0,
                         0.6140740448608994,
                         0.8923307051882148,
                         0.14285500692159575,
                         0.12400066029300444))),
                      ('one context of one token (B = 1, n = 1)',
                       'a batch of one is still a batch: the logits have shape (1, V).',
                       (),
                       (((1, 1), 'torch.int64', 0, 0, 0, 0, 8.0, 8.0, 64.0, 0.0),
                        ((10, 5),
                         'torch.float64',
                         0,
                         0,
                         0,
                         0,
                         -8.882868270118847,
                         -190.75055453842717,
                         48.810499905567895,
                         47.232392931482224),
                        ((5, 12),
                         'torch.float64',
                         0,
                         0,
                         0,
                         0,
                         1.7480574911291908,
                         140.47726706523272,
                         11.697191473180164,
                         11.64626305664195),
                        ((12,),
                         'torch.float64',
                         0,
                         0,
                         0,
                         0,
                         0.4498991445595396,
                         3.2866137790197154,
                         0.10845900946248267,
                         0.09159157277286555),
                        ((12, 10),
                         'torch.float64',
                         0,
                         0,
                         0,
                         0,
                         -1.1883907238595122,
                         80.25820760319043,
                         9.474697070067062,
                         9.462928132462434),
                        ((10,),
                         'torch.float64',
                         0,
                         0,
                         0,
                         0,
                         0.2222875613351956,
                         1.8225961097786203,
                         0.11108207444553962,
                         0.10614089845310477))),
                      ('float32, weights 40× too large: pre-activations in the hundreds',
                       '',
                       (),
                       (((4, 3), 'torch.int64', 0, 0, 0, 2, 58.0, 341.0, 452.0, 171.66666666666666),
                        ((15, 6),
                         'torch.float32',
                         0,
                         0,
                         0,
                         0,
                         9.061259768903255,
                         457.79220264591277,
                         63.626772848138074,
                         62.714479197032034),
                        ((18, 10),
                         'torch.float32',
                         0,
                         0,
                         0,
                         0,
                         -423.87341629434377,
                         -45644.70240845624,
                         15582.291684295807,
                         14584.132389623373),
                        ((10,),
                         'torch.float32',
                         0,
                         0,
                         0,
                         0,
                         -0.16134406067430973,
                         -0.6942506991326809,
                         0.06143935679159636,
                         0.05883616620010883),
                        ((10, 15),
                         'torch.float32',
                         0,
                         0,
                         0,
                         0,
                         3.2188811637461185,
                         183.80581030528992,
                         14.596686241526147,
                         14.527611601884017),
                        ((15,),
                         'torch.float32',
                         0,
                         0,
                         0,
                         0,
                         0.687496276339516,
                         3.682048480492085,
                         0.2268512763308629,
                         0.19534120099881624)))],
 'TOKEN_CROSS_ENTROPY_CHECK': [('N = 2 tokens, V = 3: p(target) = 3/5 and 2/8',
                                '',
                                (),
                                (((2, 3),
                                  'torch.float64',
                                  0,
                                  0,
                                  0,
                                  3,
                                  3.4011973816621555,
                                  14.626440774180603,
                                  4.277692368711018,
                                  2.3496684305401017),
                                 ((2,), 'torch.int64', 0, 0, 0, 1, 1.0, 1.0, 1.0, 0.5))),
                               ('N = 50 tokens, V = 27 characters, float32',
                                '',
                                (),
                                (((50, 27),
                                  'torch.float32',
                                  0,
                                  0,
                                  0,
                                  0,
                                  25.115887774794828,
                                  47435.70216281043,
                                  2977.615819901981,
                                  2977.1485548510805),
                                 ((50,), 'torch.int64', 0, 0, 0, 2, 607.0, 14714.0, 10337.0, 2968.02))),
                               ('a single token (N = 1)',
                                '',
                                (),
                                (((1, 10),
                                  'torch.float64',
                                  0,
                                  0,
                                  0,
                                  0,
                                  -3.477022597067515,
                                  -43.75144622177976,
                                  19.871228113692627,
                                  18.662259499640818),
                                 ((1,), 'torch.int64', 0, 0, 0, 1, 0.0, 0.0, 0.0, 0.0))),
                               ('N = V = 12 (a square table)',
                                '',
                                (),
                                (((12, 12),
                                  'torch.float64',
                                  0,
                                  0,
                                  0,
                                  0,
                                  -21.465470786892958,
                                  -1166.2123494782093,
                                  116.53510250827821,
                                  113.33533559089659),
                                 ((12,), 'torch.int64', 0, 0, 0, 0, 61.0, 471.0, 435.0, 124.91666666666667))),
                               ('one target has logit −inf',
                                'a token the model rules out (logit −inf, probability exactly 0) costs −log 0 = '
                                '+inf nats, and so does the mean: the loss must say inf, not a large finite '
                                'number.',
                                (),
                                (((4, 6),
                                  'torch.float64',
                                  0,
                                  1,
                                  0,
                                  0,
                                  1.5887436208607917,
                                  37.82252429347941,
                                  67.65712667897074,
                                  67.55195558343634),
                                 ((4,), 'torch.int64', 0, 0, 0, 1, 11.0, 29.0, 43.0, 12.75))),
                               ('a confident model: float32 logits spread over ±500',
                                'softmax gives exactly 0 in float32 to every token more than ~104 below the '
                                'largest logit, but its log-probability is a perfectly finite number (minus the '
                                'gap).',
                                (),
                                (((8, 30),
                                  'torch.float32',
                                  0,
                                  0,
                                  0,
                                  0,
                                  -850.9798603057861,
                                  -279866.50145339966,
                                  5922281.253285689,
                                  5919263.891941331),
                                 ((8,), 'torch.int64', 0, 0, 0, 0, 126.0, 530.0, 2544.0, 559.5)))],
 'TOP_P_PROBS_CHECK': [('V = 4, p(token) = (1/8, 1/2, 1/8, 1/4), p = 0.7',
                        '1/2 alone is less than 0.7, so the nucleus needs the next token too: {1/2, 1/4} (mass '
                        '3/4 ≥ 0.7), renormalised to (0, 2/3, 0, 1/3).',
                        (),
                        (((4,),
                          'torch.float64',
                          0,
                          0,
                          0,
                          0,
                          -6.238324625039508,
                          -15.249237972318795,
                          11.050419320118632,
                          1.3212457882750535),
                         0.7)),
                       ('a batch (3, 10) of float32 logits, p = 0.9',
                        '',
                        (),
                        (((3, 10),
                          'torch.float32',
                          0,
                          0,
                          0,
                          0,
                          -13.485433101654053,
                          -93.34456714987755,
                          150.04909392525667,
                          143.98719706061712),
                         0.9)),
                       ('p = 1 (keep every token)',
                        '',
                        (),
                        (((4, 8),
                          'torch.float64',
                          0,
                          0,
                          0,
                          0,
                          -0.5055279911102577,
                          -38.35555669343907,
                          32.65858980576075,
                          32.65060360107963),
                         1.0)),
                       ('(2, 20) logits where one token holds ~90 % of the mass, p = 0.5',
                        '',
                        (),
                        (((2, 20),
                          'torch.float32',
                          0,
                          0,
                          0,
                          0,
                          10.59768883511424,
                          270.7399932220578,
                          161.62698151560343,
                          158.81920629945583),
                         0.5)),
                       ('a single-token vocabulary (V = 1)',
                        '',
                        (),
                        (((1,), 'torch.float64', 0, 0, 0, 1, 0.0, 0.0, 0.0, 0.0), 0.3)),
                       ('p = 1e-9, float32 logits: only the most probable token stays',
                        '1 − 1e-9 rounds to exactly 1.0, so any test written as `mass ≤ 1 − p` is true for every '
                        'token; the most probable token must be kept whatever p is.',
                        (),
                        (((3, 16),
                          'torch.float32',
                          0,
                          0,
                          0,
                          0,
                          1.7173164272680879,
                          35.87319251894951,
                          58.07079490923668,
                          58.009353748583244),
                         1e-09)),
                       ('float32 logits in the hundreds, p = 0.8',
                        '',
                        (),
                        (((2, 50),
                          'torch.float32',
                          0,
                          0,
                          0,
                          0,
                          5758.988640367985,
                          319060.36746543646,
                          3790626.4884083113,
                          3458966.9868094367),
                         0.8))]}
test_the_cases_are_the_ones_students_see = case_snapshot_test(checks_lm, CASE_SNAPSHOT)
