"""One small training loop for every model in the course.

You write a *step function* that does one training step and returns its metrics; :func:`train` runs it
``steps`` times with a progress bar, learning-rate schedulers, periodic checkpoints, exact resume, and
guards that stop on a NaN/inf loss, gradient norm, metric or weight. A step may update several models
with several optimizers (a GAN's discriminator then generator), so the loop never calls ``backward``
itself: the step function calls ``ctx.optimize(loss, "name")``, which does backward → NaN check →
gradient clipping → ``optimizer.step()``.

>>> def step(ctx):
...     x, y = batch()                      # draw the batch from torch's global RNG
...     with ctx.autocast():
...         loss = F.mse_loss(model(x), y)
...     ctx.optimize(loss)                  # the default optimizer is named "main"
...     return {"loss": loss}
>>> history = train(step, models=model, optimizers=opt, config=TrainConfig(steps=1000))

Exact resume: with ``ckpt_dir`` set, a rerun of the same call continues from the newest checkpoint with
the same model, optimizer, scheduler and RNG states, so on CPU it ends bit-for-bit where an uninterrupted
run ends, provided the step function draws its randomness from Python's, NumPy's or torch's global RNGs.

What a resume accepts (see :mod:`aigc_course.checkpoint`): the same models (tensor names, shapes, dtypes),
optimizer and scheduler types and names. Everything is checked before anything is loaded, so a refused
resume leaves the objects untouched. A changed hyper-parameter (the optimizer's ``lr``, betas, weight decay,
..., or ``grad_clip``/``amp``) is refused, naming both values, unless ``TrainConfig(on_config_change=
"use_new")`` asks to continue from the checkpoint with the new values, e.g. a lower learning rate after
the NaN guard stopped a run. ``steps`` may grow: the run continues to the new total.

Guards: after every step the weights (parameters and buffers) must be finite, so a checkpoint never holds
NaN/inf and "the last good checkpoint" named by a stopped run is one to resume from. The checkpoint folder
is locked for the whole run (a second run on it gets :class:`~aigc_course.checkpoint.CheckpointInUseError`).

Distributed runs (started with ``torchrun``, process group joined with
:func:`aigc_course.distributed.setup_distributed`): every rank runs the same ``train`` call. A fresh run
copies rank 0's weights to every rank and gives each rank its own RNG stream (so each draws its own
batches); ``ctx.optimize`` averages the gradients over the ranks (or DDP does, for modules used through
``ctx.ddp(model)``), batch-norm running statistics are averaged after every step, and the history holds the
metrics averaged over the ranks. Only rank 0 locks the folder, writes checkpoints, shows the progress bar and
calls the callbacks; a checkpoint also holds every rank's RNG state, and on resume all ranks load the same
checkpoint (so ``ckpt_dir`` must be readable by every rank: one machine, or a shared file system) and each
restores its own RNG, so a resumed run ends bit-for-bit where an uninterrupted one with the same number of
processes ends on CPU. A resume with another number of processes is refused, unless
``on_config_change="use_new"`` (then it continues, not bit-exact). A NaN/inf on any rank stops every rank.
The step function must call ``ctx.optimize`` / ``ctx.accumulate`` equally often on every rank and return the
same metric names (each of these is a collective operation).
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import (
    ON_CONFIG_CHANGE,
    _check_rng_state,
    checkpoint_lock,
    latest_checkpoint,
    load_training_state,
    nonfinite_tensor,
    rng_state,
    run_spec,
    save_training_state,
    set_rng_state,
)
from .device import autocast as _autocast
from .device import seed_everything
from .distributed import (
    DistInfo,
    all_gather_object,
    all_reduce_mean,
    all_reduce_sum,
    average_batchnorm_stats,
    barrier,
    broadcast_module,
    broadcast_object,
    current,
    rank_seed,
    wrap_ddp,
)

Metrics = Mapping[str, float | torch.Tensor]
StepFn = Callable[["StepContext"], Metrics | None]
Callback = Callable[[int, dict[str, float]], None]


class NonFiniteLossError(FloatingPointError):
    """A loss, gradient norm, metric or weight became NaN/inf, and training stopped.

    A NaN/inf loss or gradient norm stops before the update is applied; NaN/inf weights are found right
    after the update (the in-memory model is bad) and are never saved to a checkpoint.
    """


def _check_int(name: str, v: Any, low: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"TrainConfig.{name} must be an int, got {type(v).__name__} {v!r}")
    if v < low:
        raise ValueError(f"TrainConfig.{name} must be >= {low}, got {v}")


@dataclass
class TrainConfig:
    """Settings of :func:`train`.

    steps: total optimisation steps (counted from 0; resume continues the count).
    grad_clip: max global gradient norm per optimizer (None: no clipping).
    amp: bf16 autocast inside ``ctx.autocast()`` (True/False); None means on for CUDA, off on CPU.
    ckpt_dir / ckpt_every: save every ``ckpt_every`` steps and at the end (0: only at the end).
    resume: continue from ``ckpt_dir`` if it holds a checkpoint.
    on_config_change: what a resume does when a hyper-parameter (optimizer lr, betas, ..., grad_clip,
        amp) differs from the checkpoint's: ``"error"`` refuses, naming both values; ``"use_new"`` restores
        the checkpoint, then applies this run's values.
    log_every: how often callbacks fire and the progress bar's numbers refresh.
    """

    steps: int
    grad_clip: float | None = 1.0
    amp: bool | None = None
    ckpt_dir: str | os.PathLike | None = None
    ckpt_every: int = 0
    keep_last: int = 2
    resume: bool = True
    on_config_change: str = "error"
    log_every: int = 10
    progress: bool = True
    desc: str = "train"

    def __post_init__(self) -> None:
        _check_int("steps", self.steps, 0)
        _check_int("ckpt_every", self.ckpt_every, 0)
        _check_int("log_every", self.log_every, 1)
        _check_int("keep_last", self.keep_last, 1)
        if self.grad_clip is not None:
            if isinstance(self.grad_clip, bool) or not isinstance(self.grad_clip, numbers.Real):
                raise TypeError(f"TrainConfig.grad_clip must be a positive number or None, got "
                                f"{type(self.grad_clip).__name__} {self.grad_clip!r}")
            if not self.grad_clip > 0:
                raise ValueError(f"TrainConfig.grad_clip must be positive or None, got {self.grad_clip!r}")
        if self.amp is not None and not isinstance(self.amp, bool):
            raise TypeError(f"TrainConfig.amp must be True, False or None, got {type(self.amp).__name__} "
                            f"{self.amp!r} (a string such as 'no' would count as True)")
        for name in ("resume", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"TrainConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if self.ckpt_dir is not None and not isinstance(self.ckpt_dir, (str, os.PathLike)):
            raise TypeError(f"TrainConfig.ckpt_dir must be a path or None, got {type(self.ckpt_dir).__name__}")
        if self.ckpt_dir is None and self.ckpt_every > 0:
            raise ValueError(f"TrainConfig.ckpt_every={self.ckpt_every} needs ckpt_dir (where to save); "
                             "set ckpt_dir, or leave ckpt_every at 0")
        if self.on_config_change not in ON_CONFIG_CHANGE:
            raise ValueError(f"TrainConfig.on_config_change must be one of {ON_CONFIG_CHANGE}, got "
                             f"{self.on_config_change!r}")
        if not isinstance(self.desc, str):
            raise TypeError(f"TrainConfig.desc must be a str, got {type(self.desc).__name__}")


class History:
    """Per-step metrics: ``records`` is a list of dicts like ``{"step": 3, "loss": 0.41}``.

    ``history["loss"]`` gives the list of values of one metric; the plotting helpers draw it directly.
    """

    def __init__(self, records: Iterable[Mapping[str, float]] = ()) -> None:
        self.records: list[dict[str, float]] = [dict(r) for r in records]

    def append(self, record: Mapping[str, float]) -> None:
        self.records.append(dict(record))

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.records:
            seen.update(dict.fromkeys(r))
        return list(seen)

    def __getitem__(self, key: str) -> list[float]:
        if key not in self.keys():
            raise KeyError(f"no metric {key!r} in history; have {self.keys()}")
        return [r[key] for r in self.records if key in r]

    def last(self, key: str) -> float:
        return self[key][-1]

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"History({len(self)} records, metrics={self.keys()})"


class StepContext:
    """What a step function gets: the step number, the device, ``autocast()``, ``optimize()``, ``accumulate()``
    and, in a distributed run, ``dist`` and ``ddp()``.

    Gradient accumulation over k micro-batches: call ``accumulate(loss_i / k, name)`` for the first k − 1
    and ``optimize(loss_k / k, name)`` for the last; the gradients add up, so the update is the one of the
    mean loss over all k·B examples (``optimize`` alone is the usual k = 1 step).

    Distributed (``dist.distributed``): every loss is checked on all ranks at once, so a NaN on one rank
    stops all of them; ``optimize`` averages the gradients over the ranks before clipping, except those
    of modules used through ``ddp(model)``, which DistributedDataParallel averages during backward.
    """

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer], params: Mapping[str, list],
                 grad_clip: float | None, amp: bool | None, device: torch.device,
                 dist: DistInfo | None = None) -> None:
        self.step = 0
        self.device = device
        self.dist = dist if dist is not None else DistInfo(0, 1, 0, None, torch.device(device))
        self._optimizers = optimizers
        self._params = params
        self._grad_clip = grad_clip
        self._amp = amp
        self.grad_norms: dict[str, float] = {}
        self._pending: set[str] = set()       # optimizers holding accumulated gradients
        self._ddp: dict[int, nn.Module] = {}  # id(model) -> its DDP wrapper
        self._ddp_params: set[int] = set()    # ids of parameters DDP averages

    def autocast(self):
        """Mixed-precision context for the forward pass (bf16 on CUDA by default; off on CPU)."""
        return _autocast(self.device, self._amp)

    def ddp(self, model: nn.Module) -> nn.Module:
        """The module to run the forward pass through: ``DistributedDataParallel(model)`` in a distributed run
        (built once, with ``sync_buffers=False``: train() averages batch-norm statistics itself), ``model``
        itself otherwise. Its gradients are then averaged by DDP during backward (run the forward and backward
        of all micro-batches but the last inside :func:`aigc_course.distributed.no_sync`). Only ``forward``
        goes through DDP: a loss computed from other methods of the model needs a module whose forward calls
        them."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not self.dist.distributed:
            return model
        if id(model) not in self._ddp:
            self._ddp[id(model)] = wrap_ddp(model, self.dist, sync_buffers=False)
            self._ddp_params.update(id(p) for p in model.parameters())
        return self._ddp[id(model)]

    def _check_loss(self, loss: torch.Tensor, name: str) -> torch.optim.Optimizer:
        """The optimizer ``name``; refuses a non-scalar loss, and a NaN/inf one (on any rank) after dropping
        the gradients accumulated so far."""
        if name not in self._optimizers:
            raise KeyError(f"no optimizer named {name!r}; have {list(self._optimizers)}")
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(f"loss must be a scalar tensor, got {type(loss).__name__} "
                             f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}")
        opt = self._optimizers[name]
        if self.dist.distributed:
            # each rank writes its loss into its own slot of a zero vector; the sum shows every rank's loss
            slots = torch.zeros(self.dist.world_size, dtype=torch.float64, device=loss.device)
            slots[self.dist.rank] = loss.detach().double().reshape(())
            slots = all_reduce_sum(slots)
            bad = [(r, float(v)) for r, v in enumerate(slots.tolist()) if not math.isfinite(v)]
            if bad:
                opt.zero_grad(set_to_none=True)
                self._pending.discard(name)
                where = ", ".join(f"{v} on rank {r}" for r, v in bad)
                raise NonFiniteLossError(f"loss for optimizer {name!r} is {where} at step {self.step}")
        elif not torch.isfinite(loss.detach()):
            opt.zero_grad(set_to_none=True)
            self._pending.discard(name)
            raise NonFiniteLossError(f"loss for optimizer {name!r} is {loss.item()} at step {self.step}")
        return opt

    def accumulate(self, loss: torch.Tensor, name: str = "main", retain_graph: bool = False) -> None:
        """backward(loss) into the gradients of ``optimizers[name]``, without a step: a micro-batch that the
        next :meth:`optimize` of ``name`` completes. The first call after a step starts from zero gradients.
        Raises :class:`NonFiniteLossError` (gradients dropped) when the loss is NaN/inf."""
        opt = self._check_loss(loss, name)
        if name not in self._pending:
            opt.zero_grad(set_to_none=True)
            self._pending.add(name)
        loss.backward(retain_graph=retain_graph)

    def optimize(self, loss: torch.Tensor, name: str = "main", retain_graph: bool = False) -> float:
        """backward(loss) → check finite → clip → ``optimizers[name].step()`` → zero grads.

        The gradient is this loss's plus what :meth:`accumulate` gathered since the last step (in a
        distributed run: averaged over the ranks). Returns the gradient norm before clipping. Raises
        :class:`NonFiniteLossError` (no update applied) when the loss or the gradient norm is NaN/inf.
        """
        opt = self._check_loss(loss, name)
        if name not in self._pending:
            opt.zero_grad(set_to_none=True)
        self._pending.discard(name)
        loss.backward(retain_graph=retain_graph)
        params = self._params[name]
        if self.dist.distributed:
            _average_gradients([p for p in params if id(p) not in self._ddp_params])
        max_norm = self._grad_clip if self._grad_clip is not None else math.inf
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm)) if params else 0.0
        if not math.isfinite(norm):
            opt.zero_grad(set_to_none=True)
            raise NonFiniteLossError(f"gradient norm for optimizer {name!r} is {norm} at step {self.step}")
        opt.step()
        opt.zero_grad(set_to_none=True)
        self.grad_norms[name] = norm
        return norm


