"""Data-parallel training with ``torch.distributed``: one process per device, each on its own batches.

Launch the same script N times with ``torchrun --nproc_per_node=N script.py``: torchrun sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in each process, and
:func:`setup_distributed` reads them and joins the process group (gloo on CPU, nccl on CUDA with GPU
``LOCAL_RANK``). Without those variables (or with ``WORLD_SIZE=1``) everything here is a no-op and the code
runs as a single process.

Data parallelism: every rank holds the same weights, draws its own batch of B examples, and the gradients
are averaged over the ranks before each optimizer step, so N ranks take the step that one process would take
on a batch of N·B examples (exactly, for models without batch norm; the per-rank mean losses average to the
mean over N·B because every rank's batch has the same size). :class:`~torch.nn.parallel.DistributedDataParallel`
(:func:`wrap_ddp`) overlaps that averaging with the backward pass; :func:`aigc_course.train.train` averages
the rest itself.

Seeding: build the model after ``seed_everything(seed)`` on every rank (DDP and ``train`` also broadcast rank
0's weights), then give each rank its own stream, ``seed_everything(rank_seed(seed, rank))``, so that the ranks
draw different batches. :func:`aigc_course.train.train` does the latter itself at the start of a fresh
distributed run.

>>> info = setup_distributed()            # DistInfo(rank=0, world_size=2, ..., backend='gloo')
>>> seed_everything(0); model = build()   # same weights everywhere
>>> train_lm(model, ids, LMConfig(...))   # rank-aware: DDP, one checkpoint writer, one progress bar
>>> teardown_distributed()
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["DistInfo", "setup_distributed", "teardown_distributed", "current", "is_main_process", "barrier",
           "all_reduce_mean", "all_reduce_sum", "broadcast_object", "all_gather_object", "broadcast_module",
           "wrap_ddp", "unwrap", "no_sync", "rank_seed", "average_batchnorm_stats"]

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its ``rank`` among ``world_size`` processes, its ``local_rank`` on this
    machine, the process-group ``backend`` (None for a single process) and the ``device`` it computes on."""

    rank: int
    world_size: int
    local_rank: int
    backend: str | None
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


_INFO: DistInfo | None = None  # what setup_distributed chose, while its group lives


def _env_int(name: str, default: int | None, low: int, high: int | None = None, why: str = "") -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        if default is None:
            raise ValueError(f"environment variable {name} is not set, but WORLD_SIZE="
                             f"{os.environ.get('WORLD_SIZE')!r} asks for a distributed run; launch with "
                             "torchrun (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT) "
                             "or set it")
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"environment variable {name} must be a whole number >= {low}, got {raw!r}")
    v = int(text)
    if v < low or (high is not None and v > high):
        bound = f"from {low} to {high}" if high is not None else f">= {low}"
        raise ValueError(f"environment variable {name} must be {bound}{why}, got {v}")
    return v


def _single(device: str | torch.device | None) -> DistInfo:
    from .device import get_device

    dev = get_device(device) if device is not None else torch.device("cpu")
    return DistInfo(0, 1, 0, None, dev)


