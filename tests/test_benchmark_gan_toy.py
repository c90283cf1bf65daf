"""Smoke test of benchmarks/gan_toy.py: --quick runs its main function end to end in a few seconds, and the
table has its columns, the exact-sampler baseline, the ratios against it and a verdict per target."""

from __future__ import annotations

import csv
import math

import pytest
from benchmark_script import load_benchmark


def load_script():
    return load_benchmark("gan_toy")


@pytest.fixture(scope="module")
def bench():
    return load_script()


def test_quick_run_prints_and_writes_the_table(bench, tmp_path, capsys):
    out = tmp_path / "runs.csv"
    rows = bench.main(["--quick", "--datasets", "ring8", "--losses", "non_saturating", "wgan_gp",
                       "--seeds", "0", "1", "--out", str(out)])
    assert [tuple(r) for r in rows] == [bench.SUMMARY_COLUMNS] * 3
    assert [(r["dataset"], r["method"], r["runs"]) for r in rows] == [
        ("ring8", "exact sampler", 2), ("ring8", "non_saturating", 2), ("ring8", "wgan_gp", 2)]
    exact, ns, gp = rows
    # The baseline: every mode, HQ near 1 - exp(-9/2) = 98.9 %, and ratio 1 against itself.
    assert exact["modes_mean"] == 8 and exact["modes_sd"] == 0
    assert 97.0 < exact["hq_mean"] < 100.0 and exact["hq_sd"] > 0    # two seeds, two different samples
    assert exact["modes_ratio"] == 1.0 and exact["hq_ratio"] == 1.0 and exact["target"] == "-"
    for r in (ns, gp):
        assert r["steps"] == bench.QUICK.steps
        assert 0 <= r["modes_mean"] <= 8 and 0 <= r["hq_mean"] <= 100
        assert math.isclose(r["hq_ratio"], r["hq_mean"] / exact["hq_mean"])
        assert math.isclose(r["modes_ratio"], r["modes_mean"] / 8)
        assert 0 < r["seconds_mean"] <= r["seconds_max"] < 10
        assert r["target"].startswith("missed: modes -") or r["target"] == "met"   # 30 steps: missed
    printed = capsys.readouterr().out
    assert "| data | method | seeds | steps | modes | % HQ |" in printed
    assert "| ring8 | exact sampler | 2 | 0 | 8.0 ± 0.0 |" in printed
    assert "PacGAN2" in printed and "VEEGAN" in printed
    with out.open() as f:
        runs = list(csv.DictReader(f))
    assert tuple(runs[0]) == bench.RUN_COLUMNS
    assert [(r["method"], r["seed"]) for r in runs] == [
        ("exact sampler", "0"), ("exact sampler", "1"), ("non_saturating", "0"), ("non_saturating", "1"),
        ("wgan_gp", "0"), ("wgan_gp", "1")]


def test_a_run_repeats_exactly_with_its_seed(bench):
    spec = bench.spec_for("non_saturating", "grid25", quick=True, steps=20)
    a, b = (bench.run_gan("grid25", "non_saturating", 3, spec) for _ in range(2))
    c = bench.run_gan("grid25", "non_saturating", 4, spec)
    assert (a["modes"], a["hq_percent"]) == (b["modes"], b["hq_percent"])
    assert a["steps"] == 20
    exact = bench.run_exact("grid25", 3)
    assert exact["modes"] == 25 and exact["hq_percent"] != bench.run_exact("grid25", 4)["hq_percent"]
    assert c["seed"] == 4


def test_verdict_says_by_how_much_a_target_is_missed(bench):
    row = {"dataset": "ring8", "modes_mean": 7.3, "hq_mean": 89.0, "seconds_max": 61.5}
    assert bench.verdict(row, 60.0) == "missed: modes -0.7, HQ -6.0 pp, time +2 s"
    row = {"dataset": "grid25", "modes_mean": 24.5, "hq_mean": 90.0, "seconds_max": 59.0}
    assert bench.verdict(row, 60.0) == "met"
    assert bench.verdict(dict(row, hq_mean=89.94), 60.0) == "missed: HQ -0.1 pp"


def test_the_shipped_recipes_cover_every_loss_and_data_set(bench):
    for loss in bench.LOSSES:
        for dataset in ("ring8", "grid25"):
            spec = bench.spec_for(loss, dataset)
            assert spec.lr_schedule == "cosine" and spec.steps >= 500
    assert bench.spec_for("wgan", "ring8", steps=7).steps == 7


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--out", "table.txt"], "--out must end in .md or .csv, got table.txt"),
    (["--losses", "hinge"], "invalid choice: 'hinge'"),
])
def test_bad_options_are_refused(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        bench.parse_args(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
