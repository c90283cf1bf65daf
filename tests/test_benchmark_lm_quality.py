"""Smoke test of benchmarks/lm_quality.py: the reference is nanoGPT's CPU recipe, the split is nanoGPT's 90/10,
--quick runs in a few seconds on the docs corpus (no data file needed) with the table format, finite losses below
log V, steps fitted to the budget and the same numbers for the same seed; bad options are refused. The
Tiny Shakespeare part (nanoGPT's published split sizes) is skipped when ../shared/data/tinyshakespeare.txt is
absent."""

from __future__ import annotations

import contextlib
import io
import math

import pytest
import torch
from benchmark_script import load_benchmark


def load_script():
    return load_benchmark("lm_quality")


@pytest.fixture(scope="module")
def bench():
    return load_script()


def run(bench, argv):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        results = bench.main(argv)
    return buf.getvalue(), results


@pytest.fixture(scope="module")
def quick(bench):
    """One --quick run on the docs corpus with the course's steps fitted to the budget."""
    return run(bench, ["--quick", "--corpus", "docs"])


@pytest.fixture(scope="module")
def fixed(bench):
    """Two --quick runs at fixed steps with seed 0, one with seed 1."""
    argv = ["--quick", "--corpus", "docs", "--steps", "30", "--reference-steps", "30"]
    return [run(bench, argv + ["--seed", s])[1] for s in ("0", "0", "1")]


def test_the_reference_is_nanogpts_cpu_recipe(bench):
    r = bench.REFERENCE
    assert (r.n_layer, r.n_head, r.n_embd, r.block_size, r.batch_size, r.dropout, r.steps) == (4, 4, 128, 64, 12,
                                                                                               0.0, 2000)
    assert (r.lr, r.min_lr, r.warmup_steps, r.betas, r.weight_decay, r.grad_clip, r.bias) == (
        1e-3, 1e-4, 100, (0.9, 0.99), 0.1, 1.0, True)
    cfg = r.lm_config(2000)
    assert (cfg.lr_schedule, cfg.warmup_steps, cfg.min_lr, cfg.batch_size, cfg.block_size) == (
        "cosine", 100, 1e-4, 12, 64)
    assert r.gpt_config(65).n_embd == 128 and bench.COURSE.steps is None and bench.TARGET_VAL == 1.65


def test_split_is_nanogpts_90_10_with_one_vocabulary(bench):
    text = "abcdefghij" * 3 + "XYZ"            # 33 chars: 29 train, 4 val; X, Y, Z only in validation
    vocab, tr, va = bench.split_ids(text)
    assert len(vocab) == 13 and (tr.numel(), va.numel()) == (29, 4)
    assert vocab.decode(tr) == text[:29] and vocab.decode(va) == "jXYZ"


def test_shakespeare_split_has_nanogpts_sizes(bench):
    if not bench.DEFAULT_DATA.is_file():
        pytest.skip(f"Tiny Shakespeare is not at {bench.DEFAULT_DATA}: the Shakespeare-specific check is skipped")
    text, what = bench.load_text(bench.parse_args([]))
    vocab, tr, va = bench.split_ids(text)
    # nanoGPT's data/shakespeare_char/prepare.py prints these
    assert (len(text), len(vocab), tr.numel(), va.numel()) == (1_115_394, 65, 1_003_854, 111_540)
    assert what.startswith("Tiny Shakespeare (")


