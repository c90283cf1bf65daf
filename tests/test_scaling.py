"""aigc_course.scaling: the compute, MFU and memory formulas against hand-computed values, PyTorch's FLOP counter
and a real AdamW; the throughput timer with a fake clock; the torchrun command; the data-parallel job run for real
with 2 gloo processes (its DDP gradient equals the single-process gradient of the whole batch) and in-process."""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import aigc_course.scaling as S
from aigc_course.checkpoint import load_weights
from aigc_course.distributed import DistInfo
from aigc_course.gpt import GPT, GPTConfig, gpt_parameter_count

torch.set_num_threads(1)


def exact(msg: str) -> str:
    return "^" + re.escape(msg) + "$"


# --------------------------------------------------------------------------- compute

def test_training_flops_is_six_n_d_in_exact_integers():
    assert S.training_flops(124_439_808, 10**10) == 7_466_388_480_000_000_000
    assert S.training_flops(175_000_000_000, 300_000_000_000) == 315 * 10**21   # GPT-3: 3.15e23
    assert S.training_flops(3, 0) == 0
    assert type(S.training_flops(3, 5)) is int


@pytest.mark.parametrize("args, error, message", [
    ((0, 5), ValueError, "n_params must be >= 1, got 0"),
    ((3.0, 5), TypeError, "n_params must be an int, got float 3.0"),
    ((3, -1), ValueError, "n_tokens must be >= 0, got -1"),
    ((3, True), TypeError, "n_tokens must be an int, got bool True"),
])
def test_training_flops_refuses_bad_input(args, error, message):
    with pytest.raises(error, match=exact(message)):
        S.training_flops(*args)


@pytest.mark.parametrize("cfg, T", [
    (dict(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64), 32),
    (dict(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64), 8),
    (dict(vocab_size=11, block_size=5, n_layer=3, n_head=1, n_embd=8, bias=False), 5),
])
def test_forward_flops_match_the_flop_counter(cfg, T):
    """The formula is what FlopCounterMode counts on the explicit attention path, forward and 3× with backward."""
    config = GPTConfig(**cfg)
    torch.manual_seed(0)
    model = GPT(config)
    idx = torch.randint(config.vocab_size, (3, T))
    with FlopCounterMode(display=False) as counter:
        model(idx, attention="math")
    assert counter.get_total_flops() == 3 * T * S.forward_flops_per_token(config, T)
    with FlopCounterMode(display=False) as counter:
        model(idx, idx, attention="math")[1].backward()
    assert counter.get_total_flops() == 3 * 3 * T * S.forward_flops_per_token(config, T)


def test_forward_flops_by_hand():
    """GPT-2 small at T = 1024: 12·(24·768² + 4·1024·768) + 2·50257·768 = 284,812,800; the default context is
    block_size; within the attention term of 2N (N without the position embedding and the non-matmul parameters)."""
    gpt2 = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)
    assert S.forward_flops_per_token(gpt2) == S.forward_flops_per_token(gpt2, 1024) == 284_812_800
    assert S.forward_flops_per_token(gpt2, 1) == 12 * (24 * 768**2 + 4 * 768) + 2 * 50257 * 768
    two_n = 2 * gpt_parameter_count(gpt2)
    assert abs(S.forward_flops_per_token(gpt2) - two_n) < 4 * 12 * 1024 * 768


@pytest.mark.parametrize("args, error, message", [
    (({"vocab_size": 5},), TypeError, "config must be a GPTConfig, got dict"),
    ((GPTConfig(vocab_size=5, block_size=4), 5), ValueError, "context must be <= config.block_size = 4, got 5"),
    ((GPTConfig(vocab_size=5, block_size=4), 0), ValueError, "context must be >= 1, got 0"),
    ((GPTConfig(vocab_size=5, block_size=4), 2.0), TypeError, "context must be an int, got float 2.0"),
])
def test_forward_flops_refuse_bad_input(args, error, message):
    with pytest.raises(error, match=exact(message)):
        S.forward_flops_per_token(*args)


def test_mfu_by_hand():
    assert S.mfu(1000, 6e6, 1e10) == pytest.approx(0.6)
    assert S.mfu(0, 6e6, 1e10) == 0.0
    # 30,000 tokens/s of GPT-2 small (6N) on an A100: 7.2 %
    assert S.mfu(30_000, 6 * 124_439_808, S.PEAK_FLOPS["A100"]) == pytest.approx(0.0718, abs=1e-4)


