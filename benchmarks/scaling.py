"""Scaling up (lesson 10): data-parallel throughput, gradient-accumulation overhead, and on a GPU the bf16 and
torch.compile speed-ups with their MFU, each as a ratio against a baseline measured in the same run.

    python benchmarks/scaling.py                  # all parts
    python benchmarks/scaling.py --parts ab --rounds 5
    python benchmarks/scaling.py --quick          # tiny sizes, a smoke test

(a) Data parallelism on the CPU: tokens/s of ``aigc_course.lm.train_lm`` on a GPT started by ``torchrun`` with 1
    and with 2 gloo processes (``python -m aigc_course.scaling throughput``), each process drawing its own batch
    of B windows per step (so 2 processes train on 2B windows per step), one torch thread per process. The time of
    the timed steps is measured inside the job, after warm-up steps, so the launcher's start-up is not counted.
    Rounds alternate the order (1, 2, 2, 1, ...); the verdict is the median per-round ratio 2 processes / 1.
    With 2 cores, 2 processes can at best double the throughput; the all-reduce of the gradients, and anything
    else running on the machine, take their share.
(b) Gradient accumulation at equal tokens per step: ms/step of train_lm with one batch of 16 windows against 4
    micro-batches of 4 (``grad_accum=4``), in this process, interleaved rounds; the verdict is the median ratio
    k = 4 / k = 1 (the overhead of running 4 smaller forward and backward passes; the gradients are the same,
    as lesson 10 shows).
(c) On a CUDA GPU: tokens/s of training steps (forward, backward, AdamW) of a 6-layer, 384-dimensional GPT with
    context 256 and batch 32 (nanoGPT's Shakespeare recipe) in float32, in bf16 autocast, and in bf16 autocast with
    ``torch.compile``; speed-ups against float32 and the MFU of each against the device's datasheet peak
    (``aigc_course.scaling.PEAK_FLOPS``), with 3 × the forward FLOPs per token counted by
    ``forward_flops_per_token``. Skipped with a message without a GPU.

Every timing is wall-clock (``time.perf_counter``; CUDA synchronised); random tokens (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from _args import int_at_least, parts_of

from aigc_course.device import configure_threads, maybe_compile, seed_everything
from aigc_course.gpt import GPT, GPTConfig, gpt_parameter_count
from aigc_course.lm import LMConfig, train_lm
from aigc_course.scaling import forward_flops_per_token, mfu, peak_flops_for, run_torchrun


@dataclass(frozen=True)
class Sizes:
    """What a run measures (FULL, or QUICK for the smoke test)."""

    ddp: dict            # the job's GPT: --vocab --block --layers --heads --embd
    ddp_batch: int       # windows per process per step
    ddp_steps: int
    ddp_warmup: int
    accum: dict          # GPTConfig fields of part (b)
    accum_batch: int     # windows per step, split into 4 micro-batches for k = 4
    accum_steps: int
    gpu: dict            # GPTConfig fields of part (c)
    gpu_batch: int
    gpu_steps: int
    rounds: int


FULL = Sizes(ddp=dict(vocab=65, block=64, layers=4, heads=4, embd=128), ddp_batch=12, ddp_steps=30, ddp_warmup=3,
             accum=dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128), accum_batch=16,
             accum_steps=20,
             gpu=dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384), gpu_batch=32, gpu_steps=30,
             rounds=5)
QUICK = Sizes(ddp=dict(vocab=65, block=16, layers=1, heads=2, embd=32), ddp_batch=4, ddp_steps=4, ddp_warmup=1,
              accum=dict(vocab_size=65, block_size=16, n_layer=1, n_head=2, n_embd=32), accum_batch=8,
              accum_steps=4,
              gpu=dict(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=64), gpu_batch=4, gpu_steps=3,
              rounds=1)


def spread(values: Sequence[float]) -> dict[str, float]:
    """median, min and max of a sample."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(values: Sequence[float], digits: int = 0) -> str:
    s = spread(values)
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


def alternating(names: Sequence[str], rounds: int) -> list[str]:
    """The order of the runs: the names, then reversed, and so on (AB, BA, AB, ...)."""
    order: list[str] = []
    for r in range(rounds):
        order += list(names) if r % 2 == 0 else list(names)[::-1]
    return order


# --------------------------------------------------------------------------- (a) DDP

