"""Self-checks for lesson 09 (pre-training, fine-tuning, transfer): the number of parameters LoRA trains in a GPT,
a few-shot subset of a labelled set (the first n examples of every class), and the merged weight of a LoRA layer.

Each ``*_CHECK`` is a :class:`~aigc_course.checks._core.Check` (cases, mistakes, return type); the ``check_*``
functions that the exercises call run them. The references are short expressions of the definitions; the tests
compare them with :func:`aigc_course.finetune.apply_lora` and :meth:`aigc_course.finetune.LoRALinear.merge`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..gpt import GPTConfig
from ._core import Case, Check, IntResult, Mistake, TensorResult

__all__ = ["check_lora_parameter_count", "check_few_shot_indices", "check_merged_lora_weight"]

F64 = torch.float64

# --------------------------------------------------------------------------- Exercise 9.1

# (in_features, out_features) of each Linear layer of a GPT block, in units of the width C = n_embd
LAYER_SHAPES = {"attn.c_attn": (1, 3), "attn.c_proj": (1, 1), "mlp.c_fc": (1, 4), "mlp.c_proj": (4, 1)}


def _config(vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int) -> dict[str, Any]:
    return dataclasses.asdict(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                                        n_embd=n_embd))


def _lora_count(config: dict[str, Any], targets: list[str], r: int) -> int:
    """Trainable parameters after apply_lora(GPT(GPTConfig(**config)), [f"*.{t}" for t in targets], r, alpha):
    each target layer (in → out) of each of the n_layer blocks trains A (r, in) and B (out, r)."""
    C, L = config["n_embd"], config["n_layer"]
    return sum(L * r * (a * C + b * C) for a, b in (LAYER_SHAPES[t] for t in targets))


def _lora_cases() -> list[Case]:
    small = _config(65, 64, 4, 4, 128)
    return [
        Case((small, ["attn.c_attn", "mlp.c_fc"], 4),
             label="4 layers, C = 128, the attention's and the MLP's input layers, r = 4"),
        Case((small, ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"], 8),
             label="4 layers, C = 128, all four Linear layers of each block, r = 8"),
        Case((_config(11, 8, 2, 2, 16), ["mlp.c_proj"], 1), label="2 layers, C = 16, the MLP's output layer, r = 1",
             note="the MLP's output layer mlp.c_proj maps the hidden width 4C back to C: in = 4C, out = C."),
        Case((small, [], 8), label="4 layers, C = 128, no target layers",
             note="with no target layers apply_lora wraps nothing, and everything else is frozen: 0 parameters train."),
        Case((_config(50257, 1024, 12, 12, 768), ["attn.c_attn", "attn.c_proj"], 8),
             label="GPT-2 small, the attention's two projections, r = 8"),
        Case((_config(50257, 2048, 96, 96, 12288), ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"], 128),
             label="GPT-3's shape (96 layers, C = 12288), all four layers, r = 128",
             note="2.4 billion is more than a 32-bit integer holds (2**31 − 1 = 2,147,483,647)."),
    ]


def _l_full(config: dict[str, Any], targets: list[str], r: int) -> int:
    C, L = config["n_embd"], config["n_layer"]
    return sum(L * a * C * b * C for a, b in (LAYER_SHAPES[t] for t in targets))


def _l_half(which: int) -> Callable[..., int]:
    def wrong(config: dict[str, Any], targets: list[str], r: int) -> int:
        C, L = config["n_embd"], config["n_layer"]
        return sum(L * r * LAYER_SHAPES[t][which] * C for t in targets)
    return wrong


def _l_square(config: dict[str, Any], targets: list[str], r: int) -> int:
    C, L = config["n_embd"], config["n_layer"]
    return L * r * 2 * C * len(targets)


def _l_one_layer(config: dict[str, Any], targets: list[str], r: int) -> int:
    return _lora_count(config, targets, r) // config["n_layer"]


def _l_with_bias(config: dict[str, Any], targets: list[str], r: int) -> int:
    C, L = config["n_embd"], config["n_layer"]
    return _lora_count(config, targets, r) + sum(L * LAYER_SHAPES[t][1] * C for t in targets)


def _l_int32(config: dict[str, Any], targets: list[str], r: int) -> int:
    """The count in 32-bit integers (np.int32, torch.int32, NumPy's default int on Windows): it wraps past 2**31."""
    return (_lora_count(config, targets, r) + 2**31) % 2**32 - 2**31


def _l_empty_means_all(config: dict[str, Any], targets: list[str], r: int) -> int:
    return _lora_count(config, list(targets) or list(LAYER_SHAPES), r)


def _l_r_squared(config: dict[str, Any], targets: list[str], r: int) -> int:
    return _lora_count(config, targets, r) * r


_LORA_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("your count overflowed: a 32-bit integer (np.int32, torch.int32, or NumPy's default integer on "
            "Windows) holds at most 2**31 − 1, so 2.4 billion wraps around to a negative number. Count with Python "
            "ints (or int64).", _l_int32),
    Mistake("an empty list of targets wraps no layer: apply_lora freezes the whole model and adds nothing, so 0 "
            "parameters train. Do not replace an empty list by all layers.", _l_empty_means_all),
    Mistake("you counted the full weight matrices, in·out per layer: that is what full fine-tuning trains. LoRA "
            "trains A (r × in) and B (out × r): r·(in + out) per layer.", _l_full),
    Mistake("you counted only A (r × in): B (out × r) trains too, so each layer adds r·(in + out).", _l_half(0)),
    Mistake("you counted only B (out × r): A (r × in) trains too, so each layer adds r·(in + out).", _l_half(1)),
    Mistake("you treated every layer as C → C: attn.c_attn maps C to 3C (queries, keys and values at once), "
            "mlp.c_fc maps C to 4C and mlp.c_proj 4C back to C.", _l_square),
    Mistake("you counted the target layers of one block: every one of the n_layer blocks has its own copy.",
            _l_one_layer),
    Mistake("you counted the layers' biases: apply_lora freezes them with the weights; only A and B train.",
            _l_with_bias),
    Mistake("you multiplied by r twice: A has r·in numbers and B out·r, together r·(in + out).", _l_r_squared),
]

