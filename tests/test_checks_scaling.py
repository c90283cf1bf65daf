"""Planted-mistake catalogues for lesson 10's self-checks (aigc_course.checks.scaling): each wrong answer must be
rejected with its own hint, each correct answer written another way must pass."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
from catalogue import assert_rejected, case_snapshot_test, catalogue_tests
from torch.utils.flop_counter import FlopCounterMode

import aigc_course.checks.scaling as checks_sc
from aigc_course.checks import CheckFailed
from aigc_course.checks.scaling import (
    FLOPS_CHECK,
    GRAD_CHECK,
    SPACING_CHECK,
    check_accumulated_gradient,
    check_bf16_spacing,
    check_flops_per_token,
)
from aigc_course.gpt import GPT, GPTConfig

# ----------------------------------------------------------------------------- 10.1 forward FLOPs per token


def flops_by_layers(config, context):
    """Every matrix product listed with its shape (d_in, d_out), 2 FLOPs per weight per token."""
    d, V = config["n_embd"], config["vocab_size"]
    block = [(d, d)] * 4 + [(d, 4 * d), (4 * d, d)]
    matmuls = sum(2 * a * b for a, b in block) * config["n_layer"] + 2 * d * V
    return matmuls + config["n_layer"] * (2 * context * d) * 2


def flops_numpy(config, context):
    L, d, V, T = (np.int64(config[k]) if k != "context" else np.int64(context)
                  for k in ("n_layer", "n_embd", "vocab_size", "context"))
    return L * (24 * d * d + 4 * T * d) + 2 * V * d


def flops_pops_layers(config, context):
    L = config.pop("n_layer")
    return checks_sc._flops({**config, "n_layer": L}, context)


def flops_float32_tensor(config, context):
    d, L, V = (torch.tensor(float(config[k])) for k in ("n_embd", "n_layer", "vocab_size"))
    return int(L * (24 * d * d + 4 * context * d) + 2 * V * d)


FLOPS_RIGHT = [
    pytest.param(checks_sc._flops, id="reference"),
    pytest.param(flops_by_layers, id="matrix by matrix"),
    pytest.param(flops_numpy, id="numpy int64"),
    pytest.param(lambda c, t: torch.tensor(checks_sc._flops(c, t)), id="0-d int64 tensor"),
]

FLOPS_WRONG = [
    pytest.param(flops_pops_layers, r"modified its argument `config` in place", "in-place", id="config.pop"),
    pytest.param(lambda c, t: float(checks_sc._flops(c, t)), r"you returned a float \(", "type", id="float"),
    pytest.param(lambda c, t: torch.tensor(float(checks_sc._flops(c, t)), dtype=torch.float64),
                 r"torch.float64 number; the FLOP count per token is an exact integer", "type", id="float64 tensor"),
    pytest.param(flops_float32_tensor, r"your count is rounded: float32", "unstable", id="float32 tensors"),
    pytest.param(checks_sc._f_block_size, r"you used config\['block_size'\] for the window", "edge", id="block_size"),
    pytest.param(checks_sc._f_two_n, r"rule of thumb 2N", "formula", id="2N"),
    pytest.param(checks_sc._f_no_attention, r"you left out attention itself", "formula", id="no attention"),
    pytest.param(checks_sc._f_attention_once, r"only one of attention's two products", "formula", id="QK only"),
    pytest.param(checks_sc._f_no_head, r"you left out the output layer", "formula", id="no output layer"),
    pytest.param(checks_sc._f_macs, r"multiply-adds \(MACs\)", "formula", id="MACs"),
    pytest.param(checks_sc._f_training, r"you counted a training step", "formula", id="6N"),
    pytest.param(checks_sc._f_mlp_width_d, r"your MLP is too narrow", "formula", id="MLP d"),
    pytest.param(checks_sc._f_one_layer, r"you counted one layer", "formula", id="one layer"),
]


@pytest.mark.parametrize("fn", FLOPS_RIGHT)
def test_flops_accepts(fn, capsys):
    check_flops_per_token(fn)
    assert "✓ Exercise 10.1" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", FLOPS_WRONG)
def test_flops_rejects(fn, hint, kind):
    assert_rejected(FLOPS_CHECK, fn, hint)


def test_flops_reference_by_hand_and_against_the_flop_counter():
    """nanoGPT's CPU recipe at T = 64: 4·(24·128² + 4·64·128) + 2·65·128 = 1,720,576; the small cases are what
    FlopCounterMode counts on a real GPT (explicit attention path)."""
    cases = FLOPS_CHECK.case_list()
    assert checks_sc._flops(*cases[0].args) == 1_720_576
    assert checks_sc._flops(*cases[-1].args) == 358_791_143_424             # GPT-3 at 2048
    assert checks_sc._f_float32(*cases[-1].args) != 358_791_143_424           # float32 rounds it
    assert all(checks_sc._f_float32(*c.args) == checks_sc._flops(*c.args) for c in cases[:-1])
    for case in cases[:4]:
        config, T = case.args
        torch.manual_seed(0)
        model = GPT(GPTConfig(**config))
        idx = torch.randint(config["vocab_size"], (2, T))
        with FlopCounterMode(display=False) as counter:
            model(idx, attention="math")
        assert counter.get_total_flops() == 2 * T * checks_sc._flops(config, T), case.label


def test_flops_hint_words_are_not_in_labels_or_generic_messages():
    """10.1's version of the shared test (its result is an int): counts far off get the generic message, and no
    WRONG regex matches it or a case label."""
    generic = []
    for change in (lambda n: n + 1, lambda n: 5 * n):
        with pytest.raises(CheckFailed) as exc:
            check_flops_per_token(lambda c, t, change=change: change(checks_sc._flops(c, t)))
        generic.append(str(exc.value))
    assert all("max |yours - reference|" in g for g in generic)
    texts = generic + [c.label for c in FLOPS_CHECK.case_list()]
    for p in FLOPS_WRONG:
        for text in texts:
            assert not re.search(p.values[1], text), (p.values[1], text)


# ----------------------------------------------------------------------------- 10.2 accumulated gradient


def grad_autograd(w, x, y, k):
    """What a training loop does: backward of each micro-batch's mean loss times b_j / B into w.grad."""
    w = w.detach().clone().requires_grad_(True)
    for xj, yj in zip(x.tensor_split(k), y.tensor_split(k), strict=True):
        (((xj @ w - yj) ** 2).mean() * (len(xj) / len(x))).backward()
    return w.grad


