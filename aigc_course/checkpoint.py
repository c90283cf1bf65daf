"""Checkpoints that are safe to load, safe to interrupt, and never resume a different run by mistake.

Weights go to ``.safetensors`` (no pickle, loadable anywhere); everything else (optimizer and scheduler
state, RNG states, step, history) to a ``.pt`` file read back with ``torch.load(weights_only=True)``.
Every write is atomic: data goes to a temporary file in the same folder, is flushed to disk, then renamed
over the target, so a crash leaves either the old file or the new one, never half a file.

A training run keeps numbered checkpoint folders (``step_00000100/``) and a ``LATEST`` file that names
the newest complete one; :func:`save_training_state` writes the folder first and moves ``LATEST`` last.

Resume semantics (:func:`load_training_state`):

- Each checkpoint stores what defines its run (:func:`run_spec`): per model the names, shapes and dtypes
  of its tensors, per optimizer its class and the hyper-parameters of each param group (``lr``, betas,
  momentum, weight decay, ...; ``lr`` means the scheduler's ``initial_lr`` when there is one), per
  scheduler its class, and the run settings that change the math (``grad_clip``, ``amp`` in ``train``).
- Everything is read and checked before any object changes: a damaged file, another architecture or
  another optimizer type raises a ``ValueError`` naming the file or what differs (both values), and the
  model, optimizer and RNGs are left exactly as they were.
- A changed hyper-parameter (say a lower ``lr``) is refused with ``on_config_change="error"`` (the
  default), naming the parameter and both values. ``on_config_change="use_new"`` restores the checkpoint
  and then writes the new values into the optimizer's param groups (a scheduled ``lr`` is rescaled, and
  the schedulers' ``base_lrs`` follow), so the change is applied on purpose, never silently dropped.
- A checkpoint folder belongs to one run at a time: :func:`checkpoint_lock` takes an exclusive lock
  (``fcntl.flock`` on ``.lock``; the OS releases it when the process ends, even on SIGKILL), and on taking
  it removes the temporary files a killed writer left behind. Weights that are not finite are never saved.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import random
import re
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

try:  # POSIX only; on Windows folders are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

WEIGHTS_FILE = "weights.safetensors"
STATE_FILE = "state.pt"
LATEST_FILE = "LATEST"
LOCK_FILE = ".lock"
STATE_KEYS = ("step", "spec", "optimizers", "schedulers", "rng", "extra")
ON_CONFIG_CHANGE = ("error", "use_new")
_STEP_DIR = re.compile(r"step_(\d{8,})")
# param-group entries that choose an implementation, not the math: never compared
_IMPL_KEYS = frozenset({"params", "initial_lr", "foreach", "fused", "capturable", "differentiable"})


class CheckpointInUseError(RuntimeError):
    """The checkpoint folder is locked by another run (another process, or another train() here)."""


def _os_error(e: OSError, what: str) -> OSError:
    """The same OSError (same errno) with a message that names what was being written."""
    hint = " (the disk is full: free some space or choose another folder)" if e.errno == errno.ENOSPC else ""
    return OSError(e.errno, f"cannot write {what}: {e.strerror or e}{hint}")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync it, then rename it to ``path``.

    An OSError (e.g. a full disk) is re-raised with ``path`` in its message; the old file stays.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _os_error(e, str(path)) from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except OSError as e:
        raise _os_error(e, str(path)) from e
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def _tied_names(module: nn.Module) -> set[str]:
    """Names of state_dict entries that share storage with an earlier entry."""
    seen: set[tuple] = set()
    tied: set[str] = set()
    for name, t in module.state_dict().items():
        if not t.numel():
            continue
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if key in seen:
            tied.add(name)
        seen.add(key)
    return tied


def _unique_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """state_dict with tied (shared-storage) tensors stored once; safetensors refuses shared tensors."""
    tied = _tied_names(module)
    return {name: t.detach().cpu().contiguous() for name, t in module.state_dict().items() if name not in tied}


def _key_mismatch(module: nn.Module, tensors: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """(state_dict names absent from ``tensors``, tied ones excepted; names in ``tensors`` the module lacks)."""
    own = module.state_dict()
    tied = _tied_names(module)
    return [k for k in own if k not in tensors and k not in tied], [k for k in tensors if k not in own]


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error type for a bad header or a short file
        raise ValueError(f"cannot read weights file {path}: it is damaged or not a safetensors file "
                         f"(e.g. truncated by a crash or a full disk): {e}") from e


def _check_shapes(module: nn.Module, tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse tensors whose shape differs from the module's (load_state_dict would fail half way)."""
    own = module.state_dict()
    for k, v in tensors.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            raise ValueError(f"{where}: tensor {k!r} has shape {list(v.shape)} in the file but "
                             f"{list(own[k].shape)} in the module")


