"""The self-check framework behind every exercise.

A :class:`Check` runs the student's function on a list of :class:`Case` s, on *copies* of the inputs, and
for each case, in this order:

1. the student's own exception → "your function raised …" (and only then: errors in the check's own code
   are raised as ``RuntimeError`` naming the check, never blamed on the student);
2. an input modified in place (``logits /= T``) → a hint naming that argument;
3. the return type (:class:`TensorResult`, :class:`TupleResult`): a NumPy array, a list or a float where a
   tensor is expected, a complex or a wrong dtype → a hint saying what was expected;
4. the value against the reference; when it differs, each :class:`Mistake` is tried (what a typical wrong
   answer would return, or a symptom of it) and the first that matches gives its hint; otherwise a generic
   message (shape, NaN, inf, how far off);
5. a correct result that is a *view* of an input → a hint to return a copy.

Passing prints one ``✓`` line; failing raises :class:`CheckFailed` (an ``AssertionError``, so nbval fails),
which IPython renders as the ✗ line with its hint only (plus the frames of the student's own code when
their function raised), without the package's traceback.
"""

from __future__ import annotations

import inspect
import math
import os
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CheckFailed(AssertionError):
    """Raised by a self-check when the answer is wrong; the message carries the hint.

    ``student_error`` is the exception the student's function raised, if that is why the check failed.
    """

    def __init__(self, message: str, student_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.student_error = student_error

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the hint, and the student's frames if they raised."""
        lines = str(self).splitlines()
        err = self.student_error
        if err is not None:
            frames = [f for f in traceback.extract_tb(err.__traceback__) if not _in_package(f.filename)]
            if frames:
                lines.append("Where it happened in your code (most recent call last):")
                lines += "".join(traceback.format_list(frames)).rstrip("\n").splitlines()
            lines += "".join(traceback.format_exception_only(type(err), err)).rstrip("\n").splitlines()
        return lines


def _in_package(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep)


@dataclass(frozen=True)
class Mistake:
    """A common wrong answer and its ``hint``.

    Recognised either by ``wrong(*args, **kwargs)``, which computes what that answer returns (it matches
    when the student's result equals it), or by ``symptom(yours, reference, *args)``, a predicate on the
    results as tuples of float64 arrays (for answers whose exact rounding cannot be predicted).
    """

    hint: str
    wrong: Callable[..., Any] | None = None
    symptom: Callable[..., bool] | None = None


@dataclass(frozen=True)
class Case:
    """One input: positional ``args``, keyword ``kwargs``, a short ``label``, and an optional ``note``
    shown whenever the student's answer fails on this case (say which edge case it is and what it needs)."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    label: str = ""
    note: str = ""

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


# --------------------------------------------------------------------------- what a function must return

_TENSOR_HINT = ("return a torch tensor: the next cells call tensor methods on your result (.topk, .sum(dim=...)). "
                "Compute with torch operations, or convert at the end with torch.as_tensor(...)")


def _kind(x: Any) -> str:
    """A short description of a returned value's type, for hints."""
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    if isinstance(x, np.ndarray):
        return f"a NumPy array of shape {x.shape}"
    if isinstance(x, np.generic):
        return f"a NumPy scalar ({type(x).__name__})"
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of length {len(x)}"
    return f"a Python {type(x).__name__}"


@dataclass(frozen=True)
class TensorResult:
    """The result must be a torch tensor with a ``dtype`` of that family: ``"float"`` (float32/float64; a
    half-precision result is refused) or ``"long"`` (int64). ``scalar_ok`` also accepts a Python float."""

    dtype: Literal["float", "long"] = "float"
    scalar_ok: bool = False

    @property
    def part_names(self) -> tuple[str, ...]:
        return ("",)

    def problem(self, got: Any, want: Any) -> str | None:
        """Why ``got`` has the wrong type or dtype (``want`` is the reference's result), or None."""
        if got is None:
            return "your function returned None — did you forget `return`?"
        if isinstance(got, complex) or (isinstance(got, torch.Tensor) and got.is_complex()):
            return (f"your result is complex ({_kind(got)}), but the answer is real. A complex number comes "
                    "from a power or log of a negative number; find that step instead of dropping the "
                    "imaginary part.")
        if isinstance(got, torch.Tensor):
            expected = want.dtype if isinstance(want, torch.Tensor) else torch.float64
            if self.dtype == "long" and got.dtype != torch.int64:
                return (f"wrong dtype: expected torch.int64 (a LongTensor of ids), got {got.dtype}. "
                        "Token ids are integers: build the result from the ids themselves (slicing, unfold, "
                        "stack) or convert with .long().")
            if self.dtype == "float" and not got.is_floating_point():
                return (f"wrong dtype: expected a floating-point tensor ({expected}, like the reference), "
                        f"got {got.dtype}. Integer division or an int dtype loses the fractions.")
            if self.dtype == "float" and got.dtype in (torch.float16, torch.bfloat16):
                return (f"wrong dtype: expected {expected} (float32 is fine too), got {got.dtype}: half "
                        "precision keeps about 3 significant digits and overflows above 65 504.")
            return None
        if self.scalar_ok and isinstance(got, (int, float, np.floating)) and not isinstance(got, bool):
            return None  # a plain number (numpy.float32 and numpy.float64 included)
        return f"you returned {_kind(got)}; {_TENSOR_HINT}."

    def parts(self, value: Any) -> tuple[np.ndarray, ...]:
        return (_to_array(value),)


@dataclass(frozen=True)
class IntResult:
    """The result must be an exact whole number: a Python int, a NumPy integer or a 0-d integer tensor.

    ``what`` names the number in the hints ("the number of parameters", "the FLOPs per token")."""

    what: str = "the number of parameters"

    @property
    def part_names(self) -> tuple[str, ...]:
        return ("",)

    def problem(self, got: Any, want: Any) -> str | None:
        """Why ``got`` is not an exact count, or None."""
        if got is None:
            return "your function returned None — did you forget `return`?"
        if isinstance(got, (bool, np.bool_)):
            return f"you returned a bool ({got!r}); return {self.what}, an int."
        if isinstance(got, (int, np.integer)):
            return None
        if isinstance(got, torch.Tensor):
            if got.dim() > 0:
                return (f"you returned {_kind(got)}; return one number, {self.what} (an int).")
            if got.is_floating_point() or got.is_complex() or got.dtype == torch.bool:
                return (f"you returned a {got.dtype} number; {self.what} is an exact integer. Count with "
                        "Python ints (// for division), not float tensors.")
            return None
        if isinstance(got, (float, np.floating)):
            return (f"you returned a float ({got!r}); {self.what} is an exact integer. `/` always gives a "
                    "float in Python 3: use integer arithmetic (* + and //) throughout.")
        return f"you returned {_kind(got)}; return {self.what} as an int."

    def parts(self, value: Any) -> tuple[np.ndarray, ...]:
        return (_to_array(value),)


@dataclass(frozen=True)
class TupleResult:
    """The result must be a tuple (or list) of ``items``, called ``names`` in hints; with ``stacked_ok``
    a 1-D tensor of ``len(items)`` numbers (``torch.stack([mu, var])``) is accepted too."""

    items: tuple[TensorResult, ...]
    names: tuple[str, ...]
    stacked_ok: bool = False

    @property
    def part_names(self) -> tuple[str, ...]:
        return self.names

    def _split(self, got: Any) -> list[Any] | None:
        if isinstance(got, (tuple, list)) and len(got) == len(self.items):
            return list(got)
        if (self.stacked_ok and isinstance(got, torch.Tensor) and got.dim() == 1
                and got.shape[0] == len(self.items)):
            return list(got.unbind(0))
        return None

    def problem(self, got: Any, want: Any) -> str | None:
        if got is None:
            return "your function returned None — did you forget `return`?"
        items = self._split(got)
        if items is None:
            pair = ", ".join(self.names)
            return f"return a tuple ({pair}) — e.g. `return {pair}` — but you returned {_kind(got)}."
        wants = self._split(want) or [None] * len(items)
        for name, spec, g, w in zip(self.names, self.items, items, wants, strict=True):
            p = spec.problem(g, w)
            if p is not None:
                return f"`{name}`: {p}"
        return None

    def parts(self, value: Any) -> tuple[np.ndarray, ...]:
        items = self._split(value)
        if items is None:
            raise TypeError(f"expected a tuple of {len(self.items)}, got {_kind(value)}")
        return tuple(_to_array(v) for v in items)


ResultSpec = TensorResult | TupleResult


def _to_array(x: Any) -> np.ndarray:
    """A real numeric value → float64 array (TypeError for anything else)."""
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise TypeError("complex tensor")
        return x.detach().to("cpu").resolve_conj().resolve_neg().to(torch.float64).numpy()
    if isinstance(x, (bool, np.bool_, complex, np.complexfloating)) or x is None:
        raise TypeError(f"not a real number: {type(x).__name__}")
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"not real numbers: dtype {arr.dtype}")
    return arr.astype(np.float64)