def grad_whole_batch(w, x, y, k):
    """k does not change the gradient: the whole batch at once."""
    return 2 * x.T @ (x @ w - y) / len(x)


def grad_numpy_float64(w, x, y, k):
    xs, ys = np.array_split(x.double().numpy(), k), np.array_split(y.double().numpy(), k)
    g = sum(2 * xj.T @ (xj @ w.double().numpy() - yj) for xj, yj in zip(xs, ys, strict=True)) / len(x)
    return torch.as_tensor(g)


def grad_residual_in_place(w, x, y, k):
    y -= x @ w                                           # the residual, "to save memory"
    return -2 * x.T @ y / len(x)


def grad_expanded_other_order(w, x, y, k):
    """The expanded form with the sums taken another way: its rounding differs from the planted one."""
    gram = torch.einsum("bi,bj->ij", x, x)
    return 2 * (w @ gram - torch.einsum("bi,b->i", x, y)) / len(x)


GRAD_RIGHT = [
    pytest.param(checks_sc._gradient, id="reference"),
    pytest.param(grad_autograd, id="autograd, micro-batch by micro-batch"),
    pytest.param(grad_whole_batch, id="whole batch"),
    pytest.param(grad_numpy_float64, id="numpy float64"),
]

GRAD_WRONG = [
    pytest.param(grad_residual_in_place, r"modified its argument `y` in place", "in-place", id="y -= x @ w"),
    pytest.param(lambda w, x, y, k: grad_whole_batch(w, x, y, k).numpy(), r"you returned a NumPy array", "type",
                 id="numpy"),
    pytest.param(lambda w, x, y, k: [grad_whole_batch(w, xj, yj, 1) for xj, yj in
                                     zip(x.tensor_split(k), y.tensor_split(k), strict=True)],
                 r"you returned a list", "type", id="list of micro-batch gradients"),
    pytest.param(checks_sc._g_expanded, r"your gradient has lost its precision", "unstable", id="XᵀXw − Xᵀy"),
    pytest.param(grad_expanded_other_order, r"your gradient has lost its precision", "unstable",
                 id="XᵀXw − Xᵀy, einsum"),
    pytest.param(checks_sc._g_mean_of_means, r"mean of their mean gradients", "edge", id="mean of means"),
    pytest.param(checks_sc._g_no_division, r"without dividing by k", "formula", id="no 1/k"),
    pytest.param(checks_sc._g_last_only, r"only the last micro-batch's gradient survived", "formula", id="last only"),
    pytest.param(checks_sc._g_sum_loss, r"\*sum\* of the squared errors", "formula", id="sum"),
    pytest.param(checks_sc._g_no_two, r"the factor 2 of", "formula", id="no 2"),
    pytest.param(checks_sc._g_sign, r"points the wrong way", "formula", id="sign"),
]


