import math

import pytest
import torch

from aigc_course.checks import Case, CheckFailed, Mistake, check_function, check_value, max_abs_diff


def ref_mean(x):
    return x.mean(dim=-1)


CASES = [
    Case((torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]]),)),
    Case((torch.arange(4.0),), label="arange"),
]
MISTAKES = [Mistake("you summed instead of averaging", lambda x: x.sum(dim=-1))]


def test_pass_prints_tick(capsys):
    check_function("mean", ref_mean, ref_mean, CASES, MISTAKES)
    assert "✓ mean: 2/2 cases match the reference (exact)" in capsys.readouterr().out


def test_planted_mistake_gets_targeted_hint():
    with pytest.raises(CheckFailed, match="summed instead of averaging"):
        check_function("mean", lambda x: x.sum(dim=-1), ref_mean, CASES, MISTAKES)


def test_generic_messages():
    with pytest.raises(CheckFailed, match="wrong shape"):
        check_function("mean", lambda x: x.mean(dim=0), ref_mean, CASES[:1])
    with pytest.raises(CheckFailed, match="returned None"):
        check_function("mean", lambda x: None, ref_mean, CASES)
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_function("mean", lambda x: (_ for _ in ()).throw(NotImplementedError("Exercise 1.1")), ref_mean,
                       CASES)
    with pytest.raises(CheckFailed, match="raised ZeroDivisionError"):
        check_function("mean", lambda x: 1 / 0, ref_mean, CASES)
    with pytest.raises(CheckFailed, match="NaN"):
        check_function("mean", lambda x: x.mean(-1) * math.nan, ref_mean, CASES)
    with pytest.raises(CheckFailed, match="close but not within tolerance"):
        check_function("mean", lambda x: x.mean(-1) * 1.001, ref_mean, CASES)


def test_in_place_edit_of_input_cannot_fool_the_check():
    def sneaky(x):
        x.zero_()
        return x.mean(-1)

    with pytest.raises(CheckFailed):
        check_function("mean", sneaky, ref_mean, CASES)


def test_check_value(capsys):
    check_value("answer", 0.5, 0.5)
    assert "✓ answer" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="n-1"):
        check_value("variance", 2.0, 1.5, mistakes=[("you divided by n-1", 2.0)])
    with pytest.raises(CheckFailed, match="forget to `return`"):
        check_value("answer", None, 1.0)


def test_bad_arguments():
    with pytest.raises(TypeError, match="expected your function"):
        check_function("mean", 3, ref_mean, CASES)
    with pytest.raises(ValueError, match="cases must not be empty"):
        check_function("mean", ref_mean, ref_mean, [])


def test_max_abs_diff():
    assert max_abs_diff(torch.ones(2), torch.zeros(2)) == 1.0
    assert max_abs_diff(torch.ones(2), torch.ones(3)) == math.inf
