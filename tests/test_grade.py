"""`aigc-course grade`: scores, hints, timeouts, kernel crashes, isolation, CSV and exit codes.

Fixture notebooks are built from lesson 01's real exercises notebook, with stubs replaced by the answers in
solutions/01 (or by wrong, looping, crashing or vandalising code). All fast-mode notebooks are graded once per
module (one kernel each); the solutions of every lesson are graded in the slow test.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from aigc_course import grade as g
from aigc_course.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXERCISES_01 = ROOT / "exercises" / "01_generative_modeling_basics_exercises.ipynb"
SOLUTIONS_01 = ROOT / "solutions" / "01_generative_modeling_basics_solutions.ipynb"
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*_solutions.ipynb"))
LABELS = ["1.1", "1.2", "1.3", "1.4"]
TIMEOUT = 60  # per cell, for the lesson-01 notebooks: generous, since `import torch` is slow on a busy machine
WRONG_KL = "def kl(p, q):\n    return (q * (q / p).log()).sum(-1)\n\n\ncheck_discrete_kl(kl)\n"


def _nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _answers() -> dict[str, str]:
    """Exercise label → the solution cell of solutions/01 without its markers."""
    cells = _nb(SOLUTIONS_01)["cells"]
    out = {}
    for index, label, _ in g.exercise_cells(cells):
        src = "".join(cells[index]["source"])
        out[label] = "".join(line for line in src.splitlines(keepends=True) if "### " not in line)
    return out


def _variant(cells: dict[str, str]) -> dict:
    """Lesson 01's exercises notebook with the given exercise cells' sources replaced."""
    nb = copy.deepcopy(_nb(EXERCISES_01))
    for index, label, _ in g.exercise_cells(nb["cells"]):
        if label in cells:
            nb["cells"][index]["source"] = cells[label]
    return nb


def _expected_hint(source: str) -> str:
    """The hint the self-check gives for ``source``, run here, without the leading ✗."""
    from aigc_course.checks import CheckFailed

    namespace: dict = {}
    exec("import torch\nfrom aigc_course.checks import *\n", namespace)
    with pytest.raises(CheckFailed) as caught:
        exec(source, namespace)
    return str(caught.value).lstrip("✗").strip()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade four submissions in one `aigc-course grade` call, in a course-like folder next to solutions/."""
    course = tmp_path_factory.mktemp("course")
    (course / "solutions").mkdir()
    shutil.copy(SOLUTIONS_01, course / "solutions" / SOLUTIONS_01.name)
    folder = course / "submissions"
    folder.mkdir()
    (folder / "data.txt").write_text("keep me\n", encoding="utf-8")
    answers = _answers()
    shutil.copy(EXERCISES_01, folder / "unfinished.ipynb")
    mixed = _variant({"1.1": answers["1.1"],
                      "1.2": answers["1.2"],
                      "1.3": "import os\nos._exit(3)\ncheck_js_divergence(None)\n",
                      "1.4": answers["1.4"]})
    vandal = _variant({
        "1.1": WRONG_KL,
        "1.2": "import os, shutil\nfor name in os.listdir('.'):\n"
               "    shutil.rmtree(name) if os.path.isdir(name) else os.remove(name)\n"
               "assert not os.listdir('.')\n" + answers["1.2"],
        "1.3": f"open('../solutions/{SOLUTIONS_01.name}').read()\ncheck_js_divergence(None)\n",
        "1.4": "import ctypes\nctypes.string_at(0)\ncheck_gaussian_mle(None)\n",
    })
    solved = _variant(answers)
    for name, nb in [("mixed", mixed), ("vandal", vandal), ("solved", solved)]:
        (folder / f"{name}.ipynb").write_text(json.dumps(nb, indent=1), encoding="utf-8")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    names = ["unfinished", "mixed", "vandal", "solved"]
    report = course / "grades.csv"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["grade", *(str(folder / f"{n}.ipynb") for n in names), "--csv", str(report),
                     "--timeout", str(TIMEOUT)])
    with report.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    by_notebook = {n: {r[1]: (r[2], r[3]) for r in rows[1:] if r[0] == str(folder / f"{n}.ipynb")}
                   for n in names}
    return {"code": code, "printed": printed.getvalue(), "rows": rows, "results": by_notebook, "folder": folder,
            "before": before}


def test_grading_exits_0_whatever_the_score(graded):
    assert graded["code"] == 0


def test_unfinished_notebook_scores_0_all_not_attempted(graded, capsys):
    assert graded["results"]["unfinished"] == {label: ("not attempted", "") for label in LABELS}


def test_solved_notebook_scores_full_marks_after_the_others(graded):
    assert graded["results"]["solved"] == {label: ("passed", "") for label in LABELS}


def test_wrong_answer_fails_with_the_checks_hint(graded):
    status, hint = graded["results"]["vandal"]["1.1"]
    assert status == "failed"
    assert hint == _expected_hint(WRONG_KL)
    assert hint and "not implemented" not in hint