@pytest.mark.parametrize("args, error, message", [
    ((-1, 1, 1), ValueError, "tokens_per_second must be a finite number >= 0, got -1.0"),
    ((1, 0, 1), ValueError, "flops_per_token must be a finite number > 0, got 0.0"),
    ((1, 1, float("inf")), ValueError, "peak_flops must be a finite number > 0, got inf"),
    ((1, 1, float("nan")), ValueError, "peak_flops must be a finite number > 0, got nan"),
    ((True, 1, 1), TypeError, "tokens_per_second must be a number, got bool"),
    ((1, "6N", 1), TypeError, "flops_per_token must be a number, got str"),
])
def test_mfu_refuses_bad_input(args, error, message):
    with pytest.raises(error, match=exact(message)):
        S.mfu(*args)


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H200", 989e12),
    ("NVIDIA GeForce RTX 4090", 165e12), ("Tesla V100-SXM2-16GB", 125e12), ("Tesla T4", 65e12),
    ("NVIDIA L4", 121e12), ("NVIDIA L40S", None), ("AMD EPYC 7B13", None),
])
def test_peak_flops_for_device_names(name, peak):
    assert S.peak_flops_for(name) == peak


def test_peak_flops_for_refuses_a_non_string():
    with pytest.raises(TypeError, match=exact("device_name must be a str, got NoneType")):
        S.peak_flops_for(None)


# --------------------------------------------------------------------------- memory

def test_training_memory_is_sixteen_bytes_per_parameter():
    assert S.BYTES_PER_PARAMETER == {"fp32": 16, "mixed": 16}
    assert S.training_memory_bytes(7_000_000_000) == 112_000_000_000
    assert S.training_memory_bytes(7_000_000_000, precision="fp32", shards=8) == 14_000_000_000
    assert S.training_memory_bytes(3, shards=5) == 10          # 48 / 5 rounded up
    assert S.training_memory_bytes(0) == 0


def test_training_memory_equals_what_adamw_holds():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=2, n_embd=8))
    opt = torch.optim.AdamW(model.parameters())
    idx = torch.randint(7, (2, 4))
    model(idx, idx)[1].backward()
    opt.step()
    n = sum(p.numel() for p in model.parameters())
    held = sum(p.numel() * p.element_size() + p.grad.numel() * p.grad.element_size() for p in model.parameters())
    held += sum(t.numel() * t.element_size() for st in opt.state.values() for k, t in st.items() if k != "step")
    assert held == S.training_memory_bytes(n, precision="fp32")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(n_params=10, precision="fp16"), ValueError, "precision must be one of ['fp32', 'mixed'], got 'fp16'"),
    (dict(n_params=10, shards=0), ValueError, "shards must be >= 1, got 0"),
    (dict(n_params=-1), ValueError, "n_params must be >= 0, got -1"),
    (dict(n_params=1e9), TypeError, "n_params must be an int, got float 1000000000.0"),
])
def test_training_memory_refuses_bad_input(kwargs, error, message):
    with pytest.raises(error, match=exact(message)):
        S.training_memory_bytes(**kwargs)


# --------------------------------------------------------------------------- throughput

def test_measure_throughput_takes_the_fastest_timed_call(monkeypatch):
    """Fake clock: the timed calls take 0.5, 0.25 and 1 s; the warm-up call is not timed."""
    calls = []
    clock = iter([10.0, 10.5, 20.0, 20.25, 30.0, 31.0])
    monkeypatch.setattr(S.time, "perf_counter", lambda: next(clock))
    tps = S.measure_throughput(lambda: calls.append(1), 100, warmup=1, repeats=3)
    assert tps == 400.0 and len(calls) == 4


@pytest.mark.parametrize("args, kwargs, error, message", [
    (("not callable", 1), {}, TypeError, "fn must be callable, got str"),
    ((lambda: None, 0), {}, ValueError, "items_per_call must be a finite number > 0, got 0.0"),
    ((lambda: None, 1), dict(repeats=0), ValueError, "repeats must be >= 1, got 0"),
    ((lambda: None, 1), dict(warmup=-1), ValueError, "warmup must be >= 0, got -1"),
])
def test_measure_throughput_refuses_bad_input(args, kwargs, error, message):
    with pytest.raises(error, match=exact(message)):
        S.measure_throughput(*args, **kwargs)


# --------------------------------------------------------------------------- torchrun

def test_torchrun_command():
    assert S.torchrun_command(2, ["grads", "--out", "d"]) == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2", "-m",
        "aigc_course.scaling", "grads", "--out", "d"]
    with pytest.raises(ValueError, match=exact("nnodes must be 1 (a --standalone run on this machine), got 2")):
        S.torchrun_command(2, ["grads"], nnodes=2)
    with pytest.raises(TypeError, match="job must be a list of str arguments"):
        S.torchrun_command(2, "grads --out d")
    with pytest.raises(ValueError, match=exact("nproc must be >= 1, got 0")):
        S.torchrun_command(0, ["grads"])