def setup_distributed(device: str | torch.device | None = None) -> DistInfo:
    """Join the process group that torchrun's environment variables describe, and return this process's place.

    ``WORLD_SIZE`` > 1: checks ``RANK`` (0 ≤ RANK < WORLD_SIZE), ``LOCAL_RANK``, ``MASTER_ADDR`` and
    ``MASTER_PORT``, then initialises the default group unless one already is: gloo for ``device="cpu"``,
    nccl for CUDA (GPU ``LOCAL_RANK``, made the current device). ``device=None`` picks CUDA when available,
    else the CPU. Otherwise (variables unset, or ``WORLD_SIZE=1``) no group is made and the single-process
    DistInfo is returned, on ``device`` (default: the CPU). Bad variables raise ValueError naming them.
    """
    global _INFO
    if device is not None and not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str, torch.device or None, got {type(device).__name__}")
    world = _env_int("WORLD_SIZE", 1, 1)
    if world == 1:
        if dist.is_available() and dist.is_initialized():
            return current()
        _INFO = _single(device)
        return _INFO
    rank = _env_int("RANK", None, 0, world - 1, f" (below WORLD_SIZE={world})")
    local = _env_int("LOCAL_RANK", None, 0, rank, f" (at most RANK={rank}: ranks count across machines)")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name, "").strip():
            raise ValueError(f"environment variable {name} is not set, but WORLD_SIZE={world} asks for a "
                             "distributed run; launch with torchrun or set it (e.g. MASTER_ADDR=127.0.0.1)")
    _env_int("MASTER_PORT", None, 1, 65535)
    if not dist.is_available():  # pragma: no cover
        raise RuntimeError("this torch build has no torch.distributed")
    if dist.is_initialized():
        info = current()
        if (info.rank, info.world_size) != (rank, world):
            raise ValueError(f"a process group is already initialised as rank {info.rank} of {info.world_size}, "
                             f"but RANK={rank} and WORLD_SIZE={world}")
        return info
    try:
        want = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    except RuntimeError as e:
        raise ValueError(f"device={device!r} is not a device name; expected 'cpu' or 'cuda'") from e
    if want.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available on this machine")
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local} but this machine has {torch.cuda.device_count()} GPU(s); start "
                             "at most one process per GPU (torchrun --nproc_per_node)")
        dev, backend = torch.device("cuda", local), "nccl"
        torch.cuda.set_device(dev)
    elif want.type == "cpu":
        dev, backend = torch.device("cpu"), "gloo"
    else:
        raise ValueError(f"device={device!r}: distributed training runs on 'cpu' (gloo) or 'cuda' (nccl)")
    kwargs: dict[str, Any] = {"device_id": dev} if backend == "nccl" else {}
    dist.init_process_group(backend, rank=rank, world_size=world, **kwargs)
    _INFO = DistInfo(rank, world, local, backend, dev)
    return _INFO


def teardown_distributed() -> None:
    """Leave the process group (if any); afterwards :func:`current` is single-process again.

    The ranks meet at a barrier first (at most a minute on gloo), so none destroys the group while another
    still talks to it: gloo can otherwise abort a process at exit ("terminate called without an active
    exception"). A rank that does not arrive only delays the others' exit."""
    global _INFO
    _INFO = None
    if dist.is_available() and dist.is_initialized():
        try:
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
            else:
                dist.barrier()
        except RuntimeError:
            pass    # a rank that died or left: nothing to wait for
        dist.destroy_process_group()


def current() -> DistInfo:
    """This process's place: from the initialised default process group, else a single process on the CPU
    (or on the device :func:`setup_distributed` chose)."""
    if not (dist.is_available() and dist.is_initialized()):
        return _INFO if _INFO is not None and not _INFO.distributed else _single(None)
    if _INFO is not None and _INFO.distributed:
        return _INFO
    rank, world = dist.get_rank(), dist.get_world_size()
    backend = str(dist.get_backend())
    raw = os.environ.get("LOCAL_RANK", "")
    local = int(raw) if raw.strip().isdigit() else rank
    dev = torch.device("cuda", local) if backend == "nccl" else torch.device("cpu")
    return DistInfo(rank, world, local, backend, dev)


def is_main_process() -> bool:
    """True on rank 0 (and in a single process)."""
    return current().is_main


def _comm_device() -> torch.device:
    """Where collective tensors must live: the GPU for nccl, the CPU for gloo."""
    info = current()
    return info.device if info.backend == "nccl" else torch.device("cpu")