def _average_gradients(params: list[torch.Tensor]) -> None:
    """Replace each parameter's gradient by its mean over the ranks (one flat all-reduce per dtype/device).

    A parameter without a gradient on some rank counts as a zero gradient there; one without a gradient on
    every rank keeps ``grad = None`` (so the optimizer skips it, as in a single process).
    """
    if not params:
        return
    have = all_reduce_sum(torch.tensor([float(p.grad is not None) for p in params]))
    used = [p for p, h in zip(params, have.tolist(), strict=True) if h > 0]
    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for p in used:
        groups.setdefault((p.device, p.dtype), []).append(p)
    for ps in groups.values():
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in ps])
        flat = all_reduce_mean(flat)
        for p, g in zip(ps, flat.split([p.numel() for p in ps]), strict=True):
            p.grad = g.view_as(p).clone()


def _as_dict(obj: Any, kind: str, expected: type | tuple[type, ...]) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        out = dict(obj)
    else:
        out = {"main": obj}
    for k, v in out.items():
        if not isinstance(k, str):
            raise TypeError(f"{kind} keys must be str, got {k!r}")
        if not isinstance(v, expected):
            raise TypeError(f"{kind}[{k!r}] must be a {expected}, got {type(v).__name__}")
    return out


def _check_optimizer(name: str, opt: torch.optim.Optimizer) -> None:
    """Every param group needs a finite lr >= 0 (lr=None would fail deep inside optimizer.step())."""
    for i, g in enumerate(opt.param_groups):
        lr = g.get("lr")
        where = f"optimizers[{name!r}].param_groups[{i}]['lr']"
        if isinstance(lr, torch.Tensor) and lr.numel() == 1:
            lr = lr.item()
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise TypeError(f"{where} must be a number, got {type(lr).__name__} {lr!r}")
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"{where} must be finite and >= 0, got {lr!r}")


