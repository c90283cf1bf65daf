"""argparse types shared by the benchmark scripts: each names its option in the error it gives."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_at_least(name: str, low: int = 1) -> Callable[[str], int]:
    """An argparse ``type`` for an integer option ``name`` that must be >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{name} must be >= {low}, got {value}")
        return value
    return parse


def positive_float(name: str) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number option ``name`` that must be > 0."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number > 0, got {text}")
        return value
    return parse


def parts_of(letters: str) -> Callable[[str], str]:
    """An argparse ``type`` for ``--parts``: a non-empty string of letters from ``letters``."""
    def parse(text: str) -> str:
        if not text or any(c not in letters for c in text):
            raise argparse.ArgumentTypeError(f"--parts must be letters from {letters!r}, got {text!r}")
        return text
    return parse