def test_quick_run_prints_the_table_and_sane_numbers(quick, bench):
    printed, res = quick
    assert printed.startswith(f"torch {torch.__version__}, 1 torch thread(s), CPU; data: Python docs corpus")
    assert res["threads"] == 1 and torch.get_num_threads() == 1
    assert res["train_chars"] + res["val_chars"] == bench.QUICK_CHARS and res["val_chars"] == 4_000
    ref, course = res["rows"]
    V = res["vocab_size"]
    for r in (ref, course):
        assert math.isfinite(r["val_loss"]) and r["val_loss"] < math.log(V) - 0.3, r["val_loss"]
        assert r["val_ppl"] == pytest.approx(math.exp(r["val_loss"]))
        assert r["seconds"] > 0 and r["tokens"] == r["steps"] * r["recipe"].batch_size * r["recipe"].block_size
    assert ref["steps"] == bench.QUICK_REFERENCE.steps and res["budget"] == ref["seconds"]
    # the course's steps fill 95 % of the budget at the calibrated speed
    assert course["steps"] == max(1, int(0.95 * res["budget"] / res["calibration"]))
    assert ("| recipe | steps | tokens seen | train seconds | val loss (nats/char) | val perplexity "
            "| × reference (seconds, val loss) |") in printed
    assert "| reference (nanoGPT CPU recipe): 2×32, 2 heads, block 32, batch 8, lr 0.001→0.0001, " in printed
    assert (f"| {ref['steps']} | {ref['tokens']:,} | {ref['seconds']:.1f} | {ref['val_loss']:.4f} | "
            f"{ref['val_ppl']:.3f} | 1.00, 1.000 |") in printed
    ratio = f"{course['seconds'] / ref['seconds']:.2f}, {course['val_loss'] / ref['val_loss']:.3f} |"
    assert "| course: 2×32, 2 heads, block 48, " in printed and ratio in printed
    assert res["target"] in printed and "(the target is for the full Tiny Shakespeare run only)" in res["target"]
    assert "non-overlapping windows of each model's block_size" in printed


def test_same_seed_same_numbers_other_seed_other_numbers(fixed):
    a, b, c = fixed
    for ra, rb, rc in zip(a["rows"], b["rows"], c["rows"], strict=True):
        assert ra["steps"] == rb["steps"] == 30
        assert (ra["val_loss"], ra["train_loss"]) == (rb["val_loss"], rb["train_loss"])
        assert ra["val_loss"] != rc["val_loss"]
    assert a["calibration"] is None


def test_out_writes_the_table(bench, tmp_path):
    out = tmp_path / "table.md"
    printed, res = run(bench, ["--quick", "--corpus", "docs", "--steps", "3", "--reference-steps", "3",
                               "--budget-seconds", "1e-9", "--out", str(out)])
    assert out.read_text() == "\n".join(res["lines"]) + "\n"
    assert "budget 0.0 s (--budget-seconds)" in printed and "s over the budget" in res["target"]


def test_verdicts_by_hand(bench):
    row = {"val_loss": 1.6, "seconds": 100.0}
    assert bench.verdict(row, 100.0, True) == "met"
    assert bench.verdict({**row, "val_loss": 1.7}, 100.0, True) == "missed: val 1.700 is 0.050 above 1.65"
    assert bench.verdict({**row, "seconds": 102.5}, 100.0, True) == "missed: 102.5 s is 2.5 s over the budget"
    assert bench.verdict(row, 100.0, False) == "met (the target is for the full Tiny Shakespeare run only)"


def test_course_overrides(bench):
    assert bench.parse_overrides("lr=2e-3, n_layer=6,bias=false,betas=0.9/0.95") == {
        "lr": 2e-3, "n_layer": 6, "bias": False, "betas": (0.9, 0.95)}


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--steps", "x"], "--steps must be an integer, got 'x'"),
    (["--budget-seconds", "-3"], "--budget-seconds must be a finite number > 0, got -3"),
    (["--budget-seconds", "nan"], "--budget-seconds must be a finite number > 0, got nan"),
    (["--course", "depth=3"], "--course takes key=value pairs with keys from"),
    (["--course", "lr=fast"], "--course: bad value for lr: 'fast'"),
    (["--corpus", "wiki"], "invalid choice: 'wiki'"),
])
def test_bad_options_are_refused(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        bench.parse_args(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_a_missing_data_file_is_named(bench, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bench.main(["--quick", "--data", str(tmp_path / "none.txt")])
