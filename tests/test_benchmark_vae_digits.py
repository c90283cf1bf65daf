"""Smoke test of benchmarks/vae_digits.py: --quick runs its main function end to end in a few seconds; the table
has its columns and sane numbers (finite, NLL ≤ −ELBO, above an entropy floor computed here independently), a
fixed-step run repeats exactly, the baseline trains on the loss it is scored with, and the verdict says by how
much the 0.5-nat target is missed."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from benchmark_script import load_benchmark


def load_script():
    return load_benchmark("vae_digits")


@pytest.fixture(scope="module")
def bench():
    return load_script()


def numpy_floor(split_seed: int) -> float:
    """Σ binary entropy of the test pixels, mean per image, written separately from the script (numpy, no torch)."""
    from sklearn.datasets import load_digits

    x = load_digits().images.reshape(-1, 64) / 16.0
    test = x[np.random.RandomState(split_seed).permutation(len(x))[1500:]]
    inner = (test > 0) & (test < 1)
    p = np.where(inner, test, 0.5)
    h = np.where(inner, -(p * np.log(p) + (1 - p) * np.log(1 - p)), 0.0)
    return float(h.sum(1).mean())


def test_the_split_is_a_seeded_permutation_of_all_digits(bench):
    train, test = bench.load_split(0)
    assert train.shape == (1500, 1, 8, 8) and test.shape == (297, 1, 8, 8)
    assert train.dtype == torch.float32 and 0 <= float(train.min()) and float(train.max()) == 1.0
    assert torch.equal(torch.round(test * 16), test * 16)           # pixel counts 0..16 over 16
    again, other = bench.load_split(0), bench.load_split(1)
    assert torch.equal(again[1], test) and not torch.equal(other[1], test)
    # every digit once: the multiset of images (as rows) is the same for both seeds
    rows = {tuple(r) for r in torch.cat([train, test]).flatten(1).tolist()}
    assert rows == {tuple(r) for r in torch.cat(other).flatten(1).tolist()}


def test_entropy_floor_by_hand_and_against_numpy(bench):
    x = torch.tensor([[0.0, 1.0, 0.5, 0.25], [0.0, 0.0, 0.0, 0.5]])
    h25 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert bench.entropy_floor(x) == pytest.approx((math.log(2) + h25 + math.log(2)) / 2, rel=1e-6)
    for seed in (0, 3):
        floor = bench.entropy_floor(bench.load_split(seed)[1])
        assert floor == pytest.approx(numpy_floor(seed), rel=1e-5)
        assert 12.0 < floor < 15.0                                     # "≈ 13 nats per image"


def test_the_baseline_trains_on_the_negative_elbo_it_is_scored_with(bench):
    from aigc_course.vae import elbo

    torch.manual_seed(0)
    model = bench.example_vae()
    x = bench.load_split(0)[0][:16]
    torch.manual_seed(5)
    loss = bench.example_loss(model, x)
    torch.manual_seed(5)
    assert float(loss.detach()) == pytest.approx(-float(elbo(model, x).elbo.detach().sum()), rel=1e-5)
    assert [n for n, _ in model.named_parameters()] == [
        f"{part}.{fc}.{w}" for part, fcs in (("encoder", ("fc1", "fc21", "fc22")), ("decoder", ("fc3", "fc4")))
        for fc in fcs for w in ("weight", "bias")]
    assert model.encoder.fc1.out_features == 400 and model.latent_dim == 20


def test_quick_fixed_step_run_prints_sane_numbers_and_repeats(bench, tmp_path, capsys):
    out = tmp_path / "table.md"
    argv = ["--quick", "--steps", "40", "--baseline-steps", "60", "--split-seed", "2", "--out", str(out)]
    rows = bench.main(argv)
    printed = capsys.readouterr().out
    assert [tuple(r) for r in rows] == [bench.COLUMNS] * 2
    baseline, course = rows
    assert baseline["model"].startswith("baseline (PyTorch example") and course["model"].startswith("course (")
    assert (baseline["steps"], course["steps"]) == (60, 40)
    floor = numpy_floor(2)
    for r in rows:
        values = [float(r[c]) for c in bench.COLUMNS[2:]]
        assert 0 < r["cpu_seconds"] and 0 < r["seconds"] < 10
        assert all(math.isfinite(v) for v in values)
        assert r["nll"] <= r["neg_elbo"] and r["gap"] == pytest.approx(r["neg_elbo"] - r["nll"])
        assert r["nll_above_floor"] == pytest.approx(r["nll"] - floor, abs=1e-3)
        assert r["neg_elbo_above_floor"] == pytest.approx(r["neg_elbo"] - floor, abs=1e-3)
        assert 0 < r["nll_above_floor"] < 60                           # NLL ≥ Σ H(x): no model beats the floor
    assert f"entropy floor Σ H(x) on the test split: {floor:.2f} nats per image" in printed
    assert ("| model | steps | seconds (CPU) | −ELBO | above floor | NLL (IWAE k=50) | above floor "
            "| gap −ELBO − NLL |") in printed
    assert f"| {baseline['model']} | 60 | " in printed and f"| {course['model']} | 40 | " in printed
    assert "fixed steps" in printed and "1 torch thread(s)" in printed
    d_elbo, d_nll = course["neg_elbo"] - baseline["neg_elbo"], course["nll"] - baseline["nll"]
    assert f"course − baseline: −ELBO {d_elbo:+.2f} nats" in printed and f"; NLL {d_nll:+.2f} nats" in printed
    assert "target (≥ 0.5 nat better on both): " in printed
    assert out.read_text().splitlines()[2].startswith(f"| {baseline['model']} | 60 |")
    again = bench.main(argv)
    capsys.readouterr()
    timing = ("seconds", "cpu_seconds")
    for a, b in zip(rows, again, strict=True):
        assert {c: a[c] for c in bench.COLUMNS if c not in timing} == {c: b[c] for c in bench.COLUMNS
                                                                       if c not in timing}
    other = bench.main(argv + ["--seed", "1"])
    capsys.readouterr()
    assert other[1]["nll"] != course["nll"] and other[0]["nll"] != baseline["nll"]


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_quick_timed_run_fills_the_budget(bench, capsys, clock):
    baseline, course = bench.main(["--quick", "--budget-seconds", "0.5", "--clock", clock])
    printed = capsys.readouterr().out
    assert f"budget 0.5 s of {clock} time per model" in printed
    used = "cpu_seconds" if clock == "cpu" else "seconds"
    assert 0.5 <= baseline[used] < 1.5 and baseline["steps"] > 20      # stops at the first step past the budget
    assert 0.1 < course[used] < 1.5 and course["steps"] > 5            # sized by the probe


def test_the_timing_probe_leaves_the_model_and_the_random_stream_alone(bench):
    recipe = dataclasses.replace(bench.QUICK, probe_steps=5)
    train = bench.load_split(0)[0]
    torch.manual_seed(0)
    model = bench.build_course_model(recipe)
    before = [p.detach().clone() for p in model.parameters()]
    state = torch.get_rng_state()
    steps, per_step = bench.steps_for_budget(model, train, recipe, 10 * 0.05)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert 0 < per_step < 0.5 and steps == max(1, int(0.5 / per_step))


def test_verdict_says_by_how_much_the_target_is_missed(bench):
    base = {"neg_elbo": 23.7, "nll": 23.2}
    assert bench.verdict({"neg_elbo": 23.1, "nll": 22.7, "seconds": 45.0, "cpu_seconds": 45.0}, base, 45.0) == "met"
    assert bench.verdict({"neg_elbo": 23.4, "nll": 22.6, "seconds": 90.0, "cpu_seconds": 44.0}, base, 45.0) == (
        "missed: −ELBO better by 0.30 nats, short by 0.20")
    assert bench.verdict({"neg_elbo": 23.8, "nll": 22.9, "seconds": 44.0, "cpu_seconds": 50.0}, base, 45.0) == (
        "missed: −ELBO better by -0.10 nats, short by 0.60; NLL better by 0.30 nats, short by 0.20; "
        "time +5.0 s over the 45 s budget")
    wall = {"neg_elbo": 23.1, "nll": 22.7, "seconds": 48.0, "cpu_seconds": 40.0}
    assert bench.verdict(wall, base, 45.0, "wall") == "missed: time +3.0 s over the 45 s budget"
    assert bench.verdict(wall, base, 45.0, "cpu") == "met" and bench.verdict(wall, base, None, "wall") == "met"


def test_the_shipped_recipe_uses_the_package_model(bench):
    from aigc_course.vae import VAE, BernoulliDecoder

    model = bench.build_course_model(bench.RECIPE)
    assert isinstance(model, VAE) and isinstance(model.decoder, BernoulliDecoder)
    assert model.latent_dim == bench.RECIPE.latent_dim and model.likelihood == "bernoulli"
    config = bench._config(bench.RECIPE, 1000)
    assert config.steps == 1000 and config.lr == bench.RECIPE.lr and config.progress is False


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--baseline-steps", "-3"], "--baseline-steps must be >= 1, got -3"),
    (["--budget-seconds", "0"], "--budget-seconds must be > 0, got 0.0"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--split-seed", "-1"], "--split-seed must be in [0, 2**32), got -1"),
    (["--out", "table.txt"], "--out must end in .md, got table.txt"),
    (["--clock", "gpu"], "invalid choice: 'gpu'"),
])
def test_bad_options_are_refused(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        bench.parse_args(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