@pytest.mark.parametrize("fn", GRAD_RIGHT)
def test_gradient_accepts(fn, capsys):
    check_accumulated_gradient(fn)
    assert "✓ Exercise 10.2" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", GRAD_WRONG)
def test_gradient_rejects(fn, hint, kind):
    assert_rejected(GRAD_CHECK, fn, hint)


def test_gradient_cases_break_what_they_are_meant_to_break():
    """Case 2 has micro-batches of 3, 3, 2, 2; the float32 offset case is exact in the residual form and wrong by
    far more than the tolerance in the expanded form; the gradient equals autograd's in float64."""
    cases = GRAD_CHECK.case_list()
    _, x, _, k = cases[1].args
    assert [len(c) for c in x.tensor_split(k)] == [3, 3, 2, 2]
    w, x, y, k = cases[4].args
    exact = checks_sc._gradient(w.double(), x.double(), y.double(), k)
    assert x.dtype == torch.float32 and torch.equal(checks_sc._gradient(w, x, y, k).double(), exact)
    assert (checks_sc._g_expanded(w, x, y, k).double() - exact).abs().max() > 0.05
    for case in cases[:4]:
        w, x, y, k = case.args
        assert torch.allclose(grad_autograd(w, x, y, k), checks_sc._gradient(w, x, y, k), atol=1e-6), case.label


def test_cancellation_symptom():
    w, x, y, k = GRAD_CHECK.case_list()[4].args
    small = GRAD_CHECK.case_list()[0].args
    ok, off = (np.zeros(3),), (np.ones(3),)
    assert checks_sc._g_cancelled(off, ok, w, x, y, k)
    assert not checks_sc._g_cancelled(off, ok, *small)                     # features too small
    assert not checks_sc._g_cancelled((np.array([np.nan, 0, 0]),), ok, w, x, y, k)   # not finite
    assert not checks_sc._g_cancelled((np.zeros(2),), ok, w, x, y, k)      # shape


# ----------------------------------------------------------------------------- 10.3 bf16 spacing


def spacing_bits(x):
    """From the float32 bit pattern: the biased exponent E (0 for subnormals, which behave like E = 1)."""
    E = (x.abs().view(torch.int32) >> 23) & 0xFF
    return torch.exp2((E.clamp_min(1) - 127 - 7).float())


def spacing_numpy(x):
    """numpy's float32 spacing (2^(e − 23), 2^-149 for subnormals and 0) times 2^16: bf16 drops 16 bits."""
    return torch.from_numpy(np.spacing(np.abs(x.numpy())) * np.float32(2.0**16))


def spacing_float64_log2(x):
    """floor(log2) is exact enough in float64 for float32 inputs."""
    a = x.double().abs().clamp_min(2.0**-126)
    return torch.exp2(torch.log2(a).floor() - 7).float()


def spacing_abs_in_place(x):
    x.abs_()
    return checks_sc._spacing(x)