LORA_COUNT_CHECK = Check(
    "Exercise 9.1 (LoRA's trainable parameters)", _lora_count, _lora_cases, _LORA_MISTAKES,
    IntResult("the number of trainable parameters"),
    ("config", "targets", "r"), atol=0.0, rtol=0.0)


def check_lora_parameter_count(student_fn: Callable[[dict[str, Any], list[str], int], int]) -> None:
    """Exercise 9.1: ``lora_parameter_count(config, targets, r)`` → the number of trainable parameters (an int)."""
    LORA_COUNT_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 9.2

def _few_shot(labels: torch.Tensor, n_per_class: int) -> torch.Tensor:
    """Indices (int64, increasing) of the first ``n_per_class`` examples of every class in labels (N,); a class
    with fewer examples gives all of them."""
    picked = [torch.nonzero(labels == c)[:n_per_class, 0] for c in torch.unique(labels)]
    return torch.sort(torch.cat(picked)).values if picked else torch.zeros(0, dtype=torch.int64)


def _digits_labels() -> torch.Tensor:
    from ..data import load_digits_split
    return load_digits_split().train_labels.clone()


def _few_shot_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    return [
        Case((torch.tensor([3, 1, 3, 3, 1, 2]), 2), label="labels [3, 1, 3, 3, 1, 2], n_per_class = 2",
             note="class 2 has a single example: a class with fewer than n_per_class examples gives all it has."),
        Case((torch.tensor([7, 5, 9, 5, 7, 7, 6, 8, 9, 5, 6, 8]), 1),
             label="labels 5 … 9 only (the digits of the transfer task), n_per_class = 1",
             note="the classes need not be 0, 1, …, k − 1: loop over the labels that occur (torch.unique)."),
        Case((torch.tensor([0, 1, 0, 1]), 0), label="n_per_class = 0",
             note="no example of any class: an empty int64 tensor, torch.zeros(0, dtype=torch.long)."),
        Case((torch.randint(0, 4, (40,), generator=g), 5), label="40 random labels in 0 … 3, n_per_class = 5"),
        Case((_digits_labels(), 50), label="the 1,437 training labels of the digits, n_per_class = 50",
             note="the *first* 50 of each class, in the data's order: sorting by label must keep that order "
                  "(torch.argsort(..., stable=True)), or select class by class."),
    ]