def _to_float(name: str, v: Any) -> float:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ValueError(f"metric {name!r} must be a scalar, got a tensor of shape {tuple(v.shape)}")
        if v.is_complex():
            raise TypeError(f"metric {name!r} must be real, got a {v.dtype} tensor")
        return float(v.detach().item())
    if not isinstance(v, numbers.Real):
        raise TypeError(f"metric {name!r} must be a number or a 1-element tensor, got {type(v).__name__} "
                        f"{v!r}")
    return float(v)


def _record(step: int, metrics: Any) -> dict[str, float]:
    """The history row of one step; checks what the step function returned."""
    if metrics is None:
        metrics = {}
    if not isinstance(metrics, Mapping):
        raise TypeError(f"step_fn must return a dict of metrics (e.g. {{'loss': loss}}) or None, got "
                        f"{type(metrics).__name__} {metrics!r:.60}")
    for k in metrics:
        if not isinstance(k, str):
            raise TypeError(f"step_fn returned a metric name that is not a str: {k!r}")
    if "step" in metrics:
        raise ValueError("step_fn returned a metric named 'step', which would overwrite the step column of "
                         "the history; give it another name")
    return {"step": float(step), **{k: _to_float(k, v) for k, v in metrics.items()}}


def _progress(total: int, initial: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, dynamic_ncols=True,
                leave=True)