SPACING_RIGHT = [
    pytest.param(checks_sc._spacing, id="reference"),
    pytest.param(spacing_bits, id="exponent bits"),
    pytest.param(spacing_numpy, id="np.spacing × 2¹⁶"),
    pytest.param(spacing_float64_log2, id="log2 in float64"),
]

SPACING_WRONG = [
    pytest.param(spacing_abs_in_place, r"modified its argument `x` in place", "in-place", id="x.abs_()"),
    pytest.param(lambda x: checks_sc._spacing(x).to(torch.bfloat16), r"got torch.bfloat16", "type", id="bf16 result"),
    pytest.param(lambda x: checks_sc._spacing(x).numpy(), r"you returned a NumPy array", "type", id="numpy"),
    pytest.param(checks_sc._s_log2, r"torch.log2 in float32 rounds", "unstable", id="log2 float32"),
    pytest.param(checks_sc._s_rounded_first, r"you rounded x to bf16 first", "edge", id="rounded first"),
    pytest.param(checks_sc._s_subnormal_continued, r"the bf16 numbers are subnormal", "edge", id="subnormals"),
    pytest.param(checks_sc._s_zero, r"at x = 0 \(and for subnormals\)", "edge", id="0 at 0"),
    pytest.param(checks_sc._s_signed, r"negative for negative x", "edge", id="signed"),
    pytest.param(checks_sc._s_bits(8), r"half the right one", "formula", id="2^-8"),
    pytest.param(checks_sc._s_bits(10), r"float16's spacing", "formula", id="float16"),
    pytest.param(checks_sc._s_bits(23), r"float32's spacing", "formula", id="float32"),
    pytest.param(checks_sc._s_frexp_exponent, r"twice too large everywhere", "formula", id="frexp e"),
]


@pytest.mark.parametrize("fn", SPACING_RIGHT)
def test_spacing_accepts(fn, capsys):
    check_bf16_spacing(fn)
    assert "✓ Exercise 10.3" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", SPACING_WRONG)
def test_spacing_rejects(fn, hint, kind):
    assert_rejected(SPACING_CHECK, fn, hint)


def test_spacing_reference_against_bf16_arithmetic():
    """For every bf16 number b (positive, normal) among the cases: b + spacing is a bf16 number and nothing closer
    is; by hand: 1 → 2⁻⁷, 0.75 → 2⁻⁸, 1000 → 2², 0 → 2⁻¹³³."""
    got = checks_sc._spacing(torch.tensor([1.0, 0.75, 1000.0, 0.0, -3.0]))
    assert got.tolist() == [2.0**-7, 2.0**-8, 4.0, 2.0**-133, 2.0**-6] and got.dtype == torch.float32
    for case in SPACING_CHECK.case_list():
        x = case.args[0]
        b = x.abs().to(torch.bfloat16).float()
        b = b[(b >= 2.0**-126) & (b < 2.0**127)]
        s = checks_sc._spacing(b)
        assert torch.equal((b + s).to(torch.bfloat16).float(), b + s), case.label
        assert torch.equal((b + 0.49 * s).to(torch.bfloat16).float(), b), case.label
    below = SPACING_CHECK.case_list()[4].args[0]
    assert not torch.equal(checks_sc._s_log2(below), checks_sc._spacing(below))   # the float32 log2 trap fires


# ----------------------------------------------------------------------------- every catalogue

CATALOGUES = {
    "10.1": (check_flops_per_token, FLOPS_CHECK, FLOPS_WRONG, FLOPS_RIGHT),
    "10.2": (check_accumulated_gradient, GRAD_CHECK, GRAD_WRONG, GRAD_RIGHT),
    "10.3": (check_bf16_spacing, SPACING_CHECK, SPACING_WRONG, SPACING_RIGHT),
}
SYMPTOM_STUDENTS = {}  # every mistake here also has a `wrong` answer that shows it
TENSOR_RESULTS = {k: v for k, v in CATALOGUES.items() if k != "10.1"}

