"""The self-check framework behind every exercise.

A check runs the student's function on a few cases, compares each result with the reference, and on a
mismatch tries to *diagnose* it: each :class:`Mistake` computes what a typical wrong answer would give
(the wrong sign, a missing factor 1/2, the arguments swapped) and, if the student's output matches it,
the hint for exactly that mistake is shown. Otherwise the hint says how far off the answer is
(like nn-zero-to-hero's ``cmp``: exact, approximately right, or wrong, with the max difference).

Passing prints one ``✓`` line; failing raises :class:`CheckFailed` (an ``AssertionError``), so a notebook
run under nbval fails on a wrong answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


class CheckFailed(AssertionError):
    """Raised by a self-check when the answer is wrong; the message carries the hint."""


@dataclass(frozen=True)
class Mistake:
    """A common wrong answer: ``wrong(*args, **kwargs)`` computes what it would return; ``hint`` explains."""

    hint: str
    wrong: Callable[..., Any]


@dataclass(frozen=True)
class Case:
    """One input to a checked function: positional ``args``, keyword ``kwargs`` and a short label."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    label: str = ""

    def describe(self) -> str:
        if self.label:
            return self.label
        parts = [_short(a) for a in self.args] + [f"{k}={_short(v)}" for k, v in self.kwargs.items()]
        return "(" + ", ".join(parts) + ")"