def _history_checker(folder: Path) -> Callable[[Mapping[str, Any]], None]:
    def check(extra: Mapping[str, Any]) -> None:
        records = extra.get("history", [])
        if not isinstance(records, list) or not all(
                isinstance(r, dict) and all(isinstance(k, str) and isinstance(v, float) for k, v in r.items())
                for r in records):
            raise ValueError(f"checkpoint {folder}: the stored history is damaged (expected a list of "
                             "{name: float} dicts)")
    return check


def train(
    step_fn: StepFn,
    *,
    models: nn.Module | Mapping[str, nn.Module],
    optimizers: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer],
    config: TrainConfig,
    schedulers: Any | Mapping[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    device: torch.device | str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> History:
    """Run ``step_fn(ctx)`` for ``config.steps`` steps and return the :class:`History` of its metrics.

    ``models`` / ``optimizers`` / ``schedulers`` are single objects (named "main") or dicts of named
    ones; each scheduler is stepped once after every step. ``callbacks`` get ``(step, metrics)`` every
    ``log_every`` steps and at the last step (e.g. a :class:`aigc_course.plotting.LivePlot`). Every model
    is put in training mode (``model.train()``) first. With ``config.ckpt_dir`` the folder is locked for
    the run and a rerun resumes from its newest checkpoint (see the module docstring for what a resume
    accepts). ``settings``: further run settings that change the math (e.g. ``{"grad_accum": 4}``), stored in
    each checkpoint and compared on resume like ``grad_clip``.

    In a distributed run (a process group is initialised, see :mod:`aigc_course.distributed` and the module
    docstring) pass the unwrapped models: checkpoints then hold the same keys as a single-process run's.
    """
    if not callable(step_fn):
        raise TypeError(f"step_fn must be callable, got {type(step_fn).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    model_d = _as_dict(models, "models", nn.Module)
    opt_d = _as_dict(optimizers, "optimizers", torch.optim.Optimizer)
    sched_d = _as_dict(schedulers, "schedulers", object)
    if not model_d:
        raise ValueError("models must not be empty")
    if not opt_d:
        raise ValueError("optimizers must not be empty")
    for k, o in opt_d.items():
        _check_optimizer(k, o)
    for k, sch in sched_d.items():
        if not callable(getattr(sch, "step", None)):
            raise TypeError(f"schedulers[{k!r}] must have a step() method, got {type(sch).__name__}")
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Iterable):
        raise TypeError(f"callbacks must be a list of callables, got {type(callbacks).__name__}")
    callbacks = list(callbacks)
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"callbacks[{i}] must be callable, got {type(cb).__name__}")
    if device is None:
        first = next(iter(model_d.values()))
        p = next(first.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    dev = torch.device(device)
    params = {k: [p for g in o.param_groups for p in g["params"]] for k, o in opt_d.items()}
    ckpt_dir = Path(config.ckpt_dir) if config.ckpt_dir is not None else None
    if ckpt_dir is not None:
        saved_ids = {id(p) for m in model_d.values() for p in m.parameters()}
        for k, ps in params.items():
            if any(id(p) not in saved_ids for p in ps):
                raise ValueError(f"optimizers[{k!r}] updates a parameter that belongs to none of the models, "
                                 "so a checkpoint would not save it; pass its module in models")
    info = current()
    ctx = StepContext(opt_d, params, config.grad_clip, config.amp, dev, dist=info)
    # what defines this run, captured before anything is loaded (a scheduler may change lr later)
    run_settings = {"grad_clip": config.grad_clip,
                    "amp": config.amp if config.amp is not None else dev.type == "cuda"}
    run_settings.update(_check_settings(settings, run_settings))
    spec = run_spec(model_d, opt_d, sched_d, run_settings)

    with contextlib.ExitStack() as stack:
        history = History()
        start = 0
        last_good: Path | None = None
        if ckpt_dir is not None:
            def find() -> Path | None:
                stack.enter_context(checkpoint_lock(ckpt_dir, reentrant=False))
                return latest_checkpoint(ckpt_dir) if config.resume else None

            # rank 0 alone locks the folder and picks the checkpoint; every rank loads that one
            folder = _on_main(info, find)
            if folder is not None:
                loaded = load_training_state(folder, model_d, opt_d, sched_d, spec=spec,
                                             on_config_change=config.on_config_change, require_all=True,
                                             check_extra=_extra_checker(folder, info, config.on_config_change))
                start = loaded["step"] + 1
                history = History(loaded["extra"].get("history", []))
                last_good = folder
                if info.distributed:
                    _restore_rank_rng(loaded["extra"], info)
            barrier()  # nobody starts (and rank 0 writes nothing) before every rank has read the checkpoint
        if info.distributed and start == 0:
            _fresh_distributed_start(model_d, info)

        def stopped(reason: str) -> NonFiniteLossError:
            if last_good is not None:
                where = (f"The last good checkpoint is {last_good}; rerun the same call to resume from it. To "
                         "change a setting for the rerun (e.g. a lower learning rate in the optimizer, or a "
                         "smaller grad_clip), also pass TrainConfig(on_config_change='use_new'), otherwise the "
                         "resume refuses the changed value.")
            elif ckpt_dir is not None:
                where = "No checkpoint was saved yet in this run (ckpt_every=0 saves only at the end)."
            else:
                where = "No checkpoint was saved yet (set TrainConfig.ckpt_dir to keep one)."
            return NonFiniteLossError(f"Training stopped: {reason}. {where}")

        for m in model_d.values():
            m.train()
        bar = stack.enter_context(contextlib.closing(
            _progress(config.steps, min(start, config.steps), config.progress and info.is_main, config.desc)))
        for step in range(start, config.steps):
            ctx.step = step
            try:
                metrics = step_fn(ctx)
            except NonFiniteLossError as e:
                raise stopped(str(e)) from None
            if ctx._pending:
                name = sorted(ctx._pending)[0]
                ctx._pending.clear()
                raise RuntimeError(f"step_fn called ctx.accumulate(loss, {name!r}) at step {step} but no "
                                   f"ctx.optimize(loss, {name!r}) after it to apply the accumulated gradients "
                                   "(call optimize for the last micro-batch)")
            record = _record(step, metrics)
            if info.distributed:
                for m in model_d.values():
                    average_batchnorm_stats(m)
            bad = nonfinite_tensor(model_d)
            bad_anywhere = bad is not None
            if info.distributed:  # a collective: every rank takes part before any rank stops
                record, bad_anywhere = _average_record(record, bad_anywhere)
            if bad is not None:
                m, kind, tname = bad
                raise stopped(f"model {m!r} {kind} {tname!r} holds NaN/inf after the update at step {step} "
                              "(the model in memory is damaged; it was not saved)")
            if bad_anywhere:
                raise stopped(f"a model holds NaN/inf after the update at step {step} on another rank (the "
                              "models in memory are damaged; they were not saved)")
            for k, v in record.items():
                if not math.isfinite(v):
                    raise stopped(f"metric {k!r} is {v} at step {step}"
                                  + (f" (averaged over the {info.world_size} ranks)" if info.distributed else ""))
            history.append(record)
            for sch in sched_d.values():
                sch.step()
            last = step == config.steps - 1
            if (step % config.log_every == 0 or last) and info.is_main:
                bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k != "step"}, refresh=False)
                for cb in callbacks:
                    cb(step, {k: v for k, v in record.items() if k != "step"})
            bar.update(1)
            if ckpt_dir is not None and (last or (config.ckpt_every and (step + 1) % config.ckpt_every == 0)):
                extra: dict[str, Any] = {"history": history.records}
                if info.distributed:  # each rank's RNG, so that each rank resumes its own batch stream
                    extra["world_size"] = info.world_size
                    extra["rank_rng"] = all_gather_object(rng_state())
                last_good = _on_main(info, functools.partial(  # rank 0 writes; all ranks learn where (or its error)
                    save_training_state, ckpt_dir, step, model_d, opt_d, sched_d, extra=extra,
                    keep_last=config.keep_last, spec=spec))
    if info.distributed and ckpt_dir is not None:
        barrier()  # rank 0 has written the last checkpoint and released the folder
    return history