def _lenient_parts(x: Any) -> tuple[np.ndarray, ...] | None:
    """Any numeric value (a tuple of them too) → arrays; None if it is not numeric."""
    try:
        return (_to_array(x),)
    except (TypeError, ValueError):
        pass
    if isinstance(x, (tuple, list)) and x:
        try:
            return tuple(_to_array(v) for v in x)
        except (TypeError, ValueError):
            return None
    return None


def _parts_close(a: Sequence[np.ndarray], b: Sequence[np.ndarray], atol: float, rtol: float) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and bool(np.allclose(x, y, atol=atol, rtol=rtol, equal_nan=True))
        for x, y in zip(a, b, strict=True))


def _parts_diff(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    worst = 0.0
    if len(a) != len(b):
        return math.inf
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape:
            return math.inf
        if x.size:
            same = (np.isnan(x) & np.isnan(y)) | (x == y)  # equal infinities and NaN pairs: no difference
            with np.errstate(invalid="ignore"):
                d = np.where(same, 0.0, np.abs(x - y))
            worst = max(worst, float(np.nan_to_num(d, nan=math.inf).max()))
    return worst


def max_abs_diff(actual: Any, expected: Any) -> float:
    """Largest absolute difference between two numeric values of the same shape (inf if shapes differ)."""
    a, e = _lenient_parts(actual), _lenient_parts(expected)
    return math.inf if a is None or e is None else _parts_diff(a, e)


def values_close(actual: Any, expected: Any, atol: float = 1e-6, rtol: float = 1e-5) -> bool:
    """Same shape and ``|actual - expected| <= atol + rtol * |expected|`` everywhere (NaN only matches NaN);
    non-numeric values are compared with ``==``."""
    a, e = _lenient_parts(actual), _lenient_parts(expected)
    if a is None or e is None:
        return a is None and e is None and bool(actual == expected)
    return _parts_close(a, e, atol, rtol)


# --------------------------------------------------------------------------- inputs changed in place

def _clone(x: Any) -> Any:
    """A deep copy of the tensors/arrays/containers in ``x`` (other objects are shared)."""
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, (tuple, list)):
        return type(x)(_clone(v) for v in x)
    if isinstance(x, dict):
        return {k: _clone(v) for k, v in x.items()}
    return x


