"""Validation loss of a character GPT on Tiny Shakespeare under a wall-clock budget: the course's recipe
against nanoGPT's published CPU recipe, both trained with our GPT in the same process.

    python benchmarks/lm_quality.py                               # ../shared/data/tinyshakespeare.txt, 1 thread
    python benchmarks/lm_quality.py --data PATH --threads 2 --out table.md
    python benchmarks/lm_quality.py --budget-seconds 120          # a fixed budget instead of the reference's time
    python benchmarks/lm_quality.py --course lr=2e-3,n_layer=6    # try a variant of the course's recipe
    python benchmarks/lm_quality.py --quick                       # a smoke run on a small slice, a few seconds

Data: the text loaded with :func:`aigc_course.data.downloads.load_tiny_shakespeare` (its SHA-256 is checked;
``--corpus docs`` uses :func:`aigc_course.data.text.docs_corpus` instead), one :class:`CharVocab` over the whole
text, the first 90 % for training and the last 10 % for validation (as nanoGPT's ``prepare.py``).

Reference: nanoGPT's ``train_shakespeare_char.py`` with the CPU overrides of its README (n_layer 4, n_head 4,
n_embd 128, block_size 64, batch 12, dropout 0, 2000 iterations, lr 1e-3, warm-up 100, cosine decay to min_lr
1e-4 at iteration 2000, AdamW betas (0.9, 0.99), weight decay 0.1 on matrices and embeddings, grad clip 1.0),
run with :class:`aigc_course.gpt.GPT` and :func:`aigc_course.lm.train_lm`. Its training wall time is the budget
(``--budget-seconds`` replaces it). nanoGPT's README reports val ≈ 1.88 for it.

Course: the recipe in :data:`COURSE` (overridable with ``--course key=value,...``), trained with ``train_lm``
for as many steps as fit the budget: after the reference, calibration runs of the course's model measure
its seconds per step (median of 3 runs of 15 steps; reported, not counted: they are throwaway), and
steps = ⌊0.95 · budget / (s/step)⌋; ``--steps`` fixes the number instead. Target: val ≤ 1.65 nats/char in
no more training wall time than the reference took.

Counting: "train seconds" is ``train_lm``'s wall time (model already built, data already on the device;
batch drawing, forward, backward, clipping, AdamW, the NaN guard), with no evaluation inside (no ``val_ids``).
Evaluation runs afterwards, on the WHOLE validation split, with :func:`aigc_course.lm.evaluate_loss`:
non-overlapping windows of each model's own block_size (every target scored once, given the characters
before it in its window as context, 1..block_size of them). A model with a longer block therefore gets more
context per prediction; that is part of its recipe and the table says each block size.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from _args import int_at_least, positive_float

from aigc_course.data.downloads import load_tiny_shakespeare
from aigc_course.data.text import CharVocab, docs_corpus
from aigc_course.device import configure_threads, seed_everything
from aigc_course.gpt import GPT, GPTConfig
from aigc_course.lm import LMConfig, evaluate_loss, train_lm

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tinyshakespeare.txt"
TARGET_VAL = 1.65            # nats/char on the whole validation split
SAFETY = 0.95                # the course plans its steps to use this share of the budget
VAL_FRACTION = 0.1


@dataclass(frozen=True)
class Recipe:
    """A model (GPTConfig fields) and how train_lm trains it. ``steps`` None: as many as fit the budget."""

    name: str
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    batch_size: int
    lr: float
    min_lr: float
    warmup_steps: int
    steps: int | None
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    dropout: float = 0.0
    bias: bool = True
    optimizer: str = "adamw"
    muon_lr: float = 0.02

    def gpt_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout, bias=self.bias)

    def lm_config(self, steps: int) -> LMConfig:
        return LMConfig(steps=steps, batch_size=self.batch_size, block_size=self.block_size, lr=self.lr,
                        min_lr=self.min_lr, weight_decay=self.weight_decay, betas=self.betas,
                        lr_schedule="cosine", warmup_steps=min(self.warmup_steps, steps), grad_clip=self.grad_clip,
                        progress=False, log_every=max(steps, 1), optimizer=self.optimizer, muon_lr=self.muon_lr)

    def describe(self) -> str:
        rates = f"lr {self.lr:g}→{self.min_lr:g}"
        if self.optimizer == "muon":    # the schedule scales Muon's rate by the same factor
            rates = f"Muon lr {self.muon_lr:g}→{self.muon_lr * self.min_lr / self.lr:g} + AdamW {rates}"
        return (f"{self.n_layer}×{self.n_embd}, {self.n_head} heads, block {self.block_size}, batch "
                f"{self.batch_size}, {rates}, warm-up {self.warmup_steps}, "
                f"betas {self.betas}, wd {self.weight_decay:g}{'' if self.bias else ', no bias'}")


# nanoGPT config/train_shakespeare_char.py with the README's CPU overrides
REFERENCE = Recipe("reference (nanoGPT CPU recipe)", n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12,
                   lr=1e-3, min_lr=1e-4, warmup_steps=100, steps=2000)
COURSE = Recipe("course", n_layer=4, n_head=4, n_embd=64, block_size=64, batch_size=32,
                lr=5e-3, min_lr=1e-4, warmup_steps=50, steps=None, betas=(0.9, 0.95), bias=False,
                optimizer="muon", muon_lr=0.02)

# --quick: tiny models on a small slice, a few seconds in all
QUICK_CHARS = 40_000
QUICK_REFERENCE = dataclasses.replace(REFERENCE, n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=8,
                                      warmup_steps=10, steps=150)
QUICK_COURSE = dataclasses.replace(COURSE, n_layer=2, n_head=2, n_embd=32, block_size=48, batch_size=8,
                                   warmup_steps=5)
CALIBRATION_STEPS = {False: 15, True: 5}   # per chunk, 3 chunks


# --------------------------------------------------------------------------- options

_OVERRIDABLE = {f.name: f.type for f in dataclasses.fields(Recipe) if f.name not in ("name", "steps")}


def parse_overrides(text: str) -> dict:
    """``"lr=2e-3,n_layer=6,bias=false,betas=0.9/0.95"`` → field values for :class:`Recipe`."""
    out: dict = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in _OVERRIDABLE:
            raise argparse.ArgumentTypeError(f"--course takes key=value pairs with keys from "
                                             f"{sorted(_OVERRIDABLE)}, got {item!r}")
        try:
            if key == "optimizer":
                if value not in ("adamw", "muon"):
                    raise ValueError
                out[key] = value
            elif key == "bias":
                if value.lower() not in ("true", "false"):
                    raise ValueError
                out[key] = value.lower() == "true"
            elif key == "betas":
                b1, b2 = value.split("/")
                out[key] = (float(b1), float(b2))
            elif _OVERRIDABLE[key] in (int, "int"):
                out[key] = int(value)
            else:
                out[key] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--course: bad value for {key}: {value!r}") from None
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="Tiny Shakespeare input.txt (default ../shared/data/tinyshakespeare.txt beside the repo)")
    p.add_argument("--corpus", choices=("shakespeare", "docs"), default="shakespeare",
                   help="docs: Python's documentation text instead (aigc_course.data.text.docs_corpus)")
    p.add_argument("--budget-seconds", type=positive_float("--budget-seconds"), default=None,
                   help="training budget of the course's recipe (default: the reference's measured time)")
    p.add_argument("--steps", type=int_at_least("--steps"), default=None,
                   help="fix the course's steps instead of fitting them to the budget")
    p.add_argument("--reference-steps", type=int_at_least("--reference-steps"), default=None,
                   help="steps of the reference recipe (default 2000, as nanoGPT)")
    p.add_argument("--course", type=parse_overrides, default={},
                   help="override fields of the course's recipe: key=value,... (betas as 0.9/0.95)")
    p.add_argument("--threads", type=int_at_least("--threads"), default=1, help="torch threads (default 1)")
    p.add_argument("--seed", type=int_at_least("--seed", 0), default=0)
    p.add_argument("--quick", action="store_true", help="tiny models on a small slice: a smoke run")
    p.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- data and runs

def load_text(args: argparse.Namespace) -> tuple[str, str]:
    """(text, description of where it came from)."""
    if args.corpus == "docs":
        text, what = docs_corpus(), "Python docs corpus (aigc_course.data.text.docs_corpus)"
    else:
        text, what = load_tiny_shakespeare(args.data), f"Tiny Shakespeare ({Path(args.data).resolve()})"
    if args.quick:
        text, what = text[:QUICK_CHARS], f"{what}, first {QUICK_CHARS:,} characters"
    return text, what


def split_ids(text: str) -> tuple[CharVocab, torch.Tensor, torch.Tensor]:
    """Vocabulary over the whole text; first 90 % → train ids, last 10 % → validation ids (nanoGPT's split)."""
    vocab = CharVocab.from_text(text)
    n = int(len(text) * (1 - VAL_FRACTION))
    return vocab, vocab.encode(text[:n]), vocab.encode(text[n:])


def run_recipe(recipe: Recipe, steps: int, vocab_size: int, train_ids: torch.Tensor, val_ids: torch.Tensor,
               seed: int) -> dict:
    """Build the model from ``seed``, train ``steps`` steps with train_lm, then evaluate on all of val_ids."""
    seed_everything(seed)
    model = GPT(recipe.gpt_config(vocab_size))
    result = train_lm(model, train_ids, recipe.lm_config(steps))
    start = time.perf_counter()
    val = evaluate_loss(model, val_ids, recipe.block_size)
    eval_seconds = time.perf_counter() - start
    return {"recipe": recipe, "steps": steps, "tokens": steps * recipe.batch_size * recipe.block_size,
            "seconds": result.seconds, "val_loss": val, "val_ppl": math.exp(val), "eval_seconds": eval_seconds,
            "train_loss": result.history.last("loss"), "params": model.num_parameters(non_embedding=False)}


def calibrate(recipe: Recipe, vocab_size: int, train_ids: torch.Tensor, steps: int, seed: int,
              chunks: int = 3) -> float:
    """Seconds per training step of ``recipe``: the median over ``chunks`` throwaway train_lm runs of ``steps``
    steps each, after 2 warm-up steps (the median resists a burst of load from other processes)."""
    seed_everything(seed + 1)
    model = GPT(recipe.gpt_config(vocab_size))
    train_lm(model, train_ids, recipe.lm_config(2))
    return statistics.median(train_lm(model, train_ids, recipe.lm_config(steps)).seconds / steps
                             for _ in range(chunks))


def verdict(course: dict, budget: float, applies: bool) -> str:
    within = course["seconds"] <= budget
    ok = course["val_loss"] <= TARGET_VAL and within
    head = "met" if ok else "missed"
    parts = []
    if course["val_loss"] > TARGET_VAL:
        parts.append(f"val {course['val_loss']:.3f} is {course['val_loss'] - TARGET_VAL:.3f} above {TARGET_VAL}")
    if not within:
        parts.append(f"{course['seconds']:.1f} s is {course['seconds'] - budget:.1f} s over the budget")
    text = head + (": " + "; ".join(parts) if parts else "")
    return text if applies else f"{text} (the target is for the full Tiny Shakespeare run only)"


def table(rows: list[dict], ref: dict) -> list[str]:
    lines = ["| recipe | steps | tokens seen | train seconds | val loss (nats/char) | val perplexity "
             "| × reference (seconds, val loss) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['recipe'].name}: {r['recipe'].describe()} | {r['steps']} | {r['tokens']:,} | "
                     f"{r['seconds']:.1f} | {r['val_loss']:.4f} | {r['val_ppl']:.3f} | "
                     f"{r['seconds'] / ref['seconds']:.2f}, {r['val_loss'] / ref['val_loss']:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    threads = configure_threads(args.threads)
    text, what = load_text(args)
    vocab, train_ids, val_ids = split_ids(text)
    V = len(vocab)
    reference = QUICK_REFERENCE if args.quick else REFERENCE
    if args.reference_steps is not None:
        reference = dataclasses.replace(reference, steps=args.reference_steps)
    course = dataclasses.replace(QUICK_COURSE if args.quick else COURSE, **args.course)
    print(f"torch {torch.__version__}, {threads} torch thread(s), CPU; data: {what}; V = {V}; "
          f"train {train_ids.numel():,} / val {val_ids.numel():,} characters (90/10)")
    print("val loss: whole validation split, non-overlapping windows of each model's block_size "
          "(aigc_course.lm.evaluate_loss); train seconds: train_lm's wall time, no evaluation inside")
    sys.stdout.flush()

    ref = run_recipe(reference, reference.steps, V, train_ids, val_ids, args.seed)
    budget = args.budget_seconds if args.budget_seconds is not None else ref["seconds"]
    print(f"reference: {ref['steps']} steps in {ref['seconds']:.1f} s, val {ref['val_loss']:.4f} "
          f"(evaluation {ref['eval_seconds']:.1f} s, not counted); budget {budget:.1f} s"
          f"{' (the reference time)' if args.budget_seconds is None else ' (--budget-seconds)'}")
    sys.stdout.flush()
    calibration = None
    if args.steps is not None:
        steps = args.steps
    else:
        calibration = calibrate(course, V, train_ids, CALIBRATION_STEPS[args.quick], args.seed)
        steps = max(1, int(SAFETY * budget / calibration))
        print(f"course: calibration {calibration * 1e3:.1f} ms/step → {steps} steps "
              f"({SAFETY:.0%} of the budget)")
        sys.stdout.flush()
    mine = run_recipe(dataclasses.replace(course, steps=steps), steps, V, train_ids, val_ids, args.seed)
    rows = [ref, mine]
    lines = table(rows, ref)
    applies = args.corpus == "shakespeare" and not args.quick
    target = (f"target (val ≤ {TARGET_VAL} nats/char in ≤ {budget:.1f} s of training): "
              f"{verdict(mine, budget, applies)}")
    lines += ["", f"parameters: reference {ref['params']:,}, course {mine['params']:,}; "
                  f"evaluation seconds (not counted): {ref['eval_seconds']:.1f}, {mine['eval_seconds']:.1f}", target]
    print("\n" + "\n".join(lines))
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")
    sys.stdout.flush()
    return {"threads": threads, "vocab_size": V, "train_chars": train_ids.numel(), "val_chars": val_ids.numel(),
            "rows": rows, "budget": budget, "calibration": calibration, "target": target, "lines": lines}


if __name__ == "__main__":
    main()