def _check_settings(settings: Any, own: Mapping[str, Any]) -> dict[str, Any]:
    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise TypeError(f"settings must be a dict of name -> value or None, got {type(settings).__name__}")
    for k in settings:
        if not isinstance(k, str):
            raise TypeError(f"settings keys must be str, got {k!r}")
        if k in own:
            raise ValueError(f"settings must not set {k!r}: train() records TrainConfig's value itself")
    return dict(settings)


def _on_main(info: DistInfo, fn: Callable[[], Any]) -> Any:
    """``fn()`` run on rank 0 only; its result, or the exception it raised, on every rank."""
    if not info.distributed:
        return fn()
    result, error = None, None
    if info.is_main:
        try:
            result = fn()
        except Exception as e:  # every rank raises it, so that none waits for the others forever
            error = e
    sent = error
    if error is not None:
        try:
            pickle.dumps(error)
        except Exception:
            sent = RuntimeError(f"rank 0: {type(error).__name__}: {error}")
    result, sent = broadcast_object((result, sent))
    if error is not None:
        raise error
    if sent is not None:
        raise sent
    return result


def _extra_checker(folder: Path, info: DistInfo, on_config_change: str) -> Callable[[Mapping[str, Any]], None]:
    """Checks of a checkpoint's ``extra`` before anything loads: the history, and the number of processes."""
    check_history = _history_checker(folder)

    def check(extra: Mapping[str, Any]) -> None:
        check_history(extra)
        saved = extra.get("world_size", 1)
        states = extra.get("rank_rng")
        if isinstance(saved, bool) or not isinstance(saved, int) or saved < 1 or (states is not None and not (
                isinstance(states, list) and len(states) == saved)):
            raise ValueError(f"checkpoint {folder}: the stored world_size / rank_rng are damaged")
        for r, st in enumerate(states or []):
            _check_rng_state(st, f"checkpoint {folder}, rank {r}")
        if saved != info.world_size and on_config_change == "error":
            raise ValueError(
                f"checkpoint {folder} was saved by a run with {_processes(saved)}, but this run has "
                f"{_processes(info.world_size)}, so nothing was loaded: each process draws its batches from its "
                "own RNG stream, and the effective batch is (number of processes) × batch_size. Resume with "
                f"{_processes(saved)} (torchrun --nproc_per_node={saved}), or pass "
                "TrainConfig(on_config_change='use_new') to continue with this number anyway (the run then "
                "does not continue bit for bit)")
    return check


