"""Device choice, seeding, mixed precision and CPU-thread setup.

Every model in the course runs on CPU; a GPU (CUDA) or Apple-silicon GPU (MPS) is used when present.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

from .config import require_bool

DEVICE_ENV = "AIGC_DEVICE"
THREADS_ENV = "AIGC_NUM_THREADS"
MAX_THREADS = 1024  # more intra-op threads than this is a typo, and torch would try to start them all

_VALID = ("cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Return the best available device: ``cuda`` → ``mps`` → ``cpu``.

    ``prefer`` (or the ``AIGC_DEVICE`` environment variable) forces a choice such as ``"cpu"`` or
    ``"cuda:1"``; asking for an accelerator that is not there raises ``ValueError``.
    """
    source = "prefer"
    if prefer is None:
        prefer = os.environ.get(DEVICE_ENV, "").strip() or None
        source = f"environment variable {DEVICE_ENV}"
    if prefer is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(prefer, (str, torch.device)):
        raise TypeError(f"prefer must be a str, torch.device or None, got {type(prefer).__name__}")
    name = f"{source}={prefer!r}" if source == "prefer" else f"{source} ({prefer!r})"
    try:
        dev = torch.device(prefer)
    except RuntimeError as e:
        raise ValueError(f"{name} is not a device name; expected one of {_VALID}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}: CUDA is not available on this machine")
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"{name}: MPS is not available on this machine")
    if dev.type not in _VALID:
        raise ValueError(f"{name}: expected one of {_VALID}")
    return dev


def check_seed(seed: object) -> int:
    """``seed`` as a Python int in [0, 2**32) (the range NumPy accepts); bool and other types refused."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    return int(seed)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so CPU runs repeat exactly."""
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def autocast(device: torch.device | str, enabled: bool | None = None) -> contextlib.AbstractContextManager:
    """Mixed-precision context: bf16 autocast on CUDA, a no-op elsewhere.

    ``enabled=None`` means "on for CUDA, off otherwise"; ``enabled=True`` on CPU uses CPU bf16 autocast.
    """
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    require_bool(enabled, "enabled", allow_none=True)
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device={device!r} is not a device name; expected one of {_VALID}") from e
    if enabled is None:
        enabled = dev.type == "cuda"
    if not enabled or dev.type == "mps":
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)


def threads_from_env() -> int | None:
    """``$AIGC_NUM_THREADS`` as an int in [1, MAX_THREADS], or None when unset or blank.

    ValueError naming the variable for anything else (``"abc"``, ``"0"``, ``"2.5"``).
    """
    env = os.environ.get(THREADS_ENV, "")
    if not env.strip():
        return None
    text = env.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_THREADS:
        raise ValueError(f"environment variable {THREADS_ENV} must be a whole number of threads from 1 to "
                         f"{MAX_THREADS} (or unset), got {env!r}")
    return int(text)


def configure_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op threads and return the number in use.

    With no argument: ``$AIGC_NUM_THREADS`` if set; else 1 under pytest-xdist or CI (two workers with
    two threads each on two cores stall torch); else torch's default is kept. ``num_threads`` must be an
    int in [1, MAX_THREADS] (1024).
    """
    if num_threads is None:
        num_threads = threads_from_env()
        if num_threads is None and (os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("CI")):
            num_threads = 1
    if num_threads is not None:
        if isinstance(num_threads, bool) or not isinstance(num_threads, int):
            raise TypeError(f"num_threads must be an int, got {type(num_threads).__name__}")
        if not 1 <= num_threads <= MAX_THREADS:
            raise ValueError(f"num_threads must be in [1, {MAX_THREADS}], got {num_threads}")
        torch.set_num_threads(num_threads)
    return torch.get_num_threads()


@contextlib.contextmanager
def rng_state_kept() -> Iterator[None]:
    """Run a block without disturbing the global Python/NumPy/torch random streams."""
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def maybe_compile(model: torch.nn.Module, enabled: bool | None = None, **kwargs) -> torch.nn.Module:
    """``torch.compile(model)`` when ``enabled``; ``None`` means on for CUDA models, off otherwise.

    On a small CPU model compilation costs tens of seconds and rarely pays back, hence off by default.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    require_bool(enabled, "enabled", allow_none=True)
    if enabled is None:
        p = next(model.parameters(), None)
        enabled = p is not None and p.device.type == "cuda"
    return torch.compile(model, **kwargs) if enabled else model
