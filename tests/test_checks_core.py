"""The self-check framework: order of the verdicts, type and in-place detection, generic messages, who is
blamed for an exception, and what IPython shows (the kernel itself: test_checks_render.py)."""

import math
import os
import re

import numpy as np
import pytest
import torch

import aigc_course
from aigc_course.checks import (
    Case,
    Check,
    CheckFailed,
    Mistake,
    TensorResult,
    TupleResult,
    check_function,
    check_value,
    max_abs_diff,
    values_close,
)
from aigc_course.checks._core import (
    _TENSOR_HINT,
    _clone,
    _identical,
    _param_names,
    alias_hint,
    aliased_argument,
    generic_message,
    in_place_hint,
    modified_argument,
)


def ref_mean(x):
    return x.mean(dim=-1)


CASES = [
    Case((torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]]),)),
    Case((torch.arange(4.0),), label="arange"),
]
MISTAKES = [Mistake("you summed instead of averaging", lambda x: x.sum(dim=-1))]
MEAN = Check("mean", ref_mean, CASES, MISTAKES, TensorResult("float"), ("x",))


def test_pass_prints_tick(capsys):
    MEAN.run(ref_mean)
    assert capsys.readouterr().out == "✓ mean: 2/2 cases match the reference (exact)\n"
    MEAN.run(lambda x: x.mean(-1) * (1 + 1e-7))
    assert "max |diff| " in capsys.readouterr().out


def test_planted_mistake_gets_targeted_hint_and_the_case():
    with pytest.raises(CheckFailed) as exc:
        MEAN.run(lambda x: x.sum(dim=-1))
    assert str(exc.value) == ("✗ mean: you summed instead of averaging\n"
                              "  (seen on case 1/2: (tensor(shape=(2, 3))))")


@pytest.mark.parametrize("fn, message", [
    (lambda x: x.mean(dim=0), r"wrong shape: got \(3,\), expected \(2,\)"),
    (lambda x: None, r"returned None — did you forget `return`"),
    (lambda x: x.mean(-1) * math.nan, r"contains NaN where the reference is a number"),
    (lambda x: x.mean(-1) / 0.0, r"contains ±inf where the reference is finite"),
    (lambda x: x.mean(-1) * 1.001,
     r"close but not within tolerance: max \|yours - reference\| = 0\.002 \(relative 1\.0e-03\)"),
    (lambda x: x.mean(-1) + 10, r"wrong value: max \|yours - reference\| = 10 \(relative 5\.0e\+00\)"),
])
def test_generic_messages(fn, message):
    with pytest.raises(CheckFailed, match=message):
        MEAN.run(fn)


def test_not_implemented():
    with pytest.raises(CheckFailed, match=r"^✗ mean: not implemented yet .*\(Exercise 9\.9\)$"):
        MEAN.run(lambda x: (_ for _ in ()).throw(NotImplementedError("Exercise 9.9")))


def test_the_students_exception_is_reported_as_theirs():
    def student(x):
        return x.mean(-1) / 0 if x.dim() == 1 else x.mean(-1) + (1 / 0)

    with pytest.raises(CheckFailed, match=r"your function raised ZeroDivisionError: division by zero\n"
                                          r"  \(seen on case 1/2") as exc:
        MEAN.run(student)
    assert isinstance(exc.value.student_error, ZeroDivisionError)
    assert isinstance(exc.value, AssertionError)  # nbval must still fail