def _processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def _restore_rank_rng(extra: Mapping[str, Any], info: DistInfo) -> None:
    """After a resume (which restored rank 0's RNG everywhere): this rank's own RNG state. A rank the
    checkpoint has no state for (a resume with more processes) gets a fresh stream of its own."""
    states = extra.get("rank_rng") or []
    if info.rank < len(states):
        set_rng_state(states[info.rank])
    else:
        seed_everything(rank_seed(int(torch.randint(2**32, ())), info.rank))


def _fresh_distributed_start(models: Mapping[str, nn.Module], info: DistInfo) -> None:
    """A new distributed run: rank 0's weights everywhere, then a different RNG stream on each rank (so the
    ranks draw different batches), seeded from what torch's global RNG gives on each rank."""
    for m in models.values():
        broadcast_module(m)
    seed_everything(rank_seed(int(torch.randint(2**32, ())), info.rank))


def _average_record(record: dict[str, float], bad: bool) -> tuple[dict[str, float], bool]:
    """The step's metrics averaged over the ranks (the mean loss over the N·B examples, for equal batches),
    and whether a rank reported bad weights. Every rank must return the same metric names."""
    keys = [k for k in record if k != "step"]
    values = torch.tensor([record[k] for k in keys] + [float(bad)], dtype=torch.float64)
    mean = all_reduce_mean(values).tolist()
    return {"step": record["step"], **dict(zip(keys, mean[:-1], strict=True))}, mean[-1] > 0


