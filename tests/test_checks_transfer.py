"""Planted-mistake catalogues for lesson 09's self-checks (aigc_course.checks.transfer): each wrong answer must be
rejected with its own hint, each correct answer written another way must pass."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import torch
from catalogue import assert_rejected, case_snapshot_test, catalogue_tests

import aigc_course.checks.transfer as checks_tr
from aigc_course.checks import CheckFailed
from aigc_course.checks.transfer import (
    FEW_SHOT_CHECK,
    LORA_COUNT_CHECK,
    MERGE_CHECK,
    check_few_shot_indices,
    check_lora_parameter_count,
    check_merged_lora_weight,
)
from aigc_course.finetune import LoRALinear, apply_lora, count_parameters
from aigc_course.gpt import GPT, GPTConfig

# ----------------------------------------------------------------------------- 9.1 LoRA parameter count

SHAPES = {"attn.c_attn": (1, 3), "attn.c_proj": (1, 1), "mlp.c_fc": (1, 4), "mlp.c_proj": (4, 1)}


def count_loop(config, targets, r):
    total = 0
    C = config["n_embd"]
    for _ in range(config["n_layer"]):
        for t in targets:
            a, b = SHAPES[t]
            total += r * a * C + b * C * r           # A (r, in), then B (out, r)
    return total


def count_by_applying(config, targets, r):
    """Build the GPT on the meta device, apply LoRA and count what trains (small configs only)."""
    if not targets:
        return 0
    if config["n_layer"] * config["n_embd"] > 10_000:
        return count_loop(config, targets, r)
    with torch.device("meta"):
        model = GPT(GPTConfig(**config))
    apply_lora(model, [f"*.{t}" for t in targets], r=r, alpha=1.0)
    return count_parameters(model)["trainable"]


def count_numpy(config, targets, r):
    widths = np.array([sum(SHAPES[t]) for t in targets], dtype=np.int64)
    return np.int64(config["n_layer"]) * r * config["n_embd"] * widths.sum()


def count_int32(config, targets, r):
    """The product in np.int32 (NumPy's default integer on Windows): it wraps around past 2**31."""
    with np.errstate(over="ignore"):
        return int(np.int32(config["n_layer"]) * np.int32(r) * np.int32(config["n_embd"])
                   * np.int32(sum(sum(SHAPES[t]) for t in targets)))


def count_pops_targets(config, targets, r):
    total = 0
    while targets:
        total += checks_tr._lora_count(config, [targets.pop()], r)
    return total


LORA_RIGHT = [
    pytest.param(checks_tr._lora_count, id="reference"),
    pytest.param(count_loop, id="loop over blocks and layers"),
    pytest.param(count_by_applying, id="apply_lora on the meta device"),
    pytest.param(count_numpy, id="numpy int64"),
    pytest.param(lambda c, t, r: torch.tensor(checks_tr._lora_count(c, t, r)), id="0-d int64 tensor"),
]

LORA_WRONG = [
    pytest.param(count_pops_targets, r"modified its argument `targets` in place", "in-place", id="targets.pop()"),
    pytest.param(lambda c, t, r: float(checks_tr._lora_count(c, t, r)), r"you returned a float \(", "type",
                 id="float"),
    pytest.param(checks_tr._l_int32, r"your count overflowed: a 32-bit integer", "unstable", id="int32 wrap"),
    pytest.param(count_int32, r"your count overflowed: a 32-bit integer", "unstable", id="np.int32 product"),
    pytest.param(checks_tr._l_empty_means_all, r"an empty list of targets wraps no layer", "edge", id="[] → all"),
    pytest.param(checks_tr._l_full, r"counted the full weight matrices", "formula", id="in·out"),
    pytest.param(checks_tr._l_half(0), r"you counted only A", "formula", id="A only"),
    pytest.param(checks_tr._l_half(1), r"you counted only B", "formula", id="B only"),
    pytest.param(checks_tr._l_square, r"treated every layer as C → C", "formula", id="all C → C"),
    pytest.param(checks_tr._l_one_layer, r"target layers of one block", "formula", id="one block"),
    pytest.param(checks_tr._l_with_bias, r"counted the layers' biases", "formula", id="biases"),
    pytest.param(checks_tr._l_r_squared, r"multiplied by r twice", "formula", id="r²"),
]


@pytest.mark.parametrize("fn", LORA_RIGHT)
def test_lora_count_accepts(fn, capsys):
    check_lora_parameter_count(fn)
    assert "✓ Exercise 9.1" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", LORA_WRONG)
def test_lora_count_rejects(fn, hint, kind):
    assert_rejected(LORA_COUNT_CHECK, fn, hint)


def test_lora_count_reference_agrees_with_apply_lora():
    """The closed form equals what apply_lora leaves trainable, on real (CPU) GPTs, and by hand for case 1:
    4 layers · 4 · ((128 + 384) + (128 + 512)) = 18,432."""
    cases = LORA_COUNT_CHECK.case_list()
    assert checks_tr._lora_count(*cases[0].args) == 18_432
    assert checks_tr._lora_count(*cases[-1].args) == 96 * 128 * 16 * 12288 > 2**31
    for case in cases[:4]:
        config, targets, r = case.args
        if not targets:
            continue
        torch.manual_seed(0)
        model = GPT(GPTConfig(**config))
        apply_lora(model, [f"*.{t}" for t in targets], r=r, alpha=2.0)
        assert count_parameters(model)["trainable"] == checks_tr._lora_count(config, targets, r), case.label
        assert all(isinstance(m, LoRALinear) for n, m in model.named_modules() if n.endswith(tuple(targets)))
    assert checks_tr._l_int32(*cases[-1].args) < 0                                       # int32 wraps around
    assert all(checks_tr._l_int32(*c.args) == checks_tr._lora_count(*c.args) for c in cases[:-1])


# ----------------------------------------------------------------------------- 9.2 few-shot indices


def few_shot_stable_argsort(labels, n_per_class):
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    first = torch.searchsorted(sorted_labels, sorted_labels)            # where each label's run starts
    rank = torch.arange(len(labels)) - first
    return torch.sort(order[rank < n_per_class]).values


def few_shot_python(labels, n_per_class):
    seen, out = {}, []
    for i, y in enumerate(labels.tolist()):
        if seen.get(y, 0) < n_per_class:
            seen[y] = seen.get(y, 0) + 1
            out.append(i)
    return torch.tensor(out, dtype=torch.long)


def few_shot_numpy(labels, n_per_class):
    y = labels.numpy()
    idx = [np.flatnonzero(y == c)[:n_per_class] for c in np.unique(y)]
    return torch.from_numpy(np.sort(np.concatenate(idx)).astype(np.int64))


def few_shot_marks_in_place(labels, n_per_class):
    out = checks_tr._few_shot(labels.clone(), n_per_class)
    labels[out] = -1                                                     # "used" marks in the caller's tensor
    return out


def few_shot_unstable(labels, n_per_class):
    order = torch.argsort(labels)                                        # stable=False
    sorted_labels = labels[order]
    rank = torch.arange(len(labels)) - torch.searchsorted(sorted_labels, sorted_labels)
    return torch.sort(order[rank < n_per_class]).values


def few_shot_random_members(labels, n_per_class):
    """The right count of each class, chosen at random (what an unstable sort amounts to): the symptom."""
    g = torch.Generator().manual_seed(1)
    picked = []
    for c in torch.unique(labels):
        members = torch.nonzero(labels == c)[:, 0]
        shuffle = len(members) > 2 * n_per_class                          # small classes come out right
        picked.append(members[torch.randperm(len(members), generator=g)[:n_per_class]] if shuffle
                      else members[:n_per_class])
    return torch.sort(torch.cat(picked)).values


def few_shot_exactly_n(labels, n_per_class):
    picked = []
    for c in torch.unique(labels):
        members = torch.nonzero(labels == c)[:, 0]
        if len(members) < n_per_class:
            raise ValueError(f"class {int(c)} has only {len(members)} examples")
        picked.append(members[:n_per_class])
    return torch.sort(torch.cat(picked)).values


FEW_SHOT_RIGHT = [
    pytest.param(checks_tr._few_shot, id="reference"),
    pytest.param(few_shot_stable_argsort, id="stable argsort and run ranks"),
    pytest.param(few_shot_python, id="one pass in Python"),
    pytest.param(few_shot_numpy, id="numpy, converted at the end"),
]

FEW_SHOT_WRONG = [
    pytest.param(few_shot_marks_in_place, r"modified its argument `labels` in place", "in-place", id="labels[i] = -1"),
    pytest.param(lambda y, n: checks_tr._few_shot(y, n).int(), r"wrong dtype: expected torch.int64 .*got torch.int32",
                 "type", id="int32"),
    pytest.param(lambda y, n: checks_tr._few_shot(y, n).tolist(), r"you returned a list", "type", id="list"),
    pytest.param(few_shot_unstable, r"a sort that is not stable", "unstable", id="argsort(stable=False)"),
    pytest.param(few_shot_random_members, r"a sort that is not stable", "unstable", id="random members"),
    pytest.param(checks_tr._f_range, r"looped over range\(number of classes\)", "edge", id="range(k)"),
    pytest.param(few_shot_exactly_n, r"raised ValueError: class 2 has only 1 examples(.|\n)*gives all it has",
                 "edge", id="raises for a small class"),
    pytest.param(checks_tr._f_class_order, r"grouped class by class", "formula", id="not sorted"),
    pytest.param(checks_tr._f_last, r"took the \*last\*", "formula", id="last n"),
    pytest.param(checks_tr._f_first_overall, r"first n_per_class · \(number of classes\) examples overall",
                 "formula", id="first n·k"),
    pytest.param(checks_tr._f_labels, r"returned the labels of the chosen examples", "formula", id="labels"),
    pytest.param(checks_tr._f_mask_as_long, r"returned a 0/1 mask", "formula", id="mask"),
]


@pytest.mark.parametrize("fn", FEW_SHOT_RIGHT)
def test_few_shot_accepts(fn, capsys):
    check_few_shot_indices(fn)
    assert "✓ Exercise 9.2" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", FEW_SHOT_WRONG)
def test_few_shot_rejects(fn, hint, kind):
    assert_rejected(FEW_SHOT_CHECK, fn, hint)


def test_few_shot_reference_by_hand():
    """labels [3, 1, 3, 3, 1, 2], 2 per class: class 1 → 1, 4; class 2 → 5 (all it has); class 3 → 0, 2."""
    cases = FEW_SHOT_CHECK.case_list()
    assert checks_tr._few_shot(*cases[0].args).tolist() == [0, 1, 2, 4, 5]
    assert checks_tr._few_shot(*cases[1].args).tolist() == [0, 1, 2, 6, 7]
    empty = checks_tr._few_shot(*cases[2].args)
    assert empty.dtype == torch.int64 and empty.numel() == 0
    digits, n = cases[-1].args
    picked = checks_tr._few_shot(digits, n)
    assert torch.bincount(digits[picked]).tolist() == [50] * 10
    assert torch.equal(picked, few_shot_python(digits, n))


def test_the_digits_case_catches_an_unstable_sort():
    """On the digits labels torch.argsort's default (unstable) sort picks other members than the stable one: the
    case is there to show that. (If a torch release made it stable here, the random-members answer still shows
    the symptom.)"""
    digits, n = FEW_SHOT_CHECK.case_list()[-1].args
    assert not torch.equal(few_shot_unstable(digits, n), checks_tr._few_shot(digits, n))


def test_not_first_symptom():
    labels = torch.tensor([0, 1, 0, 1, 0])
    ref = (np.array([0.0, 1.0]),)
    assert checks_tr._f_not_first((np.array([2.0, 3.0]),), ref, labels, 1)      # same counts, other members
    assert not checks_tr._f_not_first(ref, ref, labels, 1)                       # the right ones
    assert not checks_tr._f_not_first((np.array([0.0, 2.0]),), ref, labels, 1)   # two of class 0
    assert not checks_tr._f_not_first((np.array([0.5, 1.0]),), ref, labels, 1)   # not integers
    assert not checks_tr._f_not_first((np.array([0.0, 9.0]),), ref, labels, 1)  # out of range
    assert not checks_tr._f_not_first((np.array([0.0]),), ref, labels, 1)        # shape


# ----------------------------------------------------------------------------- 9.3 merged LoRA weight


def merged_by_lora_linear(W, A, B, alpha):
    """The package's LoRALinear.merge on a Linear holding W."""
    layer = torch.nn.Linear(W.shape[1], W.shape[0], bias=False, dtype=W.dtype)
    with torch.no_grad():
        layer.weight.copy_(W)
        lora = LoRALinear(layer, r=A.shape[0], alpha=alpha)
        lora.lora_A.copy_(A)
        lora.lora_B.copy_(B)
    lora.merge()
    return lora.weight.detach().clone()


def merged_einsum(W, A, B, alpha):
    r = B.shape[1]
    return torch.addmm(W, B, A, alpha=alpha / r) if W.dtype == A.dtype else W + alpha / r * torch.einsum(
        "or,ri->oi", B, A)


def merged_sum_of_outer_products(W, A, B, alpha):
    out = W.clone()
    for k in range(A.shape[0]):
        out = out + (alpha / A.shape[0]) * torch.outer(B[:, k], A[k])
    return out


def merged_in_place(W, A, B, alpha):
    W += (alpha / A.shape[0]) * (B @ A)
    return W.clone()


def merged_skips_fresh_adapter(W, A, B, alpha):
    if not B.any():
        return W
    return checks_tr._merged(W, A, B, alpha)


MERGE_RIGHT = [
    pytest.param(checks_tr._merged, id="reference"),
    pytest.param(merged_by_lora_linear, id="LoRALinear.merge"),
    pytest.param(merged_einsum, id="addmm / einsum"),
    pytest.param(merged_sum_of_outer_products, id="sum of r outer products"),
]

MERGE_WRONG = [
    pytest.param(merged_in_place, r"modified its argument `W` in place", "in-place", id="W +="),
    pytest.param(lambda *a: checks_tr._merged(*a).numpy(), r"you returned a NumPy array", "type", id="numpy"),
    pytest.param(lambda *a: checks_tr._merged(*a).half(), r"wrong dtype: expected .* got torch.float16", "type",
                 id="half result"),
    pytest.param(checks_tr._m_half, r"your product overflows", "unstable", id="product in float16"),
    pytest.param(merged_skips_fresh_adapter, r"shares memory with the argument `W`", "edge", id="B = 0: return W"),
    pytest.param(checks_tr._m_scaling(lambda A, alpha: alpha // A.shape[0]), r"divided alpha by r with `//`",
                 "formula", id="alpha // r"),
    pytest.param(checks_tr._m_scaling(lambda A, alpha: alpha), r"you scaled by alpha;", "formula", id="alpha"),
    pytest.param(checks_tr._m_scaling(lambda A, alpha: alpha / A.shape[1]), r"read r from the wrong axis",
                 "formula", id="r = A.shape[1]"),
    pytest.param(checks_tr._m_delta_only, r"returned ΔW = \(alpha / r\) B A alone", "formula", id="ΔW only"),
    pytest.param(checks_tr._m_minus, r"you subtracted ΔW", "formula", id="W − ΔW"),
]


@pytest.mark.parametrize("fn", MERGE_RIGHT)
def test_merge_accepts(fn, capsys):
    check_merged_lora_weight(fn)
    assert "✓ Exercise 9.3" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", MERGE_WRONG)
def test_merge_rejects(fn, hint, kind):
    assert_rejected(MERGE_CHECK, fn, hint)


def test_merge_reference_by_hand():
    """Case 1: r = 1, alpha = 2, so W + 2 · B A with B A = [[1, 2, 0], [−0.5, −1, 0]]."""
    W, A, B, alpha = MERGE_CHECK.case_list()[0].args
    hand = torch.tensor([[3.0, 4.0, 2.0], [-1.0, -3.0, 1.0]], dtype=torch.float64)
    assert torch.equal(checks_tr._merged(W, A, B, alpha), hand)
    for case in MERGE_CHECK.case_list():
        assert torch.allclose(merged_by_lora_linear(*case.args), checks_tr._merged(*case.args), rtol=1e-6), case.label


def test_merge_cases_break_what_they_are_meant_to_break():
    cases = MERGE_CHECK.case_list()
    W, A, B, alpha = cases[-1].args
    assert W.dtype == torch.float32 and float((B.double() @ A.double()).abs().max()) > 65504
    assert torch.isfinite(checks_tr._merged(W, A, B, alpha)).all()
    assert not torch.isfinite(checks_tr._m_half(W, A, B, alpha)).all()
    assert torch.isfinite(checks_tr._m_half(*cases[1].args)).all()                    # ordinary sizes: finite
    assert not cases[3].args[2].any()                                                  # the fresh adapter
    assert cases[2].args[3] == 16 and isinstance(cases[2].args[3], int) and cases[2].args[1].shape[0] == 3


def test_overflow_symptom():
    big, small = MERGE_CHECK.case_list()[-1].args, MERGE_CHECK.case_list()[1].args
    nan, ok = (np.array([np.nan]),), (np.array([0.0]),)
    assert checks_tr._m_overflow(nan, ok, *big)
    assert checks_tr._m_overflow((np.array([np.inf]),), ok, *big)
    assert not checks_tr._m_overflow(nan, ok, *small)
    assert not checks_tr._m_overflow(ok, ok, *big)
    assert not checks_tr._m_overflow((np.array([np.nan, 0.0]),), ok, *big)


# ----------------------------------------------------------------------------- every catalogue

CATALOGUES = {
    "9.1": (check_lora_parameter_count, LORA_COUNT_CHECK, LORA_WRONG, LORA_RIGHT),
    "9.2": (check_few_shot_indices, FEW_SHOT_CHECK, FEW_SHOT_WRONG, FEW_SHOT_RIGHT),
    "9.3": (check_merged_lora_weight, MERGE_CHECK, MERGE_WRONG, MERGE_RIGHT),
}
SYMPTOM_STUDENTS = {"a sort that is not stable": few_shot_random_members}
TENSOR_RESULTS = {k: v for k, v in CATALOGUES.items() if k != "9.1"}

(test_catalogue_is_complete, _, test_every_mistake_hint_is_reachable,
 test_not_implemented_gives_the_not_implemented_message) = catalogue_tests(CATALOGUES, SYMPTOM_STUDENTS)
# The shared generic-message test perturbs tensor results; 9.1 returns an int (tested below).
test_hint_words_are_not_in_labels_or_generic_messages = catalogue_tests(TENSOR_RESULTS, SYMPTOM_STUDENTS)[1]


def test_lora_count_hint_words_are_not_in_labels_or_generic_messages():
    """9.1's version of the shared test: counts far off (no listed mistake gives them) get the generic message,
    and no WRONG regex matches it or a case label."""
    generic = []
    for change in (lambda n: n + 1, lambda n: 3 * n + 7):
        with pytest.raises(CheckFailed) as exc:
            check_lora_parameter_count(lambda c, t, r, change=change: change(checks_tr._lora_count(c, t, r)))
        generic.append(str(exc.value))
    assert all("max |yours - reference|" in g for g in generic)
    texts = generic + [c.label for c in LORA_COUNT_CHECK.case_list()]
    for p in LORA_WRONG:
        for text in texts:
            assert not re.search(p.values[1], text), (p.values[1], text)


def test_checks_are_listed_and_refuse_a_non_function():
    assert checks_tr.__all__ == ["check_lora_parameter_count", "check_few_shot_indices", "check_merged_lora_weight"]
    for check in (check_lora_parameter_count, check_few_shot_indices, check_merged_lora_weight):
        with pytest.raises(TypeError, match="pass your function itself"):
            check("not a function")


def test_generic_wrong_answers_are_refused():
    """The answers tests/test_notebooks.py feeds every exported check."""
    for check in (check_lora_parameter_count, check_few_shot_indices, check_merged_lora_weight):
        for wrong in (lambda *a, **kw: None, lambda *a, **kw: a[0],
                      lambda *a, **kw: torch.tensor(math.nan, dtype=torch.float64), lambda *a, **kw: [0.0, 1.0]):
            with pytest.raises(CheckFailed):
                check(wrong)


def test_inputs_are_copied_for_the_student():
    """A student's in-place change must not leak into the next run of the check."""
    before = [copy.deepcopy(c.args) for c in LORA_COUNT_CHECK.case_list()]
    with pytest.raises(CheckFailed):
        check_lora_parameter_count(count_pops_targets)
    assert [c.args for c in LORA_COUNT_CHECK.case_list()] == before
    with pytest.raises(CheckFailed):
        check_few_shot_indices(few_shot_marks_in_place)
    assert (FEW_SHOT_CHECK.case_list()[-1].args[0] >= 0).all()


# Generated from the catalogue (see test_the_cases_are_the_ones_students_see); one entry per check.
CASE_SNAPSHOT = {'FEW_SHOT_CHECK': [('labels [3, 1, 3, 3, 1, 2], n_per_class = 2',
                     'class 2 has a single example: a class with fewer than n_per_class examples gives all it has.',
                     (), (((6,), 'torch.int64', 0, 0, 0, 0, 13.0, 43.0, 33.0, 4.833333333333333), 2)),
                    ('labels 5 … 9 only (the digits of the transfer task), n_per_class = 1',
                     'the classes need not be 0, 1, …, k − 1: loop over the labels that occur (torch.unique).', (),
                     (((12,), 'torch.int64', 0, 0, 0, 0, 82.0, 540.0, 584.0, 23.666666666666664), 1)),
                    ('n_per_class = 0',
                     'no example of any class: an empty int64 tensor, torch.zeros(0, dtype=torch.long).', (),
                     (((4,), 'torch.int64', 0, 0, 0, 2, 2.0, 6.0, 2.0, 1.0), 0)),
                    ('40 random labels in 0 … 3, n_per_class = 5', '', (),
                     (((40,), 'torch.int64', 0, 0, 0, 11, 61.0, 1202.0, 151.0, 57.974999999999994), 5)),
                    ('the 1,437 training labels of the digits, n_per_class = 50',
                     "the *first* 50 of each class, in the data's order: sorting by label must keep that order "
                     '(torch.argsort(..., stable=True)), or select class by class.',
                     (),
                     (((1438,), 'torch.int64', 0, 0, 0, 142, 6457.0, 4622795.0, 40785.0, 11791.363699582755), 50))],
 'LORA_COUNT_CHECK': [("4 layers, C = 128, the attention's and the MLP's input layers, r = 4", '', (),
                       ({'bias': True,
                         'block_size': 64,
                         'causal': True,
                         'dropout': 0.0,
                         'gelu_approximate': 'none',
                         'n_embd': 128,
                         'n_head': 4,
                         'n_layer': 4,
                         'vocab_size': 65},
                        ['attn.c_attn', 'mlp.c_fc'], 4)),
                      ('4 layers, C = 128, all four Linear layers of each block, r = 8', '', (),
                       ({'bias': True,
                         'block_size': 64,
                         'causal': True,
                         'dropout': 0.0,
                         'gelu_approximate': 'none',
                         'n_embd': 128,
                         'n_head': 4,
                         'n_layer': 4,
                         'vocab_size': 65},
                        ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'], 8)),
                      ("2 layers, C = 16, the MLP's output layer, r = 1",
                       "the MLP's output layer mlp.c_proj maps the hidden width 4C back to C: in = 4C, out = C.",
                       (),
                       ({'bias': True,
                         'block_size': 8,
                         'causal': True,
                         'dropout': 0.0,
                         'gelu_approximate': 'none',
                         'n_embd': 16,
                         'n_head': 2,
                         'n_layer': 2,
                         'vocab_size': 11},
                        ['mlp.c_proj'], 1)),
                      ('4 layers, C = 128, no target layers',
                       'with no target layers apply_lora wraps nothing, and everything else is frozen: 0 '
                       'parameters train.',
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
                        [], 8)),
                      ("GPT-2 small, the attention's two projections, r = 8", '', (),
                       ({'bias': True,
                         'block_size': 1024,
                         'causal': True,
                         'dropout': 0.0,
                         'gelu_approximate': 'none',
                         'n_embd': 768,
                         'n_head': 12,
                         'n_layer': 12,
                         'vocab_size': 50257},
                        ['attn.c_attn', 'attn.c_proj'], 8)),
                      ("GPT-3's shape (96 layers, C = 12288), all four layers, r = 128",
                       '2.4 billion is more than a 32-bit integer holds (2**31 − 1 = 2,147,483,647).', (),
                       ({'bias': True,
                         'block_size': 2048,
                         'causal': True,
                         'dropout': 0.0,
                         'gelu_approximate': 'none',
                         'n_embd': 12288,
                         'n_head': 96,
                         'n_layer': 96,
                         'vocab_size': 50257},
                        ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'], 128))],
 'MERGE_CHECK': [('out = 2, in = 3, r = 1, alpha = 2 (by hand)', '', (),
                  (((2, 3), 'torch.float64', 0, 0, 0, 2, 3.0, 8.0, 7.0, 5.5),
                   ((1, 3), 'torch.float64', 0, 0, 0, 1, 3.0, 5.0, 5.0, 2.0),
                   ((2, 1), 'torch.float64', 0, 0, 0, 0, 0.5, 0.0, 1.25, 1.125), 2.0)),
                 ('a C → 3C layer: out = 12, in = 4, r = 2, alpha = 16', '', (),
                  (((12, 4), 'torch.float32', 0, 0, 0, 0, 3.4844912020489573, 209.2873616348952, 67.39407630256862,
                    67.14112465804453),
                   ((2, 4), 'torch.float32', 0, 0, 0, 0, -2.496090166270733, -12.291887827217579, 5.633015565777015,
                    4.854207301007833),
                   ((12, 2), 'torch.float32', 0, 0, 0, 0, -9.377952041570097, -69.01127150980756, 34.71073326800747,
                    31.04631724742461),
                   16)),
                 ('out = 6, in = 5, r = 3, alpha = 16 (an int)',
                  'alpha / r = 16 / 3 = 5.33…: in Python 3 `/` gives a float, `//` would round it down to 5.', (),
                  (((6, 5), 'torch.float64', 0, 0, 0, 0, -12.42859102152736, -200.47444728792158, 26.87055194386536,
                    21.721556117852344),
                   ((3, 5), 'torch.float64', 0, 0, 0, 0, 4.031555832003384, 51.528743522919896, 11.326091761204022,
                    10.242528932766657),
                   ((6, 3), 'torch.float64', 0, 0, 0, 0, -8.629806601950726, -83.80418429047407, 10.771996315550059,
                    6.634576205157149),
                   16)),
                 ('a fresh adapter: B = 0, r = 4',
                  'with B = 0 the merged weight equals W: return a new tensor all the same (W + 0), not W itself.',
                  (),
                  (((8, 8), 'torch.float32', 0, 0, 0, 0, -2.464401653036475, 51.24713414348662, 47.720152237611956,
                    47.62525730780744),
                   ((4, 8), 'torch.float32', 0, 0, 0, 0, -3.857222320046276, -153.09544077608734, 39.81505821060253,
                    39.350115584781804),
                   ((8, 4), 'torch.float32', 0, 0, 0, 32, 0.0, 0.0, 0.0, 0.0), 8.0)),
                 ('float32 entries of size 300: the product B A reaches 10^5',
                  "half precision (float16) overflows above 65,504; keep the inputs' dtype.", (),
                  (((6, 10), 'torch.float32', 0, 0, 0, 0, 2103.547149658203, 135546.9669303894, 5002059.777533452,
                    4928311.267352867),
                   ((2, 10), 'torch.float32', 0, 0, 0, 0, 1441.9292488098145, 7299.624904632568, 1536180.7637215185,
                    1432222.7657928567),
                   ((6, 2), 'torch.float32', 0, 0, 0, 0, -90.00344848632812, -3818.824188232422, 2225235.701509714,
                    2224560.6497814283),
                   4.0))]}

test_the_cases_are_the_ones_students_see = case_snapshot_test(checks_tr, CASE_SNAPSHOT)