(test_catalogue_is_complete, _, test_every_mistake_hint_is_reachable,
 test_not_implemented_gives_the_not_implemented_message) = catalogue_tests(CATALOGUES, SYMPTOM_STUDENTS)
# The shared generic-message test perturbs tensor results; 10.1 returns an int (tested above).
test_hint_words_are_not_in_labels_or_generic_messages = catalogue_tests(TENSOR_RESULTS, SYMPTOM_STUDENTS)[1]


def test_checks_are_listed_and_refuse_a_non_function():
    assert checks_sc.__all__ == ["check_flops_per_token", "check_accumulated_gradient", "check_bf16_spacing"]
    for check in (check_flops_per_token, check_accumulated_gradient, check_bf16_spacing):
        with pytest.raises(TypeError, match="pass your function itself"):
            check("not a function")


def test_generic_wrong_answers_are_refused():
    """The answers tests/test_notebooks.py feeds every exported check."""
    for check in (check_flops_per_token, check_accumulated_gradient, check_bf16_spacing):
        for wrong in (lambda *a, **kw: None, lambda *a, **kw: a[0],
                      lambda *a, **kw: torch.tensor(float("nan"), dtype=torch.float64), lambda *a, **kw: [0.0, 1.0]):
            with pytest.raises(CheckFailed):
                check(wrong)


def test_inputs_are_copied_for_the_student():
    """A student's in-place change must not leak into the next run of the check."""
    with pytest.raises(CheckFailed):
        check_flops_per_token(flops_pops_layers)
    assert all("n_layer" in c.args[0] for c in FLOPS_CHECK.case_list())
    keys = dataclasses.asdict(GPTConfig(vocab_size=65, block_size=64)).keys()
    assert keys == FLOPS_CHECK.case_list()[0].args[0].keys()
    with pytest.raises(CheckFailed):
        check_bf16_spacing(spacing_abs_in_place)
    assert (SPACING_CHECK.case_list()[2].args[0] < 0).all()