def test_the_checks_own_errors_are_not_blamed_on_the_student():
    def broken_reference(x):
        raise TypeError("expected np.ndarray (got numpy.float64)")

    with pytest.raises(RuntimeError, match=r"internal error in the self-check while computing the reference "
                                           r"— this is a bug in aigc_course, not in your answer: TypeError"):
        check_function("mean", ref_mean, broken_reference, CASES)
    # a mistake (or a symptom) that cannot be computed on a case simply does not match
    crashing = [Mistake("never shown", lambda x: 1 / 0), Mistake("never either", symptom=lambda *a: 1 / 0),
                *MISTAKES]
    with pytest.raises(CheckFailed, match="summed instead"):
        check_function("mean", lambda x: x.sum(-1), ref_mean, CASES, crashing)
    # a reference whose result the check cannot read is the check's bug too
    with pytest.raises(RuntimeError, match="while reading the reference"):
        check_function("mean", ref_mean, lambda x: "text", CASES)


def test_in_place_modification_is_named_whatever_the_value():
    def sneaky(x):
        x.zero_()
        return ref_mean(x)

    def correct_but_mutating(values):
        out = values.mean(-1)
        values += 1
        return out

    with pytest.raises(CheckFailed, match=r"modified its argument `x` in place"):
        MEAN.run(sneaky)
    with pytest.raises(CheckFailed, match=r"modified its argument `values` in place.*caller's tensor"):
        MEAN.run(correct_but_mutating)
    with pytest.raises(CheckFailed, match=r"modified its argument `x` in place"):  # no names: the check's
        MEAN.run(lambda *a: a[0].add_(1).mean(-1))


def test_modified_argument_detector():
    t = torch.tensor([1.0, math.nan])
    same = ((t.clone(), np.array([1, 2]), [torch.ones(2)], 3.0), {"k": torch.zeros(1)})
    pristine = ((t.clone(), np.array([1, 2]), [torch.ones(2)], 3.0), {"k": torch.zeros(1)})
    names = ["a", "b", "c", "d"]
    assert modified_argument(same, pristine, names) is None  # NaN equals NaN
    same[0][1][0] = 5
    assert modified_argument(same, pristine, names) == "b"
    same[0][1][0] = 1
    same[0][2].append(torch.ones(2))
    assert modified_argument(same, pristine, names) == "c"
    same[0][2].pop()
    same[1]["k"] += 1
    assert modified_argument(same, pristine, names) == "k"
    assert modified_argument(((t.double(),), {}), ((t,), {}), ["a"]) == "a"  # dtype counts
    assert modified_argument(((t[:1],), {}), ((t,), {}), ["a"]) == "a"  # shape counts


def test_a_view_of_an_input_is_refused_only_when_it_shares_memory():
    x = torch.arange(6.0)
    assert aliased_argument(x[1:], ((x,), {}), ["x"]) == "x"
    assert aliased_argument((x.clone(), x.view(2, 3)), ((torch.ones(1), x), {}), ["a", "b"]) == "b"
    assert aliased_argument(x.clone(), ((x,), {}), ["x"]) is None
    assert aliased_argument(x[:0], ((x,), {}), ["x"]) is None  # empty results share nothing
    ident = Check("identity", lambda x: x.clone(), [Case((torch.arange(3.0),))], returns=TensorResult())
    with pytest.raises(CheckFailed, match=r"shares memory with the argument `x`.*\.clone\(\)"):
        ident.run(lambda x: x)
    ident.run(lambda x: x + 0)


@pytest.mark.parametrize("got, message", [
    (np.array([1.5, 2.0]), r"you returned a NumPy array of shape \(2,\); return a torch tensor"),
    ([1.5, 2.0], r"you returned a list of length 2; return a torch tensor"),
    ((1.5, 2.0), r"you returned a tuple of length 2; return a torch tensor"),
    (1.5, r"you returned a Python float; return a torch tensor"),
    (np.float32(1.5), r"you returned a NumPy scalar \(float32\); return a torch tensor"),
    ("1.5", r"you returned a Python str"),
    (torch.tensor([1, 2]), r"wrong dtype: expected a floating-point tensor \(torch\.float64, like the reference\), "
                           r"got torch\.int64"),
    (torch.tensor([True]), r"got torch\.bool"),
    (torch.tensor([1.0, 2.0], dtype=torch.float16), r"wrong dtype: expected torch\.float64 \(float32 is fine "
                                                     r"too\), got torch\.float16"),
    (torch.tensor([1.0, 2.0], dtype=torch.bfloat16), r"got torch\.bfloat16"),
    (torch.tensor([1.0 + 0j]), r"your result is complex \(a tensor of shape \(1,\) and dtype torch\.complex64\)"),
    (1 + 0j, r"your result is complex"),
    (None, r"returned None"),
])
def test_float_result_type_problems(got, message):
    problem = TensorResult("float").problem(got, torch.zeros(2, dtype=torch.float64))
    assert problem is not None
    assert re.search(message, problem), problem


