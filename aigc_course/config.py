"""The single fast-mode knob of the course.

``AIGC_FAST=1`` (or ``true``/``yes``/``on``) shrinks data sets and step counts so every notebook runs in
seconds on two CPU cores; CI and the test suite set it. Notebooks never read the environment themselves:
they call :func:`fast_mode` or :func:`scale`.

>>> steps = scale(full=5000, fast=50)   # 50 under AIGC_FAST=1, else 5000
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

FAST_ENV = "AIGC_FAST"
CACHE_ENV = "AIGC_DATA_DIR"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

_override: bool | None = None

T = TypeVar("T")


def require_bool(value: object, name: str, *, allow_none: bool = False) -> bool | None:
    """``value`` if it is a real bool (or None when ``allow_none``); TypeError naming ``name`` otherwise.

    Truthy stand-ins such as the string ``'no'`` or the int ``1`` are refused rather than guessed at.
    """
    if isinstance(value, bool) or (allow_none and value is None):
        return value
    expected = "a bool (True or False) or None" if allow_none else "a bool (True or False)"
    raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r:.40}")


def _parse_flag(value: str, variable: str = FAST_ENV) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"environment variable {variable} must be one of 1/0/true/false/yes/no/on/off (or unset), "
                     f"got {value!r}")


def fast_mode() -> bool:
    """True when the course runs in fast mode (``AIGC_FAST=1`` or :func:`set_fast_mode`)."""
    if _override is not None:
        return _override
    return _parse_flag(os.environ.get(FAST_ENV, ""))


def set_fast_mode(enabled: bool | None) -> None:
    """Force fast mode on/off for this process; ``None`` goes back to reading ``AIGC_FAST``."""
    global _override
    _override = require_bool(enabled, "enabled", allow_none=True)


def scale(full: T, fast: T) -> T:
    """Pick a size: ``full`` normally, ``fast`` in fast mode.

    Both values must have the same type (e.g. two ints), so a typo such as ``scale(5000, "50")`` fails early.
    """
    if type(full) is not type(fast) and not (
        isinstance(full, (int, float)) and isinstance(fast, (int, float))
        and not isinstance(full, bool) and not isinstance(fast, bool)
    ):
        raise TypeError(
            f"scale(full, fast) needs values of the same type, got full={type(full).__name__} "
            f"and fast={type(fast).__name__}"
        )
    return fast if fast_mode() else full


def cache_dir() -> Path:
    """Where downloaded data sets live: ``$AIGC_DATA_DIR`` if set (and not blank), else the user cache dir."""
    env = os.environ.get(CACHE_ENV, "")
    if env.strip():
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("aigc-course"))