def _identical(a: Any, b: Any) -> bool:
    """Exactly equal (same type, shape, dtype, values; NaN equals NaN)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        both_nan = torch.isnan(a) & torch.isnan(b) if a.is_floating_point() else torch.zeros_like(a, dtype=bool)
        return bool(((a == b) | both_nan).all())
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and bool(
            ((a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind in "fc" else (a == b)).all())
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_identical, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    return type(a) is type(b)  # numbers, strings: immutable, so the caller's value cannot have changed


def _param_names(fn: Callable[..., Any], fallback: Sequence[str], n: int) -> list[str]:
    """The names of ``fn``'s first ``n`` positional parameters (its own names, so the hint reads like the
    student's code), else ``fallback``, else "argument k"."""
    names: list[str] = []
    try:
        params = list(inspect.signature(fn).parameters.values())
        names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        pass
    if len(names) < n:
        names = list(fallback) if len(fallback) >= n else [f"argument {k + 1}" for k in range(n)]
    return names[:n]


def modified_argument(sent: tuple[tuple, dict], pristine: tuple[tuple, dict], names: Sequence[str]) -> str | None:
    """The name of the first argument whose value differs from its pristine copy, or None."""
    (args, kwargs), (args0, kwargs0) = sent, pristine
    for name, a, a0 in zip(names, args, args0, strict=False):
        if not _identical(a, a0):
            return name
    for key in kwargs:
        if not _identical(kwargs[key], kwargs0[key]):
            return key
    return None