def test_accepted_result_types():
    want = torch.zeros((), dtype=torch.float64)
    for got in (torch.zeros(2), torch.zeros(2, dtype=torch.float64)):
        assert TensorResult("float").problem(got, want) is None
    for got in (1.5, 2, np.float64(1.5), np.float32(1.5), torch.tensor(1.0)):
        assert TensorResult("float", scalar_ok=True).problem(got, want) is None
    assert TensorResult("float", scalar_ok=True).problem(True, want) is not None
    assert TensorResult("long").problem(torch.zeros(2, dtype=torch.long), want) is None
    for dtype in (torch.int32, torch.float32, torch.uint8):
        assert f"expected torch.int64 (a LongTensor of ids), got {dtype}" in TensorResult("long").problem(
            torch.zeros(2, dtype=dtype), want)


def test_tuple_results():
    pair = TupleResult((TensorResult("float", scalar_ok=True),) * 2, ("mu", "var"), stacked_ok=True)
    want = (torch.tensor(1.0), torch.tensor(2.0))
    for got in ((1.0, 2.0), [torch.tensor(1.0), 2.0], torch.tensor([1.0, 2.0])):
        assert pair.problem(got, want) is None
        assert [float(a) for a in pair.parts(got)] == [1.0, 2.0]
    assert "return a tuple (mu, var) — e.g. `return mu, var` — but you returned a tensor of shape (3,)" in \
        pair.problem(torch.zeros(3), want)
    assert pair.problem((1.0,), want).startswith("return a tuple (mu, var)")
    assert pair.problem((1.0, np.zeros(1)), want).startswith("`var`: you returned a NumPy array")
    strict = TupleResult((TensorResult("long"),) * 2, ("contexts", "targets"))
    assert strict.problem(torch.zeros(2, dtype=torch.long), want).startswith("return a tuple (contexts, targets)")
    with pytest.raises(TypeError):
        strict.parts(torch.zeros(2))


def test_symptom_mistakes_see_both_results_and_the_inputs():
    seen = []

    def symptom(mine, want, x):
        seen.append((mine[0].copy(), want[0].copy(), x.clone()))
        return True

    with pytest.raises(CheckFailed, match="^✗ mean: the symptom matched"):
        check_function("mean", lambda x: x.mean(-1) + 1, ref_mean, CASES[1:],
                       [Mistake("the symptom matched", symptom=symptom)])
    mine, want, x = seen[0]
    assert float(mine) == 2.5 and float(want) == 1.5 and x.tolist() == [0, 1, 2, 3]


def test_case_notes_are_shown_on_failure_only(capsys):
    noted = Check("mean", ref_mean, [Case((torch.ones(2),), label="ones", note="an easy one")])
    with pytest.raises(CheckFailed, match=r"\(seen on case 1/1: ones\)\n  Note on this case: an easy one$"):
        noted.run(lambda x: x.sum(-1))
    noted.run(ref_mean)
    assert "an easy one" not in capsys.readouterr().out