def barrier() -> None:
    """Wait until every rank gets here (no-op in a single process)."""
    if current().distributed:
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t`` over the ranks, as a new tensor on ``t``'s device (a copy in a single process)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be a torch.Tensor, got {type(t).__name__}")
    out = t.detach().clone()
    if current().distributed:
        buf = out.to(_comm_device())
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        out = buf.to(t.device)
    return out


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over the ranks (a floating-point tensor, same shape on every rank), as a new tensor."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be a torch.Tensor, got {type(t).__name__}")
    if not (t.is_floating_point() or t.is_complex()):
        raise TypeError(f"t must be a floating-point tensor to average, got dtype {t.dtype}")
    world = current().world_size
    out = all_reduce_sum(t)
    return out / world if world > 1 else out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (any picklable object) on every rank; ``obj`` itself in a single process."""
    if not current().distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=_comm_device())
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank; ``[obj]`` in a single process."""
    info = current()
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_module(module: nn.Module, src: int = 0) -> nn.Module:
    """Copy rank ``src``'s parameters and buffers into ``module`` on every rank (in place); returns it."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if current().distributed:
        dev = _comm_device()
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                buf = t.detach().to(dev)       # t itself (a view of it) when t is already on dev
                dist.broadcast(buf, src=src)
                if buf.device != t.device:
                    t.copy_(buf)
    return module


def _batchnorms(module: nn.Module) -> list[nn.modules.batchnorm._NormBase]:
    return [m for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats
            and m.running_mean is not None]


def average_batchnorm_stats(module: nn.Module) -> None:
    """Average every batch-norm layer's running mean and variance over the ranks (in place).

    Each rank's batch norm updates its running statistics from its own batch; averaging them after every
    step keeps the ranks' weights identical (so rank 0's checkpoint stands for all) and estimates the
    statistics of the whole N·B batch. No-op in a single process or without batch norm.
    """
    if not current().distributed:
        return
    stats = [t for m in _batchnorms(module) for t in (m.running_mean, m.running_var)]
    if not stats:
        return
    flat = all_reduce_mean(torch.cat([t.detach().reshape(-1).float() for t in stats]))
    with torch.no_grad():
        for t, part in zip(stats, flat.split([t.numel() for t in stats]), strict=True):
            t.copy_(part.view_as(t))


def wrap_ddp(model: nn.Module, info: DistInfo | None = None, *, sync_buffers: bool = True,
             **ddp_kwargs: Any) -> nn.Module:
    """``DistributedDataParallel(model)`` when ``info`` (default :func:`current`) is distributed, else ``model``.

    On CUDA the module is put on ``info.device`` and DDP gets ``device_ids=[local rank]``. DDP broadcasts rank
    0's weights and buffers when it is built and averages the gradients during ``backward()``;
    ``sync_buffers=False`` stops it from also copying rank 0's buffers (batch-norm statistics) before every
    forward. ``ddp_kwargs`` go to DDP. Save :func:`unwrap` (the model), not the wrapper: its state-dict keys
    gain a ``module.`` prefix.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if info is not None and not isinstance(info, DistInfo):
        raise TypeError(f"info must be a DistInfo or None, got {type(info).__name__}")
    info = current() if info is None else info
    if not info.distributed or isinstance(model, DistributedDataParallel):
        return model
    if info.device.type == "cuda":
        model.to(info.device)
        ddp_kwargs.setdefault("device_ids", [info.device.index])
    if not sync_buffers:  # newer torch renamed the option (and deprecates the old name)
        new = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
        ddp_kwargs.setdefault("forward_sync_buffers" if new else "broadcast_buffers", False)
    return DistributedDataParallel(model, **ddp_kwargs)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP (or DataParallel) wrapper; any other module as it is."""
    if isinstance(model, (DistributedDataParallel, nn.DataParallel)):
        return model.module
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


@contextlib.contextmanager
def no_sync(model: nn.Module, active: bool = True) -> Iterator[None]:
    """``model.no_sync()`` when ``model`` is a DDP wrapper and ``active``, else nothing.

    Gradient accumulation: run the forward and backward of every micro-batch but the last inside it, so DDP
    averages the summed gradients once, on the last backward, instead of after every micro-batch.
    """
    if active and isinstance(model, DistributedDataParallel):
        with model.no_sync():
            yield
    else:
        yield


def rank_seed(seed: int, rank: int) -> int:
    """A seed for rank ``rank`` of a run seeded with ``seed``: in [0, 2**32), distinct across ranks, the same
    on every call. ``rank_seed(seed, 0) == seed``, so rank 0 draws what a single process would draw."""
    from .device import check_seed

    seed = check_seed(seed)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 0:
        raise ValueError(f"rank must be an int >= 0, got {rank!r}")
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, int(rank)]).generate_state(1, dtype=np.uint32)[0])