def _f_class_order(labels: torch.Tensor, n_per_class: int) -> torch.Tensor:
    return torch.cat([torch.nonzero(labels == c)[:n_per_class, 0] for c in torch.unique(labels)])


def _f_range(labels: torch.Tensor, n_per_class: int) -> torch.Tensor:
    k = len(torch.unique(labels))
    picked = [torch.nonzero(labels == c)[:n_per_class, 0] for c in range(k)]
    return torch.sort(torch.cat(picked)).values


def _f_first_overall(labels: torch.Tensor, n_per_class: int) -> torch.Tensor:
    return torch.arange(min(len(labels), n_per_class * len(torch.unique(labels))))


def _f_last(labels: torch.Tensor, n_per_class: int) -> torch.Tensor:
    picked = [torch.nonzero(labels == c)[:, 0] for c in torch.unique(labels)]
    return torch.sort(torch.cat([p[len(p) - min(n_per_class, len(p)):] for p in picked])).values


def _f_labels(labels: torch.Tensor, n_per_class: int) -> torch.Tensor:
    return labels[_few_shot(labels, n_per_class)]


def _f_mask_as_long(labels: torch.Tensor, n_per_class: int) -> torch.Tensor:
    mask = torch.zeros(len(labels), dtype=torch.int64)
    mask[_few_shot(labels, n_per_class)] = 1
    return mask


def _f_not_first(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], labels: torch.Tensor,
                 n_per_class: int) -> bool:
    """Symptom: valid indices with the right number per class, sorted, but not the first ones of each class."""
    got, ref = mine[0], want[0]
    if got.shape != ref.shape or got.size == 0 or not np.all(got == np.round(got)):
        return False
    idx = got.astype(np.int64)
    if idx.min() < 0 or idx.max() >= len(labels) or len(np.unique(idx)) != len(idx):
        return False
    lab = labels.numpy()
    same_counts = np.array_equal(np.bincount(lab[idx], minlength=lab.max() + 1),
                                 np.bincount(lab[ref.astype(np.int64)], minlength=lab.max() + 1))
    return same_counts and not np.array_equal(idx, ref)


_FEW_SHOT_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("you looped over range(number of classes): the labels here are 5 … 9, so classes 0 … 4 were looked "
            "for and 5 … 9 missed. Loop over the labels that occur: torch.unique(labels).", _f_range),
    Mistake("the indices are grouped class by class: return them in increasing order (torch.sort(...).values), so "
            "that the subset keeps the data's order.", _f_class_order),
    Mistake("you took the *last* n_per_class examples of each class; take the first ones ([:n_per_class]).", _f_last),
    Mistake("you took the first n_per_class · (number of classes) examples overall; take n_per_class from *each* "
            "class (the classes are not spread evenly).", _f_first_overall),
    Mistake("you returned the labels of the chosen examples; return their indices (positions in labels).",
            _f_labels),
    Mistake("you returned a 0/1 mask over all examples; return the indices where it is 1 (torch.nonzero(mask)).",
            _f_mask_as_long),
    Mistake("the right number of each class, but not the *first* ones: a sort that is not stable (torch.argsort and "
            "torch.sort with the default stable=False) shuffles equal labels. Pass stable=True, or select with "
            "torch.nonzero(labels == c)[:n_per_class] class by class.", symptom=_f_not_first),
]

FEW_SHOT_CHECK = Check(
    "Exercise 9.2 (few-shot subset)", _few_shot, _few_shot_cases, _FEW_SHOT_MISTAKES, TensorResult("long"),
    ("labels", "n_per_class"), atol=0.0, rtol=0.0)