def test_check_value(capsys):
    check_value("answer", 0.5, 0.5)
    assert capsys.readouterr().out == "✓ answer: 1/1 cases match the reference (exact)\n"
    with pytest.raises(CheckFailed, match=r"^✗ variance: you divided by n-1$"):
        check_value("variance", 2.0, 1.5, mistakes=[("you divided by n-1", 2.0)])
    with pytest.raises(CheckFailed, match="forget to `return`"):
        check_value("answer", None, 1.0)
    # a wrong value that matches no listed mistake must still fail
    with pytest.raises(CheckFailed, match=r"^✗ variance: wrong value: max \|yours - reference\| = 1\.5"):
        check_value("variance", 3.0, 1.5, mistakes=[("you divided by n-1", 2.0)])
    with pytest.raises(CheckFailed, match=r"got 'a', expected 'b'"):
        check_value("word", "a", "b")


def test_bad_arguments():
    with pytest.raises(TypeError, match="pass your function itself"):
        check_function("mean", 3, ref_mean, CASES)
    with pytest.raises(ValueError, match="cases must not be empty"):
        check_function("mean", ref_mean, ref_mean, [])


def test_values_close_and_max_abs_diff():
    assert max_abs_diff(torch.ones(2), torch.zeros(2)) == 1.0
    assert max_abs_diff(torch.ones(2), torch.ones(3)) == math.inf
    assert max_abs_diff(torch.tensor([math.inf, math.nan]), torch.tensor([math.inf, math.nan])) == 0.0
    assert max_abs_diff(torch.tensor([1.0, math.nan]), torch.tensor([1.0, 2.0])) == math.inf
    assert max_abs_diff("a", 1.0) == math.inf
    assert values_close((torch.tensor(1.0), 2.0), (1.0, torch.tensor(2.0)))
    assert not values_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.1]))
    assert values_close(1.0, 1.0 + 1e-7) and not values_close(1.0, 1.0 + 1e-3)
    assert values_close(1.0, 1.0 + 1e-3, rtol=1e-2) and values_close(0.0, 1e-3, atol=1e-2)
    assert values_close("a", "a") and not values_close("a", 1.0)


def test_render_traceback_shows_the_hint_and_only_the_students_frames():
    def student(x):
        return 1 / 0  # the line the student must see

    with pytest.raises(CheckFailed) as exc:
        MEAN.run(student)
    lines = exc.value._render_traceback_()
    text = "\n".join(lines)
    assert lines[0] == "✗ mean: your function raised ZeroDivisionError: division by zero"
    assert "the line the student must see" in text and __file__ in text
    assert os.path.dirname(aigc_course.__file__) not in text
    assert lines[-1] == "ZeroDivisionError: division by zero"
    with pytest.raises(CheckFailed) as exc:
        MEAN.run(lambda x: x.sum(-1))
    assert exc.value._render_traceback_() == str(exc.value).splitlines()


# ----------------------------------------------------------------------------- exact texts and edge paths

PAIR = TupleResult((TensorResult("float"),) * 2, ("mu", "var"))


def ref_pair(x):
    return x.mean(), x.var(correction=0)


PAIR_CHECK = Check("pair", ref_pair, [Case((torch.arange(4.0),), label="four")], returns=PAIR)


def failure(fn):
    with pytest.raises(CheckFailed) as exc:
        fn()
    return str(exc.value)


@pytest.mark.parametrize("student, message", [
    (lambda x: (x.mean(), x[:2]), "wrong shape of `var`: got (2,), expected (). Check the dimensions you reduce over."),
    (lambda x: (x.mean(), x.var() * math.nan),
     "your result contains NaN in `var` where the reference is a number. Look for log(0), 0/0, inf − inf or sqrt "
     "of a negative number, and use a numerically stable form."),
    (lambda x: (x.mean(), x.var() / 0), "your result contains ±inf in `var` where the reference is finite: something "
                                        "overflowed (an exp of a large number) or a log of 0 slipped in."),
    (lambda x: (x.mean() + 1, x.var() + 1), "wrong value: max |yours - reference| = 1.42 (relative 9.4e-01).\n"
                                            "  yours:     [2.5]; [2.6667]\n  reference: [1.5]; [1.25]"),
    (lambda x: (x.mean(), x.long()), "`var`: wrong dtype: expected a floating-point tensor (torch.float32, like the "
                                     "reference), got torch.int64. Integer division or an int dtype loses the "
                                     "fractions."),
    (lambda x: None, "your function returned None — did you forget `return`?"),
])
def test_tuple_messages_name_the_part(student, message):
    assert failure(lambda: PAIR_CHECK.run(student)) == f"✗ pair: {message}\n  (seen on case 1/1: four)"


