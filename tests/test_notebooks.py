"""Static checks over the course notebooks (nbval executes them separately)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest

import aigc_course

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*_solutions.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("[0-9][0-9]_*_exercises.ipynb"))
ALL = LESSONS + SOLUTIONS + EXERCISES
HEADER_ROWS = ("Objectives", "Prerequisites", "Expected time", "GPU")


def _nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def test_there_are_lessons_and_solutions():
    assert LESSONS, "no lessons in notebooks/"
    lesson_keys = {p.stem for p in LESSONS}
    solution_keys = {p.stem.removesuffix("_solutions") for p in SOLUTIONS}
    assert solution_keys <= lesson_keys, f"solutions without a lesson: {solution_keys - lesson_keys}"
    assert lesson_keys == solution_keys, f"lessons without solutions: {lesson_keys - solution_keys}"


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_outputs_are_stripped(path):
    nb = _nb(path)
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name} cell {i} has stored outputs (run `make strip`)"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has an execution count"
        assert "execution" not in cell.get("metadata", {}), f"{path.name} cell {i} keeps execution metadata"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name} keeps widget state"


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=_ids(LESSONS + SOLUTIONS))
def test_header_and_setup_cell(path):
    cells = _nb(path)["cells"]
    head = _source(cells[0])
    assert cells[0]["cell_type"] == "markdown" and re.match(r"# Lesson \d\d — ", head), (
        f"{path.name}: first cell must start with '# Lesson NN — Title'")
    assert head.startswith(f"# Lesson {path.name[:2]} — "), f"{path.name}: lesson number in title differs"
    for row in HEADER_ROWS:
        assert f"**{row}**" in head, f"{path.name}: header table lacks the {row} row"
    assert re.search(r"fast[^|\n]*\d+\s*s", head) and re.search(r"full[^|\n]*\d+\s*(s|min)\b", head), (
        f"{path.name}: Expected time must give fast-mode and full-mode times")
    setup = _source(cells[1])
    assert cells[1]["cell_type"] == "code" and "setup_lesson(" in setup, (
        f"{path.name}: second cell must call aigc_course.notebook.setup_lesson")


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=_ids(LESSONS + SOLUTIONS))
def test_no_environment_access_and_asserts_present(path):
    code = "\n".join(_source(c) for c in _nb(path)["cells"] if c["cell_type"] == "code")
    assert "os.environ" not in code and "getenv" not in code, (
        f"{path.name} reads the environment; use aigc_course.config (fast_mode, scale)")
    if path in LESSONS:
        assert len(re.findall(r"^\s*assert ", code, re.M)) >= 5, f"{path.name}: claims need assert checks"


def _package_public_names() -> set[str]:
    names: set[str] = set()
    for mod in pkgutil.walk_packages(aigc_course.__path__, "aigc_course."):
        if mod.name.endswith("__main__"):
            continue
        m = importlib.import_module(mod.name)
        names |= {n for n, v in vars(m).items() if not n.startswith("_") and getattr(v, "__module__", "")
                  .startswith("aigc_course") and callable(v)}
    return names


@pytest.mark.parametrize("path", LESSONS, ids=_ids(LESSONS))
def test_lessons_do_not_redefine_package_code(path):
    """Notebooks import models, losses and loops from aigc_course; they never define them again."""
    public = _package_public_names()
    code = "\n".join(_source(c) for c in _nb(path)["cells"] if c["cell_type"] == "code")
    defined = set(re.findall(r"^\s*(?:def|class)\s+([A-Za-z_]\w*)", code, re.M))
    assert not defined & public, f"{path.name} re-defines package code: {sorted(defined & public)}"
    assert not re.search(r"^\s*class\s+\w+\(\s*(nn\.)?Module\s*\)", code, re.M), (
        f"{path.name} defines an nn.Module; models belong in the package")


@pytest.mark.parametrize("path", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_every_exercise_is_self_checked(path):
    cells = _nb(path)["cells"]
    regions = 0
    for i, cell in enumerate(cells):
        src = _source(cell)
        if cell["cell_type"] == "code" and "### BEGIN SOLUTION" in src:
            regions += 1
            after = src.split("### END SOLUTION")[-1] + (_source(cells[i + 1]) if i + 1 < len(cells) else "")
            assert re.search(r"\bcheck_\w+\(", after), (
                f"{path.name} cell {i}: an exercise must end with a self-check from aigc_course.checks")
    assert regions >= 3, f"{path.name}: needs at least 3 exercises, found {regions}"


def test_exercises_in_sync_with_solutions():
    from aigc_course.exercises import generate_exercises

    stale = generate_exercises(ROOT / "solutions", ROOT / "exercises", check=True)
    assert not stale, f"exercises/ is out of date for {stale}: run `make exercises`"


@pytest.mark.parametrize("path", EXERCISES, ids=_ids(EXERCISES))
def test_exercises_hide_the_solutions(path):
    text = path.read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    assert "raise NotImplementedError" in text


@pytest.mark.parametrize("path", EXERCISES, ids=_ids(EXERCISES))
def test_a_fresh_exercise_notebook_fails_only_at_its_stubs(path, monkeypatch):
    """Run all on the notebook a student starts from: every stub's self-check says "not implemented yet",
    cells that use a stub fail only through it, and everything else runs."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("AIGC_FAST", "1")
    monkeypatch.setenv("AIGC_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    code = [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    errors = {i: next((o for o in cell.outputs if o.output_type == "error"), None) for i, cell in code}
    for i, err in errors.items():
        assert err is None or err.ename in ("NotImplementedError", "CheckFailed"), (
            f"{path.name} cell {i} fails for a reason other than an unfinished exercise: {err.ename}: {err.evalue}")
    stubs = [k for k, (_, cell) in enumerate(code) if "raise NotImplementedError" in cell.source]
    for k in stubs:  # the self-check sits in the stub's cell or in the next code cell
        reports = [errors[i] for i, cell in code[k:k + 2] if re.search(r"\bcheck_\w+\(", cell.source)]
        assert reports and reports[0] is not None and reports[0].ename == "CheckFailed" \
            and "not implemented yet" in reports[0].evalue, (
                f"{path.name} cell {code[k][0]}: the stub's self-check must report 'not implemented yet'")
    assert len(stubs) >= 3


def test_readme_lists_every_lesson():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for p in LESSONS:
        assert p.name in readme, f"README's lesson table lacks {p.name}"


def test_every_check_rejects_a_planted_wrong_answer():
    """Each self-check has a test that feeds it a wrong answer and expects CheckFailed."""
    import aigc_course.checks as checks

    tests_text = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_checks*.py"))
    names = [n for n in checks.__all__ if n.startswith("check_") and n not in ("check_function", "check_value")]
    assert names, "no self-checks found"
    for name in names:
        assert re.search(rf"\b{name}\b", tests_text), f"{name} has no test"
    assert tests_text.count("pytest.raises(CheckFailed") >= len(names)


def test_nbval_over_xdist_without_loadscope_is_refused() -> None:
    """Cells of one notebook share a kernel; spread over workers they fail with confusing NameErrors."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--nbval-lax", "--co", "-q",
           "notebooks/00_welcome_aigc_pipeline.ipynb"]
    refused = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR, refused.stdout + refused.stderr
    assert "--dist loadscope" in refused.stderr
    allowed = subprocess.run([*cmd[:-1], "--dist", "loadscope", cmd[-1]], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