def save_weights(module: nn.Module, path: str | os.PathLike) -> Path:
    """Save a module's weights to a safetensors file (atomically). Tied weights are stored once."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    tensors = _unique_state_dict(module)
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))


def load_weights(module: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load weights saved by :func:`save_weights` into ``module`` (in place) and return it.

    Tied parameters missing from the file are fine: loading one side of the tie fills both. The file is
    read and its shapes checked before the module changes.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    path = Path(path)
    tensors = _read_safetensors(path)
    _check_shapes(module, tensors, f"weights in {path} do not match the module")
    if strict:
        missing, unexpected = _key_mismatch(module, tensors)
        if missing or unexpected:
            raise ValueError(f"weights in {path} do not match the module: missing {missing}, "
                             f"unexpected {unexpected}")
    module.load_state_dict(tensors, strict=False)
    return module


# --- what torch.load(weights_only=True) reads back -------------------------------------------------

_LEAF_TYPES = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device)
_SEQ_TYPES = (list, tuple, torch.Size, set)
_MAP_TYPES = (dict, OrderedDict)


def check_loadable(obj: Any, name: str) -> None:
    """Raise TypeError naming the first value inside ``obj`` that ``torch.load(weights_only=True)`` refuses.

    Allowed: tensors, None/bool/int/float/complex/str/bytes, dtypes and devices, and lists, tuples, sets
    and dicts of those. Subclasses (a NumPy float, a defaultdict, a namedtuple) are refused, as on load.
    """
    stack: list[tuple[Any, str]] = [(obj, name)]
    while stack:
        v, where = stack.pop()
        t = type(v)
        if t in _LEAF_TYPES or t in (torch.Tensor, nn.Parameter):
            continue
        if t in _SEQ_TYPES:
            stack.extend((x, f"{where}[{i}]") for i, x in enumerate(v))
        elif t in _MAP_TYPES:
            for k, x in v.items():
                if type(k) not in _LEAF_TYPES:
                    raise TypeError(f"{where} has a key of type {type(k).__name__} ({k!r}), which "
                                    "torch.load(weights_only=True) cannot read back; use str keys")
                stack.append((x, f"{where}[{k!r}]"))
        else:
            raise TypeError(f"{where} is a {t.__module__}.{t.__qualname__}, which torch.load(weights_only="
                            "True) cannot read back, so a checkpoint holding it could never be resumed; "
                            "store tensors, int/float/bool/str/None, or lists/tuples/dicts of those "
                            "(e.g. float(x) for a NumPy number, x.tolist() for an array)")


def save_state(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically. ``obj`` must load with ``weights_only=True`` (see :func:`check_loadable`):
    tensors, numbers, strings, and lists, tuples and dicts of those."""
    check_loadable(obj, "obj")
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_state(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> Any:
    """Load a file written by :func:`save_state` with ``torch.load(weights_only=True)`` (no code runs).

    A damaged file or one holding objects that weights-only loading refuses raises ValueError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no state file at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types here (EOFError, RuntimeError, UnpicklingError, ...)
        text = str(e).strip()
        if isinstance(e, pickle.UnpicklingError) and "weights only" in text.lower():
            first = text.splitlines()[0]
            raise ValueError(f"state file {path} holds objects that weights_only loading refuses (it was not "
                             f"written by this package, or it may be malicious); nothing was run: {first}") from e
        size = path.stat().st_size
        raise ValueError(f"state file {path} ({size} bytes) is empty, truncated or not a torch file "
                         f"(e.g. cut short by a crash or a full disk): {type(e).__name__}: {e}") from e


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU + CUDA) RNG states as weights_only-safe values."""
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss),
                  float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _check_rng_state(state: Any, where: str) -> None:
    """Raise ValueError unless ``state`` looks like what :func:`rng_state` returns."""
    def bad(what: str) -> ValueError:
        return ValueError(f"{where}: the RNG state is damaged ({what})")

    if not isinstance(state, Mapping):
        raise bad(f"expected a dict, got {type(state).__name__}")
    missing = [k for k in ("python", "numpy", "torch") if k not in state]
    if missing:
        raise bad(f"missing {missing}")
    py = state["python"]
    if not (isinstance(py, (list, tuple)) and len(py) == 3 and isinstance(py[1], (list, tuple))
            and len(py[1]) == 625 and all(type(x) is int for x in py[1])):
        raise bad("'python' is not [version, 625 ints, gauss]")
    npy = state["numpy"]
    if not (isinstance(npy, (list, tuple)) and len(npy) == 5 and isinstance(npy[1], torch.Tensor)
            and tuple(npy[1].shape) == (624,)):
        raise bad("'numpy' is not [name, 624 keys, pos, has_gauss, gauss]")
    t = state["torch"]
    if not (isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.dim() == 1):
        raise bad("'torch' is not a uint8 tensor")


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (checked first: a damaged state changes nothing)."""
    _check_rng_state(state, "set_rng_state")
    py_version, py_internal, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_internal), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# --- what defines a run ----------------------------------------------------------------------------

def _plain(v: Any) -> Any:
    """A hyper-parameter as a comparable, weights_only-safe value (a 1-element tensor becomes a float)."""
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else f"<tensor of shape {list(v.shape)}>"
    if v is None or isinstance(v, str):
        return None if v is None else str(v)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, (list, tuple)):
        return tuple(_plain(x) for x in v)
    return f"<{type(v).__name__}>"


def _class_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _hparams(group: Mapping[str, Any]) -> dict[str, Any]:
    """The hyper-parameters of one param group; ``lr`` is the scheduler's ``initial_lr`` when it set one."""
    out = {k: _plain(v) for k, v in group.items() if k not in _IMPL_KEYS}
    if "initial_lr" in group:
        out["lr"] = _plain(group["initial_lr"])
    return out