@pytest.mark.parametrize("got, message", [
    (None, "your function returned None — did you forget `return`?"),
    (torch.tensor([1j]), "your result is complex (a tensor of shape (1,) and dtype torch.complex64), but the answer "
                         "is real. A complex number comes from a power or log of a negative number; find that step "
                         "instead of dropping the imaginary part."),
    (torch.zeros(1, dtype=torch.int32), "wrong dtype: expected torch.int64 (a LongTensor of ids), got torch.int32. "
                                        "Token ids are integers: build the result from the ids themselves (slicing, "
                                        "unfold, stack) or convert with .long()."),
    (torch.zeros(1, dtype=torch.half), "wrong dtype: expected torch.int64 (a LongTensor of ids), got torch.float16. "
                                       "Token ids are integers: build the result from the ids themselves (slicing, "
                                       "unfold, stack) or convert with .long()."),
])
def test_long_result_messages_in_full(got, message):
    assert TensorResult("long").problem(got, torch.zeros(1, dtype=torch.long)) == message


def test_half_precision_and_reference_dtype_messages_in_full():
    assert TensorResult().problem(torch.zeros(1, dtype=torch.bfloat16), torch.zeros(1)) == (
        "wrong dtype: expected torch.float32 (float32 is fine too), got torch.bfloat16: half precision keeps about "
        "3 significant digits and overflows above 65 504.")
    # a reference that returns a Python float: the expected dtype is float64
    assert TensorResult(scalar_ok=True).problem(torch.zeros(1, dtype=torch.long), 1.5).startswith(
        "wrong dtype: expected a floating-point tensor (torch.float64, like the reference), got torch.int64.")
    assert TupleResult((TensorResult(),), ("a",)).problem(None, None) == (
        "your function returned None — did you forget `return`?")


def test_describe_shortens_large_values_only():
    case = Case((torch.arange(4.0), torch.arange(5.0), np.arange(4), np.arange(5), "x" * 38, "y" * 39),
                {"k": torch.ones(2)})
    assert case.describe() == ("([0.0, 1.0, 2.0, 3.0], tensor(shape=(5,)), [0, 1, 2, 3], array(shape=(5,)), '"
                               + "x" * 38 + "', '" + "y" * 36 + "..., k=[1.0, 1.0])")


@pytest.mark.parametrize("mine, want, message", [
    ([0.6], [0.5], "wrong value: max |yours - reference| = 0.1 (relative 2.0e-01).\n  yours:     [0.6]\n"
                   "  reference: [0.5]"),
    ([1.0], [0.0], "wrong value: max |yours - reference| = 1.\n  yours:     [1.]\n  reference: [0.]"),
    ([1.0], [math.nan], "wrong value: max |yours - reference| = inf.\n  yours:     [1.]\n  reference: [nan]"),
    ([100.5], [100.0], "close but not within tolerance: max |yours - reference| = 0.5 (relative 5.0e-03).\n"
                       "  yours:     [100.5]\n  reference: [100.]"),
    ([101.0], [100.0], "wrong value: max |yours - reference| = 1 (relative 1.0e-02).\n  yours:     [101.]\n"
                       "  reference: [100.]"),
    (np.arange(7.0) + 1.23456, np.arange(7.0),
     "wrong value: max |yours - reference| = 1.23 (relative 2.1e-01).\n"
     "  yours:     [1.2346, 2.2346, 3.2346, 4.2346, 5.2346, 6.2346] … (7 values)\n"
     "  reference: [0., 1., 2., 3., 4., 5.] … (7 values)"),
    (np.arange(6.0) + 1, np.arange(6.0),
     "wrong value: max |yours - reference| = 1 (relative 2.0e-01).\n"
     "  yours:     [1., 2., 3., 4., 5., 6.]\n  reference: [0., 1., 2., 3., 4., 5.]"),
])
def test_generic_message_in_full(mine, want, message):
    assert generic_message((np.asarray(mine, dtype=float),), (np.asarray(want, dtype=float),)) == message


