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
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import (
    ON_CONFIG_CHANGE,
    checkpoint_lock,
    latest_checkpoint,
    load_training_state,
    nonfinite_tensor,
    run_spec,
    save_training_state,
)
from .device import autocast as _autocast

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
    """What a step function gets: the step number, the device, ``autocast()`` and ``optimize()``."""

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer], params: Mapping[str, list],
                 grad_clip: float | None, amp: bool | None, device: torch.device) -> None:
        self.step = 0
        self.device = device
        self._optimizers = optimizers
        self._params = params
        self._grad_clip = grad_clip
        self._amp = amp
        self.grad_norms: dict[str, float] = {}

    def autocast(self):
        """Mixed-precision context for the forward pass (bf16 on CUDA by default; off on CPU)."""
        return _autocast(self.device, self._amp)

    def optimize(self, loss: torch.Tensor, name: str = "main", retain_graph: bool = False) -> float:
        """backward(loss) → check finite → clip → ``optimizers[name].step()`` → zero grads.

        Returns the gradient norm before clipping. Raises :class:`NonFiniteLossError` (no update applied)
        when the loss or the gradient norm is NaN/inf.
        """
        if name not in self._optimizers:
            raise KeyError(f"no optimizer named {name!r}; have {list(self._optimizers)}")
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(f"loss must be a scalar tensor, got {type(loss).__name__} "
                             f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}")
        opt = self._optimizers[name]
        if not torch.isfinite(loss.detach()):
            opt.zero_grad(set_to_none=True)
            raise NonFiniteLossError(f"loss for optimizer {name!r} is {loss.item()} at step {self.step}")
        opt.zero_grad(set_to_none=True)
        loss.backward(retain_graph=retain_graph)
        params = self._params[name]
        max_norm = self._grad_clip if self._grad_clip is not None else math.inf
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm)) if params else 0.0
        if not math.isfinite(norm):
            opt.zero_grad(set_to_none=True)
            raise NonFiniteLossError(f"gradient norm for optimizer {name!r} is {norm} at step {self.step}")
        opt.step()
        opt.zero_grad(set_to_none=True)
        self.grad_norms[name] = norm
        return norm


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
) -> History:
    """Run ``step_fn(ctx)`` for ``config.steps`` steps and return the :class:`History` of its metrics.

    ``models`` / ``optimizers`` / ``schedulers`` are single objects (named "main") or dicts of named
    ones; each scheduler is stepped once after every step. ``callbacks`` get ``(step, metrics)`` every
    ``log_every`` steps and at the last step (e.g. a :class:`aigc_course.plotting.LivePlot`). Every model
    is put in training mode (``model.train()``) first. With ``config.ckpt_dir`` the folder is locked for
    the run and a rerun resumes from its newest checkpoint (see the module docstring for what a resume
    accepts).
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
    ctx = StepContext(opt_d, params, config.grad_clip, config.amp, dev)
    # what defines this run, captured before anything is loaded (a scheduler may change lr later)
    settings = {"grad_clip": config.grad_clip,
                "amp": config.amp if config.amp is not None else dev.type == "cuda"}
    spec = run_spec(model_d, opt_d, sched_d, settings)

    with contextlib.ExitStack() as stack:
        history = History()
        start = 0
        last_good: Path | None = None
        if ckpt_dir is not None:
            stack.enter_context(checkpoint_lock(ckpt_dir, reentrant=False))
            folder = latest_checkpoint(ckpt_dir) if config.resume else None
            if folder is not None:
                loaded = load_training_state(folder, model_d, opt_d, sched_d, spec=spec,
                                             on_config_change=config.on_config_change, require_all=True,
                                             check_extra=_history_checker(folder))
                start = loaded["step"] + 1
                history = History(loaded["extra"].get("history", []))
                last_good = folder

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
            _progress(config.steps, min(start, config.steps), config.progress, config.desc)))
        for step in range(start, config.steps):
            ctx.step = step
            try:
                metrics = step_fn(ctx)
            except NonFiniteLossError as e:
                raise stopped(str(e)) from None
            record = _record(step, metrics)
            bad = nonfinite_tensor(model_d)
            if bad is not None:
                m, kind, tname = bad
                raise stopped(f"model {m!r} {kind} {tname!r} holds NaN/inf after the update at step {step} "
                              "(the model in memory is damaged; it was not saved)")
            for k, v in record.items():
                if not math.isfinite(v):
                    raise stopped(f"metric {k!r} is {v} at step {step}")
            history.append(record)
            for sch in sched_d.values():
                sch.step()
            last = step == config.steps - 1
            if step % config.log_every == 0 or last:
                bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k != "step"}, refresh=False)
                for cb in callbacks:
                    cb(step, {k: v for k, v in record.items() if k != "step"})
            bar.update(1)
            if ckpt_dir is not None and (last or (config.ckpt_every and (step + 1) % config.ckpt_every == 0)):
                last_good = save_training_state(ckpt_dir, step, model_d, opt_d, sched_d,
                                                extra={"history": history.records}, keep_last=config.keep_last,
                                                spec=spec)
    return history


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