@contextlib.contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put the models in eval mode (dropout off, batch norm on its running statistics) for the block, then give
    every submodule back its own previous mode, also when the block raises."""
    for i, m in enumerate(models):
        if not isinstance(m, nn.Module):
            raise TypeError(f"models[{i}] must be a torch.nn.Module, got {type(m).__name__}")
    saved = [(sub, sub.training) for m in models for sub in m.modules()]
    for m in models:
        m.eval()
    try:
        yield
    finally:
        for sub, mode in saved:
            sub.training = mode


def sample_batch(*tensors: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, ...]:
    """A random minibatch (with replacement) of rows of each tensor, drawn from torch's global RNG.

    Stateless by design, so it resumes exactly: the checkpoint restores the RNG, hence the next batch.
    All tensors must share their first dimension N; returns tensors of shape (batch_size, ...).
    """
    if not tensors:
        raise ValueError("sample_batch needs at least one tensor")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    for i, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensors[{i}] must be a torch.Tensor, got {type(t).__name__}")
    n = tensors[0].shape[0] if tensors[0].dim() else 0
    for i, t in enumerate(tensors):
        if t.dim() == 0 or t.shape[0] != n:
            raise ValueError(f"tensors[{i}] has shape {tuple(t.shape)}; all tensors need the same first "
                             f"dimension N={n}")
    if n == 0:
        raise ValueError("tensors are empty (N=0)")
    idx = torch.randint(n, (batch_size,))
    return tuple(t[idx.to(t.device)] for t in tensors)