def test_check_value_edges(capsys):
    check_value("close", 1.0 + 1e-7, 1.0)
    check_value("word", "a", "a")
    check_value("absolute", 0.05, 0.0, atol=0.1)
    check_value("relative", 105.0, 100.0, atol=0.0, rtol=0.1)
    assert capsys.readouterr().out == ("✓ close: 1/1 cases match the reference (max |diff| 1.0e-07)\n"
                                       "✓ word: 1/1 cases match the reference (exact)\n"
                                       "✓ absolute: 1/1 cases match the reference (max |diff| 5.0e-02)\n"
                                       "✓ relative: 1/1 cases match the reference (max |diff| 5.0e+00)\n")
    assert failure(lambda: check_value("m", 0.05, 1.0, [("near zero", 0.0)], atol=0.1)) == "✗ m: near zero"
    assert failure(lambda: check_value("m", 105.0, 1.0, [("near 100", 100.0)], atol=0.0, rtol=0.1)) == (
        "✗ m: near 100")
    assert failure(lambda: check_value("w", "a", 1.0)) == "✗ w: got 'a', expected 1.0"
    assert failure(lambda: check_value("p", (1.0, torch.zeros(2)), (1.0, torch.zeros(3)))) == (
        "✗ p: wrong shape: got (2,), expected (3,). Check the dimensions you reduce over.")
    assert failure(lambda: check_value("p", (1.0, torch.zeros(2)), 2.0)) == (
        "✗ p: wrong value: max |yours - reference| = inf.\n  yours:     [1.]; [0., 0.]\n"
        "  reference: [2.]")
    assert not values_close({1.0}, 1.0)
    assert max_abs_diff((1.0, 2.0), (1.0, 2.5)) == 0.5


def test_check_function_passes_names_and_tolerances():
    one = [Case((torch.tensor([10.0]),))]
    check_function("atol", lambda x: x + 0.4, lambda x: x.clone(), one, atol=0.5, rtol=0.0)
    check_function("rtol", lambda x: x * 1.05, lambda x: x.clone(), one, atol=0.0, rtol=0.1)
    message = failure(lambda: check_function("names", lambda *a: a[0].add_(1), lambda x: x + 1, one,
                                             arg_names=("values",)))
    assert message.startswith("✗ names: your function modified its argument `values` in place")
    assert failure(lambda: check_function("tight", lambda x: x + 0.4, lambda x: x.clone(), one, atol=0.3,
                                          rtol=0.0)).startswith("✗ tight: wrong value: max |yours - reference| = 0.4")


def test_param_names_fall_back_in_order():
    assert _param_names(lambda a, b: 0, ("x", "y"), 2) == ["a", "b"]
    assert _param_names(lambda *a: 0, ("x", "y"), 2) == ["x", "y"]
    assert _param_names(lambda *a: 0, ("x",), 2) == ["argument 1", "argument 2"]
    assert _param_names(torch.exp, ("x",), 1) == ["x"]  # a builtin has no readable signature
    assert _param_names(torch.exp, (), 3) == ["argument 1", "argument 2", "argument 3"]