def test_infinite_loop_times_out_and_later_exercises_are_graded(tmp_path, capsys):
    """A torch-free notebook, so that a 2-second timeout is safe: exercise 7.1 loops, 7.2 still passes."""
    cells = [nbformat.v4.new_code_cell("def check_x(value):\n    assert value == 1, 'expected 1'\n"),
             nbformat.v4.new_markdown_cell("## Exercise 7.1 — loop"),
             nbformat.v4.new_code_cell("def f():\n    while True:\n        pass\n\n\ncheck_x(f())\n"),
             nbformat.v4.new_markdown_cell("## Exercise 7.2 — after the loop"),
             nbformat.v4.new_code_cell("check_x(1)\n"),
             nbformat.v4.new_markdown_cell("## Exercise 7.3 — wrong"),
             nbformat.v4.new_code_cell("check_x(2)\n")]
    path = tmp_path / "loop.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    assert main(["grade", str(path), "--timeout", "2"]) == 0
    assert capsys.readouterr().out == (
        f"{path}\n"
        "  ✗ Exercise 7.1 — loop: timed out after 2 s (an infinite loop?)\n"
        "  ✓ Exercise 7.2 — after the loop\n"
        "  ✗ Exercise 7.3 — wrong: expected 1\n"
        "  score: 1/3\n")


def test_kernel_crash_is_reported_and_the_rest_not_run(graded):
    results = graded["results"]["mixed"]
    assert results["1.3"][0] == "failed" and results["1.3"][1].startswith("the kernel died while running")
    assert results["1.4"] == ("not run", "not run (kernel died)")
    segfault = graded["results"]["vandal"]["1.4"]  # ctypes reading address 0
    assert segfault[0] == "failed" and segfault[1].startswith("the kernel died while running")


def test_reading_the_solutions_fails_inside_the_copy(graded):
    status, hint = graded["results"]["vandal"]["1.3"]
    assert status == "failed"
    assert hint == f"FileNotFoundError: [Errno 2] No such file or directory: '../solutions/{SOLUTIONS_01.name}'"


def test_deleting_files_harms_only_the_copy(graded):
    assert graded["results"]["vandal"]["1.2"] == ("passed", "")  # it did delete everything, then answered
    folder = graded["folder"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == graded["before"]
    assert (folder.parent / "solutions" / SOLUTIONS_01.name).read_bytes() == SOLUTIONS_01.read_bytes()


def test_csv_rows_are_exact(graded):
    rows, folder = graded["rows"], graded["folder"]
    assert rows[0] == ["notebook", "exercise", "status", "hint"]
    assert len(rows) == 1 + 4 * 4
    assert [r[:3] for r in rows[1:]] == [
        [str(folder / f"{n}.ipynb"), label, status]
        for n, statuses in [("unfinished", ["not attempted"] * 4),
                            ("mixed", ["passed", "passed", "failed", "not run"]),
                            ("vandal", ["failed", "passed", "failed", "failed"]),
                            ("solved", ["passed"] * 4)]
        for label, status in zip(LABELS, statuses, strict=True)]
    hints = {(Path(r[0]).stem, r[1]): r[3] for r in rows[1:]}
    assert hints[("vandal", "1.1")] == _expected_hint(WRONG_KL)
    assert hints[("mixed", "1.4")] == "not run (kernel died)"


def test_printed_report(graded):
    folder = graded["folder"]
    blocks = graded["printed"].split(f"{folder}/")
    assert blocks[0] == ""
    assert blocks[1] == (
        "unfinished.ipynb\n"
        "  · Exercise 1.1 — KL divergence between discrete distributions: not attempted\n"
        "  · Exercise 1.2 — The Gaussian KL of a VAE: not attempted\n"
        "  · Exercise 1.3 — Jensen–Shannon divergence: not attempted\n"
        "  · Exercise 1.4 — Maximum-likelihood Gaussian: not attempted\n"
        "  score: 0/4\n")
    mixed = blocks[2].splitlines()
    assert mixed[1:3] == ["  ✓ Exercise 1.1 — KL divergence between discrete distributions",
                          "  ✓ Exercise 1.2 — The Gaussian KL of a VAE"]
    assert mixed[-2:] == ["  · Exercise 1.4 — Maximum-likelihood Gaussian: not run (kernel died)", "  score: 2/4"]
    hint = _expected_hint(WRONG_KL).splitlines()
    vandal = blocks[3].splitlines()
    assert vandal[1] == f"  ✗ Exercise 1.1 — KL divergence between discrete distributions: {hint[0]}"
    assert vandal[2:1 + len(hint)] == [f"      {line}" for line in hint[1:]]
    assert vandal[-1] == "  score: 1/4"
    assert blocks[4].splitlines()[-2:] == ["  score: 4/4", "total: 7/16 in 4 notebooks"]


# ------------------------------------------------------------------------ without a kernel: fast checks


@pytest.mark.parametrize("argv", [["grade"], ["grade", "x.ipynb", "--timeout", "0"],
                                  ["grade", "x.ipynb", "--timeout", "soon"],
                                  ["grade", "x.ipynb", "--csv", "/no/such/folder/g.csv"],
                                  ["grade", "x.ipynb", "--bogus"]])
def test_bad_arguments_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: aigc-course") and "error: " in err


def test_unreadable_notebook_exits_1_and_the_others_are_still_graded(tmp_path, capsys):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json", encoding="utf-8")
    empty = tmp_path / "empty.ipynb"
    empty.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}),
                     encoding="utf-8")
    report = tmp_path / "g.csv"
    assert main(["grade", str(tmp_path / "missing.ipynb"), str(broken), str(empty), "--csv", str(report)]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'missing.ipynb'}\n  error: cannot read the notebook: No such file or directory" in out
    assert f"{broken}\n  error: cannot read the notebook: " in out
    assert f"{empty}\n  score: 0/0" in out
    rows = list(csv.reader(report.open(encoding="utf-8", newline="")))
    assert rows[0] == ["notebook", "exercise", "status", "hint"]
    assert rows[1] == [str(tmp_path / "missing.ipynb"), "", "error",
                       "cannot read the notebook: No such file or directory"]
    assert [r[:3] for r in rows[2:]] == [[str(broken), "", "error"]]


