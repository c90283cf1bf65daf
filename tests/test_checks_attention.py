"""Planted-mistake catalogues for lesson 08's self-checks (aigc_course.checks.attention): each wrong answer must
be rejected with its own hint, each correct answer written another way must pass."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from catalogue import assert_rejected, case_snapshot_test, catalogue_tests

import aigc_course.checks.attention as checks_att
from aigc_course.checks import CheckFailed
from aigc_course.checks.attention import (
    ATTENTION_CHECK,
    CACHED_ATTENTION_CHECK,
    GPT_PARAMETER_COUNT_CHECK,
    IntResult,
    check_attention,
    check_cached_attention,
    check_gpt_parameter_count,
)
from aigc_course.gpt import GPT, GPTConfig

# ----------------------------------------------------------------------------- 8.1 attention


def att_sdpa(q, k, v, causal=False):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def att_loop_float64(q, k, v, causal=False):
    """One query at a time, in float64, with a max-shifted softmax written out."""
    out = torch.empty((*q.shape[:-1], v.shape[-1]), dtype=torch.float64)
    T = q.shape[-2]
    for t in range(T):
        keys = k[..., : t + 1, :] if causal else k
        vals = v[..., : t + 1, :] if causal else v
        s = (q[..., t:t + 1, :].double() @ keys.double().transpose(-2, -1)) / math.sqrt(q.shape[-1])
        w = (s - s.amax(-1, keepdim=True)).exp()
        out[..., t:t + 1, :] = (w / w.sum(-1, keepdim=True)) @ vals.double()
    return out


def att_einsum_logsumexp(q, k, v, causal=False):
    s = torch.einsum("bhtd,bhsd->bhts", q, k) * q.shape[-1] ** -0.5
    if causal:
        s = torch.where(torch.ones(s.shape[-2:], dtype=torch.bool).tril(), s, torch.tensor(-math.inf, dtype=s.dtype))
    return torch.einsum("bhts,bhsd->bhtd", (s - s.logsumexp(-1, keepdim=True)).exp(), v)


def att_scales_q_in_place(q, k, v, causal=False):
    q /= math.sqrt(q.shape[-1])
    return att_sdpa(q * math.sqrt(q.shape[-1]), k, v, causal)


def att_naive_finfo(q, k, v, causal=False):
    """exp without the max shift, masked with finfo.min (a common 'safe' variant that still overflows)."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(~torch.ones(s.shape[-2:], dtype=torch.bool).tril(), torch.finfo(s.dtype).min)
    w = s.exp()
    return w / w.sum(-1, keepdim=True) @ v


ATTENTION_RIGHT = [
    pytest.param(checks_att._attention, id="reference"),
    pytest.param(att_sdpa, id="F.scaled_dot_product_attention"),
    pytest.param(att_loop_float64, id="loop over queries, float64"),
    pytest.param(att_einsum_logsumexp, id="einsum and logsumexp"),
]

ATTENTION_WRONG = [
    pytest.param(att_scales_q_in_place, r"modified its argument `q` in place", "in-place", id="q /= √d"),
    pytest.param(lambda q, k, v, causal=False: att_sdpa(q, k, v, causal).numpy(), r"you returned a NumPy array",
                 "type", id="numpy"),
    pytest.param(lambda q, k, v, causal=False: att_sdpa(q, k, v, causal).half(),
                 r"wrong dtype: expected .* got torch.float16", "type", id="half"),
    pytest.param(checks_att._a_naive, r"your softmax overflows", "unstable", id="exp / sum exp"),
    pytest.param(att_naive_finfo, r"your softmax overflows", "unstable", id="exp / sum exp, finfo.min mask"),
    pytest.param(checks_att._a_with(lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1)), r"hides the diagonal",
                 "edge", id="tril(-1)"),
    pytest.param(lambda q, k, v, causal=False: att_sdpa(q, k, v, False), r"with causal=True nothing was masked",
                 "formula", id="causal ignored"),
    pytest.param(checks_att._a_with(lambda T: torch.ones(T, T, dtype=torch.bool).triu()), r"keeps the wrong triangle",
                 "formula", id="triu"),
    pytest.param(checks_att._a_zero_fill, r"filled the masked scores with 0", "formula", id="masked_fill 0"),
    pytest.param(checks_att._a_mask_after_softmax, r"zeroed the future weights after the softmax", "formula",
                 id="mask after softmax"),
    pytest.param(lambda q, k, v, causal=False: att_sdpa(q * math.sqrt(q.shape[-1]), k, v, causal),
                 r"you forgot to scale the scores: divide", "formula", id="no 1/√d"),
    pytest.param(lambda q, k, v, causal=False: att_sdpa(q / math.sqrt(q.shape[-1]), k, v, causal),
                 r"you divided the scores by d;", "formula", id="1/d"),
    pytest.param(checks_att._a_weights, r"returned the attention weights", "formula", id="weights only"),
    pytest.param(checks_att._a_wrong_axis, r"softmax runs over the wrong axis", "formula", id="softmax(dim=-2)"),
]