def test_the_checks_own_bugs_name_the_check_and_the_cause():
    one = [Case((torch.ones(2),))]
    cases = [
        (lambda x: torch.tensor([1j]), TensorResult(), "TypeError: complex tensor"),
        (lambda x: True, TensorResult(), "TypeError: not a real number: bool"),
        (lambda x: np.array(["a"]), TensorResult(), "TypeError: not real numbers: dtype <U1"),
        (lambda x: 1.5, PAIR, "TypeError: expected a tuple of 2, got a Python float"),
    ]
    for reference, returns, cause in cases:
        with pytest.raises(RuntimeError) as exc:
            Check("own", reference, one, returns=returns).run(lambda x: x)
        assert str(exc.value) == ("own: internal error in the self-check while reading the reference — this is a "
                                  f"bug in aigc_course, not in your answer: {cause}")
    with pytest.raises(RuntimeError) as exc:
        Check("own", lambda x: 1 / 0, one).run(lambda x: x)
    assert str(exc.value).startswith("own: internal error in the self-check while computing the reference — ")
    assert TensorResult().parts(torch.ones(2, dtype=torch.float32))[0].dtype == np.float64
    with pytest.raises(TypeError) as exc:
        check_function("own", 3, ref_mean, CASES)
    assert str(exc.value) == "own: pass your function itself (without calling it), got int"


class _ReadsAnything(TensorResult):
    def problem(self, got, want):
        return None


def test_every_failure_names_the_case_and_its_note():
    noted = [Case((torch.arange(3.0),), label="three", note="watch out")]
    tail = "\n  (seen on case 1/1: three)\n  Note on this case: watch out"
    ident = Check("id", lambda x: x.clone(), noted)
    assert failure(lambda: ident.run(lambda x: x.add_(1))) == "✗ id: " + in_place_hint("x") + tail
    assert failure(lambda: ident.run(lambda x: x.numpy())) == (
        "✗ id: you returned a NumPy array of shape (3,); " + _TENSOR_HINT + "." + tail)
    assert failure(lambda: ident.run(lambda x: x)) == "✗ id: " + alias_hint("x") + tail
    lenient = Check("id", lambda x: x.clone(), noted, returns=_ReadsAnything())
    assert failure(lambda: lenient.run(lambda x: "text")) == (
        "✗ id: could not read your result as numbers (not real numbers: dtype <U4); " + _TENSOR_HINT + "." + tail)


def test_keyword_arguments_reach_the_student_the_reference_and_the_mistakes():
    def scale(x, *, factor):
        return x * factor

    seen = []
    mistakes = [Mistake("never", lambda x, factor: x * factor * 7),
                Mistake("added instead", lambda x, factor: x + factor),
                Mistake("by symptom", symptom=lambda mine, want, x, factor: seen.append(factor) or True)]
    check = Check("kw", scale, [Case((torch.ones(2),), {"factor": torch.tensor(3.0)})], mistakes)
    check.run(lambda x, factor: x * factor)
    assert failure(lambda: check.run(lambda x, factor: x + factor)).startswith("✗ kw: added instead\n")
    assert failure(lambda: check.run(lambda x, factor: x - factor)).startswith("✗ kw: by symptom\n")
    assert float(seen[0]) == 3.0
    assert check.case_list()[0].describe() == "([1.0, 1.0], factor=3.0)"


def test_mistakes_are_diagnosed_even_when_numpy_raises_on_floating_point_errors():
    check = Check("log", lambda x: torch.from_numpy(x.copy()), [Case((np.array([0.0, 1.0]),))],
                  [Mistake("took the log", lambda x: torch.from_numpy(np.log(x)))])
    def student(x):  # log, with log 0 = -inf written out
        return torch.from_numpy(np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), -np.inf))

    with np.errstate(all="raise"):
        assert failure(lambda: check.run(student)).startswith(
            "✗ log: took the log\n")