# Generated from the catalogue (see test_the_cases_are_the_ones_students_see); one entry per check.
CASE_SNAPSHOT = {'FLOPS_CHECK': [("nanoGPT's CPU recipe (V = 65, L = 4, d = 128), windows of 64",
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
                                    'vocab_size': 65},
                                   64)),
                                 ('one layer, d = 8, block_size 1: a window of a single token',
                                  '',
                                  (),
                                  ({'bias': True,
                                    'block_size': 1,
                                    'causal': True,
                                    'dropout': 0.0,
                                    'gelu_approximate': 'none',
                                    'n_embd': 8,
                                    'n_head': 1,
                                    'n_layer': 1,
                                    'vocab_size': 11},
                                   1)),
                                 ('the same model on windows of 16 tokens (block_size 64)',
                                  'the attention term depends on the window actually processed, `context`, not on '
                                  "the longest window the model accepts (config['block_size']).",
                                  (),
                                  ({'bias': True,
                                    'block_size': 64,
                                    'causal': True,
                                    'dropout': 0.0,
                                    'gelu_approximate': 'none',
                                    'n_embd': 128,
                                    'n_head': 4,
                                    'n_layer': 4,
                                    'vocab_size': 65},
                                   16)),
                                 ('bias=False, 2 layers, d = 16, windows of 8',
                                  '',
                                  (),
                                  ({'bias': False,
                                    'block_size': 8,
                                    'causal': True,
                                    'dropout': 0.0,
                                    'gelu_approximate': 'none',
                                    'n_embd': 16,
                                    'n_head': 2,
                                    'n_layer': 2,
                                    'vocab_size': 30},
                                   8)),
                                 ('GPT-2 small, windows of 1024',
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
                                    'vocab_size': 50257},
                                   1024)),
                                 ('GPT-3 (175 B: L = 96, d = 12288), windows of 2048',
                                  '3.6·10¹¹ FLOPs per token is far beyond what float32 stores exactly (integers up '
                                  'to 2²⁴).',
                                  (),
                                  ({'bias': True,
                                    'block_size': 2048,
                                    'causal': True,
                                    'dropout': 0.0,
                                    'gelu_approximate': 'none',
                                    'n_embd': 12288,
                                    'n_head': 96,
                                    'n_layer': 96,
                                    'vocab_size': 50257},
                                   2048))],
                 'GRAD_CHECK': [('B = 8 examples in k = 4 micro-batches of 2, D = 3',
                                 '',
                                 (),
                                 (((3,),
                                   'torch.float64',
                                   0,
                                   0,
                                   0,
                                   0,
                                   0.24015843145095941,
                                   0.5132006424116266,
                                   0.0847019812602249,
                                   0.06547662386122985),
                                  ((8, 3),
                                   'torch.float64',
                                   0,
                                   0,
                                   0,
                                   0,
                                   -8.279275769332582,
                                   -61.885870384049305,
                                   25.92258689315064,
                                   23.066486590456577),
                                  ((8,),
                                   'torch.float64',
                                   0,
                                   0,
                                   0,
                                   0,
                                   9.840751215230853,
                                   40.29389752568344,
                                   19.339924671873586,
                                   7.234876611865143),
                                  4)),
                                ('B = 10 in k = 4 micro-batches (sizes 3, 3, 2, 2)',
                                 'when k does not divide B the micro-batches differ in size: the mean over the batch '
                                 "weights each micro-batch's mean loss by its size b_j / B, not by 1/k.",
                                 (),
                                 (((3,),
                                   'torch.float64',
                                   0,
                                   0,
                                   0,
                                   0,
                                   -1.0930669188525046,
                                   -3.0298000914493946,
                                   1.0817908275371928,
                                   0.6835257311739568),
                                  ((10, 3),
                                   'torch.float64',
                                   0,
                                   0,
                                   0,
                                   0,
                                   3.5923052852904798,
                                   161.58190259159363,
                                   29.74462363572958,
                                   29.314468393638716),
                                  ((10,),
                                   'torch.float64',
                                   0,
                                   0,
                                   0,
                                   0,
                                   -3.2962155931466586,
                                   -32.670542521390146,
                                   5.814684598205692,
                                   4.728180874555373),
                                  4)),
                                ('k = 1: the whole batch at once, float32',
                                 '',
                                 (),
                                 (((2,),
                                   'torch.float32',
                                   0,
                                   0,
                                   0,
                                   0,
                                   -2.5677777528762817,
                                   -3.809074878692627,
                                   3.300369408525242,
                                   0.003628114442058461),
                                  ((6, 2),
                                   'torch.float32',
                                   0,
                                   0,
                                   0,
                                   0,
                                   0.8011571019887924,
                                   13.451315581798553,
                                   7.409514509559075,
                                   7.356026784386819),
                                  ((6,),
                                   'torch.float32',
                                   0,
                                   0,
                                   0,
                                   0,
                                   1.2844984084367752,
                                   0.6534078866243362,
                                   4.072676496049201,
                                   3.797687135836433),
                                  1)),
                                ('k = B = 5: one example per micro-batch',
                                 '',
                                 (),
                                 (((4,),
                                   'torch.float64',
                                   0,
                                   0,
                                   0,
                                   0,
                                   -0.5270215988787427,
                                   -3.2580696583867907,
                                   6.076811069685998,
                                   6.00737312826482),
                                  ((5, 4),
                                   'torch.float64',
                                   0,
                                   0,
                                   0,
                                   0,
                                   0.5336933576622176,
                                   4.111546381310681,
                                   9.393854541594953,
                                   9.379613111594317),
                                  ((5,),
                                   'torch.float64',
                                   0,
                                   0,
                                   0,
                                   0,
                                   -0.8929477546215063,
                                   -4.7542130559959785,
                                   11.031275673788274,
                                   10.871804535291556),
                                  5)),
                                ('float32 features near 1000, residuals ±0.25, B = 64, k = 4',
                                 'x ≈ 1000 makes the entries of XᵀX about 7·10⁷, where float32 numbers are 8 apart, '
                                 'while the gradient itself is below 1.',
                                 (),
                                 (((3,), 'torch.float32', 0, 0, 0, 0, 3.25, 9.0, 9.3125, 5.791666666666667),
                                  ((64, 3),
                                   'torch.float32',
                                   0,
                                   0,
                                   0,
                                   0,
                                   128064.0,
                                   12352704.0,
                                   128170752.0,
                                   42752064.0),
                                  ((64,), 'torch.float32', 0, 0, 0, 0, 17704.0, 586722.0, 4904619.0, 7250.0),
                                  4)),
                                ('a realistic batch: B = 4096, D = 16, k = 8, float32',
                                 '',
                                 (),
                                 (((16,),
                                   'torch.float32',
                                   0,
                                   0,
                                   0,
                                   0,
                                   -3.990408508805558,
                                   -7.617721402551979,
                                   20.57480715649997,
                                   19.57959715230323),
                                  ((4096, 16),
                                   'torch.float32',
                                   0,
                                   0,
                                   0,
                                   0,
                                   -383.7937870290971,
                                   -15635370.347811043,
                                   65373.344926524325,
                                   65371.09734243373),
                                  ((4096,),
                                   'torch.float32',
                                   0,
                                   0,
                                   0,
                                   0,
                                   -116.75530474295374,
                                   -375417.71901289024,
                                   77575.59531524326,
                                   77572.26723878193),
                                  8))],
                 'SPACING_CHECK': [('1, 1.5, 2, 3, 0.75, 1000',
                                    '',
                                    (),
                                    (((6,),
                                      'torch.float32',
                                      0,
                                      0,
                                      0,
                                      0,
                                      1008.25,
                                      6025.75,
                                      1000016.8125,
                                      830588.8020833335),)),
                                   ('0.5, 2²⁰ − 2¹¹, 255, 7',
                                    "the spacing of x itself: 2²⁰ − 2¹¹ lies below 2²⁰ (bf16's nearest number to it "
                                    'happens to be 2²⁰, a tie rounded to even), so its spacing is the one of [2¹⁹, '
                                    '2²⁰).',
                                    (),
                                    (((4,),
                                      'torch.float32',
                                      0,
                                      0,
                                      0,
                                      0,
                                      1046790.5,
                                      2093849.5,
                                      1095220919858.25,
                                      821278332135.6875),)),
                                   ('negative numbers',
                                    'a spacing is a distance: the same for −x as for x, and positive.',
                                    (),
                                    (((3,),
                                      'torch.float32',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -301.0010000000475,
                                      -901.002000000095,
                                      90001.000001,
                                      59800.46600065713),)),
                                   ('0, float32 subnormals and 2⁻¹²⁶',
                                    'below 2⁻¹²⁶ (the smallest normal number) bf16 numbers are subnormal: evenly '
                                    'spaced 2⁻¹³³ apart, down to 0.',
                                    (),
                                    (((5,),
                                      'torch.float32',
                                      0,
                                      0,
                                      0,
                                      2,
                                      1.3489627692792138e-38,
                                      4.020356683233501e-38,
                                      1.3971845784681523e-76,
                                      1.0332444678878632e-76),)),
                                   ('the float32 numbers just below 16, 1024, 2²⁰ and 2⁶⁰',
                                    'just below a power of two 2^k the exponent is k − 1, but log2 in float32 rounds '
                                    'k − 10⁻⁸ up to k.',
                                    (),
                                    (((4,),
                                      'torch.float32',
                                      0,
                                      0,
                                      0,
                                      0,
                                      1.1529214358884198e+18,
                                      4.6116857435526287e+18,
                                      1.3292278373285956e+36,
                                      9.969208779958416e+35),)),
                                   ('1000 weights of a layer (std 0.02), 3·10³⁸ and −10⁻²⁰',
                                    '',
                                    (),
                                    (((1002,),
                                      'torch.float32',
                                      0,
                                      0,
                                      0,
                                      0,
                                      3.0000000054977558e+38,
                                      3.0030000055032535e+41,
                                      9.000000032986535e+76,
                                      8.99101799702547e+76),))]}

test_the_cases_are_the_ones_students_see = case_snapshot_test(checks_sc, CASE_SNAPSHOT)