@pytest.mark.parametrize("fn", ATTENTION_RIGHT)
def test_attention_accepts(fn, capsys):
    check_attention(fn)
    assert "✓ Exercise 8.1" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", ATTENTION_WRONG)
def test_attention_rejects(fn, hint, kind):
    assert_rejected(ATTENTION_CHECK, fn, hint)


def test_attention_reference_by_hand():
    """Case 1: q = (0, 1), k = (1, ln 3), d = 1. Query 0 scores both keys 0: weights ½, ½. Query 1 scores 1 and
    ln 3: weights e/(e + 3) and 3/(e + 3). Values (2, 0) and (−2, 4)."""
    q, k, v = ATTENTION_CHECK.case_list()[0].args
    a = math.e / (math.e + 3)
    hand = torch.tensor([[[[0.0, 2.0], [2 * a - 2 * (1 - a), 4 * (1 - a)]]]], dtype=torch.float64)
    assert torch.allclose(checks_att._attention(q, k, v), hand, atol=1e-12)
    causal = checks_att._attention(q, k, v, causal=True)
    assert torch.allclose(causal[0, 0, 0], v[0, 0, 0]) and torch.allclose(causal[0, 0, 1], hand[0, 0, 1])


def test_attention_cases_break_what_they_are_meant_to_break():
    """The big case overflows exp in float32 where the reference is finite; the T = 1 case returns v itself."""
    cases = ATTENTION_CHECK.case_list()
    q, k, v = cases[-1].args
    assert q.dtype == torch.float32 and checks_att._big_scores(q, k)
    assert torch.isfinite(checks_att._attention(q, k, v, causal=True)).all()
    assert not torch.isfinite(checks_att._a_naive(q, k, v, causal=True)).all()
    q, k, v = cases[3].args
    assert q.shape[-2] == 1 and torch.equal(checks_att._attention(q, k, v, causal=True), v)
    assert torch.isnan(checks_att._a_with(lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1))(*cases[2].args,
                                                                                                  causal=True)).any()


def test_overflow_symptom():
    big = ATTENTION_CHECK.case_list()[-1].args
    small = ATTENTION_CHECK.case_list()[1].args
    nan, ok = (np.array([np.nan]),), (np.array([0.0]),)
    assert checks_att._a_overflow(nan, ok, *big, causal=True)
    assert checks_att._a_overflow((np.array([np.inf]),), ok, *big)
    assert not checks_att._a_overflow(nan, ok, *small)                 # scores too small to overflow
    assert not checks_att._a_overflow(ok, ok, *big)                    # no NaN
    assert not checks_att._a_overflow(nan, (np.array([np.nan]),), *big)   # NaN in both
    assert not checks_att._a_overflow((np.array([np.nan, 0.0]),), ok, *big)   # shape


# ----------------------------------------------------------------------------- 8.2 cached attention


def cache_sdpa_mask(q, k, v, past_k, past_v):
    keys, values = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
    T, S = q.shape[2], keys.shape[2]
    mask = torch.ones(T, S, dtype=torch.bool).tril(S - T)
    return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask), keys, values