def test_changes_inside_containers_are_found():
    t = torch.tensor([1.0, math.nan])
    cases = [
        (np.array([1.0, math.nan]), np.array([1.0, 0.0])),  # a NaN overwritten
        (np.array([1, 2]), np.array([1, 3])),
        ({"w": torch.ones(1)}, {"w": torch.zeros(1)}),
        ({"w": torch.ones(1)}, {"v": torch.ones(1)}),
        ([torch.ones(1)], [3.0]),  # a tensor replaced by a number
        ([{"w": 1}], [3.0]),  # a dict replaced by a number
        ([torch.ones(1)], (torch.ones(1),)),
        (t.clone(), torch.tensor([1.0, 0.0])),
    ]
    for before, after in cases:
        assert modified_argument(((after,), {}), ((before,), {}), ["a"]) == "a", (before, after)
    for same in (np.array([1.0, math.nan]), np.array([1, 2]), {"w": t.clone()}, [t.clone(), 2],
                 torch.tensor([1, 2]), "text"):
        assert modified_argument(((same,), {}), ((_clone(same),), {}), ["a"]) is None, same
    assert _clone({"w": t})["w"] is not t and _identical(_clone({"w": t})["w"], t)


def test_views_inside_containers_are_found():
    x = torch.arange(6.0)
    assert aliased_argument({"r": x[1:]}, ((x,), {}), ["x"]) == "x"
    assert aliased_argument((x[:0], x[2:]), ((x,), {}), ["x"]) == "x"  # an empty part does not stop the search
    assert aliased_argument(x[1:], ((torch.ones(1),), {"other": x}), ["x"]) == "other"


def test_render_traceback_lists_every_frame_of_the_students_code():
    def helper(X):
        return 1 / X

    def student(x):
        return helper(0)

    with pytest.raises(CheckFailed) as exc:
        MEAN.run(student)
    lines = exc.value._render_traceback_()
    hint = str(exc.value).splitlines()
    assert lines[:len(hint)] == hint
    assert lines[len(hint)] == "Where it happened in your code (most recent call last):"
    frames = [f for f in lines[len(hint) + 1:-1] if f.strip(" ^~")]  # without 3.11's markers
    assert len(frames) == 4 and frames[0].startswith("  File ") and frames[1] == "    return helper(0)"
    assert frames[2].startswith("  File ") and frames[3] == "    return 1 / X"
    assert lines[-1] == "ZeroDivisionError: division by zero"

    def noted(x):
        e = ValueError("bad X  ")
        e.add_note("a note")
        raise e

    with pytest.raises(CheckFailed) as exc:
        MEAN.run(noted)
    assert exc.value._render_traceback_()[-2:] == ["ValueError: bad X  ", "a note"]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"reference": 3}, TypeError, "Check 'x': reference must be callable, got int"),
    ({"atol": -1.0}, ValueError, "Check 'x': atol must be a finite number >= 0, got -1.0"),
    ({"rtol": math.nan}, ValueError, "Check 'x': rtol must be a finite number >= 0, got nan"),
    ({"atol": True}, ValueError, "Check 'x': atol must be a finite number >= 0, got True"),
])
def test_a_check_refuses_bad_settings(kwargs, error, message):
    with pytest.raises(error) as exc:
        Check(**{"name": "x", "reference": abs, "cases": [], **kwargs})
    assert str(exc.value) == message


@pytest.mark.parametrize("kwargs, error, message", [
    ({"mistakes": ["a hint"]}, TypeError, "check_value 'v': mistakes must be (hint, wrong_value) pairs, got 'a hint'"),
    ({"mistakes": [(1.0, "hint")]}, TypeError,
     "check_value 'v': mistakes must be (hint, wrong_value) pairs, got (1.0, 'hint')"),
    ({"rtol": -1e-3}, ValueError, "check_value 'v': rtol must be a finite number >= 0, got -0.001"),
])
def test_check_value_refuses_bad_settings(kwargs, error, message):
    with pytest.raises(error) as exc:
        check_value("v", 1.0, 1.0, **kwargs)
    assert str(exc.value) == message
