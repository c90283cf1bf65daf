"""Smoke test of benchmarks/lm_speed.py: the nanoGPT-style reference is the same function as our GPT (same
parameters, same loss and gradients on the same weights), the helpers compute what they say by hand, --quick runs
all three parts in a few seconds with the table format, finite positive timings, identical cached and uncached
tokens and identical greedy tokens with Hugging Face; a generate whose cache changes the tokens is caught."""

from __future__ import annotations

import math

import pytest
import torch
from benchmark_script import load_benchmark


def load_script():
    return load_benchmark("lm_speed")


@pytest.fixture(scope="module")
def bench():
    return load_script()


@pytest.fixture(scope="module")
def quick(bench):
    """One --quick run of every part (its printed text, its results)."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        results = bench.main(["--quick"])
    return buf.getvalue(), results


def test_the_reference_is_nanogpt_at_its_cpu_config_and_computes_our_function(bench):
    from aigc_course.gpt import GPTConfig, gpt_parameter_count

    cfg = bench.FULL.train
    assert (cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["block_size"], cfg["vocab_size"], cfg["dropout"],
            bench.FULL.batch_size) == (4, 4, 128, 64, 65, 0.0, 12)
    ours, ref = bench.build_pair(cfg)
    n = sum(p.numel() for p in ref.parameters())
    assert n == sum(p.numel() for p in ours.parameters()) == gpt_parameter_count(GPTConfig(**cfg)) == 809_856
    assert ref.lm_head.weight is ref.transformer.wte.weight                      # weight tying
    assert list(ref.state_dict()) == list(ours.state_dict())                      # nanoGPT's parameter names
    x, y = bench.make_batches(1, 64, 12)[0]
    assert x.shape == y.shape == (12, 64) and torch.equal(x[:, 1:], y[:, :-1]) and x.is_contiguous()
    lo, lr_ = ours(x, y)[1], ref(x, y)[1]
    assert float(lo.detach()) == pytest.approx(float(lr_.detach()), rel=1e-6)
    assert float(lo.detach()) == pytest.approx(math.log(65), abs=0.1)
    lo.backward()
    lr_.backward()
    for (name, a), b in zip(ours.named_parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7), name


def test_different_parameter_counts_are_refused(bench, monkeypatch):
    real = bench.RefConfig
    monkeypatch.setattr(bench, "RefConfig", lambda **cfg: real(**{**cfg, "bias": False}))
    # bias=False drops 11 d per block (Q, K, V 3d, c_proj d, c_fc 4d, c_proj d, two LayerNorms 2d) and ln_f's d
    fewer = 28064 - 2 * 11 * 32 - 32
    with pytest.raises(AssertionError, match=f"parameter counts differ: ours 28064, reference {fewer}"):
        bench.build_pair(bench.QUICK.train)


def test_spread_and_verdicts_by_hand(bench):
    s = bench.spread([4.0, 1.0, 3.0, 2.0])
    assert s == {"median": 2.5, "min": 1.0, "max": 4.0, "q1": 1.75, "q3": 3.25}
    assert bench.spread([2.0]) == {"median": 2.0, "min": 2.0, "max": 2.0, "q1": 2.0, "q3": 2.0}
    assert bench.train_verdict([0.97, 1.0, 1.2]) == "met"
    # median 1.02; quartiles 0.99 + 0.75·0.02 = 1.005 and 1.03 + 0.25·0.10 = 1.055: half IQR 2.5 % ≥ 2 % over
    assert bench.train_verdict([0.99, 1.01, 1.03, 1.13]) == "met within noise (+2.0 % ≤ half IQR 2.5 %)"
    # quartiles 1.0075 and 1.0375: half IQR 1.5 % < 2 % over
    assert bench.train_verdict([1.0, 1.01, 1.03, 1.06]) == "missed: ours slower by 2.0 % (half IQR 1.5 %)"
    assert bench.train_verdict([1.08, 1.1, 1.12]) == "missed: ours slower by 10.0 % (half IQR 1.0 %)"
    assert bench.speedup_verdict(5.0, 5) == "met" and bench.speedup_verdict(4.5, 5) == "missed: 4.50× < 5×"


def test_the_larger_generation_model_runs_fewer_rounds(bench):
    assert [bench._rounds_for(0, r) for r in (1, 15)] == [1, 15]
    assert [bench._rounds_for(1, r) for r in (2, 3, 30, 39, 40)] == [2, 3, 3, 3, 4]


def test_interleaving_alternates_the_order(bench):
    calls = []
    sides = {"A": lambda: calls.append("A") or 1.0, "B": lambda: calls.append("B") or 2.0}
    out = bench.interleaved(sides, 3)
    assert "".join(calls) == "ABBAAB" and out == {"A": [1.0] * 3, "B": [2.0] * 3}


def test_quick_run_prints_the_tables_and_sane_numbers(quick, bench):
    printed, res = quick
    assert printed.startswith(f"torch {torch.__version__}, 1 torch thread(s), CPU")
    assert res["threads"] == 1 and torch.get_num_threads() == 1
    # (a) training: same parameter count, same initial loss, finite positive ms, a verdict
    a = res["a"]
    assert a["params"] == a["ref_params"] == 28_064
    assert a["initial_loss"][0] == pytest.approx(a["initial_loss"][1], rel=1e-5)
    for values in (a["ms"]["ours"], a["ms"]["reference"], a["ratios"], res["overhead"]["ms"]["train_lm"],
                   res["overhead"]["ms"]["bare loop"]):
        assert len(values) == 3 and all(math.isfinite(v) and v > 0 for v in values)
    assert a["ratios"] == pytest.approx([o / r for o, r in zip(a["ms"]["ours"], a["ms"]["reference"],
                                                                   strict=True)])
    assert "| model | parameters | ms/iter median (min–max) | × reference |" in printed
    assert "| reference (nanoGPT-style) | 28,064 | " in printed
    assert "| ours (aigc_course.gpt.GPT) | 28,064 | " in printed
    med = bench.spread(a["ratios"])["median"]
    assert f"ratio ours / reference per round: median {med:.3f}, quartiles " in printed
    assert f"target (ours / reference ≤ 1): {bench.train_verdict(a['ratios'])}" in printed
    assert "train_lm − bare loop per step: median " in printed
    nonfinite = res["overhead"]["nonfinite_ms"]
    assert math.isfinite(nonfinite) and nonfinite > 0
    assert f"(aigc_course.checkpoint.nonfinite_tensor, called by train): {nonfinite:.2f} ms" in printed
    # (b) cache: identical tokens of the right length, finite positive tokens/s
    (label, b), = res["b"]
    assert label == "2 layers, 32 dims, block 48" and b["identical"] is True
    assert b["tokens"].shape == (1, 8 + 32) and b["params"] == 29_088
    for values in (b["tps"]["cache"], b["tps"]["no cache"], b["ratios"]):
        assert len(values) == 3 and all(math.isfinite(v) and v > 0 for v in values)
    assert ("| model | parameters | tokens/s, cache | tokens/s, no cache | × no cache (min–max) | identical "
            "| target ≥ 5× |") in printed
    assert f"| {label} | 29,088 | " in printed and "| yes | " in printed


def test_quick_run_matches_hugging_face(quick):
    pytest.importorskip("transformers")
    printed, res = quick
    (label, c), = res["c"]
    assert c["equal"] is True and c["attn_implementation"] in ("sdpa", "eager")
    for values in (c["tps"]["ours"], c["tps"]["HF"], c["ratios"]):
        assert len(values) == 3 and all(math.isfinite(v) and v > 0 for v in values)
    assert ("| model | tokens/s, ours | tokens/s, HF generate | ours / HF (min–max) | tokens equal "
            "| target ≥ 1× |") in printed
    assert f"| {label} | " in printed and "GPT2LMHeadModel.generate" in printed


def test_parts_and_the_message_without_transformers(bench, capsys, monkeypatch):
    monkeypatch.setattr(bench, "hf_available", lambda: False)
    res = bench.main(["--quick", "--parts", "c", "--rounds", "1"])
    printed = capsys.readouterr().out
    assert res["c"] is None and "a" not in res and "b" not in res
    assert "(c) skipped: transformers is not installed" in printed and "(a)" not in printed


def test_a_cache_that_changes_the_tokens_is_caught(bench, monkeypatch):
    real = bench.GPT.generate

    def broken(self, idx, max_new_tokens, *args, use_cache=True, **kwargs):
        out = real(self, idx, max_new_tokens, *args, use_cache=use_cache, **kwargs)
        if use_cache:
            out[0, -1] = (out[0, -1] + 1) % self.config.vocab_size
        return out

    monkeypatch.setattr(bench.GPT, "generate", broken)
    message = r"generate\(use_cache=True\) and use_cache=False gave different tokens with the same rng seed"
    with pytest.raises(AssertionError, match=message):
        bench.time_cache(bench.QUICK.gen[0][1], bench.QUICK, 1)


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