def in_place_hint(name: str) -> str:
    """The hint for an argument modified in place."""
    return (f"your function modified its argument `{name}` in place (e.g. `{name} /= t`, `{name} -= m`, "
            f"`{name}[...] = v` or a method ending in `_` such as `{name}.div_(t)`). That changes your "
            f"caller's tensor, so the next cells would see the modified values — compute a new tensor "
            f"instead (`{name} = {name} / t` leaves the caller's `{name}` alone).")


def _tensors_in(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in _tensors_in(v)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _tensors_in(v)]
    return []


def aliased_argument(result: Any, sent: tuple[tuple, dict], names: Sequence[str]) -> str | None:
    """The name of an argument whose memory a tensor of ``result`` shares (a view of it), or None."""
    args, kwargs = sent
    named = list(zip(names, args, strict=False)) + list(kwargs.items())
    for r in _tensors_in(result):
        if r.numel() == 0:
            continue
        for name, a in named:
            for t in _tensors_in(a):
                if t.numel() and r.untyped_storage().data_ptr() == t.untyped_storage().data_ptr():
                    return name
    return None


def alias_hint(name: str) -> str:
    """The hint for a result that is a view of an input."""
    return (f"your result shares memory with the argument `{name}`: it is a view (from slicing, .view, "
            f".unfold, .expand …), not a new tensor, so writing into the result later would silently change "
            f"the caller's `{name}` too. Return a copy: add .clone().")


# --------------------------------------------------------------------------- running a check

def _internal(check: str, what: str, fn: Callable[[], Any]) -> Any:
    """Run the check's own code; its errors are the course's bug, never the student's."""
    try:
        return fn()
    except Exception as e:
        raise RuntimeError(f"{check}: internal error in the self-check while {what} — this is a bug in "
                           f"aigc_course, not in your answer: {type(e).__name__}: {e}") from e