def run_spec(
    models: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    schedulers: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What defines a run, as stored in every checkpoint and compared on resume.

    ``{"models": {name: {tensor: [shape, dtype]}}, "optimizers": {name: {"class", "groups": [{"shapes",
    "hparams"}]}}, "schedulers": {name: {"class"}}, "settings": {...}}`` (shapes: of the group's params).
    """
    return {
        "models": {m: {k: [list(t.shape), str(t.dtype)] for k, t in mod.state_dict().items()}
                   for m, mod in models.items()},
        "optimizers": {o: {"class": _class_name(opt),
                           "groups": [{"shapes": [list(p.shape) for p in g["params"]], "hparams": _hparams(g)}
                                      for g in opt.param_groups]}
                       for o, opt in (optimizers or {}).items()},
        "schedulers": {s: {"class": _class_name(sch)} for s, sch in (schedulers or {}).items()},
        "settings": {k: _plain(v) for k, v in (settings or {}).items()},
    }


_ABSENT = "<absent>"


def _diff_spec(saved: Mapping[str, Any], now: Mapping[str, Any], require_all: bool,
               compare_settings: bool) -> tuple[list[str], list[tuple]]:
    """(structural differences, changes as (where, key, saved value, new value, (optimizer, group) or None))."""
    structural: list[str] = []
    changes: list[tuple] = []
    for kind, singular in (("models", "model"), ("optimizers", "optimizer"), ("schedulers", "scheduler")):
        have = saved[kind]
        for name in now[kind]:
            if name not in have:
                structural.append(f"the checkpoint has no {singular} named {name!r} (it has {sorted(have)})")
        if require_all:
            for name in have:
                if name not in now[kind]:
                    structural.append(f"the checkpoint also holds {singular} {name!r}, which this run does "
                                      "not pass")
    for m, tensors in now["models"].items():
        old = saved["models"].get(m)
        if old is None:
            continue
        missing = [k for k in tensors if k not in old]
        unexpected = [k for k in old if k not in tensors]
        if missing or unexpected:
            structural.append(f"model {m!r} does not match: the checkpoint lacks {missing} and has "
                              f"{unexpected} that the model lacks")
        for k, (shape, dtype) in tensors.items():
            if k in old:
                old_shape, old_dtype = old[k]
                if list(old_shape) != list(shape):
                    structural.append(f"model {m!r} tensor {k!r} has shape {list(old_shape)} in the "
                                      f"checkpoint but {list(shape)} now")
                elif old_dtype != dtype:
                    structural.append(f"model {m!r} tensor {k!r} has dtype {old_dtype} in the checkpoint "
                                      f"but {dtype} now")
    for o, spec in now["optimizers"].items():
        old = saved["optimizers"].get(o)
        if old is None:
            continue
        if old["class"] != spec["class"]:
            structural.append(f"optimizer {o!r} is {old['class']} in the checkpoint but {spec['class']} now")
            continue
        if len(old["groups"]) != len(spec["groups"]):
            structural.append(f"optimizer {o!r} has {len(old['groups'])} param groups in the checkpoint "
                              f"but {len(spec['groups'])} now")
            continue
        for i, (g_old, g_new) in enumerate(zip(old["groups"], spec["groups"], strict=True)):
            s_old, s_new = g_old["shapes"], g_new["shapes"]
            if len(s_old) != len(s_new):
                structural.append(f"optimizer {o!r} param group {i} has {len(s_old)} parameters in the "
                                  f"checkpoint but {len(s_new)} now")
                continue
            wrong = [j for j, (a, b) in enumerate(zip(s_old, s_new, strict=True)) if list(a) != list(b)]
            if wrong:
                j = wrong[0]
                structural.append(f"optimizer {o!r} param group {i} parameter {j} has shape {list(s_old[j])} in "
                                  f"the checkpoint but {list(s_new[j])} now (another model, or another order)")
                continue
            h_old, h_new = g_old["hparams"], g_new["hparams"]
            for key in sorted(set(h_old) | set(h_new)):
                a, b = h_old.get(key, _ABSENT), h_new.get(key, _ABSENT)
                if a != b:
                    changes.append((f"optimizers[{o!r}] param group {i}", key, a, b, (o, i)))
    for s, spec in now["schedulers"].items():
        old = saved["schedulers"].get(s)
        if old is not None and old["class"] != spec["class"]:
            structural.append(f"scheduler {s!r} is {old['class']} in the checkpoint but {spec['class']} now")
    if compare_settings:
        h_old, h_new = saved["settings"], now["settings"]
        for key in sorted(set(h_old) | set(h_new)):
            a, b = h_old.get(key, _ABSENT), h_new.get(key, _ABSENT)
            if a != b:
                changes.append(("setting", key, a, b, None))
    return structural, changes


def _describe(change: tuple) -> str:
    where, key, a, b, _ = change
    return f"{where} {key!r}: {a!r} in the checkpoint, {b!r} now"


# --- the checkpoint folder ------------------------------------------------------------------------

_HELD: dict[str, int] = {}  # resolved folder -> fd of the lock this process holds on it


def remove_leftovers(ckpt_dir: str | os.PathLike) -> list[str]:
    """Delete what a killed writer leaves in a checkpoint folder (``.step_*`` and ``.*.tmp``); return names.

    Only safe while holding the folder's lock (:func:`checkpoint_lock` calls it when it takes the lock).
    """
    root = Path(ckpt_dir)
    removed = []
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        if p.name.startswith(".step_") or (p.name.startswith(".") and p.name.endswith(".tmp")):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


@contextlib.contextmanager
def checkpoint_lock(ckpt_dir: str | os.PathLike, reentrant: bool = True) -> Iterator[Path]:
    """Hold an exclusive lock on a checkpoint folder (``fcntl.flock`` on ``ckpt_dir/.lock``).

    The OS drops the lock when the process ends, however it ends. Taking it removes leftovers of a killed
    writer. Inside this process a nested ``checkpoint_lock`` on the same folder is a no-op when
    ``reentrant`` (so ``save_training_state`` works inside ``train``); ``reentrant=False`` refuses it.
    Raises :class:`CheckpointInUseError` naming the folder when another run holds it.
    """
    root = Path(ckpt_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _os_error(e, f"checkpoint folder {root}") from e
    key = str(root.resolve())
    in_use = (f"checkpoint folder {root} is in use by another run (it holds the lock {root / LOCK_FILE}); "
              "wait for that run to finish, or give this run its own ckpt_dir")
    if key in _HELD:
        if not reentrant:
            raise CheckpointInUseError(in_use + " (a train() call in this process)")
        yield root
        return
    if fcntl is None:  # pragma: no cover
        yield root
        return
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CheckpointInUseError(in_use) from None
    _HELD[key] = fd
    try:
        remove_leftovers(root)
        yield root
    finally:
        del _HELD[key]
        os.close(fd)  # releases the lock


def _first_nonfinite(named: list[tuple[Any, torch.Tensor]]) -> Any:
    """Label of the first tensor holding a NaN/inf (one sync per device), or None if all are finite.

    Fast path: a tensor's sum is finite whenever all its entries are, so finite sums clear every tensor at
    once (about 12× cheaper than an elementwise isfinite per tensor, which train() would pay every step).
    Only when a sum is not finite — a NaN/inf, or huge finite values overflowing the sum — is each tensor
    checked entry by entry.
    """
    named = [(n, t) for n, t in named if t.is_floating_point() or t.is_complex()]
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for _, t in named:
        by_device.setdefault(t.device, []).append(t.detach().sum())
    if all(bool(torch.isfinite(torch.stack(sums)).all()) for sums in by_device.values()):
        return None
    return next((n for n, t in named if not bool(torch.isfinite(t.detach()).all())), None)


def nonfinite_tensor(models: Mapping[str, nn.Module]) -> tuple[str, str, str] | None:
    """``(model name, "parameter" or "buffer", tensor name)`` of the first NaN/inf weight, else None."""
    for m, mod in models.items():
        named = [(("parameter", n), p) for n, p in mod.named_parameters()]
        named += [(("buffer", n), b) for n, b in mod.named_buffers()]
        bad = _first_nonfinite(named)
        if bad is not None:
            return m, bad[0], bad[1]
    return None


def _validate_objects(models: Any, optimizers: Any, schedulers: Any) -> None:
    if not isinstance(models, Mapping) or not models:
        raise TypeError(f"models must be a non-empty dict of name -> nn.Module, got {type(models).__name__}")
    for kind, objs, expected in (("models", models, nn.Module), ("optimizers", optimizers or {},
                                                                  torch.optim.Optimizer)):
        if not isinstance(objs, Mapping):
            raise TypeError(f"{kind} must be a dict of name -> object, got {type(objs).__name__}")
        for k, v in objs.items():
            if not isinstance(k, str):
                raise TypeError(f"{kind} keys must be str, got {k!r}")
            if not isinstance(v, expected):
                raise TypeError(f"{kind}[{k!r}] must be a {expected.__module__}.{expected.__qualname__}, "
                                f"got {type(v).__name__}")
    if not isinstance(schedulers or {}, Mapping):
        raise TypeError(f"schedulers must be a dict of name -> scheduler, got {type(schedulers).__name__}")
    for k, v in (schedulers or {}).items():
        if not isinstance(k, str):
            raise TypeError(f"schedulers keys must be str, got {k!r}")
        if not (callable(getattr(v, "state_dict", None)) and callable(getattr(v, "load_state_dict", None))):
            raise TypeError(f"schedulers[{k!r}] must have state_dict() and load_state_dict(), got "
                            f"{type(v).__name__}")


def _step_number(p: Path) -> int | None:
    m = _STEP_DIR.fullmatch(p.name)
    return int(m.group(1)) if m and p.is_dir() else None


def save_training_state(
    ckpt_dir: str | os.PathLike,
    step: int,
    models: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    schedulers: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    keep_last: int = 2,
    *,
    settings: Mapping[str, Any] | None = None,
    spec: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``ckpt_dir/step_XXXXXXXX/`` (weights + state + RNG + run spec), then point ``LATEST`` at it.

    ``settings``: run settings that change the math (stored and compared on resume). ``spec``: the run's
    :func:`run_spec` captured before training (default: computed from the objects now, which is the same
    unless a scheduler changes a hyper-parameter in place, as ReduceLROnPlateau does with lr and OneCycleLR
    with the momentum; ``train`` always passes it). Refuses, before
    writing anything, weights holding NaN/inf and ``extra`` values that weights-only loading could not read
    back. Afterwards keeps the newest ``keep_last`` folders up to ``step`` and removes newer ones (LATEST
    no longer names them). Holds the folder's lock while writing. Returns the new folder.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
        raise ValueError(f"keep_last must be an int >= 1, got {keep_last!r}")
    _validate_objects(models, optimizers, schedulers)
    if extra is not None and not isinstance(extra, Mapping):
        raise TypeError(f"extra must be a dict, got {type(extra).__name__}")
    root = Path(ckpt_dir)
    bad = nonfinite_tensor(models)
    if bad is not None:
        m, kind, tname = bad
        raise ValueError(f"model {m!r} {kind} {tname!r} holds NaN/inf values; refusing to save it to {root}, "
                         "since a checkpoint with such weights could never be a good restart point")
    state = {
        "step": int(step),
        "spec": dict(spec) if spec is not None else run_spec(models, optimizers, schedulers, settings),
        "optimizers": {k: o.state_dict() for k, o in (optimizers or {}).items()},
        "schedulers": {k: s.state_dict() for k, s in (schedulers or {}).items()},
        "rng": rng_state(),
        "extra": dict(extra or {}),
    }
    check_loadable(state["extra"], "extra")
    for key in ("spec", "optimizers", "schedulers"):
        check_loadable(state[key], key)
    weights = {f"{m}.{k}": v for m, mod in models.items() for k, v in _unique_state_dict(mod).items()}
    name = f"step_{step:08d}"
    final = root / name
    with checkpoint_lock(root):
        tmp_dir = None
        try:
            tmp_dir = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
            save_file(weights, str(tmp_dir / WEIGHTS_FILE))
            torch.save(state, tmp_dir / STATE_FILE)
            for f in tmp_dir.iterdir():
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp_dir, final)
        except OSError as e:
            raise _os_error(e, f"checkpoint {final}") from e
        finally:
            if tmp_dir is not None and tmp_dir.exists():
                shutil.rmtree(tmp_dir, ignore_errors=True)
        atomic_write(root / LATEST_FILE, lambda tmp: tmp.write_text(name + "\n"))
        numbered = sorted((n, p) for p in root.iterdir() if (n := _step_number(p)) is not None)
        older = [p for n, p in numbered if n < step]
        for n, p in numbered:
            if n > step:  # from a killed or earlier run; LATEST no longer names it
                shutil.rmtree(p, ignore_errors=True)
        for p in older[: max(len(older) - (keep_last - 1), 0)]:
            shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(ckpt_dir: str | os.PathLike) -> Path | None:
    """The folder ``LATEST`` points to, or None when there is no complete checkpoint yet.

    ``LATEST`` must hold one folder name like ``step_00000100`` (nothing else: no path, no ``..``).
    """
    root = Path(ckpt_dir)
    latest = root / LATEST_FILE
    if not latest.is_file():
        return None
    raw = latest.read_bytes()
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        text = None
    if text is None or not _STEP_DIR.fullmatch(text):
        shown = repr(text) if text is not None else f"{len(raw)} bytes of binary data {raw[:16]!r}..."
        raise ValueError(f"{latest} must hold the name of a checkpoint folder in {root} such as "
                         f"'step_00000100', but holds {shown}; fix it to name one of the step_* folders, or "
                         "delete it to start over")
    folder = root / text
    if folder.is_symlink() or not (folder / WEIGHTS_FILE).is_file() or not (folder / STATE_FILE).is_file():
        raise FileNotFoundError(f"{latest} points to {folder}, which is incomplete or missing")
    return folder


def _read_state(path: Path) -> dict[str, Any]:
    """Load state.pt and check its layout; ValueError naming the file otherwise."""
    state = load_state(path)
    if not isinstance(state, dict):
        raise ValueError(f"state file {path} holds a {type(state).__name__}, not the dict that "
                         "save_training_state writes")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise ValueError(f"state file {path} lacks {missing}; it was not written by save_training_state "
                         "(of this version) or is damaged")
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"state file {path}: 'step' must be an int >= 0, got {step!r}")
    for k in ("spec", "optimizers", "schedulers", "extra"):
        if not isinstance(state[k], dict):
            raise ValueError(f"state file {path}: {k!r} must be a dict, got {type(state[k]).__name__}")
    spec = state["spec"]
    if [k for k in ("models", "optimizers", "schedulers", "settings") if not isinstance(spec.get(k), dict)]:
        raise ValueError(f"state file {path}: 'spec' is damaged (needs dicts 'models', 'optimizers', "
                         "'schedulers', 'settings')")
    return state


def _check_optimizer_state(sd: Any, opt: torch.optim.Optimizer, where: str) -> None:
    """The saved optimizer state fits ``opt``: layout, group sizes, and per-parameter tensor shapes."""
    if not (isinstance(sd, dict) and isinstance(sd.get("state"), dict) and isinstance(sd.get("param_groups"),
                                                                                      list)):
        raise ValueError(f"{where} is damaged (needs 'state' and 'param_groups')")
    groups = sd["param_groups"]
    if len(groups) != len(opt.param_groups):
        raise ValueError(f"{where} has {len(groups)} param groups, the optimizer {len(opt.param_groups)}")
    params = [p for g in opt.param_groups for p in g["params"]]
    ids: list[Any] = []
    for i, (g_old, g_new) in enumerate(zip(groups, opt.param_groups, strict=True)):
        if not isinstance(g_old, dict) or not isinstance(g_old.get("params"), list):
            raise ValueError(f"{where}: param group {i} is damaged")
        if len(g_old["params"]) != len(g_new["params"]):
            raise ValueError(f"{where}: param group {i} has {len(g_old['params'])} parameters, the optimizer "
                             f"{len(g_new['params'])}")
        ids += g_old["params"]
    index = {pid: params[j] for j, pid in enumerate(ids)}
    for pid, st in sd["state"].items():
        if pid not in index or not isinstance(st, dict):
            raise ValueError(f"{where}: state for parameter {pid!r} does not belong to any param group")
        p = index[pid]
        for k, v in st.items():
            # per-element state has the parameter's shape (factored state, as in Adafactor, may have 1s)
            if isinstance(v, torch.Tensor) and v.dim() == p.dim() and v.dim() > 0 and any(
                    a not in (b, 1) for a, b in zip(v.shape, p.shape, strict=True)):
                raise ValueError(f"{where}: {k!r} of parameter {pid} has shape {list(v.shape)}, the parameter "
                                 f"{list(p.shape)}")


def _apply_new_hparams(opt: torch.optim.Optimizer, fresh: list[dict[str, Any]],
                       changed: list[tuple[int, str, Any]]) -> None:
    """Write the run's new hyper-parameters into the restored param groups.

    ``fresh``: the groups as the run built them (before loading); ``changed``: (group, key, saved value).
    A scheduled lr keeps its position in the schedule: current lr x new initial lr / old initial lr.
    """
    for i, key, saved in changed:
        g, new_g = opt.param_groups[i], fresh[i]
        if key == "lr":
            new = new_g.get("initial_lr", new_g.get("lr"))
            new = new.item() if isinstance(new, torch.Tensor) else new
            if "initial_lr" in g and isinstance(saved, (int, float)) and saved != 0:
                cur = g["lr"].item() if isinstance(g["lr"], torch.Tensor) else g["lr"]
                value = cur * new / saved
            else:
                value = new
            if "initial_lr" in g:
                g["initial_lr"] = new
            if isinstance(g["lr"], torch.Tensor):
                g["lr"].fill_(value)
            else:
                g["lr"] = value
        elif key in new_g:
            g[key] = new_g[key]


def _sync_scheduler(sched: Any) -> None:
    """After an lr change: the scheduler's base_lrs (and sub-schedulers') follow the optimizer."""
    for s in [sched, *getattr(sched, "_schedulers", [])]:
        opt = getattr(s, "optimizer", None)
        if opt is None:
            continue
        if isinstance(getattr(s, "base_lrs", None), list):
            s.base_lrs = [g.get("initial_lr", g["lr"]) for g in opt.param_groups]
        if isinstance(getattr(s, "_last_lr", None), list):
            s._last_lr = [g["lr"] for g in opt.param_groups]


def load_training_state(
    folder: str | os.PathLike,
    models: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    schedulers: Mapping[str, Any] | None = None,
    restore_rng: bool = True,
    *,
    settings: Mapping[str, Any] | None = None,
    on_config_change: str = "error",
    spec: Mapping[str, Any] | None = None,
    require_all: bool = False,
    check_extra: Callable[[Mapping[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Load a folder written by :func:`save_training_state` into the given objects (in place).

    Everything is read and checked first; nothing changes unless all of it fits (see the module
    docstring). ``settings`` are compared with the stored ones when given; ``spec`` is this run's
    :func:`run_spec` (default: computed from the objects now, before loading). ``on_config_change``:
    ``"error"`` refuses changed hyper-parameters/settings, ``"use_new"`` applies the new values after
    loading. ``require_all``: also refuse a checkpoint holding models/optimizers/schedulers not passed.
    ``check_extra(extra)`` runs with the other checks, before anything changes; it raises to refuse.

    Returns ``{"step": int, "extra": dict, "changed": [descriptions of the new values applied]}``.
    """
    if on_config_change not in ON_CONFIG_CHANGE:
        raise ValueError(f"on_config_change must be one of {ON_CONFIG_CHANGE}, got {on_config_change!r}")
    _validate_objects(models, optimizers, schedulers)
    optimizers, schedulers = dict(optimizers or {}), dict(schedulers or {})
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {folder}")
    weights = _read_safetensors(folder / WEIGHTS_FILE)
    state_path = folder / STATE_FILE
    state = _read_state(state_path)

    now = dict(spec) if spec is not None else run_spec(models, optimizers, schedulers, settings)
    try:
        structural, changes = _diff_spec(state["spec"], now, require_all,
                                         compare_settings=spec is not None or settings is not None)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"state file {state_path}: 'spec' is damaged ({type(e).__name__}: {e})") from e
    if structural:
        lines = "\n  - ".join(structural)
        raise ValueError(f"checkpoint {folder} does not match this run, so nothing was loaded:\n  - {lines}\n"
                         f"Resuming needs the same models and optimizers; to start a new run, use another "
                         f"ckpt_dir or delete {folder.parent}.")
    if changes and on_config_change == "error":
        lines = "\n  - ".join(_describe(c) for c in changes)
        raise ValueError(f"checkpoint {folder} was saved with other settings than this run, so nothing was "
                         f"loaded:\n  - {lines}\nTo resume from it with the new values on purpose, pass "
                         "on_config_change='use_new' (in train: TrainConfig(on_config_change='use_new')); "
                         "to keep the checkpoint's values, pass the same values as before.")

    own_weights: dict[str, dict[str, torch.Tensor]] = {}
    for m, mod in models.items():
        prefix = f"{m}."
        own = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        missing, unexpected = _key_mismatch(mod, own)
        if missing or unexpected:
            raise ValueError(f"checkpoint {folder} does not match model {m!r}: {WEIGHTS_FILE} lacks {missing}"
                             f" and has unexpected {unexpected}")
        _check_shapes(mod, own, f"checkpoint {folder / WEIGHTS_FILE} does not match model {m!r}")
        own_weights[m] = own
    for k, opt in optimizers.items():
        if k not in state["optimizers"]:
            raise ValueError(f"state file {state_path} has no optimizer named {k!r}")
        _check_optimizer_state(state["optimizers"][k], opt, f"state file {state_path}, optimizer {k!r}")
    for k in schedulers:
        if k not in state["schedulers"] or not isinstance(state["schedulers"][k], dict):
            raise ValueError(f"state file {state_path} has no scheduler named {k!r}")
    if restore_rng:
        _check_rng_state(state["rng"], f"state file {state_path}")
    if check_extra is not None:
        check_extra(state["extra"])

    # everything fits: apply
    fresh = {k: [{kk: v for kk, v in g.items() if kk != "params"} for g in opt.param_groups]
             for k, opt in optimizers.items()}
    for m, mod in models.items():
        mod.load_state_dict(own_weights[m], strict=False)
    for k, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][k])
    for k, sched in schedulers.items():
        sched.load_state_dict(state["schedulers"][k])
    lr_changed = set()
    for k, opt in optimizers.items():
        mine = [(target[1], key, a) for _, key, a, _, target in changes if target and target[0] == k]
        if mine:
            _apply_new_hparams(opt, fresh[k], mine)
            if any(key == "lr" for _, key, _ in mine):
                lr_changed.add(id(opt))
    for sched in schedulers.values():
        if id(getattr(sched, "optimizer", None)) in lr_changed:
            _sync_scheduler(sched)
    if restore_rng:
        set_rng_state(state["rng"])
    return {"step": state["step"], "extra": state["extra"], "changed": [_describe(c) for c in changes]}