def ddp_job(nproc: int, sizes: Sizes, out: Path) -> dict:
    """One torchrun run of the throughput job with ``nproc`` processes; its throughput.json."""
    job = ["throughput", "--out", str(out), "--batch", str(sizes.ddp_batch), "--steps", str(sizes.ddp_steps),
           "--warmup", str(sizes.ddp_warmup)]
    for key, value in sizes.ddp.items():
        job += [f"--{key}", str(value)]
    run_torchrun(nproc, job, timeout=600)
    return json.loads((out / "throughput.json").read_text(encoding="utf-8"))


def time_ddp(sizes: Sizes, rounds: int) -> dict:
    tps: dict[int, list[float]] = {1: [], 2: []}
    losses: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i, n in enumerate(alternating([1, 2], rounds)):
            res = ddp_job(n, sizes, Path(tmp, f"run{i}"))
            assert res["world_size"] == n, f"the job ran with {res['world_size']} processes, not {n}"
            tps[n].append(res["tokens_per_second"])
            losses[n].append(res["final_loss"])
    ratios = [b / a for a, b in zip(tps[1], tps[2], strict=True)]
    return {"tps": tps, "ratios": ratios, "loss": losses}


def table_a(res: dict, sizes: Sizes) -> list[str]:
    tokens = sizes.ddp_batch * sizes.ddp["block"]
    lines = ["| processes | tokens per step | tokens/s median (min–max) | × 1 process | final loss |",
             "|---|---|---|---|---|"]
    for n in (1, 2):
        ratio = "1.00" if n == 1 else f"{spread(res['ratios'])['median']:.2f}"
        lines.append(f"| {n} | {n * tokens:,} | {fmt(res['tps'][n])} | {ratio} | {res['loss'][n][-1]:.3f} |")
    return lines


# --------------------------------------------------------------------------- (b) gradient accumulation

def ms_per_step(cfg: dict, batch: int, accum: int, steps: int) -> float:
    """Median ms of train_lm steps (timed between the callbacks of consecutive steps) on random tokens."""
    seed_everything(0)
    model = GPT(GPTConfig(**cfg))
    ids = torch.randint(cfg["vocab_size"], (20_000,), generator=torch.Generator().manual_seed(1))
    stamps: list[float] = []
    train_lm(model, ids, LMConfig(steps=steps + 1, batch_size=batch, block_size=cfg["block_size"],
                                  grad_accum=accum, progress=False, log_every=1),
             callbacks=[lambda step, metrics: stamps.append(time.perf_counter())])
    return 1e3 * statistics.median(b - a for a, b in zip(stamps, stamps[1:], strict=False))