def test_run_torchrun_reports_a_failure_with_its_output(monkeypatch, tmp_path):
    calls = tmp_path / "calls"
    script = (f"import sys, pathlib; p = pathlib.Path({str(calls)!r}); p.write_text(p.read_text() + 'x' "
              "if p.exists() else 'x'); print('rank 0 says hello'); sys.exit(3)")
    monkeypatch.setattr(S, "torchrun_command", lambda nproc, job: [sys.executable, "-c", script])
    with pytest.raises(RuntimeError, match=r"failed with exit code 3:\nrank 0 says hello"):
        S.run_torchrun(2, ["grads"])
    assert calls.read_text() == "x"                     # not retried: not a port collision


def test_run_torchrun_retries_a_port_collision_once(monkeypatch, tmp_path):
    """First launch: EADDRINUSE; second: success. With retries=0 the collision is reported."""
    calls = tmp_path / "calls"
    script = (f"import sys, pathlib; p = pathlib.Path({str(calls)!r}); first = not p.exists(); p.write_text('x'); "
              "first and print('DistNetworkError: port: 41234, code: -98, name: EADDRINUSE', file=sys.stderr); "
              "sys.exit(1 if first else 0)")
    monkeypatch.setattr(S, "torchrun_command", lambda nproc, job: [sys.executable, "-c", script])
    assert S.run_torchrun(2, ["grads"]).returncode == 0
    calls.unlink()
    with pytest.raises(RuntimeError, match="(?s)failed with exit code 1:.*EADDRINUSE"):
        S.run_torchrun(2, ["grads"], retries=0)


def _whole_batch_gradient(out):
    result = torch.load(out / "grads.pt", weights_only=True)
    cfg = result["config"]
    model = load_weights(GPT(GPTConfig(vocab_size=cfg["vocab"], block_size=cfg["block"], n_layer=cfg["layers"],
                                       n_head=cfg["heads"], n_embd=cfg["embd"])), out / "weights.safetensors")
    model(result["x"], result["y"])[1].backward()
    return result, torch.cat([p.grad.flatten() for p in model.parameters()])


def test_the_ddp_job_with_two_processes_gives_the_whole_batch_gradient(tmp_path):
    S.run_torchrun(2, ["grads", "--out", str(tmp_path), "--batch", "6", "--block", "8", "--embd", "16"])
    result, full = _whole_batch_gradient(tmp_path)
    ranks = result["ranks"]
    assert (result["world_size"], result["backend"]) == (2, "gloo")
    assert [r["rank"] for r in ranks] == [0, 1] and [r["rows"] for r in ranks] == [[0, 1, 2], [3, 4, 5]]
    assert result["x"].shape == (6, 8) and torch.equal(result["x"][:, 1:], result["y"][:, :-1])
    assert torch.equal(ranks[0]["ddp"], ranks[1]["ddp"])
    assert torch.allclose(ranks[0]["ddp"], full, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(ranks[0]["local"], full, rtol=1e-3, atol=1e-4)
    assert torch.allclose((ranks[0]["local"] + ranks[1]["local"]) / 2, full, rtol=1e-5, atol=1e-7)


@pytest.fixture
def single_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)


def test_the_jobs_run_in_a_single_process(tmp_path, single_process):
    assert S.main(["grads", "--out", str(tmp_path), "--batch", "3"]) == 0
    result, full = _whole_batch_gradient(tmp_path)
    (rank,) = result["ranks"]
    assert result["world_size"] == 1 and rank["rows"] == [0, 1, 2]
    assert torch.allclose(rank["ddp"], full, rtol=1e-5, atol=1e-7) and torch.equal(rank["ddp"], rank["local"])
    assert S.main(["throughput", "--out", str(tmp_path), "--steps", "3", "--warmup", "1", "--batch", "2",
                   "--grad-accum", "2"]) == 0
    res = json.loads((tmp_path / "throughput.json").read_text())
    assert res["world_size"] == 1 and res["tokens"] == 1 * 2 * 2 * 16 * 3
    assert res["seconds"] > 0 and res["tokens_per_second"] == pytest.approx(res["tokens"] / res["seconds"])


def test_the_grads_job_refuses_a_batch_the_ranks_cannot_share(tmp_path, single_process, monkeypatch):
    import aigc_course.distributed as D

    monkeypatch.setattr(D, "current", lambda: DistInfo(0, 2, 0, "gloo", torch.device("cpu")))
    with pytest.raises(ValueError, match="--batch must be a multiple of the number of processes 2, got 5"):
        S._job_grads(S._parser().parse_args(["grads", "--out", str(tmp_path), "--batch", "5"]), tmp_path)


@pytest.mark.parametrize("argv, message", [
    (["grads", "--out", "d", "--batch", "0"], "--batch must be >= 1, got 0"),
    (["throughput", "--out", "d", "--warmup", "-1"], "--warmup must be >= 0, got -1"),
    (["train", "--out", "d"], "invalid choice: 'train'"),
    (["grads"], "the following arguments are required: --out"),
])
def test_bad_job_arguments_are_refused(argv, message, capsys, single_process):
    with pytest.raises(SystemExit) as e:
        S.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err
