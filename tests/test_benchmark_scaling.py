"""Smoke test of benchmarks/scaling.py: --quick runs the DDP part (1 and 2 gloo processes under torchrun) and the
gradient-accumulation part with the table format and finite positive timings, skips the GPU part with a message
on a CPU; the helpers compute what they say by hand; a job that ran with the wrong number of processes is caught;
bad options are refused."""

from __future__ import annotations

import contextlib
import io
import math

import pytest
import torch
from benchmark_script import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("scaling")


@pytest.fixture(scope="module")
def quick(bench):
    """One --quick run of every part (its printed text, its results)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        results = bench.main(["--quick"])
    return buf.getvalue(), results


def test_helpers_by_hand(bench):
    assert bench.spread([4.0, 1.0, 3.0]) == {"median": 3.0, "min": 1.0, "max": 4.0}
    assert bench.fmt([1000.0, 2000.0, 4000.0]) == "2,000 (1,000–4,000)"
    assert bench.fmt([1.25, 2.5], 1) == "1.9 (1.2–2.5)"
    assert bench.alternating([1, 2], 3) == [1, 2, 2, 1, 1, 2]


def test_the_full_sizes(bench):
    """Part (a) uses nanoGPT's CPU model, part (b) splits 16 windows into 4 micro-batches of 4, part (c) nanoGPT's
    Shakespeare recipe (6 layers, 384 dims, context 256)."""
    assert bench.FULL.ddp == dict(vocab=65, block=64, layers=4, heads=4, embd=128)
    assert bench.FULL.accum_batch == 16 and bench.FULL.accum["n_embd"] == 128
    assert (bench.FULL.gpu["n_layer"], bench.FULL.gpu["n_embd"], bench.FULL.gpu["block_size"]) == (6, 384, 256)


def test_quick_run_prints_the_tables_and_sane_numbers(quick, bench):
    printed, res = quick
    assert printed.startswith(f"torch {torch.__version__}, 1 torch thread(s); quick mode, 1 round(s)")
    a = res["a"]
    for n in (1, 2):
        assert len(a["tps"][n]) == 1 and all(math.isfinite(v) and v > 0 for v in a["tps"][n])
        assert all(math.isfinite(v) for v in a["loss"][n])
    assert a["ratios"] == pytest.approx([a["tps"][2][0] / a["tps"][1][0]])
    assert "| processes | tokens per step | tokens/s median (min–max) | × 1 process | final loss |" in printed
    assert "| 1 | 64 | " in printed and "| 2 | 128 | " in printed and f"| {a['ratios'][0]:.2f} |" in printed
    b = res["b"]
    for side in ("k = 1", "k = 4"):
        assert len(b["ms"][side]) == 1 and all(math.isfinite(v) and v > 0 for v in b["ms"][side])
    assert b["ratios"] == pytest.approx([b["ms"]["k = 4"][0] / b["ms"]["k = 1"][0]])
    assert "| accumulation | windows per micro-batch | ms/step median (min–max) | × k = 1 |" in printed
    assert "| k = 1 | 8 | " in printed and "| k = 4 | 2 | " in printed
    if not torch.cuda.is_available():
        assert res["c"] is None and "(c) skipped: no CUDA GPU here" in printed


def test_gpu_table_format(bench):
    res = {"tps": {"float32": [1000.0], "bf16 autocast": [3000.0]}, "speedup": {"float32": 1.0, "bf16 autocast": 3.0},
           "mfu": {"float32": 0.05, "bf16 autocast": None}}
    assert bench.table_c(res) == ["| variant | tokens/s median (min–max) | × float32 | MFU |", "|---|---|---|---|",
                                  "| float32 | 1,000 (1,000–1,000) | 1.00 | 5.0% |",
                                  "| bf16 autocast | 3,000 (3,000–3,000) | 3.00 | — |"]


def test_a_job_with_the_wrong_number_of_processes_is_caught(bench, monkeypatch):
    monkeypatch.setattr(bench, "ddp_job", lambda nproc, sizes, out: {"world_size": 1, "tokens_per_second": 1.0,
                                                                     "final_loss": 1.0})
    with pytest.raises(AssertionError, match="the job ran with 1 processes, not 2"):
        bench.time_ddp(bench.QUICK, 1)


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--rounds", "x"], "--rounds must be an integer, got 'x'"),
    (["--parts", "ad"], "--parts must be letters from 'abc', got 'ad'"),
])
def test_bad_options_are_refused(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        bench.parse_args(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