def cache_loop(q, k, v, past_k, past_v):
    """One new token at a time, each appended to a growing list of keys (a real generation loop)."""
    keys, values, outs = past_k, past_v, []
    for i in range(q.shape[2]):
        keys = torch.cat([keys, k[:, :, i:i + 1]], dim=2)
        values = torch.cat([values, v[:, :, i:i + 1]], dim=2)
        w = (q[:, :, i:i + 1] @ keys.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
        outs.append(w @ values)
    return torch.cat(outs, dim=2), keys, values


def cache_numpy_then_tensor(q, k, v, past_k, past_v):
    keys = np.concatenate([past_k.numpy(), k.numpy()], axis=2)
    values = np.concatenate([past_v.numpy(), v.numpy()], axis=2)
    T, S, d = q.shape[2], keys.shape[2], q.shape[3]
    s = q.numpy() @ np.swapaxes(keys, -1, -2) / np.sqrt(d)
    s = np.where(np.tril(np.ones((T, S), dtype=bool), S - T), s, -np.inf)
    w = np.exp(s - s.max(-1, keepdims=True))
    return torch.as_tensor(w / w.sum(-1, keepdims=True) @ values), torch.as_tensor(keys), torch.as_tensor(values)


def cache_scales_q_in_place(q, k, v, past_k, past_v):
    q.div_(math.sqrt(q.shape[-1]))
    return checks_att._cached(q * math.sqrt(q.shape[-1]), k, v, past_k, past_v)


def cache_skips_empty(q, k, v, past_k, past_v):
    """Uses the new keys themselves when the cache is empty: right values, but a view of the argument `k`."""
    if past_k.shape[2] == 0:
        return checks_att._cached(q, k, v, past_k, past_v)[0], k, v
    return checks_att._cached(q, k, v, past_k, past_v)


CACHE_RIGHT = [
    pytest.param(checks_att._cached, id="reference"),
    pytest.param(cache_sdpa_mask, id="sdpa with a bottom-right attn_mask"),
    pytest.param(cache_loop, id="token by token"),
    pytest.param(cache_numpy_then_tensor, id="numpy, converted at the end"),
    pytest.param(lambda *a: list(checks_att._cached(*a)), id="a list instead of a tuple"),
]

CACHE_WRONG = [
    pytest.param(cache_scales_q_in_place, r"modified its argument `q` in place", "in-place", id="q.div_"),
    pytest.param(lambda *a: tuple(t.numpy() for t in checks_att._cached(*a)), r"`y`: you returned a NumPy array",
                 "type", id="numpy"),
    pytest.param(lambda *a: checks_att._cached(*a)[0], r"return a tuple \(y, keys, values\)", "type", id="y only"),
    pytest.param(cache_skips_empty, r"shares memory with the argument `k`", "edge", id="empty cache: returns k"),
    pytest.param(checks_att._c_naive, r"your softmax overflows", "unstable", id="exp / sum exp"),
    pytest.param(checks_att._c_no_mask, r"no mask among the new tokens", "edge", id="no mask"),
    pytest.param(checks_att._c_top_left, r"aligned top-left", "formula", id="is_causal=True"),
    pytest.param(checks_att._c_ignores_cache, r"attended only to each other", "formula", id="cache ignored"),
    pytest.param(checks_att._c_new_first, r"\*before\* the cached ones", "formula", id="cat([k, past_k])"),
    pytest.param(checks_att._c_returns_new_only, r"returned only the new keys", "formula", id="returns k, v"),
    pytest.param(checks_att._c_unscaled, r"forgot to scale the scores by 1/√d \(d = q", "formula", id="no 1/√d"),
    pytest.param(checks_att._c_order, r"in that order", "formula", id="(keys, values, y)"),
]


@pytest.mark.parametrize("fn", CACHE_RIGHT)
def test_cached_attention_accepts(fn, capsys):
    check_cached_attention(fn)
    assert "✓ Exercise 8.2" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", CACHE_WRONG)
def test_cached_attention_rejects(fn, hint, kind):
    assert_rejected(CACHED_ATTENTION_CHECK, fn, hint)


def test_cached_attention_equals_full_causal_attention():
    """Attending with a cache of S0 positions gives the last T rows of causal attention over all S0 + T."""
    for case in CACHED_ATTENTION_CHECK.case_list():
        q, k, v, past_k, past_v = case.args
        y, keys, values = checks_att._cached(q, k, v, past_k, past_v)
        S0 = past_k.shape[2]
        full_q = torch.cat([torch.zeros_like(past_k), q], dim=2)       # the cached queries do not matter
        full = checks_att._attention(full_q, keys, values, causal=True)[:, :, S0:]
        assert torch.allclose(y, full, atol=1e-5), case.label
        assert keys.shape[2] == S0 + q.shape[2]


def test_cached_attention_matches_the_gpt_cache():
    """The reference is what aigc_course.gpt's CausalSelfAttention does with `past`: compare on a real layer."""
    torch.manual_seed(0)
    attn = GPT(GPTConfig(vocab_size=5, block_size=16, n_layer=1, n_head=2, n_embd=8)).transformer.h[0].attn.eval()
    x = torch.randn(1, 7, 8)
    with torch.no_grad():
        full, _, _ = attn(x)
        _, _, (pk, pv) = attn(x[:, :4])
        C = 8
        q, k, v = (t.view(1, 3, 2, 4).transpose(1, 2) for t in attn.c_attn(x[:, 4:]).split(C, dim=2))
        y, _, _ = checks_att._cached(q, k, v, pk, pv)
        mine = attn.c_proj(y.transpose(1, 2).reshape(1, 3, C))
    assert torch.allclose(mine, full[:, 4:], atol=1e-6)


# ----------------------------------------------------------------------------- 8.3 parameter count


def count_by_parts(config):
    V, T, L, d, bias = (config[k] for k in ("vocab_size", "block_size", "n_layer", "n_embd", "bias"))
    ln = 2 * d if bias else d
    attn = 4 * d * d + (4 * d if bias else 0)
    mlp = 8 * d * d + (5 * d if bias else 0)
    return V * d + T * d + L * (attn + mlp + 2 * ln) + ln


def count_by_building(config):
    with torch.device("meta"):
        return GPT(GPTConfig(**config)).num_parameters(non_embedding=False)


def count_numpy_int64(config):
    d = np.int64(config["n_embd"])
    per_block = 12 * d * d + (13 * d if config["bias"] else 2 * d)
    return (config["vocab_size"] + config["block_size"]) * d + config["n_layer"] * per_block + (
        2 * d if config["bias"] else d)


def count_pops_bias(config):
    bias = config.pop("bias")
    return count_by_parts({**config, "bias": bias})


def count_float32_tensor(config):
    t = torch.tensor([count_by_parts(config)], dtype=torch.float32)
    return int(t.sum().item())


COUNT_RIGHT = [
    pytest.param(checks_att._count, id="reference"),
    pytest.param(count_by_parts, id="term by term"),
    pytest.param(count_by_building, id="build on the meta device"),
    pytest.param(count_numpy_int64, id="numpy int64"),
    pytest.param(lambda c: torch.tensor(count_by_parts(c)), id="0-d int64 tensor"),
]

COUNT_WRONG = [
    pytest.param(count_pops_bias, r"modified its argument `config` in place", "in-place", id="config.pop"),
    pytest.param(lambda c: float(count_by_parts(c)), r"you returned a float \(", "type", id="float"),
    pytest.param(lambda c: torch.tensor(float(count_by_parts(c)), dtype=torch.float64),
                 r"torch.float64 number; the number of parameters is an exact integer", "type", id="float64 tensor"),
    pytest.param(count_float32_tensor, r"your count is rounded: float32", "unstable", id="float32"),
    pytest.param(checks_att._k_ln_bias_kept, r"still counted the LayerNorm biases", "edge", id="bias=False LN"),
    pytest.param(checks_att._k_no_final_ln, r"left out the final LayerNorm", "formula", id="no ln_f"),
    pytest.param(checks_att._k_untied, r"separate V × d matrix", "formula", id="untied head"),
    pytest.param(checks_att._k_no_wpe, r"left out the position embedding", "formula", id="no wpe"),
    pytest.param(checks_att._k_mlp_width_d, r"your MLP is too narrow", "formula", id="MLP d → d"),
    pytest.param(checks_att._k_one_block, r"counted one block's parameters once", "formula", id="one block"),
    pytest.param(checks_att._k_one_layernorm_per_block, r"each block has two LayerNorms", "formula", id="one LN"),
]


@pytest.mark.parametrize("fn", COUNT_RIGHT)
def test_parameter_count_accepts(fn, capsys):
    check_gpt_parameter_count(fn)
    assert "✓ Exercise 8.3" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", COUNT_WRONG)
def test_parameter_count_rejects(fn, hint, kind):
    assert_rejected(GPT_PARAMETER_COUNT_CHECK, fn, hint)


def test_parameter_count_reference_by_hand():
    """GPT-2 small: 50257·768 + 1024·768 + 12·(12·768² + 13·768) + 2·768 = 124,439,808; and the cases are what
    the module holds."""
    cases = GPT_PARAMETER_COUNT_CHECK.case_list()
    assert checks_att._count(cases[1].args[0]) == 124_439_808
    assert checks_att._count(cases[-1].args[0]) == 1_557_611_200
    for case in cases[:-1]:
        assert checks_att._count(case.args[0]) == count_by_building(case.args[0]), case.label
    assert checks_att._k_float32(cases[-1].args[0]) != 1_557_611_200                 # float32 rounds it
    assert all(checks_att._k_float32(c.args[0]) == checks_att._count(c.args[0]) for c in cases[:-1])


@pytest.mark.parametrize("value, message", [
    (None, r"returned None"),
    (True, r"you returned a bool"),
    (2.0, r"you returned a float \(2.0\)"),
    (np.float32(2.0), r"you returned a float"),
    (torch.tensor([2, 3]), r"tensor of shape \(2,\).*one number"),
    (torch.tensor(2.0), r"torch.float32 number"),
    (torch.tensor(True), r"torch.bool number"),
    ([2], r"a list of length 1"),
    ("2", r"Python str"),
])
def test_int_result_refuses(value, message):
    problem = IntResult().problem(value, 2)
    assert problem is not None and re.search(message, problem), problem


@pytest.mark.parametrize("value", [2, np.int64(2), np.int32(2), torch.tensor(2), torch.tensor(2, dtype=torch.int32)])
def test_int_result_accepts(value):
    spec = IntResult()
    assert spec.problem(value, 2) is None
    assert spec.parts(value)[0] == 2.0 and spec.part_names == ("",)


# ----------------------------------------------------------------------------- every catalogue

CATALOGUES = {
    "8.1": (check_attention, ATTENTION_CHECK, ATTENTION_WRONG, ATTENTION_RIGHT),
    "8.2": (check_cached_attention, CACHED_ATTENTION_CHECK, CACHE_WRONG, CACHE_RIGHT),
    "8.3": (check_gpt_parameter_count, GPT_PARAMETER_COUNT_CHECK, COUNT_WRONG, COUNT_RIGHT),
}
SYMPTOM_STUDENTS = {}  # every mistake here also has a `wrong` answer that shows it
TENSOR_RESULTS = {k: v for k, v in CATALOGUES.items() if k != "8.3"}

(test_catalogue_is_complete, _, test_every_mistake_hint_is_reachable,
 test_not_implemented_gives_the_not_implemented_message) = catalogue_tests(CATALOGUES, SYMPTOM_STUDENTS)
# The shared generic-message test perturbs tensor results; 8.3 returns an int (tested below).
test_hint_words_are_not_in_labels_or_generic_messages = catalogue_tests(TENSOR_RESULTS, SYMPTOM_STUDENTS)[1]


def test_parameter_count_hint_words_are_not_in_labels_or_generic_messages():
    """8.3's version of the shared test: counts far off (no listed mistake gives them) get the generic message,
    and no WRONG regex matches it or a case label."""
    generic = []
    for change in (lambda n: n + 1, lambda n: 3 * n):
        with pytest.raises(CheckFailed) as exc:
            check_gpt_parameter_count(lambda c, change=change: change(checks_att._count(c)))
        generic.append(str(exc.value))
    assert all("max |yours - reference|" in g for g in generic)
    texts = generic + [c.label for c in GPT_PARAMETER_COUNT_CHECK.case_list()]
    for p in COUNT_WRONG:
        for text in texts:
            assert not re.search(p.values[1], text), (p.values[1], text)


def test_checks_are_listed_and_refuse_a_non_function():
    assert checks_att.__all__ == ["check_attention", "check_cached_attention", "check_gpt_parameter_count"]
    for check in (check_attention, check_cached_attention, check_gpt_parameter_count):
        with pytest.raises(TypeError, match="pass your function itself"):
            check("not a function")


def test_generic_wrong_answers_are_refused():
    """The answers tests/test_notebooks.py feeds every exported check."""
    for check in (check_attention, check_cached_attention, check_gpt_parameter_count):
        for wrong in (lambda *a, **kw: None, lambda *a, **kw: a[0],
                      lambda *a, **kw: torch.tensor(math.nan, dtype=torch.float64), lambda *a, **kw: [0.0, 1.0]):
            with pytest.raises(CheckFailed):
                check(wrong)


def test_configs_are_copied_for_the_student():
    """A student's in-place change of the config dict must not leak into the next run of the check."""
    with pytest.raises(CheckFailed):
        check_gpt_parameter_count(count_pops_bias)
    assert all("bias" in c.args[0] for c in GPT_PARAMETER_COUNT_CHECK.case_list())
    assert dataclasses.asdict(GPTConfig(vocab_size=65, block_size=64)).keys() == \
        GPT_PARAMETER_COUNT_CHECK.case_list()[0].args[0].keys()


# Generated from the catalogue (see test_the_cases_are_the_ones_students_see); one entry per check.
CASE_SNAPSHOT = {'ATTENTION_CHECK': [('one head, T = 2, d = 1: q = (0, 1), k = (1, ln 3)',
                                      '',
                                      (),
                                      (((1, 1, 2, 1), 'torch.float64', 0, 0, 0, 1, 1.0, 2.0, 1.0, 0.5),
                                       ((1, 1, 2, 1),
                                        'torch.float64',
                                        0,
                                        0,
                                        0,
                                        0,
                                        2.09861228866811,
                                        3.1972245773362196,
                                        2.206948960812582,
                                        0.004862191738181306),
                                       ((1, 1, 2, 2), 'torch.float64', 0, 0, 0, 1, 4.0, 12.0, 24.0, 20.0))),
                                     ('B = 2, h = 3, T = 5, d = 4, float32',
                                      '',
                                      (),
                                      (((2, 3, 5, 4),
                                        'torch.float32',
                                        0,
                                        0,
                                        0,
                                        0,
                                        -4.522267214895692,
                                        -564.8310773399426,
                                        150.29588090162454,
                                        150.12545672860023),
                                       ((2, 3, 5, 4),
                                        'torch.float32',
                                        0,
                                        0,
                                        0,
                                        0,
                                        -4.115698636509478,
                                        -599.9920705072582,
                                        104.2600553904204,
                                        104.11889726319902),
                                       ((2, 3, 5, 4),
                                        'torch.float32',
                                        0,
                                        0,
                                        0,
                                        0,
                                        8.264765174826607,
                                        -89.92849795031361,
                                        133.73362340730245,
                                        133.1644038790106))),
                                     ('the same shapes with causal=True, float64',
                                      'with the causal mask position t attends to positions 0 … t: itself '
                                      'included, nothing later.',
                                      ('causal',),
                                      (((2, 3, 5, 4),
                                        'torch.float64',
                                        0,
                                        0,
                                        0,
                                        0,
                                        -23.156682503988204,
                                        -1334.3661234526976,
                                        107.4174022120724,
                                        102.94880267381814),
                                       ((2, 3, 5, 4),
                                        'torch.float64',
                                        0,
                                        0,
                                        0,
                                        0,
                                        6.164543128602951,
                                        211.00118088270258,
                                        119.1327549381958,
                                        118.81607500499243),
                                       ((2, 3, 5, 4),
                                        'torch.float64',
                                        0,
                                        0,
                                        0,
                                        0,
                                        -18.24313629763439,
                                        -308.27515565228543,
                                        135.34728270792178,
                                        132.57384919147123))),
                                     ('a single position (T = 1), causal',
                                      'one position sees only itself: its weight is 1 and the output is its own '
                                      'value.',
                                      ('causal',),
                                      (((3, 2, 1, 8),
                                        'torch.float32',
                                        0,
                                        0,
                                        0,
                                        0,
                                        -8.499102538451552,
                                        -323.6285723205656,
                                        35.0572144182962,
                                        33.552323919147995),
                                       ((3, 2, 1, 8),
                                        'torch.float32',
                                        0,
                                        0,
                                        0,
                                        0,
                                        2.1774785653688014,
                                        -129.60093393269926,
                                        52.47799602991829,
                                        52.3792165944466),
                                       ((3, 2, 1, 8),
                                        'torch.float32',
                                        0,
                                        0,
                                        0,
                                        0,
                                        -8.848640455049463,
                                        -264.54527082073037,
                                        35.78145774433774,
                                        34.15024028803071))),
                                     ('B = 2, h = 4, T = 7, d = 8, causal',
                                      '',
                                      ('causal',),
                                      (((2, 4, 7, 8),
                                        'torch.float32',
                                        0,
                                        0,
                                        0,
                                        0,
                                        -5.979203233735461,
                                        -858.8511865807886,
                                        464.53731296252533,
                                        464.4575119104934),
                                       ((2, 4, 7, 8),
                                        'torch.float32',
                                        0,
                                        0,
                                        0,
                                        0,
                                        17.868730557122035,
                                        5790.371894687938,
                                        449.50526691539636,
                                        448.7925626035146),
                                       ((2, 4, 7, 8),
                                        'torch.float32',
                                        0,
                                        0,
                                        0,
                                        0,
                                        -6.943221536464989,
                                        176.13782928604633,
                                        477.4108924552742,
                                        477.3032845862911))),
                                     ('float32 scores beyond 100 (a sharp, trained head), causal',
                                      "exp(89) is already inf in float32; a softmax must subtract each row's "
                                      'maximum first (torch.softmax does).',
                                      ('causal',),
                                      (((1, 2, 8, 16),
                                        'torch.float32',
                                        0,
                                        0,
                                        0,
                                        0,
                                        -85.47037285193801,
                                        -23168.422605127096,
                                        20416.701867344163,
                                        20388.16598986194),
                                       ((1, 2, 8, 16),
                                        'torch.float32',
                                        0,
                                        0,
                                        0,
                                        0,
                                        296.84184311679564,
                                        55416.8264963415,
                                        28034.053490048813,
                                        27689.853959482498),
                                       ((1, 2, 8, 16),
                                        'torch.float32',
                                        0,
                                        0,
                                        0,
                                        0,
                                        28.925702521926723,
                                        4535.829199586646,
                                        274.846126341266,
                                        271.5777815506918)))],
                 'CACHED_ATTENTION_CHECK': [('one new token after 3 cached ones (h = 2, d = 4)',
                                             '',
                                             (),
                                             (((1, 2, 1, 4),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               -1.6045355796813965,
                                               -7.595050752162933,
                                               11.528241493637317,
                                               11.206424690329378),
                                              ((1, 2, 1, 4),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               -2.2417565435171127,
                                               -6.784154415130615,
                                               4.1768474366201325,
                                               3.548663386569909),
                                              ((1, 2, 1, 4),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               0.9472489655017853,
                                               14.835938066244125,
                                               7.2752162100224576,
                                               7.163056134691932),
                                              ((1, 2, 3, 4),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               -1.4843340525403619,
                                               9.71296763420105,
                                               40.627134980813935,
                                               40.53533299833348),
                                              ((1, 2, 3, 4),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               -1.1913280747830868,
                                               -24.579971604049206,
                                               22.3469331900264,
                                               22.28779724911947))),
                                            ("an empty cache (S0 = 0): the prompt's 4 tokens at once",
                                             'with nothing cached the T new tokens are the whole prompt: token i '
                                             'may see tokens 0 … i only, so a causal mask is needed whenever T > '
                                             '1.',
                                             (),
                                             (((2, 2, 4, 4),
                                               'torch.float64',
                                               0,
                                               0,
                                               0,
                                               0,
                                               6.892360820428385,
                                               402.7238029253958,
                                               79.88883166918771,
                                               79.14657170545371),
                                              ((2, 2, 4, 4),
                                               'torch.float64',
                                               0,
                                               0,
                                               0,
                                               0,
                                               -15.532937603288774,
                                               -434.31210973828263,
                                               75.8709012327696,
                                               72.10102387983737),
                                              ((2, 2, 4, 4),
                                               'torch.float64',
                                               0,
                                               0,
                                               0,
                                               0,
                                               5.015872411629394,
                                               261.84953093030447,
                                               60.85102337553959,
                                               60.457914374762325),
                                              ((2, 2, 0, 4), 'torch.float64', 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0),
                                              ((2, 2, 0, 4), 'torch.float64', 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0))),
                                            ('3 new tokens after 5 cached ones',
                                             '',
                                             (),
                                             (((1, 3, 3, 8),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               -10.972319595515728,
                                               -310.4745192117989,
                                               79.06967620218522,
                                               77.39756790626663),
                                              ((1, 3, 3, 8),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               -0.3245448190718889,
                                               221.41906625404954,
                                               61.95929597786101,
                                               61.957833070366746),
                                              ((1, 3, 3, 8),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               -5.379043282009661,
                                               -279.7858290178701,
                                               50.54282570722049,
                                               50.14096311514085),
                                              ((1, 3, 5, 8),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               15.67152613401413,
                                               960.9875936303288,
                                               119.84237417184198,
                                               117.79573474376625),
                                              ((1, 3, 5, 8),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               16.309106294997036,
                                               -18.474827019497752,
                                               142.88743251553313,
                                               140.67087461435386))),
                                            ('a generation step: B = 2, h = 4, one new token, 20 cached',
                                             '',
                                             (),
                                             (((2, 4, 1, 8),
                                               'torch.float64',
                                               0,
                                               0,
                                               0,
                                               0,
                                               -2.464401750554825,
                                               51.247128090417604,
                                               47.720152186929575,
                                               47.625257249614926),
                                              ((2, 4, 1, 8),
                                               'torch.float64',
                                               0,
                                               0,
                                               0,
                                               0,
                                               -9.479033761471896,
                                               -448.2049282067975,
                                               66.71709968015509,
                                               65.31316091373128),
                                              ((2, 4, 1, 8),
                                               'torch.float64',
                                               0,
                                               0,
                                               0,
                                               0,
                                               -2.948563624220388,
                                               36.90809676216209,
                                               54.14900576971054,
                                               54.01316159086561),
                                              ((2, 4, 20, 8),
                                               'torch.float64',
                                               0,
                                               0,
                                               0,
                                               0,
                                               15.431986826964192,
                                               24848.395453429715,
                                               1265.595993450715,
                                               1265.4099417183497),
                                              ((2, 4, 20, 8),
                                               'torch.float64',
                                               0,
                                               0,
                                               0,
                                               0,
                                               28.98307006258384,
                                               11160.223076286917,
                                               1319.4259815069786,
                                               1318.7697171708437))),
                                            ('float32 scores beyond 100, 2 new tokens after 6 cached',
                                             "exp(89) is already inf in float32; subtract each row's maximum "
                                             'before exp (torch.softmax does).',
                                             (),
                                             (((1, 2, 2, 16),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               17.443427219986916,
                                               1096.3705487400293,
                                               2460.9346252618634,
                                               2456.180357243442),
                                              ((1, 2, 2, 16),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               3.236728459596634,
                                               -1500.90079793334,
                                               2945.366310781226,
                                               2945.202616857458),
                                              ((1, 2, 2, 16),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               2.047562667168677,
                                               249.7983109774068,
                                               76.38098766646488,
                                               76.31547965277764),
                                              ((1, 2, 6, 16),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               -118.36780002922751,
                                               -6080.970987737412,
                                               6077.5945360676615,
                                               6004.620910631417),
                                              ((1, 2, 6, 16),
                                               'torch.float32',
                                               0,
                                               0,
                                               0,
                                               0,
                                               10.28447590849828,
                                               -81.90706972929183,
                                               196.73764744997845,
                                               196.18675971710098)))],
                 'GPT_PARAMETER_COUNT_CHECK': [("nanoGPT's CPU recipe: V = 65, block 64, 4 layers, C = 128",
                                                '',
                                                (),
                                                ({'bias': True,
                                                  'block_size': 64,
                                                  'causal': True,
                                                  'dropout': 0.0,
                                                  'gelu_approximate': 'none',
                                                  'n_embd': 128,
                                                  'n_head': 4,
                                                  'n_layer': 4,
                                                  'vocab_size': 65},)),
                                               ('GPT-2 small (the 124 M model)',
                                                '',
                                                (),
                                                ({'bias': True,
                                                  'block_size': 1024,
                                                  'causal': True,
                                                  'dropout': 0.0,
                                                  'gelu_approximate': 'none',
                                                  'n_embd': 768,
                                                  'n_head': 12,
                                                  'n_layer': 12,
                                                  'vocab_size': 50257},)),
                                               ("nanoGPT's CPU recipe with bias=False",
                                                'bias=False removes the biases of every Linear layer *and* of '
                                                'every LayerNorm; each LayerNorm keeps its gain (d numbers).',
                                                (),
                                                ({'bias': False,
                                                  'block_size': 64,
                                                  'causal': True,
                                                  'dropout': 0.0,
                                                  'gelu_approximate': 'none',
                                                  'n_embd': 128,
                                                  'n_head': 4,
                                                  'n_layer': 4,
                                                  'vocab_size': 65},)),
                                               ('one layer, one head: V = 11, block 5, C = 8',
                                                '',
                                                (),
                                                ({'bias': True,
                                                  'block_size': 5,
                                                  'causal': True,
                                                  'dropout': 0.0,
                                                  'gelu_approximate': 'none',
                                                  'n_embd': 8,
                                                  'n_head': 1,
                                                  'n_layer': 1,
                                                  'vocab_size': 11},)),
                                               ('one layer and bias=False: V = 30, block 7, C = 6',
                                                '',
                                                (),
                                                ({'bias': False,
                                                  'block_size': 7,
                                                  'causal': True,
                                                  'dropout': 0.0,
                                                  'gelu_approximate': 'none',
                                                  'n_embd': 6,
                                                  'n_head': 2,
                                                  'n_layer': 1,
                                                  'vocab_size': 30},)),
                                               ('GPT-2 XL: 48 layers, C = 1600',
                                                '1.56 billion is far beyond what float32 stores exactly (integers '
                                                'up to 2²⁴ ≈ 16.8 M).',
                                                (),
                                                ({'bias': True,
                                                  'block_size': 1024,
                                                  'causal': True,
                                                  'dropout': 0.0,
                                                  'gelu_approximate': 'none',
                                                  'n_embd': 1600,
                                                  'n_head': 25,
                                                  'n_layer': 48,
                                                  'vocab_size': 50257},))]}
test_the_cases_are_the_ones_students_see = case_snapshot_test(checks_att, CASE_SNAPSHOT)