def _check_tolerances(owner: str, atol: object, rtol: object) -> None:
    for arg, v in (("atol", atol), ("rtol", rtol)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf:
            raise ValueError(f"{owner}: {arg} must be a finite number >= 0, got {v!r}")


@dataclass(frozen=True)
class Check:
    """A self-check: ``reference`` is the right answer, ``cases`` the inputs (or a function that builds them
    when the check runs, so that building a module of checks stays cheap), ``mistakes`` the diagnosed
    wrong answers, ``returns`` what the function must return, ``arg_names`` the parameter names used in
    hints when the student's own names cannot be read."""

    name: str
    reference: Callable[..., Any]
    cases: Sequence[Case] | Callable[[], Sequence[Case]]
    mistakes: Sequence[Mistake] = ()
    returns: ResultSpec = TensorResult()
    arg_names: Sequence[str] = ()
    atol: float = 1e-6
    rtol: float = 1e-5

    def __post_init__(self) -> None:
        if not callable(self.reference):
            raise TypeError(f"Check {self.name!r}: reference must be callable, got {type(self.reference).__name__}")
        _check_tolerances(f"Check {self.name!r}", self.atol, self.rtol)

    def fail(self, text: str, case: Case | None = None, where: str = "",
             student_error: BaseException | None = None) -> CheckFailed:
        msg = f"✗ {self.name}: {text}"
        if where:
            msg += f"\n  (seen on {where})"
        if case is not None and case.note:
            msg += f"\n  Note on this case: {case.note}"
        return CheckFailed(msg, student_error)

    def case_list(self) -> list[Case]:
        """The cases, built now when ``cases`` is a function."""
        return list(self.cases() if callable(self.cases) else self.cases)

    def run(self, student_fn: Callable[..., Any]) -> None:
        """Run ``student_fn`` on every case; print one ✓ line, or raise :class:`CheckFailed` with a hint."""
        if not callable(student_fn):
            raise TypeError(f"{self.name}: pass your function itself (without calling it), "
                            f"got {type(student_fn).__name__}")
        cases = self.case_list()
        if not cases:
            raise ValueError(f"{self.name}: cases must not be empty")
        worst = 0.0
        for i, case in enumerate(cases, 1):
            where = f"case {i}/{len(cases)}: {case.describe()}"
            sent = (_clone(case.args), _clone(case.kwargs))
            got = self._call_student(student_fn, sent, case, where)
            want_raw = _internal(self.name, "computing the reference",
                                 lambda c=case: self.reference(*_clone(c.args), **_clone(c.kwargs)))
            want = _internal(self.name, "reading the reference", lambda w=want_raw: self.returns.parts(w))
            names = _param_names(student_fn, self.arg_names, len(case.args))
            changed = modified_argument(sent, (case.args, case.kwargs), names)
            if changed is not None:
                raise self.fail(in_place_hint(changed), case, where)
            wrong_type = self.returns.problem(got, want_raw)
            if wrong_type is not None:
                raise self.fail(wrong_type, case, where)
            try:
                mine = self.returns.parts(got)
            except (TypeError, ValueError) as e:
                raise self.fail(f"could not read your result as numbers ({e}); {_TENSOR_HINT}.", case,
                                where) from None
            if not _parts_close(mine, want, self.atol, self.rtol):
                raise self.fail(self._diagnose(case, mine, want), case, where)
            view_of = aliased_argument(got, sent, names)
            if view_of is not None:
                raise self.fail(alias_hint(view_of), case, where)
            worst = max(worst, _parts_diff(mine, want))
        _report_pass(self.name, len(cases), worst)

    def _call_student(self, student_fn: Callable[..., Any], sent: tuple[tuple, dict], case: Case,
                      where: str) -> Any:
        try:
            return student_fn(*sent[0], **sent[1])
        except NotImplementedError as e:
            raise CheckFailed(f"✗ {self.name}: not implemented yet — replace the `raise NotImplementedError` "
                              f"with your code. ({e})") from None
        except Exception as e:  # a crash is a wrong answer too; say where it happened
            raise self.fail(f"your function raised {type(e).__name__}: {e}", case, where, student_error=e) from e

    def _diagnose(self, case: Case, mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> str:
        for m in self.mistakes:
            if _mistake_matches(m, case, mine, want, self.returns, self.atol, self.rtol):
                return m.hint
        return generic_message(mine, want, self.returns.part_names)


def _mistake_matches(m: Mistake, case: Case, mine: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...],
                     returns: ResultSpec, atol: float, rtol: float) -> bool:
    """Whether ``mine`` looks like mistake ``m`` on ``case``; a mistake that does not apply (raises) does not
    match."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            try:
                if m.wrong is not None:
                    wrong = returns.parts(m.wrong(*_clone(case.args), **_clone(case.kwargs)))
                    if _parts_close(mine, wrong, atol, rtol):
                        return True
                if m.symptom is not None:
                    return bool(m.symptom(mine, want, *_clone(case.args), **_clone(case.kwargs)))
            except Exception:
                return False
    return False


def generic_message(mine: Sequence[np.ndarray], want: Sequence[np.ndarray], names: Sequence[str] = ("",)) -> str:
    """The message for a wrong value that matches no listed mistake."""
    for name, g, w in zip(names, mine, want, strict=False):
        of = f" of `{name}`" if name else ""
        if g.shape != w.shape:
            return f"wrong shape{of}: got {g.shape}, expected {w.shape}. Check the dimensions you reduce over."
    for name, g, w in zip(names, mine, want, strict=False):
        of = f" in `{name}`" if name else ""
        if np.isnan(g).any() and not np.isnan(w).any():
            return (f"your result contains NaN{of} where the reference is a number. Look for log(0), 0/0, "
                    "inf − inf or sqrt of a negative number, and use a numerically stable form.")
        if (np.isinf(g) & np.isfinite(w)).any():
            return (f"your result contains ±inf{of} where the reference is finite: something overflowed "
                    "(an exp of a large number) or a log of 0 slipped in.")
    diff = _parts_diff(mine, want)
    scale = max((float(np.abs(w[np.isfinite(w)]).max()) for w in want if np.isfinite(w).any()), default=0.0)
    rel = diff / scale if scale > 0 else math.inf
    closeness = "close but not within tolerance" if rel < 1e-2 else "wrong value"
    yours = "; ".join(_short_value(g) for g in mine)
    ref = "; ".join(_short_value(w) for w in want)
    return (f"{closeness}: max |yours - reference| = {diff:.3g}"
            + (f" (relative {rel:.1e})" if math.isfinite(rel) else "")
            + f".\n  yours:     {yours}\n  reference: {ref}")


def _short_value(arr: np.ndarray) -> str:
    flat = arr.ravel()
    body = np.array2string(flat[:6], precision=4, separator=", ")
    return body + (f" … ({flat.size} values)" if flat.size > 6 else "")


def _report_pass(name: str, n_cases: int, worst: float) -> None:
    detail = "exact" if worst == 0.0 else f"max |diff| {worst:.1e}"
    print(f"✓ {name}: {n_cases}/{n_cases} cases match the reference ({detail})")


def check_function(
    name: str,
    student_fn: Callable[..., Any],
    reference_fn: Callable[..., Any],
    cases: Sequence[Case],
    mistakes: Iterable[Mistake] = (),
    atol: float = 1e-6,
    rtol: float = 1e-5,
    *,
    returns: ResultSpec = TensorResult(),
    arg_names: Sequence[str] = (),
) -> None:
    """Run ``student_fn`` on every case and compare with ``reference_fn``; print ✓ or raise with a hint.
    Shorthand for ``Check(name, reference_fn, cases, mistakes, returns, arg_names, atol, rtol).run(fn)``."""
    Check(name, reference_fn, list(cases), list(mistakes), returns, tuple(arg_names), atol, rtol).run(student_fn)


def check_value(
    name: str,
    actual: Any,
    expected: Any,
    mistakes: Iterable[tuple[str, Any]] = (),
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> None:
    """Compare one computed value with the expected one; ``mistakes`` are ``(hint, wrong_value)`` pairs."""
    _check_tolerances(f"check_value {name!r}", atol, rtol)
    mistakes = list(mistakes)
    for m in mistakes:
        if not (isinstance(m, tuple) and len(m) == 2 and isinstance(m[0], str)):
            raise TypeError(f"check_value {name!r}: mistakes must be (hint, wrong_value) pairs, got {m!r}")
    if values_close(actual, expected, atol=atol, rtol=rtol):
        _report_pass(name, 1, max_abs_diff(actual, expected) if _lenient_parts(expected) else 0.0)
        return
    if actual is None:
        raise CheckFailed(f"✗ {name}: got None — did you forget to `return` (or assign) the answer?")
    for hint, wrong in mistakes:
        if values_close(actual, wrong, atol=atol, rtol=rtol):
            raise CheckFailed(f"✗ {name}: {hint}")
    mine, want = _lenient_parts(actual), _lenient_parts(expected)
    if mine is None or want is None:
        raise CheckFailed(f"✗ {name}: got {actual!r}, expected {expected!r}")
    raise CheckFailed(f"✗ {name}: {generic_message(mine, want, [''] * len(want))}")
