"""Scaling up: compute budgets, model FLOPs utilisation, training memory, throughput timing, and a small
data-parallel job to run under torchrun (lesson 10, ``benchmarks/scaling.py``).

Compute. One training token of a model with N parameters costs about 6N floating-point operations: 2N in
the forward pass (one multiply and one add per weight) and 4N in the backward pass (the gradients with
respect to the activations and to the weights), so a run over D tokens costs C ≈ 6·N·D
(:func:`training_flops`). :func:`forward_flops_per_token` counts a GPT's matrix products exactly, attention
included, as :class:`torch.utils.flop_counter.FlopCounterMode` counts them on the explicit attention path.
The model FLOPs utilisation (:func:`mfu`) is the fraction of a device's peak that those FLOPs reach.

Memory. Training with Adam keeps, per parameter, the weight, its gradient and Adam's two moments: 16 bytes
in float32 (4 + 4 + 8) and 16 bytes in mixed precision (bf16 weight and gradient 2 + 2, a float32 master
copy 4, the moments 8), before activations (:func:`training_memory_bytes`; FSDP divides it by the number of
GPUs it shards over).

The job. ``python -m torch.distributed.run --standalone --nproc_per_node=2 -m aigc_course.scaling grads
--out DIR`` (:func:`torchrun_command` builds it) computes one DistributedDataParallel gradient of a small
GPT on 2 gloo processes and writes it, the weights and the batch to DIR for a single process to compare;
``throughput`` times :func:`aigc_course.lm.train_lm` steps under the same launcher.

>>> training_flops(124_000_000, 10**9)                 # 7.44e17 FLOPs
>>> mfu(tokens_per_second=30_000, flops_per_token=6 * 124e6, peak_flops=PEAK_FLOPS["A100"])
>>> training_memory_bytes(7_000_000_000, shards=8)     # bytes per GPU under FSDP over 8 GPUs
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .gpt import GPT, GPTConfig
from .validation import int_at_least as _int_at_least

__all__ = ["PEAK_FLOPS", "BYTES_PER_PARAMETER", "training_flops", "forward_flops_per_token", "mfu",
           "peak_flops_for", "training_memory_bytes", "measure_throughput", "torchrun_command", "run_torchrun"]

# Dense (no sparsity) bf16/fp16 tensor-core peaks from the vendors' datasheets, in FLOP/s.
PEAK_FLOPS: dict[str, float] = {
    "T4": 65e12,            # fp16
    "V100": 125e12,         # fp16 (no bf16)
    "L4": 121e12,
    "RTX 4090": 165e12,     # fp32 accumulate
    "A100": 312e12,
    "H100": 989e12,         # SXM
    "H200": 989e12,         # the H100's compute, more memory
}

# Adam training state per parameter, in bytes: weight + gradient + the two moments (+ a float32 master copy).
BYTES_PER_PARAMETER: dict[str, int] = {
    "fp32": 4 + 4 + 4 + 4,
    "mixed": 2 + 2 + 4 + 4 + 4,
}


def _positive_number(name: str, v: object, *, allow_zero: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {v!r}")
    return v


def training_flops(n_params: int, n_tokens: int) -> int:
    """≈ 6·N·D: the floating-point operations of training N parameters on D tokens (forward 2N, backward 4N
    per token; attention and the non-matmul work left out). Exact integer arithmetic."""
    n_params = _int_at_least("n_params", n_params, 1)
    n_tokens = _int_at_least("n_tokens", n_tokens, 0)
    return 6 * n_params * n_tokens


def forward_flops_per_token(config: GPTConfig, context: int | None = None) -> int:
    """The matmul FLOPs of one forward pass of :class:`~aigc_course.gpt.GPT` per token, for windows of
    ``context`` tokens (default ``config.block_size``): 2 FLOPs per multiply-add.

    Per layer: Q, K, V and output projections 2·4d², the MLP 2·8d², and attention 4·T·d (scores QKᵀ and the
    weighted values, each 2·T·d per query, over the whole T × T matrix before the causal mask); then the
    output layer 2·V·d (tied to the embedding: no parameters, but FLOPs). Embedding look-ups, biases,
    LayerNorms, GELU and softmax are not matmuls and are not counted. This is what
    :class:`~torch.utils.flop_counter.FlopCounterMode` reports for ``GPT(...)(idx, attention="math")``.
    """
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
    T = config.block_size if context is None else _int_at_least("context", context, 1)
    if T > config.block_size:
        raise ValueError(f"context must be <= config.block_size = {config.block_size}, got {T}")
    L, d, V = config.n_layer, config.n_embd, config.vocab_size
    return L * (24 * d * d + 4 * T * d) + 2 * V * d


def mfu(tokens_per_second: float, flops_per_token: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: ``tokens_per_second · flops_per_token / peak_flops`` (a fraction, not a
    percentage). For training, flops_per_token ≈ 6N (or 3 × :func:`forward_flops_per_token`); the peak is
    per device when tokens_per_second is per device."""
    tps = _positive_number("tokens_per_second", tokens_per_second, allow_zero=True)
    fpt = _positive_number("flops_per_token", flops_per_token)
    peak = _positive_number("peak_flops", peak_flops)
    return tps * fpt / peak