def test_exercise_cells_are_found_by_their_self_check_and_heading():
    cells = _nb(EXERCISES_01)["cells"]
    found = g.exercise_cells(cells)
    assert [label for _, label, _ in found] == LABELS
    assert found[0][2] == "Exercise 1.1 — KL divergence between discrete distributions"
    assert g.exercise_cells([{"cell_type": "code", "source": "from aigc_course.checks import check_x\n"},
                             {"cell_type": "code", "source": "check_x(f)"}]) == [(1, "cell 1", "cell 1")]


def test_a_deleted_exercise_cell_counts_as_failed(tmp_path):
    nb = _nb(EXERCISES_01)
    nb["cells"] = [c for c in nb["cells"] if not re.search(r"\bcheck_\w+\(", "".join(c["source"]))]
    path = tmp_path / "gutted.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    result = g.grade_notebook(path, timeout=5)  # no exercise cell left: no kernel is started
    assert [(e.exercise, e.status, e.hint) for e in result.exercises] == [
        (label, "failed", "no cell calls this exercise's self-check any more") for label in LABELS]
    assert g.format_result(result)[-1] == "  score: 0/4"


@pytest.mark.parametrize("record, expected", [
    ({"status": "ok"}, ("passed", "")),
    ({"status": "error", "ename": "NotImplementedError", "evalue": "Exercise 1.1: replace"},
     ("not attempted", "")),
    ({"status": "error", "ename": "CheckFailed", "evalue": "✗ check_kl: not implemented yet — replace"},
     ("not attempted", "")),
    ({"status": "error", "ename": "CheckFailed", "evalue": "✗ check_kl: sum over the last axis"},
     ("failed", "check_kl: sum over the last axis")),
    ({"status": "error", "ename": "AssertionError", "evalue": ""}, ("failed", "AssertionError")),
    ({"status": "error", "ename": "ValueError", "evalue": "first\nlast line"}, ("failed", "ValueError: last line")),
    ({"status": "timeout"}, ("failed", "timed out after 7 s (an infinite loop?)")),
    (None, ("not run", "not run (the grader stopped before this cell)")),
])
def test_cell_outcomes(record, expected):
    assert g._cell_outcome(record, 7) == expected


def test_grade_notebook_rejects_bad_arguments():
    with pytest.raises(TypeError, match="notebook must be a path, got int"):
        g.grade_notebook(3)
    with pytest.raises(ValueError, match="timeout must be at least 1 second, got 0"):
        g.grade_notebook("x.ipynb", timeout=0)
    with pytest.raises(TypeError, match="timeout must be an int number of seconds, got float"):
        g.grade_notebook("x.ipynb", timeout=1.5)


# ------------------------------------------------------------------------------------------------ slow


@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name[:2] for p in SOLUTIONS])
def test_solutions_notebook_scores_full_marks(path, monkeypatch):
    monkeypatch.setenv("AIGC_FAST", "1")
    monkeypatch.setenv("AIGC_NUM_THREADS", "1")
    result = g.grade_notebook(path, timeout=600)
    expected = [label for _, label, _ in g.exercise_cells(_nb(path)["cells"])]
    assert not result.error
    assert len(expected) >= 3 and [e.exercise for e in result.exercises] == list(dict.fromkeys(expected))
    assert [(e.exercise, e.status, e.hint) for e in result.exercises if e.status != "passed"] == []
    assert re.fullmatch(r"\d+", str(result.score)) and result.score == len(result.exercises)