def _short(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor(shape={tuple(x.shape)})" if x.numel() > 4 else repr(x.tolist())
    if isinstance(x, np.ndarray):
        return f"array(shape={x.shape})" if x.size > 4 else repr(x.tolist())
    r = repr(x)
    return r if len(r) <= 40 else r[:37] + "..."


def _as_array(x: Any) -> np.ndarray | None:
    """Numeric value → float64 array, or None if ``x`` is not numeric."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    if isinstance(x, (bool, np.bool_)):
        return None
    if isinstance(x, (int, float, np.number, np.ndarray, list, tuple)):
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            return None
        return arr
    return None


def max_abs_diff(actual: Any, expected: Any) -> float:
    """Largest absolute difference between two numeric values of the same shape (inf if shapes differ)."""
    a, e = _as_array(actual), _as_array(expected)
    if a is None or e is None or a.shape != e.shape:
        return math.inf
    if a.size == 0:
        return 0.0
    same = (np.isnan(a) & np.isnan(e)) | (a == e)  # equal infinities and NaN pairs count as no difference
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(a - e))
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(diff.max())


def values_close(actual: Any, expected: Any, atol: float = 1e-6, rtol: float = 1e-5) -> bool:
    """Same shape and ``|actual - expected| <= atol + rtol * |expected|`` everywhere
    (NaN only matches NaN)."""
    a, e = _as_array(actual), _as_array(expected)
    if a is None or e is None:
        return actual == expected
    if a.shape != e.shape:
        return False
    return bool(np.allclose(a, e, atol=atol, rtol=rtol, equal_nan=True))


def _report_pass(name: str, n_cases: int, worst: float) -> None:
    detail = "exact" if worst == 0.0 else f"max |diff| {worst:.1e}"
    print(f"✓ {name}: {n_cases}/{n_cases} cases match the reference ({detail})")


def _shape_of(x: Any) -> tuple | None:
    arr = _as_array(x)
    return None if arr is None else tuple(arr.shape)


def check_function(
    name: str,
    student_fn: Callable[..., Any],
    reference_fn: Callable[..., Any],
    cases: Sequence[Case],
    mistakes: Iterable[Mistake] = (),
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> None:
    """Run ``student_fn`` on every case and compare with ``reference_fn``; print ✓ or raise with a hint."""
    if not callable(student_fn):
        raise TypeError(f"{name}: expected your function as the argument, got {type(student_fn).__name__}")
    if not cases:
        raise ValueError(f"{name}: cases must not be empty")
    mistakes = list(mistakes)
    worst = 0.0
    for i, case in enumerate(cases, 1):
        where = f"case {i}/{len(cases)} {case.describe()}"
        try:
            got = student_fn(*_clone(case.args), **_clone(case.kwargs))
        except NotImplementedError as e:
            raise CheckFailed(f"✗ {name}: not implemented yet — replace the `raise NotImplementedError` "
                              f"with your code. ({e})") from None
        except Exception as e:  # a crash is a wrong answer too; say where it happened
            raise CheckFailed(f"✗ {name}: your function raised {type(e).__name__}: {e}\n  on {where}") from e
        want = reference_fn(*_clone(case.args), **_clone(case.kwargs))
        if values_close(got, want, atol=atol, rtol=rtol):
            worst = max(worst, max_abs_diff(got, want) if _as_array(want) is not None else 0.0)
            continue
        raise CheckFailed(_diagnose(name, where, case, got, want, mistakes, atol, rtol))
    _report_pass(name, len(cases), worst)


def check_value(
    name: str,
    actual: Any,
    expected: Any,
    mistakes: Iterable[tuple[str, Any]] = (),
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> None:
    """Compare one computed value with the expected one; ``mistakes`` are ``(hint, wrong_value)`` pairs."""
    if values_close(actual, expected, atol=atol, rtol=rtol):
        worst = max_abs_diff(actual, expected) if _as_array(expected) is not None else 0.0
        _report_pass(name, 1, worst)
        return
    if actual is None:
        raise CheckFailed(f"✗ {name}: got None — did you forget to `return` (or assign) the answer?")
    for hint, wrong in mistakes:
        if values_close(actual, wrong, atol=atol, rtol=rtol):
            raise CheckFailed(f"✗ {name}: {hint}")
    raise CheckFailed(_generic(name, "", actual, expected))


def _clone(x: Any) -> Any:
    """Copy tensors/arrays so a student function that edits its input in place cannot fool the check."""
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, tuple):
        return tuple(_clone(v) for v in x)
    if isinstance(x, list):
        return [_clone(v) for v in x]
    if isinstance(x, dict):
        return {k: _clone(v) for k, v in x.items()}
    return x


def _diagnose(name: str, where: str, case: Case, got: Any, want: Any, mistakes: list[Mistake],
              atol: float, rtol: float) -> str:
    if got is None:
        return f"✗ {name}: your function returned None on {where} — did you forget `return`?"
    for m in mistakes:
        try:
            wrong = m.wrong(*_clone(case.args), **_clone(case.kwargs))
        except Exception:
            continue
        if values_close(got, wrong, atol=atol, rtol=rtol):
            return f"✗ {name}: {m.hint}\n  (seen on {where})"
    return _generic(name, where, got, want)


def _generic(name: str, where: str, got: Any, want: Any) -> str:
    on = f" on {where}" if where else ""
    gs, ws = _shape_of(got), _shape_of(want)
    if ws is not None and gs is None:
        return f"✗ {name}: expected a number/tensor{on}, got {type(got).__name__}"
    if gs is not None and ws is not None and gs != ws:
        return (f"✗ {name}: wrong shape{on}: got {gs}, expected {ws}. "
                "Check which dimension you reduce over (sum/mean) and keepdim.")
    if gs is None:
        return f"✗ {name}: got {got!r}{on}, expected {want!r}"
    diff = max_abs_diff(got, want)
    g, w = _as_array(got), _as_array(want)
    if np.isnan(g).any() and not np.isnan(w).any():
        return (f"✗ {name}: your result contains NaN{on}. Look for log(0), 0/0 or sqrt of a negative; "
                "clamp or use a numerically stable form.")
    scale = float(np.abs(w).max()) if w.size else 0.0
    rel = diff / scale if scale > 0 else math.inf
    closeness = "close but not within tolerance" if rel < 1e-2 else "wrong"
    return (f"✗ {name}: {closeness}{on}: max |yours - reference| = {diff:.3g}"
            + (f" (relative {rel:.1e})" if math.isfinite(rel) else "")
            + f".\n  yours:     {_short_value(got)}\n  reference: {_short_value(want)}")


def _short_value(x: Any) -> str:
    arr = _as_array(x)
    if arr is None:
        return repr(x)
    flat = arr.ravel()
    body = np.array2string(flat[:6], precision=4, separator=", ")
    return body + (f" … ({flat.size} values)" if flat.size > 6 else "")
