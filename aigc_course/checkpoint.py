"""Checkpoints that are safe to load and safe to interrupt.

Weights go to ``.safetensors`` (no pickle, loadable anywhere); everything else (optimizer and scheduler
state, RNG states, step, history) to a ``.pt`` file read back with ``torch.load(weights_only=True)``.
Every write is atomic: data goes to a temporary file in the same folder, is flushed to disk, then renamed
over the target, so a crash leaves either the old file or the new one, never half a file.

A training run keeps numbered checkpoint folders (``step_00000100/``) and a ``LATEST`` file that names
the newest complete one; :func:`save_training_state` writes the folder first and moves ``LATEST`` last.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS_FILE = "weights.safetensors"
STATE_FILE = "state.pt"
LATEST_FILE = "LATEST"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync it, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def _unique_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """state_dict with tied (shared-storage) tensors stored once; safetensors refuses shared tensors."""
    out: dict[str, torch.Tensor] = {}
    seen: dict[tuple[int, int, tuple], str] = {}
    for name, t in module.state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape)) if t.numel() else None
        if key is not None and key in seen:
            continue
        if key is not None:
            seen[key] = name
        out[name] = t.detach().cpu().contiguous()
    return out


def save_weights(module: nn.Module, path: str | os.PathLike) -> Path:
    """Save a module's weights to a safetensors file (atomically). Tied weights are stored once."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    tensors = _unique_state_dict(module)
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))


def load_weights(module: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load weights saved by :func:`save_weights` into ``module`` (in place) and return it.

    Tied parameters missing from the file are fine: loading one side of the tie fills both.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    tensors = load_file(str(path))
    result = module.load_state_dict(tensors, strict=False)
    if strict:
        tied = _tied_names(module)
        missing = [k for k in result.missing_keys if k not in tied]
        if missing or result.unexpected_keys:
            raise ValueError(f"weights in {path} do not match the module: missing {missing}, "
                             f"unexpected {result.unexpected_keys}")
    return module


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


def save_state(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically. Keep ``obj`` to tensors, numbers, strings, lists, tuples and dicts so
    that it loads with ``weights_only=True``."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_state(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> Any:
    """Load a file written by :func:`save_state` with ``torch.load(weights_only=True)`` (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no state file at {path}")
    return torch.load(path, map_location=map_location, weights_only=True)


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


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    py_version, py_internal, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_internal), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_training_state(
    ckpt_dir: str | os.PathLike,
    step: int,
    models: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    schedulers: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    keep_last: int = 2,
) -> Path:
    """Write ``ckpt_dir/step_XXXXXXXX/`` (weights + state + RNG), then point ``LATEST`` at it.

    Older step folders beyond ``keep_last`` are removed. Returns the new folder.
    """
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    root = Path(ckpt_dir)
    name = f"step_{step:08d}"
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=_mkdir(root)))
    try:
        weights = {f"{m}.{k}": v for m, mod in models.items() for k, v in _unique_state_dict(mod).items()}
        save_file(weights, str(tmp_dir / WEIGHTS_FILE))
        state = {
            "step": int(step),
            "optimizers": {k: o.state_dict() for k, o in (optimizers or {}).items()},
            "schedulers": {k: s.state_dict() for k, s in (schedulers or {}).items()},
            "rng": rng_state(),
            "extra": dict(extra or {}),
        }
        torch.save(state, tmp_dir / STATE_FILE)
        for f in tmp_dir.iterdir():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
        final = root / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp_dir, final)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)
    atomic_write(root / LATEST_FILE, lambda tmp: tmp.write_text(name + "\n"))
    steps = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in steps[:-keep_last]:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def latest_checkpoint(ckpt_dir: str | os.PathLike) -> Path | None:
    """The folder ``LATEST`` points to, or None when there is no complete checkpoint yet."""
    root = Path(ckpt_dir)
    latest = root / LATEST_FILE
    if not latest.is_file():
        return None
    folder = root / latest.read_text().strip()
    if not (folder / WEIGHTS_FILE).is_file() or not (folder / STATE_FILE).is_file():
        raise FileNotFoundError(f"{latest} points to {folder}, which is incomplete or missing")
    return folder


def load_training_state(
    folder: str | os.PathLike,
    models: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    schedulers: Mapping[str, Any] | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load a folder written by :func:`save_training_state` into the given objects (in place).

    Returns ``{"step": int, "extra": dict}``.
    """
    folder = Path(folder)
    weights = load_file(str(folder / WEIGHTS_FILE))
    for m, mod in models.items():
        prefix = f"{m}."
        own = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        result = mod.load_state_dict(own, strict=False)
        missing = [k for k in result.missing_keys if k not in _tied_names(mod)]
        if missing or result.unexpected_keys:
            raise ValueError(f"checkpoint {folder} does not match model {m!r}: missing {missing}, "
                             f"unexpected {result.unexpected_keys}")
    state = load_state(folder / STATE_FILE)
    for kind, objs in (("optimizers", optimizers), ("schedulers", schedulers)):
        for k, obj in (objs or {}).items():
            if k not in state[kind]:
                raise ValueError(f"checkpoint {folder} has no {kind[:-1]} named {k!r}")
            obj.load_state_dict(state[kind][k])
    if restore_rng:
        set_rng_state(state["rng"])
    return {"step": state["step"], "extra": state["extra"]}
