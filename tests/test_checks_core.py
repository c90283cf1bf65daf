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
from aigc_course.checks._core import aliased_argument, modified_argument


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
