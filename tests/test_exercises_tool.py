"""The exercise generator: solutions notebooks with nbgrader markers → student notebooks."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from aigc_course.exercises import (
    exercise_name,
    generate_exercises,
    make_exercise_notebook,
    repo_root,
)

HEADER = (
    "# Lesson 01 — Exercises: divergences\n\n| | |\n|---|---|\n| **Objectives** | practise |\n"
    "| **Expected time** | fast mode ≈ 5 s · full mode ≈ 1 min |"
)
SETUP = "from aigc_course.notebook import setup_lesson\n\ndevice = setup_lesson(seed=0)"
KL_CELL = '''def forward_kl(p, q):
    """KL(p || q) for probability vectors of shape (K,)."""
    ### BEGIN SOLUTION
    ratio = p / q
    return (p * ratio.log()).sum()
    ### END SOLUTION

check_forward_kl(forward_kl)'''


def region(code: str) -> str:
    """``code`` wrapped in solution markers."""
    return f"### BEGIN SOLUTION\n{code}\n### END SOLUTION"


def _nb(*cells, **metadata) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_markdown_cell(HEADER), new_code_cell(SETUP), *cells])
    nb.metadata.update(metadata)
    return nb


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _compile_all(nb, name="generated") -> None:
    for i, src in enumerate(_code(nb)):
        if src.lstrip().startswith(("%", "!")):
            continue  # IPython magics / shell lines are not Python
        compile(src, f"{name}[{i}]", "exec")


def test_indented_region_inside_a_function_becomes_a_stub():
    nb = _nb(new_markdown_cell("### Exercise 1.2 — forward KL\n\nImplement $\\sum_k p_k \\log(p_k/q_k)$."),
             new_code_cell(KL_CELL))
    out = make_exercise_notebook(nb, "01_divergences_solutions.ipynb")
    src = out.cells[-1].source
    assert src == ('def forward_kl(p, q):\n    """KL(p || q) for probability vectors of shape (K,)."""\n'
                   "    # YOUR CODE HERE\n"
                   '    raise NotImplementedError("Exercise 1.2: replace this line with your code")\n\n'
                   "check_forward_kl(forward_kl)")
    assert "ratio" not in src and "SOLUTION" not in src
    _compile_all(out)
    namespace: dict = {"check_forward_kl": lambda fn: None}
    exec(compile(src, "stub", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="Exercise 1.2"):
        namespace["forward_kl"](1.0, 1.0)


def test_source_notebook_is_not_modified():
    nb = _nb(new_code_cell(KL_CELL))
    before = nbformat.writes(nb)
    make_exercise_notebook(nb, "01_divergences_solutions.ipynb")
    assert nbformat.writes(nb) == before


def test_several_regions_in_one_cell_each_get_a_stub_at_their_indentation():
    src = ("import torch\n### BEGIN SOLUTION\nx = torch.ones(3)\n### END SOLUTION\n\n"
           "def f(x):\n    if x.sum() > 0:\n        ### BEGIN SOLUTION\n        return x * 2\n"
           "        ### END SOLUTION\n    return x\n")
    out = make_exercise_notebook(_nb(new_markdown_cell("## Exercise 3.4: two parts"), new_code_cell(src)),
                                 "03_x_solutions.ipynb")
    lines = out.cells[-1].source.splitlines()
    assert lines == [
        "import torch",
        "# YOUR CODE HERE",
        'raise NotImplementedError("Exercise 3.4: replace this line with your code")',
        "",
        "def f(x):",
        "    if x.sum() > 0:",
        "        # YOUR CODE HERE",
        '        raise NotImplementedError("Exercise 3.4: replace this line with your code")',
        "    return x",
    ]
    _compile_all(out)


def test_exercise_number_comes_from_the_nearest_preceding_heading():
    nb = _nb(
        new_markdown_cell("### Exercise 1.1 — first\ntext"),
        new_code_cell("### BEGIN SOLUTION\na = 1\n### END SOLUTION"),
        new_markdown_cell("Some prose.\n\n### Exercise 1.7 — later one"),
        new_code_cell("### BEGIN SOLUTION\nb = 2\n### END SOLUTION"),
        new_markdown_cell("#### A hint for it"),  # not an exercise heading: 1.7 still applies
        new_code_cell("### BEGIN SOLUTION\nc = 3\n### END SOLUTION"),
    )
    out = make_exercise_notebook(nb, "01_divergences_solutions.ipynb")
    stubs = [s for s in _code(out) if "NotImplementedError" in s]
    labels = [s.split('NotImplementedError("')[1].split(":")[0] for s in stubs]
    assert labels == ["Exercise 1.1", "Exercise 1.7", "Exercise 1.7"]


def test_without_headings_the_number_is_lesson_and_running_count():
    nb = _nb(new_code_cell(region("a = 1")), new_code_cell(region("b = 1") + "\n" + region("c = 1")))
    out = make_exercise_notebook(nb, "04_vae_solutions.ipynb")
    text = "\n".join(_code(out))
    assert [f"Exercise 4.{k}:" in text for k in (1, 2, 3)] == [True, True, True]
    assert "Exercise 4.4" not in text


def test_lesson_number_falls_back_to_the_title_when_the_name_has_none():
    out = make_exercise_notebook(_nb(new_code_cell(region("a = 1"))), "scratch.ipynb")
    assert 'NotImplementedError("Exercise 1.1:' in _code(out)[-1]


def test_markdown_regions_and_hidden_tests():
    nb = _nb(
        new_markdown_cell("### Exercise 1.3 — explain\n\nWhy is KL asymmetric?\n\n### BEGIN SOLUTION\n"
                          "Because the log ratio is weighted by p.\n### END SOLUTION\n"),
        new_code_cell("check(f)\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS"),
        new_code_cell("### BEGIN HIDDEN TESTS\nassert secret()\n### END HIDDEN TESTS"),
        new_code_cell("### BEGIN SOLUTION\nf = 1\n### END SOLUTION"),
    )
    out = make_exercise_notebook(nb, "01_divergences_solutions.ipynb")
    md = out.cells[3].source
    assert md == "### Exercise 1.3 — explain\n\nWhy is KL asymmetric?\n\n_Your answer here._\n"
    text = nbformat.writes(out)
    assert "weighted by p" not in text and "f(2) == 4" not in text and "secret" not in text
    assert "HIDDEN" not in text and "SOLUTION" not in text
    assert out.cells[4].source == "check(f)"
    assert len(out.cells) == len(nb.cells)  # + note cell − the cell that held only hidden tests


def test_note_cell_follows_the_header_and_metadata_is_cleaned():
    cell = new_code_cell(KL_CELL, execution_count=7, outputs=[new_output("stream", text="hi\n")])
    cell.metadata.update({"execution": {"iopub.status.busy": "2024"}, "ExecuteTime": {"a": 1},
                          "collapsed": False, "tags": ["keep-me"]})
    nb = _nb(new_markdown_cell("### Exercise 1.1"), cell,
             widgets={"application/vnd.jupyter.widget-state+json": {}}, authors=["x"],
             kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"},
             language_info={"name": "python"})
    out = make_exercise_notebook(nb, "01_divergences_solutions.ipynb")
    assert out.cells[0].source == HEADER
    assert out.cells[1].cell_type == "markdown"
    assert "solutions/01_divergences_solutions.ipynb" in out.cells[1].source
    assert "`aigc-course make-exercises`" in out.cells[1].source
    assert set(out.metadata) == {"kernelspec", "language_info"}
    code = out.cells[-1]
    assert code.outputs == [] and code.execution_count is None
    assert dict(code.metadata) == {"tags": ["keep-me"]}
    assert [c.id for c in out.cells] == [str(i) for i in range(len(out.cells))]  # what nbstripout writes
    nbformat.validate(out)


def test_magic_cells_are_kept_and_stubs_still_compile():
    nb = _nb(new_code_cell("%matplotlib inline"),
             new_code_cell("for i in range(3):\n    ### BEGIN SOLUTION\n    print(i)\n    ### END SOLUTION"))
    out = make_exercise_notebook(nb, "02_x_solutions.ipynb")
    assert _code(out)[1] == "%matplotlib inline"
    _compile_all(out)


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### END SOLUTION", "nested"),
    ("x = 1\n### END SOLUTION", "without a matching"),
    ("### BEGIN SOLUTION\nx = 1\n### END HIDDEN TESTS", "closes the"),
    ("### BEGIN HIDDEN TESTS\n### BEGIN SOLUTION\nx\n### END SOLUTION\n### END HIDDEN TESTS", "nested"),
    ("## BEGIN SOLUTION\nx = 1\n## END SOLUTION", "looks like an exercise marker"),
])
def test_unbalanced_markers_name_the_file_and_cell(source, problem):
    nb = _nb(new_code_cell("### BEGIN SOLUTION\nok = 1\n### END SOLUTION"), new_code_cell(source))
    with pytest.raises(ValueError, match=problem) as info:
        make_exercise_notebook(nb, "05_gan_solutions.ipynb")
    assert "05_gan_solutions.ipynb" in str(info.value) and "cell 3" in str(info.value)


def test_a_notebook_without_solution_regions_is_rejected():
    nb = _nb(new_code_cell("x = 1\n### BEGIN HIDDEN TESTS\nassert x\n### END HIDDEN TESTS"))
    with pytest.raises(ValueError, match="06_x_solutions.ipynb: no '### BEGIN SOLUTION'"):
        make_exercise_notebook(nb, "06_x_solutions.ipynb")


def test_bad_arguments():
    with pytest.raises(TypeError, match="nb must be"):
        make_exercise_notebook(["not", "a", "notebook"], "01_x_solutions.ipynb")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="lesson"):
        make_exercise_notebook(_nb(), 1)  # type: ignore[arg-type]
    nb = _nb(new_code_cell("### BEGIN SOLUTION\nx\n### END SOLUTION"))
    nb.nbformat = 3
    with pytest.raises(ValueError, match="nbformat v4"):
        make_exercise_notebook(nb, "01_x_solutions.ipynb")
    with pytest.raises(ValueError, match="NN_topic_solutions.ipynb"):
        exercise_name("01_x.ipynb")
    assert exercise_name("12_flow_matching_solutions.ipynb") == "12_flow_matching_exercises.ipynb"


# --------------------------------------------------------------------------------------- generate_exercises


def _write(path, *cells):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(_nb(*cells), path)


def _course(tmp_path):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    _write(sol / "01_divergences_solutions.ipynb", new_markdown_cell("### Exercise 1.1 — KL"),
           new_code_cell(KL_CELL))
    _write(sol / "02_ngram_solutions.ipynb", new_code_cell(region("n = 3")))
    return sol, ex


def test_generate_writes_one_exercise_per_solution_and_reruns_are_byte_identical(tmp_path):
    sol, ex = _course(tmp_path)
    written = generate_exercises(sol, ex)
    assert [p.name for p in written] == ["01_divergences_exercises.ipynb", "02_ngram_exercises.ipynb"]
    first = {p.name: p.read_bytes() for p in written}
    assert all(b.endswith(b"}\n") and b.startswith(b'{\n "cells": [\n  {\n') for b in first.values())
    mtimes = {p.name: p.stat().st_mtime_ns for p in written}

    assert generate_exercises(sol, ex) == []  # nothing changed, nothing rewritten
    assert {p.name: p.read_bytes() for p in ex.iterdir()} == first
    assert {p.name: p.stat().st_mtime_ns for p in ex.iterdir()} == mtimes
    assert generate_exercises(sol, ex, check=True) == []

    nb = nbformat.read(ex / "02_ngram_exercises.ipynb", as_version=4)
    stub = 'raise NotImplementedError("Exercise 2.1: replace this line with your code")'
    assert stub in nb.cells[-1].source
    _compile_all(nb)


def test_generated_files_are_a_fixed_point_of_nbstripout(tmp_path):
    """`make strip` and the nbstripout git filter must not make exercises/ look stale."""
    pytest.importorskip("nbstripout")
    sol, ex = _course(tmp_path)
    nb = nbformat.read(sol / "01_divergences_solutions.ipynb", as_version=4)
    nb.cells[-1].metadata.update({"collapsed": True, "scrolled": False, "tags": ["kept"]})
    nbformat.write(nb, sol / "01_divergences_solutions.ipynb")
    generated = {p.name: p.read_bytes() for p in generate_exercises(sol, ex)}
    subprocess.run([sys.executable, "-m", "nbstripout", *sorted(ex.glob("*.ipynb"))], check=True, timeout=120)
    assert {p.name: p.read_bytes() for p in ex.iterdir()} == generated
    assert generate_exercises(sol, ex, check=True) == []


def test_check_reports_stale_missing_and_extra_files_and_writes_nothing(tmp_path):
    sol, ex = _course(tmp_path)
    generate_exercises(sol, ex)
    _write(sol / "03_vae_solutions.ipynb", new_code_cell(region("z = 0")))  # missing
    stale = ex / "01_divergences_exercises.ipynb"
    stale.write_text(stale.read_text().replace("YOUR CODE HERE", "hand edit"))  # stale
    extra = ex / "09_gone_exercises.ipynb"
    extra.write_bytes(stale.read_bytes())  # its solutions notebook no longer exists
    snapshot = {p.name: p.read_bytes() for p in ex.iterdir()}

    report = generate_exercises(sol, ex, check=True)
    assert sorted(p.name for p in report) == [
        "01_divergences_exercises.ipynb", "03_vae_exercises.ipynb", "09_gone_exercises.ipynb"]
    assert {p.name: p.read_bytes() for p in ex.iterdir()} == snapshot

    changed = generate_exercises(sol, ex)
    assert sorted(p.name for p in changed) == sorted(p.name for p in report)
    assert sorted(p.name for p in ex.iterdir()) == [
        "01_divergences_exercises.ipynb", "02_ngram_exercises.ipynb", "03_vae_exercises.ipynb"]
    assert generate_exercises(sol, ex, check=True) == []


def test_check_on_a_missing_exercises_folder_lists_everything(tmp_path):
    sol, ex = _course(tmp_path)
    assert len(generate_exercises(sol, ex, check=True)) == 2
    assert not ex.exists()


def test_generated_files_have_no_outputs_and_hide_solutions(tmp_path):
    sol, ex = _course(tmp_path)
    nb = nbformat.read(sol / "01_divergences_solutions.ipynb", as_version=4)
    nb.cells[-1].outputs = [new_output("stream", text="tensor(0.1)\n")]
    nb.cells[-1].execution_count = 3
    nbformat.write(nb, sol / "01_divergences_solutions.ipynb")
    generate_exercises(sol, ex)
    text = (ex / "01_divergences_exercises.ipynb").read_text(encoding="utf-8")
    assert "tensor(0.1)" not in text and "SOLUTION" not in text and "ratio" not in text
    out = nbformat.read(ex / "01_divergences_exercises.ipynb", as_version=4)
    assert all(c.outputs == [] and c.execution_count is None for c in out.cells if c.cell_type == "code")


def test_badly_named_solutions_file_is_rejected_before_writing(tmp_path):
    sol, ex = _course(tmp_path)
    _write(sol / "intro.ipynb", new_code_cell("### BEGIN SOLUTION\nx\n### END SOLUTION"))
    with pytest.raises(ValueError, match="intro.ipynb.*NN_topic_solutions.ipynb"):
        generate_exercises(sol, ex)
    assert not ex.exists()


def test_marker_errors_name_the_file(tmp_path):
    sol, ex = _course(tmp_path)
    _write(sol / "03_bad_solutions.ipynb", new_code_cell("### BEGIN SOLUTION\nx = 1"))
    with pytest.raises(ValueError, match=r"03_bad_solutions.ipynb: cell 2"):
        generate_exercises(sol, ex, check=True)


def test_generate_argument_checks(tmp_path):
    with pytest.raises(ValueError, match="solutions_dir"):
        generate_exercises(tmp_path / "nope", tmp_path / "ex")
    with pytest.raises(TypeError, match="check"):
        generate_exercises(tmp_path, tmp_path / "ex", check="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="solutions_dir"):
        generate_exercises(3, tmp_path)  # type: ignore[arg-type]


def test_repo_root_searches_upwards(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "solutions").mkdir()
    deep = tmp_path / "notebooks" / "a" / "b"
    deep.mkdir(parents=True)
    assert repo_root(deep) == tmp_path.resolve()
    monkeypatch.chdir(deep)
    assert repo_root() == tmp_path.resolve()
    lonely = tmp_path.parent / f"{tmp_path.name}-lonely"
    lonely.mkdir()
    (lonely / "notebooks").mkdir()  # no solutions/ next to it
    with pytest.raises(FileNotFoundError, match="notebooks/ and solutions/"):
        repo_root(lonely)