def check_few_shot_indices(student_fn: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Exercise 9.2: ``few_shot_indices(labels, n_per_class)`` → int64 indices, increasing."""
    FEW_SHOT_CHECK.run(student_fn)


# --------------------------------------------------------------------------- Exercise 9.3

def _merged(W: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float) -> torch.Tensor:
    """W (out, in) + (alpha / r) · B (out, r) @ A (r, in), with r = A.shape[0]."""
    return W + (alpha / A.shape[0]) * (B @ A)


def _merge_case(seed: int, out: int, inp: int, r: int, dtype: torch.dtype, b_scale: float = 1.0,
                scale: float = 1.0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(out, inp, generator=g, dtype=F64) * scale
    A = torch.randn(r, inp, generator=g, dtype=F64) * scale
    B = torch.randn(out, r, generator=g, dtype=F64) * b_scale * scale
    return tuple(t.to(dtype) for t in (W, A, B))


def _merge_cases() -> list[Case]:
    return [
        Case((torch.tensor([[1.0, 0.0, 2.0], [0.0, -1.0, 1.0]], dtype=F64), torch.tensor([[1.0, 2.0, 0.0]], dtype=F64),
              torch.tensor([[1.0], [-0.5]], dtype=F64), 2.0), label="out = 2, in = 3, r = 1, alpha = 2 (by hand)"),
        Case((*_merge_case(1, 12, 4, 2, torch.float32), 16),
             label="a C → 3C layer: out = 12, in = 4, r = 2, alpha = 16"),
        Case((*_merge_case(2, 6, 5, 3, F64), 16), label="out = 6, in = 5, r = 3, alpha = 16 (an int)",
             note="alpha / r = 16 / 3 = 5.33…: in Python 3 `/` gives a float, `//` would round it down to 5."),
        Case((*_merge_case(3, 8, 8, 4, torch.float32, b_scale=0.0), 8.0), label="a fresh adapter: B = 0, r = 4",
             note="with B = 0 the merged weight equals W: return a new tensor all the same (W + 0), not W itself."),
        Case((*_merge_case(4, 6, 10, 2, torch.float32, scale=300.0), 4.0),
             label="float32 entries of size 300: the product B A reaches 10^5",
             note="half precision (float16) overflows above 65,504; keep the inputs' dtype."),
    ]


def _m_scaling(factor: Callable[[torch.Tensor, float], float]) -> Callable[..., torch.Tensor]:
    def wrong(W: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float) -> torch.Tensor:
        return W + factor(A, alpha) * (B @ A)
    return wrong


def _m_delta_only(W: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float) -> torch.Tensor:
    return (alpha / A.shape[0]) * (B @ A)


def _m_minus(W: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float) -> torch.Tensor:
    return W - (alpha / A.shape[0]) * (B @ A)


def _m_half(W: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float) -> torch.Tensor:
    return W + ((alpha / A.shape[0]) * (B.half() @ A.half())).to(W.dtype)


def _m_overflow(mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...], W: torch.Tensor, A: torch.Tensor,
                B: torch.Tensor, alpha: float) -> bool:
    """Symptom: inf or NaN where the reference is finite, on a case whose product leaves float16's range."""
    big = float((B.double() @ A.double()).abs().max()) > 65504
    return big and mine[0].shape == want[0].shape and bool((~np.isfinite(mine[0]) & np.isfinite(want[0])).any())


_MERGE_MISTAKES = [  # the ones that agree with the reference on ordinary cases first
    Mistake("your product overflows: in half precision (float16) numbers above 65,504 become inf. Compute in the "
            "inputs' dtype (float32 or float64).", _m_half, symptom=_m_overflow),
    Mistake("you divided alpha by r with `//`: 16 // 3 = 5, not 5.33. The scaling is alpha / r, a float.",
            _m_scaling(lambda A, alpha: alpha // A.shape[0])),
    Mistake("you scaled by alpha; LoRA scales by alpha / r (r = A.shape[0], the rank), so that changing r does not "
            "change the size of the update.", _m_scaling(lambda A, alpha: alpha)),
    Mistake("you read r from the wrong axis: A is (r, in), so r = A.shape[0] (B is (out, r): B.shape[1]).",
            _m_scaling(lambda A, alpha: alpha / A.shape[1])),
    Mistake("you returned ΔW = (alpha / r) B A alone; the merged weight is W + ΔW.", _m_delta_only),
    Mistake("you subtracted ΔW (that is unmerging); merging adds it: W + (alpha / r) B A.", _m_minus),
]

MERGE_CHECK = Check(
    "Exercise 9.3 (merging a LoRA update)", _merged, _merge_cases, _MERGE_MISTAKES, TensorResult("float"),
    ("W", "A", "B", "alpha"), atol=1e-5, rtol=1e-5)


def check_merged_lora_weight(student_fn: Callable[..., torch.Tensor]) -> None:
    """Exercise 9.3: ``merged_weight(W, A, B, alpha)`` → W + (alpha / r) B A, shape (out, in)."""
    MERGE_CHECK.run(student_fn)