def peak_flops_for(device_name: str) -> float | None:
    """The datasheet peak of :data:`PEAK_FLOPS` whose key occurs in ``device_name`` as a whole word (e.g.
    ``torch.cuda.get_device_name()``: "NVIDIA A100-SXM4-80GB" → A100, but "L40S" is not an L4), or None for an
    unknown device."""
    if not isinstance(device_name, str):
        raise TypeError(f"device_name must be a str, got {type(device_name).__name__}")
    name = device_name.upper()
    for key in sorted(PEAK_FLOPS, key=len, reverse=True):
        if re.search(rf"(?<![A-Z0-9]){re.escape(key.upper())}(?![A-Z0-9])", name):
            return PEAK_FLOPS[key]
    return None


def training_memory_bytes(n_params: int, *, precision: str = "mixed", shards: int = 1) -> int:
    """Bytes per GPU of the weights, gradients and Adam moments of ``n_params`` parameters (activations not
    included): 16 per parameter for ``precision="fp32"`` and for ``"mixed"`` (see :data:`BYTES_PER_PARAMETER`),
    divided over ``shards`` GPUs (FSDP / ZeRO-3 shard all three; plain DDP keeps a full copy: shards=1),
    rounded up."""
    n_params = _int_at_least("n_params", n_params, 0)
    if precision not in BYTES_PER_PARAMETER:
        raise ValueError(f"precision must be one of {list(BYTES_PER_PARAMETER)}, got {precision!r}")
    shards = _int_at_least("shards", shards, 1)
    return -(-BYTES_PER_PARAMETER[precision] * n_params // shards)


def measure_throughput(fn: Callable[[], object], items_per_call: float, *, warmup: int = 1, repeats: int = 3,
                       device: torch.device | str | None = None) -> float:
    """Items per second of ``fn()``: ``warmup`` untimed calls, then the fastest of ``repeats`` timed calls
    (``time.perf_counter``; the CUDA device is synchronised around each call). The fastest call is the one
    least disturbed by other processes."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    items = _positive_number("items_per_call", items_per_call)
    warmup = _int_at_least("warmup", warmup, 0)
    repeats = _int_at_least("repeats", repeats, 1)
    cuda = device is not None and torch.device(device).type == "cuda"
    for _ in range(warmup):
        fn()
    best = math.inf
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return items / max(best, 1e-9)


# --------------------------------------------------------------------------- the torchrun job

def torchrun_command(nproc: int, job: Sequence[str], *, nnodes: int = 1) -> list[str]:
    """The command that starts ``nproc`` processes of ``python -m aigc_course.scaling JOB...`` on this
    machine: ``python -m torch.distributed.run --standalone --nnodes=1 --nproc_per_node=N -m
    aigc_course.scaling ...`` (``torchrun`` is the same launcher). Only single-machine (``--standalone``)
    runs are built here; a multi-node run replaces ``--standalone`` by the rendezvous flags."""
    nproc = _int_at_least("nproc", nproc, 1)
    if _int_at_least("nnodes", nnodes, 1) != 1:
        raise ValueError(f"nnodes must be 1 (a --standalone run on this machine), got {nnodes}")
    if isinstance(job, str) or not all(isinstance(a, str) for a in job):
        raise TypeError("job must be a list of str arguments, e.g. ['grads', '--out', DIR]")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
            f"--nproc_per_node={nproc}", "-m", "aigc_course.scaling", *job]


def run_torchrun(nproc: int, job: Sequence[str], *, timeout: float = 300.0, threads: int = 1,
                 retries: int = 1) -> subprocess.CompletedProcess:
    """Run :func:`torchrun_command` with ``threads`` torch threads per process (OMP_NUM_THREADS, and
    AIGC_NUM_THREADS for :mod:`aigc_course.device`); RuntimeError with the output when it fails or times out.

    A launch that fails because a port was taken ("address already in use": another program bound the port
    between torchrun choosing a free one and its processes binding it) is started again, up to ``retries``
    times; any other failure is reported at once."""
    cmd = torchrun_command(nproc, job)
    threads = _int_at_least("threads", threads, 1)
    retries = _int_at_least("retries", retries, 0)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "AIGC_NUM_THREADS": str(threads)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)   # a launcher inside a launched process would inherit its parent's group
    for attempt in range(retries + 1):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"{' '.join(cmd[1:])} did not finish within {timeout:g} s") from e
        if proc.returncode == 0:
            return proc
        output = proc.stdout + proc.stderr
        if attempt == retries or not re.search(r"EADDRINUSE|[Aa]ddress already in use", output):
            break
    raise RuntimeError(f"{' '.join(cmd[1:])} failed with exit code {proc.returncode}:\n"
                       f"{proc.stdout[-2000:]}{proc.stderr[-4000:]}")


def _job_config(args: argparse.Namespace) -> GPTConfig:
    return GPTConfig(vocab_size=args.vocab, block_size=args.block, n_layer=args.layers, n_head=args.heads,
                     n_embd=args.embd)


def _flat_grad(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def _job_grads(args: argparse.Namespace, out: Path) -> None:
    """One DDP gradient of the mean next-token loss of a global batch split over the ranks."""
    from .checkpoint import save_weights
    from .device import seed_everything
    from .distributed import all_gather_object, current, no_sync, wrap_ddp

    info = current()
    if args.batch % info.world_size:
        raise ValueError(f"--batch must be a multiple of the number of processes {info.world_size}, got "
                         f"{args.batch}: DDP averages the ranks' mean losses, which is the mean over the whole "
                         "batch only when every rank has as many examples")
    cfg = _job_config(args)
    seed_everything(args.seed)
    model = GPT(cfg)
    g = torch.Generator().manual_seed(args.seed + 1)
    data = torch.randint(cfg.vocab_size, (args.batch, cfg.block_size + 1), generator=g)
    x, y = data[:, :-1], data[:, 1:]
    rows = torch.arange(args.batch).tensor_split(info.world_size)[info.rank]
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_weights(model, out / "weights.safetensors")
    ddp = wrap_ddp(model, info)
    with no_sync(ddp):                                    # this rank's own gradient, not averaged
        ddp(x[rows], y[rows])[1].backward()
    local = _flat_grad(model).clone()
    model.zero_grad(set_to_none=True)
    ddp(x[rows], y[rows])[1].backward()                   # DDP averages the gradients during backward
    averaged = _flat_grad(model).clone()
    gathered = all_gather_object({"rank": info.rank, "rows": rows.tolist(), "local": local, "ddp": averaged})
    if info.is_main:
        settings = {k: v for k, v in vars(args).items() if k != "out"}
        torch.save({"world_size": info.world_size, "backend": info.backend, "config": settings, "x": x, "y": y,
                    "ranks": gathered}, out / "grads.pt")


def _job_throughput(args: argparse.Namespace, out: Path) -> None:
    """Time ``args.steps`` train_lm steps after ``args.warmup`` untimed ones; rank 0 writes tokens/s."""
    from .device import seed_everything
    from .distributed import current
    from .lm import LMConfig, train_lm

    info = current()
    cfg = _job_config(args)
    seed_everything(args.seed)
    model = GPT(cfg)
    ids = torch.randint(cfg.vocab_size, (20_000,), generator=torch.Generator().manual_seed(args.seed + 1))
    stamps: list[float] = []
    config = LMConfig(steps=args.warmup + args.steps, batch_size=args.batch, block_size=cfg.block_size,
                      grad_accum=args.grad_accum, progress=False, log_every=1)
    result = train_lm(model, ids, config, callbacks=[lambda step, metrics: stamps.append(time.perf_counter())])
    if info.is_main:
        seconds = stamps[-1] - stamps[args.warmup - 1] if args.warmup else result.seconds
        tokens = info.world_size * args.grad_accum * args.batch * cfg.block_size * args.steps
        out.mkdir(parents=True, exist_ok=True)
        (out / "throughput.json").write_text(json.dumps({
            "world_size": info.world_size, "tokens": tokens, "seconds": seconds,
            "tokens_per_second": tokens / seconds, "final_loss": result.history.last("loss"),
            "threads": torch.get_num_threads()}))


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m aigc_course.scaling",
                                 description="Data-parallel jobs of lesson 10; start them with torchrun.")
    ap.add_argument("job", choices=("grads", "throughput"))
    ap.add_argument("--out", required=True, type=Path, help="folder for the results (written by rank 0)")
    for name, default in (("vocab", 65), ("block", 16), ("layers", 1), ("heads", 2), ("embd", 32), ("batch", 8),
                          ("steps", 10), ("warmup", 2), ("grad-accum", 1)):
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--seed", type=int, default=0)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m aigc_course.scaling JOB --out DIR`` (under torchrun, or alone)."""
    from .distributed import barrier, setup_distributed, teardown_distributed

    args = _parser().parse_args(argv)
    for name in ("vocab", "block", "layers", "heads", "embd", "batch", "steps", "grad_accum"):
        if getattr(args, name) < 1:
            _parser().error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        _parser().error(f"--warmup must be >= 0, got {args.warmup}")
    setup_distributed("cpu")
    try:
        (_job_grads if args.job == "grads" else _job_throughput)(args, args.out)
        barrier()   # every rank is done with its collectives before any rank takes the group down
    finally:
        teardown_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
