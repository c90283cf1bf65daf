"""One small training loop for every model in the course.

You write a *step function* that does one training step and returns its metrics; :func:`train` runs it
``steps`` times with a progress bar, learning-rate schedulers, periodic checkpoints, exact resume, and a
guard that stops on a NaN/inf loss. A step may update several models with several optimizers (a GAN's
discriminator then generator), so the loop never calls ``backward`` itself: the step function calls
``ctx.optimize(loss, "name")``, which does backward → NaN check → gradient clipping → ``optimizer.step()``.

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
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import latest_checkpoint, load_training_state, save_training_state
from .device import autocast as _autocast

Metrics = Mapping[str, float | torch.Tensor]
StepFn = Callable[["StepContext"], Metrics | None]
Callback = Callable[[int, dict[str, float]], None]


class NonFiniteLossError(FloatingPointError):
    """A loss or gradient norm became NaN/inf; training stopped before the bad update was applied."""


@dataclass
class TrainConfig:
    """Settings of :func:`train`.

    steps: total optimisation steps (counted from 0; resume continues the count).
    grad_clip: max global gradient norm per optimizer (None: no clipping).
    amp: bf16 autocast inside ``ctx.autocast()``; None means on for CUDA, off on CPU.
    ckpt_dir / ckpt_every: save every ``ckpt_every`` steps and at the end (0: only at the end).
    resume: continue from ``ckpt_dir`` if it holds a checkpoint.
    log_every: how often callbacks fire and the progress bar's numbers refresh.
    """

    steps: int
    grad_clip: float | None = 1.0
    amp: bool | None = None
    ckpt_dir: str | os.PathLike | None = None
    ckpt_every: int = 0
    keep_last: int = 2
    resume: bool = True
    log_every: int = 10
    progress: bool = True
    desc: str = "train"

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {self.steps!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip!r}")
        for name in ("ckpt_every", "log_every", "keep_last"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name != "ckpt_every" else 0):
                raise ValueError(f"{name} must be an int >= {1 if name != 'ckpt_every' else 0}, got {v!r}")


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


def _to_float(v: Any) -> float:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ValueError(f"metrics must be scalars, got a tensor of shape {tuple(v.shape)}")
        return float(v.detach().item())
    return float(v)


def _progress(total: int, initial: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, dynamic_ncols=True,
                leave=True)


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
    ``log_every`` steps and at the last step (e.g. a :class:`aigc_course.plotting.LivePlot`).
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
    if device is None:
        first = next(iter(model_d.values()))
        p = next(first.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    dev = torch.device(device)
    params = {k: [p for g in o.param_groups for p in g["params"]] for k, o in opt_d.items()}
    ctx = StepContext(opt_d, params, config.grad_clip, config.amp, dev)

    history = History()
    start = 0
    ckpt_dir = Path(config.ckpt_dir) if config.ckpt_dir is not None else None
    if ckpt_dir is not None and config.resume:
        folder = latest_checkpoint(ckpt_dir)
        if folder is not None:
            loaded = load_training_state(folder, model_d, opt_d, sched_d)
            start = loaded["step"] + 1
            history = History(loaded["extra"].get("history", []))

    last_good: Path | None = latest_checkpoint(ckpt_dir) if ckpt_dir is not None else None

    def save(step: int) -> None:
        nonlocal last_good
        last_good = save_training_state(ckpt_dir, step, model_d, opt_d, sched_d,
                                        extra={"history": history.records}, keep_last=config.keep_last)

    for m in model_d.values():
        m.train()
    bar = _progress(config.steps, min(start, config.steps), config.progress, config.desc)
    try:
        for step in range(start, config.steps):
            ctx.step = step
            try:
                metrics = step_fn(ctx) or {}
            except NonFiniteLossError as e:
                where = (f"The last good checkpoint is {last_good}; rerun to resume from it, e.g. with a "
                         "lower learning rate or grad_clip." if last_good is not None else
                         "No checkpoint was saved yet (set TrainConfig.ckpt_dir to keep one).")
                raise NonFiniteLossError(f"Training stopped: {e}. {where}") from None
            record = {"step": float(step), **{k: _to_float(v) for k, v in metrics.items()}}
            for k, v in record.items():
                if not math.isfinite(v):
                    raise NonFiniteLossError(
                        f"Training stopped: metric {k!r} is {v} at step {step}. "
                        + (f"The last good checkpoint is {last_good}." if last_good else ""))
            history.append(record)
            for s in sched_d.values():
                s.step()
            last = step == config.steps - 1
            if step % config.log_every == 0 or last:
                bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k != "step"}, refresh=False)
                for cb in callbacks:
                    cb(step, {k: v for k, v in record.items() if k != "step"})
            bar.update(1)
            if ckpt_dir is not None and (last or (config.ckpt_every and (step + 1) % config.ckpt_every == 0)):
                save(step)
    finally:
        bar.close()
    return history


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