def time_accum(sizes: Sizes, rounds: int) -> dict:
    k = 4
    sides: dict[str, Callable[[], float]] = {
        "k = 1": lambda: ms_per_step(sizes.accum, sizes.accum_batch, 1, sizes.accum_steps),
        f"k = {k}": lambda: ms_per_step(sizes.accum, sizes.accum_batch // k, k, sizes.accum_steps)}
    ms: dict[str, list[float]] = {name: [] for name in sides}
    for name in alternating(list(sides), rounds):
        ms[name].append(sides[name]())
    ratios = [b / a for a, b in zip(ms["k = 1"], ms[f"k = {k}"], strict=True)]
    return {"ms": ms, "ratios": ratios, "k": k}


def table_b(res: dict, sizes: Sizes) -> list[str]:
    k = res["k"]
    lines = ["| accumulation | windows per micro-batch | ms/step median (min–max) | × k = 1 |", "|---|---|---|---|"]
    lines.append(f"| k = 1 | {sizes.accum_batch} | {fmt(res['ms']['k = 1'], 1)} | 1.00 |")
    lines.append(f"| k = {k} | {sizes.accum_batch // k} | {fmt(res['ms'][f'k = {k}'], 1)} "
                 f"| {spread(res['ratios'])['median']:.2f} |")
    return lines


# --------------------------------------------------------------------------- (c) GPU: bf16 and torch.compile

def time_gpu(sizes: Sizes, rounds: int) -> dict:
    dev = torch.device("cuda")
    cfg = GPTConfig(**sizes.gpu)
    T, B = cfg.block_size, sizes.gpu_batch
    flops_per_token = 3 * forward_flops_per_token(cfg)
    name = torch.cuda.get_device_name(dev)
    peak = peak_flops_for(name)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(cfg.vocab_size, (B, T + 1), generator=g).to(dev) for _ in range(8)]
    out: dict[str, list[float]] = {}
    for variant in ("float32", "bf16 autocast", "bf16 autocast + torch.compile"):
        seed_everything(0)
        model = GPT(cfg).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        net = maybe_compile(model, enabled=variant.endswith("compile"))
        bf16 = variant != "float32"

        def step(i: int, net=net, opt=opt, bf16=bf16) -> None:
            data = batches[i % len(batches)]
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                loss = net(data[:, :-1], data[:, 1:])[1]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        for i in range(3):                               # warm-up (compilation happens here)
            step(i)
        tps = []
        for _ in range(rounds):
            torch.cuda.synchronize()
            start = time.perf_counter()
            for i in range(sizes.gpu_steps):
                step(i)
            torch.cuda.synchronize()
            tps.append(sizes.gpu_steps * B * T / (time.perf_counter() - start))
        out[variant] = tps
    base = spread(out["float32"])["median"]
    return {"device": name, "peak": peak, "params": gpt_parameter_count(cfg), "flops_per_token": flops_per_token,
            "tps": out, "speedup": {v: spread(t)["median"] / base for v, t in out.items()},
            "mfu": {v: (mfu(spread(t)["median"], flops_per_token, peak) if peak else None) for v, t in out.items()}}


def table_c(res: dict) -> list[str]:
    lines = ["| variant | tokens/s median (min–max) | × float32 | MFU |", "|---|---|---|---|"]
    for v, tps in res["tps"].items():
        u = res["mfu"][v]
        lines.append(f"| {v} | {fmt(tps)} | {res['speedup'][v]:.2f} | {'—' if u is None else f'{u:.1%}'} |")
    return lines


# --------------------------------------------------------------------------- main

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one round (smoke test)")
    ap.add_argument("--threads", type=int_at_least("--threads"), default=1,
                    help="torch threads of this process, parts (b) and (c) (default 1; the DDP processes use 1 each)")
    ap.add_argument("--rounds", type=int_at_least("--rounds"), default=None, help="rounds per comparison (default 5)")
    ap.add_argument("--parts", type=parts_of("abc"), default="abc", help="which parts to run (default abc)")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rounds = args.rounds or sizes.rounds
    threads = configure_threads(args.threads)
    results: dict = {"threads": threads, "torch": torch.__version__}
    print(f"torch {torch.__version__}, {threads} torch thread(s); {'quick' if args.quick else 'full'} mode, "
          f"{rounds} round(s) per comparison")

    if "a" in args.parts:
        d = sizes.ddp
        n = gpt_parameter_count(GPTConfig(vocab_size=d["vocab"], block_size=d["block"], n_layer=d["layers"],
                                          n_head=d["heads"], n_embd=d["embd"]))
        print(f"\n(a) DDP on the CPU (gloo, torchrun --standalone): train_lm on a {n:,}-parameter GPT ({d['layers']} "
              f"layers, {d['embd']} dims, context {d['block']}), {sizes.ddp_batch} windows per process per step, "
              f"{sizes.ddp_steps} timed steps after {sizes.ddp_warmup}, 1 torch thread per process")
        res = time_ddp(sizes, rounds)
        results["a"] = res
        print("\n".join(table_a(res, sizes)))

    if "b" in args.parts:
        c = sizes.accum
        print(f"\n(b) gradient accumulation at {sizes.accum_batch} windows per step: train_lm, GPT with {c['n_layer']} "
              f"layers, {c['n_embd']} dims, context {c['block_size']}; median ms per step over {sizes.accum_steps} "
              "steps per run")
        res = time_accum(sizes, rounds)
        results["b"] = res
        print("\n".join(table_b(res, sizes)))

    if "c" in args.parts:
        if not torch.cuda.is_available():
            print("\n(c) skipped: no CUDA GPU here (bf16 autocast and torch.compile speed-ups are measured on a GPU; "
                  "on this CPU bf16 is emulated and compile rarely pays off)")
            results["c"] = None
        else:
            g = sizes.gpu
            print(f"\n(c) GPU training steps: GPT {g['n_layer']} layers, {g['n_embd']} dims, context "
                  f"{g['block_size']}, batch {sizes.gpu_batch}, AdamW; {sizes.gpu_steps} steps per round after 3 "
                  "warm-up steps")
            res = time_gpu(sizes, rounds)
            results["c"] = res
            peak = f"{res['peak'] / 1e12:.0f} TFLOP/s (datasheet, bf16 dense)" if res["peak"] else "unknown"
            print(f"device {res['device']}, peak {peak}; {res['params']:,} parameters, "
                  f"{res['flops_per_token'] / 1e6:.1f} MFLOPs per training token")
            print("\n".join(table_c(res)))
    sys.stdout.flush()
    return results


if __name__ == "__main__":
    main()
