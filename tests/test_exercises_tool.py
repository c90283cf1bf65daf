"""The exercise generator: solutions notebooks with nbgrader markers → student notebooks.

Grouped by class: stubs and numbering, the note and metadata, strict markers (property tests: every
near-miss is refused, exact markers are stripped, no answer text ever leaks), marker structure, notebook
validity, reading files, and writing exercises/ (faults included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from aigc_course import exercises as ex_mod
from aigc_course.exercises import (
    METADATA_KEY,
    exercise_name,
    generate_exercises,
    generated_metadata,
    make_exercise_notebook,
    note_text,
    read_solutions,
    render_exercises,
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
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
EXPECTED = ("expected a line holding exactly '### BEGIN SOLUTION', '### END SOLUTION', '### BEGIN HIDDEN "
            "TESTS' or '### END HIDDEN TESTS' (upper case, three '#', one space between words; indented only "
            "in code cells)")
LESSON = "05_gan_solutions.ipynb"
# Methods of test classes: mutmut reruns them on new instances, which is harmless here (no state on self).
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.differing_executors])


def region(code: str) -> str:
    """``code`` wrapped in solution markers."""
    return f"### BEGIN SOLUTION\n{code}\n### END SOLUTION"


def stub(label: str, indent: str = "") -> str:
    return (f"{indent}# YOUR CODE HERE\n"
            f'{indent}raise NotImplementedError("Exercise {label}: replace this line with your code")')


def _nb(*cells, **metadata) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_markdown_cell(HEADER), new_code_cell(SETUP), *cells])
    nb.metadata.update(metadata)
    return nb


def _bare(*cells) -> nbformat.NotebookNode:
    """A notebook of exactly these cells (no header, no setup)."""
    return new_notebook(cells=list(cells))


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _compile_all(nb, name="generated") -> None:
    for i, src in enumerate(_code(nb)):
        if src.lstrip().startswith(("%", "!")):
            continue  # IPython magics / shell lines are not Python
        compile(src, f"{name}[{i}]", "exec")


def where(index: int, cell_type: str, first: str, line: int, lesson: str = LESSON) -> str:
    return f"{lesson}: cell {index} ({cell_type} cell starting {first!r}), line {line}"


def refused(nb, lesson: str = LESSON) -> str:
    with pytest.raises(ValueError) as info:
        make_exercise_notebook(nb, lesson)
    return str(info.value)


# ------------------------------------------------------------------------------------------ stubs, numbering


class TestStubs:
    def test_indented_region_inside_a_function_becomes_a_stub(self):
        nb = _nb(new_markdown_cell("### Exercise 1.2 — forward KL\n\nImplement $\\sum_k p_k \\log(p_k/q_k)$."),
                 new_code_cell(KL_CELL))
        out = make_exercise_notebook(nb, "01_divergences_solutions.ipynb")
        src = out.cells[-1].source
        assert src == ('def forward_kl(p, q):\n    """KL(p || q) for probability vectors of shape (K,)."""\n'
                       f"{stub('1.2', '    ')}\n\ncheck_forward_kl(forward_kl)")
        _compile_all(out)
        namespace: dict = {"check_forward_kl": lambda fn: None}
        exec(compile(src, "stub", "exec"), namespace)
        with pytest.raises(NotImplementedError, match="Exercise 1.2"):
            namespace["forward_kl"](1.0, 1.0)

    def test_source_notebook_is_not_modified(self):
        nb = _nb(new_code_cell(KL_CELL), new_raw_cell("raw text"))
        for cell in nb.cells:  # a 4.4 notebook without ids: validation must not repair the caller's copy
            del cell["id"]
        nb.nbformat_minor = 4
        before = json.dumps(nb, sort_keys=True)
        make_exercise_notebook(nb, "01_divergences_solutions.ipynb")
        assert json.dumps(nb, sort_keys=True) == before

    def test_several_regions_in_one_cell_each_get_a_stub_at_their_indentation(self):
        src = ("import torch\n### BEGIN SOLUTION\nx = torch.ones(3)\n### END SOLUTION\n\n"
               "def f(x):\n    if x.sum() > 0:\n        ### BEGIN SOLUTION\n        return x * 2\n"
               "        ### END SOLUTION\n    return x\n")
        out = make_exercise_notebook(_nb(new_markdown_cell("## Exercise 3.4: two parts"), new_code_cell(src)),
                                     "03_x_solutions.ipynb")
        assert out.cells[-1].source == (f"import torch\n{stub('3.4')}\n\ndef f(x):\n    if x.sum() > 0:\n"
                                        f"{stub('3.4', '        ')}\n    return x\n")
        _compile_all(out)

    def test_tabs_and_trailing_spaces_on_markers_and_crlf_line_ends(self):
        src = "def f():\r\n\t### BEGIN SOLUTION  \r\n\treturn 1\r\n\t### END SOLUTION\t\r\n"
        out = make_exercise_notebook(_bare(new_code_cell(src)), "02_x_solutions.ipynb")
        assert out.cells[1].source == f"def f():\r\n{stub('2.1', chr(9))}\r\n"
        src = "if x:\n \t### BEGIN SOLUTION\n \ty = 1\n \t### END SOLUTION"  # spaces and a tab
        out = make_exercise_notebook(_bare(new_code_cell(src)), "02_x_solutions.ipynb")
        assert out.cells[1].source == "if x:\n" + stub("2.1", " \t")

    def test_exercise_number_comes_from_the_nearest_preceding_heading(self):
        nb = _nb(
            new_markdown_cell("### Exercise 1.1 — first\ntext"),
            new_code_cell("### BEGIN SOLUTION\na = 1\n### END SOLUTION"),
            new_markdown_cell("Some prose.\n\n### Exercise 1.7 — later one"),
            new_code_cell("### BEGIN SOLUTION\nb = 2\n### END SOLUTION"),
            new_markdown_cell("#### A hint for it"),  # not an exercise heading: 1.7 still applies
            new_code_cell("### BEGIN SOLUTION\nc = 3\n### END SOLUTION"),
            new_code_cell("# ### Exercise 9.9 in a code cell is no heading\n" + region("d = 4")),
        )
        out = make_exercise_notebook(nb, "01_divergences_solutions.ipynb")
        stubs = [s for s in _code(out) if "NotImplementedError" in s]
        labels = [s.split('NotImplementedError("')[1].split(":")[0] for s in stubs]
        assert labels == ["Exercise 1.1", "Exercise 1.7", "Exercise 1.7", "Exercise 1.7"]

    def test_a_heading_inside_a_markdown_answer_does_not_renumber(self):
        nb = _bare(new_markdown_cell("### Exercise 2.1 — why\n### BEGIN SOLUTION\n### Exercise 2.9 hidden\n"
                                     "### END SOLUTION"),
                   new_code_cell(region("x = 1")))
        out = make_exercise_notebook(nb, "02_x_solutions.ipynb")
        assert out.cells[2].source == stub("2.1")
        assert out.cells[1].source == "### Exercise 2.1 — why\n_Your answer here._"

    def test_without_headings_the_number_is_lesson_and_running_count(self):
        nb = _nb(new_code_cell(region("a = 1")), new_code_cell(region("b = 1") + "\n" + region("c = 1")),
                 new_markdown_cell(region("prose answer")))  # markdown regions are not counted
        out = make_exercise_notebook(nb, "04_vae_solutions.ipynb")
        assert _code(out)[1:] == [stub("4.1"), f"{stub('4.2')}\n{stub('4.3')}"]
        assert out.cells[-1].source == "_Your answer here._"

    def test_lesson_number_falls_back_to_the_title_when_the_name_has_none(self):
        title = new_markdown_cell("# Lesson 07 — scratch")
        out = make_exercise_notebook(_bare(title, new_code_cell(region("a = 1"))), "scratch.ipynb")
        assert out.cells[-1].source == stub("7.1")
        out = make_exercise_notebook(_nb(new_code_cell(region("a = 1"))), "scratch.ipynb")
        assert out.cells[-1].source == stub("1.1")

    def test_without_a_lesson_number_or_heading_the_exercise_cannot_be_numbered(self):
        nb = _bare(new_markdown_cell("Intro\n## Lesson 3"), new_code_cell("x = 0\n" + region("a = 1")))
        assert refused(nb, "scratch.ipynb") == (
            f"{where(1, 'code', 'x = 0', 2, 'scratch.ipynb')}: no 'Exercise N.M' heading precedes this "
            "solution and the lesson number is not in the file name or title, so the exercise cannot be "
            "numbered")
        nb = _bare(new_code_cell("# Lesson 3"), new_code_cell(region("a = 1")))  # a title must be markdown
        assert "cannot be numbered" in refused(nb, "scratch.ipynb")
        nb = _bare(new_code_cell("x = 0"), new_markdown_cell("# Lesson 3"), new_code_cell(region("a = 1")))
        assert "cannot be numbered" in refused(nb, "scratch.ipynb")  # the title is the first cell only

    def test_markdown_regions_hidden_tests_and_empty_cells(self):
        nb = _nb(
            new_markdown_cell("### Exercise 1.3 — explain\n\nWhy is KL asymmetric?\n\n### BEGIN SOLUTION\n"
                              "Because the log ratio is weighted by p.\n### END SOLUTION\n"),
            new_code_cell("check(f)\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS"),
            new_code_cell("### BEGIN HIDDEN TESTS\nassert secret()\n### END HIDDEN TESTS"),
            new_code_cell("### BEGIN SOLUTION\nf = 1\n### END SOLUTION"),
            new_code_cell(""),  # an empty cell stays
            new_code_cell("check(g)\n### BEGIN HIDDEN TESTS\nassert g\n### END HIDDEN TESTS\n"),
        )
        out = make_exercise_notebook(nb, "01_divergences_solutions.ipynb")
        assert [(c.cell_type, c.source) for c in out.cells[3:]] == [
            ("markdown", "### Exercise 1.3 — explain\n\nWhy is KL asymmetric?\n\n_Your answer here._\n"),
            ("code", "check(f)"),
            ("code", stub("1.3")),
            ("code", ""),
            ("code", "check(g)\n"),
        ]
        text = nbformat.writes(out)
        assert "weighted by p" not in text and "f(2) == 4" not in text and "secret" not in text

    def test_magic_cells_are_kept_and_stubs_still_compile(self):
        nb = _nb(new_code_cell("%matplotlib inline"),
                 new_code_cell("for i in range(3):\n    ### BEGIN SOLUTION\n    print(i)\n    ### END SOLUTION"))
        out = make_exercise_notebook(nb, "02_x_solutions.ipynb")
        assert _code(out)[1] == "%matplotlib inline"
        _compile_all(out)

    def test_a_cell_without_a_final_newline_keeps_its_other_trailing_text(self):
        for tail in ("y = X", "y = 1   ", "y = 1\t"):
            out = make_exercise_notebook(_bare(new_code_cell(region("a") + "\n" + tail)), "02_x_solutions.ipynb")
            assert out.cells[1].source == stub("2.1") + "\n" + tail

    def test_list_sources_are_joined(self):
        nb = _bare(new_code_cell(""))
        nb.cells[0].source = ["a = 0\n", "### BEGIN SOLUTION\n", "a = 1\n", "### END SOLUTION"]
        assert make_exercise_notebook(nb, "02_x_solutions.ipynb").cells[1].source == f"a = 0\n{stub('2.1')}"


# ------------------------------------------------------------------------------------ note and metadata


class TestNoteAndMetadata:
    def test_note_text_is_for_students_and_names_the_solutions_file(self):
        assert note_text("01_kl_solutions.ipynb") == (
            "_This is your notebook to work in: replace each `raise NotImplementedError(...)` line with your own "
            "code, then run the self-check below it (✓, or ✗ with a hint). Worked answers are in "
            "`solutions/01_kl_solutions.ipynb`; try each exercise first, then compare._")
        assert "not this one" not in note_text("x") and "make-exercises" not in note_text("x")

    def test_maintainers_note_lives_in_the_notebook_metadata(self):
        assert generated_metadata("01_kl_solutions.ipynb") == {
            "generated_from": "solutions/01_kl_solutions.ipynb",
            "regenerate_with": "make exercises",
            "note": "Generated file: edit solutions/01_kl_solutions.ipynb, not this notebook, then run "
                    "`make exercises` (aigc-course make-exercises); `aigc-course make-exercises --check` "
                    "reports a stale copy.",
        }
        assert METADATA_KEY == "aigc_course"

    def test_note_cell_follows_the_header_and_metadata_is_cleaned(self):
        cell = new_code_cell(KL_CELL, execution_count=7, outputs=[new_output("stream", text="hi\n")])
        volatile = {"execution": {"iopub.status.busy": "2024"}, "ExecuteTime": {"a": 1}, "widgets": {},
                    "timing": 1, "collapsed": False, "scrolled": True, "hidden": True, "heading_collapsed": 1}
        cell.metadata.update({**volatile, "tags": ["keep-me"]})
        nb = _nb(new_markdown_cell("### Exercise 1.1"), cell,
                 widgets={"application/vnd.jupyter.widget-state+json": {}}, authors=["x"],
                 kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"},
                 language_info={"name": "python"}, aigc_course={"stale": True})
        out = make_exercise_notebook(nb, "01_divergences_solutions.ipynb")
        assert out.cells[0].source == HEADER
        assert (out.cells[1].cell_type, out.cells[1].source) == (
            "markdown", note_text("01_divergences_solutions.ipynb"))
        assert dict(out.metadata) == {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "aigc_course": generated_metadata("01_divergences_solutions.ipynb"),
        }
        out.metadata.kernelspec["name"] = "changed"  # the output shares nothing with the source notebook
        out.cells[-1].metadata["tags"].append("x")
        assert nb.metadata.kernelspec["name"] == "python3" and nb.cells[-1].metadata["tags"] == ["keep-me"]
        out.cells[-1].metadata["tags"].pop()
        code = out.cells[-1]
        assert code.outputs == [] and code.execution_count is None
        assert dict(code.metadata) == {"tags": ["keep-me"]}
        assert [c.id for c in out.cells] == [str(i) for i in range(len(out.cells))]  # what nbstripout writes
        assert (out.nbformat, out.nbformat_minor) == (4, 5)
        nbformat.validate(out)

    def test_note_comes_first_without_a_title_cell(self):
        for first in (new_code_cell(region("x = 1")), new_markdown_cell("## Not a title")):
            out = make_exercise_notebook(_bare(first, new_code_cell(region("y = 1"))), "02_x_solutions.ipynb")
            assert out.cells[0].source == note_text("02_x_solutions.ipynb")
            assert out.cells[1].source in (stub("2.1"), "## Not a title")

    def test_a_newer_minor_version_is_kept(self):
        nb = _nb(new_code_cell(region("x = 1")))
        for cell in nb.cells:
            del cell["id"]
        nb.nbformat_minor = 4
        assert make_exercise_notebook(nb, "02_x_solutions.ipynb").nbformat_minor == 5
        nb = _nb(new_code_cell(region("x = 1")))
        nb.nbformat_minor = 5
        assert make_exercise_notebook(nb, "02_x_solutions.ipynb").nbformat_minor == 5


# ---------------------------------------------------------------------------------------- strict markers


@st.composite
def near_markers(draw) -> str:
    """Lines that look like a marker: any case, separators, plurals, number of '#', text around it."""
    verb = draw(st.sampled_from(["BEGIN", "END"]))
    noun = draw(st.sampled_from(["SOLUTION", "SOLUTIONS", "HIDDEN TESTS", "HIDDEN TEST", "HIDDEN"]))
    sep = draw(st.sampled_from([" ", "  ", "_", "-", "\t", ""]))
    inner = draw(st.sampled_from([" ", "_", "-", "  ", ""]))
    hashes = draw(st.integers(0, 6))
    after_hash = draw(st.sampled_from(["", " ", "  "]))
    text = "#" * hashes + after_hash + verb + sep + noun.replace(" ", inner)
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    text = "".join(c.swapcase() if f else c for c, f in zip(text, flips, strict=True))
    prefix = draw(st.sampled_from(["", "x = 1  ", "<!-- ", "> ", "`", "  "]))
    suffix = draw(st.sampled_from(["", " ", " here", "!", " ###", ":", " -->"]))
    assume(hashes > 0 or not prefix.strip()[:1].isalnum())  # "x = 1 BEGIN SOLUTION" is not marker-like
    return prefix + text + suffix


class TestStrictMarkers:
    @SETTINGS
    @given(line=near_markers(), cell_type=st.sampled_from(["code", "markdown", "raw"]))
    def test_every_near_miss_is_refused_naming_notebook_cell_and_line(self, line, cell_type):
        assume(line.strip() not in MARKERS)
        new_cell = {"code": new_code_cell, "markdown": new_markdown_cell, "raw": new_raw_cell}[cell_type]
        nb = _bare(new_code_cell(region("ok = 1")), new_cell(f"first = 0\n{line}\nanswer = 42"))
        assert refused(nb) == (f"{where(1, cell_type, 'first = 0', 2)}: {line.rstrip()!r} looks like an "
                               f"exercise marker but is not exactly one; {EXPECTED}")

    @pytest.mark.parametrize("line", [
        "### begin solution", "### Begin Solution", "### BEGIN_SOLUTION", "### BEGIN SOLUTIONS",
        "### BEGIN HIDDEN TEST", "## BEGIN SOLUTION", "#### END SOLUTION", "###BEGIN SOLUTION",
        "BEGIN SOLUTION", "# ### BEGIN SOLUTION", "x = 1  # END SOLUTION", "### END  HIDDEN TESTS",
        "<!-- ### BEGIN SOLUTION -->", "### BEGIN SOLUTION here", "\u00a0### BEGIN SOLUTION",
        "### BEGIN SOLUTIONX", "### END HIDDEN TESTSX", " \u00a0 ### END SOLUTION",
    ])
    def test_the_probed_near_misses_are_refused(self, line):
        message = refused(_bare(new_code_cell(region("ok = 1")), new_code_cell(f"first = 0\n{line}")))
        assert message == (f"{where(1, 'code', 'first = 0', 2)}: {line.rstrip()!r} looks like an exercise "
                           f"marker but is not exactly one; {EXPECTED}")

    @pytest.mark.parametrize("marker", MARKERS)
    def test_exact_markers_in_raw_cells_are_refused(self, marker):
        nb = _bare(new_code_cell(region("ok = 1")), new_raw_cell(f"{marker}\nanswer = 42"))
        assert refused(nb) == (f"{where(1, 'raw', marker, 1)}: {marker!r} in a raw cell, which is copied as it "
                               "is; markers work only in code and markdown cells")

    @pytest.mark.parametrize("marker", MARKERS[2:])
    def test_hidden_test_markers_in_markdown_are_refused(self, marker):
        nb = _bare(new_code_cell(region("ok = 1")), new_markdown_cell(f"Text\n{marker}\nanswer"))
        assert refused(nb) == (f"{where(1, 'markdown', 'Text', 2)}: {marker!r} in a markdown cell; hidden "
                               "tests belong in code cells")

    @pytest.mark.parametrize("indent", [" ", "   ", "\t"])
    def test_indented_markers_in_markdown_are_refused(self, indent):
        nb = _bare(new_code_cell(region("ok = 1")), new_markdown_cell(f"- item\n{indent}### BEGIN SOLUTION\nx"))
        assert refused(nb) == (f"{where(1, 'markdown', '- item', 2)}: '### BEGIN SOLUTION' is indented; in a "
                               "markdown cell a marker must start the line")

    def test_a_long_first_line_is_shortened_and_blank_lines_are_skipped(self):
        first = "y = " + "1 + " * 20 + "1"
        nb = _bare(new_code_cell(region("ok = 1")), new_code_cell(f"\n   \n{first}\n## END SOLUTION"))
        shown = first[:37] + "..."
        assert refused(nb).startswith(f"{LESSON}: cell 1 (code cell starting {shown!r}), line 4: ")
        exactly = "z" * 40
        nb = _bare(new_code_cell(region("ok = 1")), new_code_cell(f"{exactly}\n## END SOLUTION"))
        assert refused(nb).startswith(f"{LESSON}: cell 1 (code cell starting {exactly!r}), line 2: ")

    def test_prose_that_is_not_marker_like_is_kept(self):
        kept = ["At the end solution sets converge.", "# the end: solution below", "### Exercise 2.1 — begin",
                "hidden = begin_layer(x)  # not a marker", "# hidden tests run in CI"]
        src = "\n".join(kept)
        out = make_exercise_notebook(_bare(new_markdown_cell(src), new_code_cell(src + "\n" + region("a"))),
                                     "02_x_solutions.ipynb")
        assert out.cells[1].source == src and out.cells[2].source == src + "\n" + stub("2.1")

    @SETTINGS
    @given(data=st.data())
    def test_exact_markers_are_stripped_and_no_answer_text_leaks(self, data):
        """A model of the output cell by cell: kept lines stay, regions become stubs, nothing secret remains."""
        plain = st.from_regex(r"[a-z0-9 =()+*.,]{0,20}", fullmatch=True).filter(
            lambda t: "begin" not in t and "end" not in t)
        cells, expected, counter = [], [], 0
        for _ in range(data.draw(st.integers(1, 4), label="cells")):
            cell_type = data.draw(st.sampled_from(["code", "markdown"]))
            kinds = ["plain", "solution", "hidden"] if cell_type == "code" else ["plain", "solution"]
            lines: list[str] = []
            kept: list[str] = []
            for _ in range(data.draw(st.integers(1, 4), label="blocks")):
                kind = data.draw(st.sampled_from(kinds))
                if kind == "plain":
                    text = data.draw(plain)
                    lines.append(text)
                    kept.append(text)
                    continue
                indent = data.draw(st.sampled_from(["", "    ", "\t", "  "])) if cell_type == "code" else ""
                tail = data.draw(st.sampled_from(["", " ", "\t"]))
                begin, end = MARKERS[:2] if kind == "solution" else MARKERS[2:]
                answer = [f"{indent}SECRET_{k} = {data.draw(plain)}" for k in range(data.draw(st.integers(0, 3)))]
                lines += [indent + begin + tail, *answer, indent + end + tail]
                if kind == "solution" and cell_type == "code":
                    counter += 1
                    kept += stub(f"3.{counter}", indent).split("\n")
                elif kind == "solution":
                    kept.append("_Your answer here._")
            trailing = data.draw(st.booleans())
            original = "\n".join(lines) + ("\n" if trailing else "")
            out = "\n".join(kept) + ("\n" if trailing else "")
            if not original.endswith("\n"):
                out = out.rstrip("\n")
            cells.append(new_code_cell(original) if cell_type == "code" else new_markdown_cell(original))
            if not (original.strip() and not out.strip()):
                expected.append((cell_type, out))
        assume(any("BEGIN SOLUTION" in c.source for c in cells))
        result = make_exercise_notebook(_bare(*cells), "03_x_solutions.ipynb")
        assert [(c.cell_type, c.source) for c in result.cells[1:]] == expected
        text = nbformat.writes(result)
        assert "SECRET" not in text and "BEGIN" not in text and "END SOLUTION" not in text


# -------------------------------------------------------------------------------------- marker structure


class TestMarkerStructure:
    @pytest.mark.parametrize("source, line, problem", [
        ("### BEGIN SOLUTION\nx = 1\n", 1,
         "'### BEGIN SOLUTION' is never closed with '### END SOLUTION' (regions cannot span cells)"),
        ("x = 0\n### BEGIN HIDDEN TESTS\nassert x", 2,
         "'### BEGIN HIDDEN TESTS' is never closed with '### END HIDDEN TESTS' (regions cannot span cells)"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### END SOLUTION", 2,
         "nested '### BEGIN SOLUTION' inside the '### BEGIN SOLUTION' opened on line 1; close it with "
         "'### END SOLUTION' first"),
        ("### BEGIN HIDDEN TESTS\n### BEGIN SOLUTION\nx\n### END SOLUTION\n### END HIDDEN TESTS", 2,
         "nested '### BEGIN SOLUTION' inside the '### BEGIN HIDDEN TESTS' opened on line 1; close it with "
         "'### END HIDDEN TESTS' first"),
        ("x = 1\n### END SOLUTION", 2, "'### END SOLUTION' without a matching '### BEGIN SOLUTION' before it"),
        ("x = 1\n### END HIDDEN TESTS", 2,
         "'### END HIDDEN TESTS' without a matching '### BEGIN HIDDEN TESTS' before it"),
        ("### BEGIN SOLUTION\nx = 1\n### END HIDDEN TESTS", 3,
         "'### END HIDDEN TESTS' closes the '### BEGIN SOLUTION' opened on line 1; expected '### END SOLUTION'"),
        ("y\n### BEGIN HIDDEN TESTS\nx = 1\n### END SOLUTION", 4,
         "'### END SOLUTION' closes the '### BEGIN HIDDEN TESTS' opened on line 2; expected "
         "'### END HIDDEN TESTS'"),
        ("### BEGIN SOLUTION\n## end solution", 2,
         f"'## end solution' looks like an exercise marker but is not exactly one; {EXPECTED}"),
    ])
    def test_unbalanced_markers_name_the_file_cell_and_line(self, source, line, problem):
        nb = _nb(new_code_cell("### BEGIN SOLUTION\nok = 1\n### END SOLUTION"), new_code_cell(source))
        first = source.split("\n")[0]
        assert refused(nb) == f"{where(3, 'code', first, line)}: {problem}"

    def test_a_region_cannot_span_markdown_cells(self):
        nb = _bare(new_code_cell(region("ok = 1")), new_markdown_cell("### BEGIN SOLUTION\nthe answer"),
                   new_markdown_cell("### END SOLUTION"))
        assert refused(nb) == (f"{where(1, 'markdown', '### BEGIN SOLUTION', 1)}: '### BEGIN SOLUTION' is "
                               "never closed with '### END SOLUTION' (regions cannot span cells)")

    def test_a_notebook_without_solution_regions_is_rejected(self):
        nb = _nb(new_code_cell("x = 1\n### BEGIN HIDDEN TESTS\nassert x\n### END HIDDEN TESTS"))
        assert refused(nb, "06_x_solutions.ipynb") == (
            "06_x_solutions.ipynb: no '### BEGIN SOLUTION' ... '### END SOLUTION' region found; a solutions "
            "notebook needs at least one exercise")


# ------------------------------------------------------------------------------------ notebook validity


class TestNotebookValidity:
    def _error(self, kind, *args) -> str:
        with pytest.raises(kind) as info:
            make_exercise_notebook(*args)
        return str(info.value)

    def test_bad_arguments(self):
        assert self._error(TypeError, ["not", "a", "notebook"], "01_x_solutions.ipynb") == (
            "nb must be an nbformat.NotebookNode (a dict with 'cells'), got list")
        assert self._error(TypeError, {"nbformat": 4}, "01_x_solutions.ipynb") == (
            "nb must be an nbformat.NotebookNode (a dict with 'cells'), got dict")
        assert self._error(TypeError, _nb(), 1) == "lesson must be the solutions file name as a str, got int"
        assert self._error(ValueError, _nb(), "") == (
            "lesson must be a non-empty file name such as '01_topic_solutions.ipynb'")
        out = make_exercise_notebook(_nb(new_code_cell(region("x"))), Path("solutions/01_x_solutions.ipynb"))
        assert out.metadata[METADATA_KEY]["generated_from"] == "solutions/01_x_solutions.ipynb"
        nb = _nb(new_code_cell("### BEGIN SOLUTION\nx\n### END SOLUTION"))
        nb.nbformat = 3
        assert refused(nb, "01_x_solutions.ipynb") == (
            "01_x_solutions.ipynb: nb must be an nbformat v4 notebook, got nbformat=3")

    def test_schema_invalid_notebooks_are_refused_naming_the_file_and_cell(self):
        nb = _nb(new_code_cell(region("x = 1")))
        del nb.cells[2]["outputs"]
        assert refused(nb) == (f"{LESSON}: not a valid Jupyter notebook (nbformat v4 schema): cell 2: 'outputs' "
                               "is a required property")
        nb = _nb(new_code_cell(region("x = 1")))
        del nb["metadata"]
        assert refused(nb) == (f"{LESSON}: not a valid Jupyter notebook (nbformat v4 schema): 'metadata' is a "
                               "required property")
        nb = _nb()
        nb["metadata"] = "none"
        assert refused(nb) == (f"{LESSON}: not a valid Jupyter notebook (nbformat v4 schema): 'none' is not of "
                               "type 'object'")
        nb = _nb()
        nb["cells"] = {}
        assert refused(nb) == (f"{LESSON}: not a valid Jupyter notebook (nbformat v4 schema): {{}} is not of "
                               "type 'array'")
        nb = _nb()
        nb["cells"] = "not a list"
        assert refused(nb) == (f"{LESSON}: not a valid Jupyter notebook (nbformat v4 schema): TypeError in the "
                               "validator: 'str' object does not support item assignment")

    def test_long_schema_messages_are_shortened_to_one_line(self):
        nb = _nb(new_code_cell(region("x = 1")))
        nb.cells.append({"cell_type": "weird", "metadata": {}, "source": "z" * 300, "id": "w"})
        message = refused(nb)
        prefix = f"{LESSON}: not a valid Jupyter notebook (nbformat v4 schema): cell 3: "
        assert message.startswith(prefix) and "\n" not in message
        assert len(message) == len(prefix) + 120 and message.endswith("...")


# --------------------------------------------------------------------------------------------- reading


class TestReading:
    def _file(self, tmp_path, data: bytes, name: str = "01_x_solutions.ipynb") -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    def test_a_valid_file_round_trips(self, tmp_path):
        nb = _nb(new_code_cell(region("x = 1")))
        path = self._file(tmp_path, nbformat.writes(nb).encode())
        assert read_solutions(path) == nb
        data = render_exercises(path)
        assert data.endswith(b"}\n") and data.startswith(b'{\n "cells": [\n  {\n')

    @pytest.mark.parametrize("data, message", [
        (b"{ not json", "01_x_solutions.ipynb: not valid JSON (Expecting property name enclosed in double "
                        "quotes at line 1, column 3)"),
        (b"", "01_x_solutions.ipynb: not valid JSON (Expecting value at line 1, column 1)"),
        (b'{"a": "\xff"}', "01_x_solutions.ipynb: not UTF-8 text (bad byte at offset 7); a notebook is a JSON "
                           "file in UTF-8"),
        (b"[1, 2]", "01_x_solutions.ipynb: not a Jupyter notebook (a JSON object with 'cells' was expected)"),
        (b'{"nbformat": 4}', "01_x_solutions.ipynb: not a Jupyter notebook (a JSON object with 'cells' was "
                             "expected)"),
    ])
    def test_garbage_files_are_refused_naming_the_file(self, tmp_path, data, message):
        path = self._file(tmp_path, data)
        with pytest.raises(ValueError) as info:
            read_solutions(path)
        assert str(info.value) == message

    def test_odd_versions_are_refused_without_a_raw_error(self, tmp_path):
        path = self._file(tmp_path, b'{"cells": [], "nbformat": 99}')
        with pytest.raises(ValueError) as info:
            read_solutions(path)
        assert str(info.value) == ("01_x_solutions.ipynb: not a readable Jupyter notebook (NBFormatError: "
                                   "Unsupported nbformat version 99)")

    def test_an_nbformat_3_notebook_is_converted(self, tmp_path):
        v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": ""}, "worksheets": [{"metadata": {}, "cells": [
            {"cell_type": "code", "input": region("x = 1"), "language": "python", "outputs": [], "metadata": {}}]}]}
        path = self._file(tmp_path, json.dumps(v3).encode())
        nb = nbformat.reads(render_exercises(path).decode(), as_version=4)
        assert [c.source for c in nb.cells] == [note_text(path.name), stub("1.1")]

    @pytest.mark.parametrize(("cell", "key", "reader"), [(1, "metadata", read_solutions),
                                                         (2, "source", render_exercises)])
    def test_schema_invalid_cell_is_named(self, tmp_path, cell, key, reader):
        raw = json.loads(nbformat.writes(_nb(new_code_cell(region("x = 1")))))
        del raw["cells"][cell][key]
        path = self._file(tmp_path, json.dumps(raw).encode())
        with pytest.raises(ValueError) as info:
            reader(path)
        assert str(info.value) == ("01_x_solutions.ipynb: not a valid Jupyter notebook (nbformat v4 schema): "
                                   f"cell {cell}: '{key}' is a required property")

    def test_unreadable_file_names_the_path(self, tmp_path):
        folder = tmp_path / "01_x_solutions.ipynb"
        folder.mkdir()
        with pytest.raises(OSError) as info:
            read_solutions(folder)
        assert str(info.value) == f"{folder}: cannot read the solutions notebook (Is a directory)"


# ------------------------------------------------------------------------------------ generate_exercises


def _write(path, *cells):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(_nb(*cells), path)


def _course(tmp_path):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    _write(sol / "01_divergences_solutions.ipynb", new_markdown_cell("### Exercise 1.1 — KL"),
           new_code_cell(KL_CELL))
    _write(sol / "02_ngram_solutions.ipynb", new_code_cell(region("n = 3")))
    return sol, ex


def test_generated_files_are_a_fixed_point_of_nbstripout(tmp_path):
    """`make strip` and the nbstripout git filter must not make exercises/ look stale (metadata included)."""
    pytest.importorskip("nbstripout")
    sol, ex = _course(tmp_path)
    nb = nbformat.read(sol / "01_divergences_solutions.ipynb", as_version=4)
    nb.cells[-1].metadata.update({"collapsed": True, "scrolled": False, "tags": ["kept"]})
    nbformat.write(nb, sol / "01_divergences_solutions.ipynb")
    generated = {p.name: p.read_bytes() for p in generate_exercises(sol, ex)}
    subprocess.run([sys.executable, "-m", "nbstripout", *sorted(ex.glob("*.ipynb"))], check=True, timeout=120)
    assert {p.name: p.read_bytes() for p in ex.iterdir()} == generated
    assert generate_exercises(sol, ex, check=True) == []
    assert b'"aigc_course": {' in generated["01_divergences_exercises.ipynb"]


class TestGenerate:
    def test_writes_one_exercise_per_solution_and_reruns_are_byte_identical(self, tmp_path):
        sol, ex = _course(tmp_path)
        (sol / ".01_divergences_solutions.ipynb").write_text("hidden editor copy")  # ignored
        (sol / "notes.txt").write_text("not a notebook")
        written = generate_exercises(sol, ex)
        assert written == [ex / "01_divergences_exercises.ipynb", ex / "02_ngram_exercises.ipynb"]
        first = {p.name: p.read_bytes() for p in written}
        assert first == {p.name: render_exercises(sol / p.name.replace("_exercises", "_solutions"))
                         for p in written}
        mtimes = {p.name: p.stat().st_mtime_ns for p in written}

        assert generate_exercises(sol, ex) == []  # nothing changed, nothing rewritten
        assert {p.name: p.read_bytes() for p in ex.iterdir()} == first
        assert {p.name: p.stat().st_mtime_ns for p in ex.iterdir()} == mtimes
        assert generate_exercises(sol, ex, check=True) == []

        nb = nbformat.read(ex / "02_ngram_exercises.ipynb", as_version=4)
        assert nb.cells[-1].source == stub("2.1")
        assert nb.metadata[METADATA_KEY] == generated_metadata("02_ngram_solutions.ipynb")
        _compile_all(nb)

    def test_nested_missing_output_folders_are_created(self, tmp_path):
        sol, _ = _course(tmp_path)
        deep = tmp_path / "a" / "b" / "exercises"
        assert len(generate_exercises(sol, deep)) == 2
        assert sorted(p.name for p in deep.iterdir()) == ["01_divergences_exercises.ipynb",
                                                          "02_ngram_exercises.ipynb"]

    def test_check_reports_stale_missing_and_extra_files_and_writes_nothing(self, tmp_path):
        sol, ex = _course(tmp_path)
        generate_exercises(sol, ex)
        _write(sol / "03_vae_solutions.ipynb", new_code_cell(region("z = 0")))  # missing
        stale = ex / "01_divergences_exercises.ipynb"
        stale.write_text(stale.read_text().replace("YOUR CODE HERE", "hand edit"))  # stale
        extra = ex / "09_gone_exercises.ipynb"
        extra.write_bytes(stale.read_bytes())  # its solutions notebook no longer exists
        (ex / "my_exercises.ipynb").write_text("a student's own file")  # not a generated name: kept
        metadata_only = ex / "02_ngram_exercises.ipynb"
        nb = json.loads(metadata_only.read_text())
        nb["metadata"][METADATA_KEY]["generated_from"] = "elsewhere"
        metadata_only.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        snapshot = {p.name: p.read_bytes() for p in ex.iterdir()}

        report = generate_exercises(sol, ex, check=True)
        assert report == [stale, metadata_only, ex / "03_vae_exercises.ipynb", extra]
        assert {p.name: p.read_bytes() for p in ex.iterdir()} == snapshot

        changed = generate_exercises(sol, ex)
        assert changed == report
        assert sorted(p.name for p in ex.iterdir()) == [
            "01_divergences_exercises.ipynb", "02_ngram_exercises.ipynb", "03_vae_exercises.ipynb",
            "my_exercises.ipynb"]
        assert generate_exercises(sol, ex, check=True) == []

    def test_a_later_stale_file_is_found_after_an_up_to_date_one(self, tmp_path):
        sol, ex = _course(tmp_path)
        generate_exercises(sol, ex)
        later = ex / "02_ngram_exercises.ipynb"
        later.write_text(later.read_text().replace("YOUR CODE HERE", "edited"))
        assert generate_exercises(sol, ex, check=True) == [later]
        assert generate_exercises(sol, ex) == [later]
        assert "YOUR CODE HERE" in later.read_text()

    def test_check_on_a_missing_exercises_folder_lists_everything(self, tmp_path):
        sol, ex = _course(tmp_path)
        assert generate_exercises(sol, ex, check=True) == [ex / "01_divergences_exercises.ipynb",
                                                          ex / "02_ngram_exercises.ipynb"]
        assert not ex.exists()

    def test_generated_files_have_no_outputs_and_hide_solutions(self, tmp_path):
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

    def test_badly_named_solutions_file_is_rejected_before_writing(self, tmp_path):
        sol, ex = _course(tmp_path)
        _write(sol / "intro.ipynb", new_code_cell("### BEGIN SOLUTION\nx\n### END SOLUTION"))
        with pytest.raises(ValueError) as info:
            generate_exercises(sol, ex)
        assert str(info.value) == ("solutions file 'intro.ipynb' must be named NN_topic_solutions.ipynb (two "
                                   "digits, a topic, '_solutions.ipynb')")
        assert not ex.exists()

    def test_one_bad_notebook_leaves_exercises_untouched(self, tmp_path):
        sol, ex = _course(tmp_path)
        _write(sol / "03_bad_solutions.ipynb", new_code_cell("### BEGIN SOLUTIONS\nx = 1\n### END SOLUTIONS"))
        with pytest.raises(ValueError) as info:
            generate_exercises(sol, ex)
        assert str(info.value).startswith(
            "03_bad_solutions.ipynb: cell 2 (code cell starting '### BEGIN SOLUTIONS'), line 1: "
            "'### BEGIN SOLUTIONS' looks like an exercise marker")
        assert not ex.exists()  # 01 and 02 rendered fine but nothing was written

    def test_unwritable_output_is_reported_naming_the_file_and_leaves_no_temporary(self, tmp_path, monkeypatch):
        sol, ex = _course(tmp_path)
        real_replace = os.replace

        def failing_replace(src, dst):
            if Path(dst).name == "02_ngram_exercises.ipynb":
                raise PermissionError(13, "Permission denied")
            real_replace(src, dst)

        monkeypatch.setattr(ex_mod.os, "replace", failing_replace)
        with pytest.raises(OSError) as info:
            generate_exercises(sol, ex)
        target = ex / "02_ngram_exercises.ipynb"
        assert str(info.value) == (f"{target}: cannot write the exercise notebook (Permission denied); is {ex} "
                                   "a writable folder?")
        assert sorted(p.name for p in ex.iterdir()) == ["01_divergences_exercises.ipynb"]

    def test_an_output_folder_below_a_file_is_reported(self, tmp_path):
        sol, _ = _course(tmp_path)
        (tmp_path / "file").write_text("x")
        ex = tmp_path / "file" / "exercises"
        with pytest.raises(OSError) as info:
            generate_exercises(sol, ex)
        target = ex / "01_divergences_exercises.ipynb"
        assert str(info.value) == (f"{target}: cannot write the exercise notebook (Not a directory); is {ex} "
                                   "a writable folder?")

    def test_an_orphan_that_cannot_be_removed_is_reported(self, tmp_path, monkeypatch):
        sol, ex = _course(tmp_path)
        generate_exercises(sol, ex)
        orphan = ex / "09_gone_exercises.ipynb"
        orphan.write_text("{}")

        def failing_unlink(self, missing_ok=False):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(Path, "unlink", failing_unlink)
        with pytest.raises(OSError) as info:
            generate_exercises(sol, ex)
        assert str(info.value) == (f"{orphan}: cannot remove this exercise notebook, whose solutions notebook "
                                   "is gone (Permission denied)")

    def test_marker_errors_name_the_file(self, tmp_path):
        sol, ex = _course(tmp_path)
        _write(sol / "03_bad_solutions.ipynb", new_code_cell("### BEGIN SOLUTION\nx = 1"))
        with pytest.raises(ValueError, match=r"^03_bad_solutions.ipynb: cell 2 \(code cell"):
            generate_exercises(sol, ex, check=True)

    def test_argument_checks(self, tmp_path):
        with pytest.raises(ValueError) as info:
            generate_exercises(tmp_path / "nope", tmp_path / "ex")
        assert str(info.value) == f"solutions_dir {str(tmp_path / 'nope')!r} is not a directory"
        (tmp_path / "ex").write_text("a file")
        with pytest.raises(ValueError) as info:
            generate_exercises(tmp_path, tmp_path / "ex")
        assert str(info.value) == f"exercises_dir {str(tmp_path / 'ex')!r} exists but is not a directory"
        with pytest.raises(TypeError, match="check must be a bool, got str"):
            generate_exercises(tmp_path, tmp_path / "ex2", check="yes")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="solutions_dir must be a path, got int"):
            generate_exercises(3, tmp_path)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="exercises_dir must be a path, got float"):
            generate_exercises(tmp_path, 2.5)  # type: ignore[arg-type]

    def test_exercise_name(self):
        assert exercise_name("12_flow_matching_solutions.ipynb") == "12_flow_matching_exercises.ipynb"
        for bad in ("01_x.ipynb", "1_x_solutions.ipynb", "01__solutions.ipynb", "01_x_solutions.ipynb.bak"):
            with pytest.raises(ValueError, match="must be named NN_topic_solutions.ipynb"):
                exercise_name(bad)


class TestRepoRoot:
    def test_repo_root_searches_upwards(self, tmp_path, monkeypatch):
        (tmp_path / "notebooks").mkdir()
        (tmp_path / "solutions").mkdir()
        deep = tmp_path / "notebooks" / "a" / "b"
        deep.mkdir(parents=True)
        assert repo_root(deep) == tmp_path.resolve()
        assert repo_root(str(tmp_path)) == tmp_path.resolve()
        monkeypatch.chdir(deep)
        assert repo_root() == tmp_path.resolve()
        lonely = tmp_path.parent / f"{tmp_path.name}-lonely"
        lonely.mkdir()
        (lonely / "notebooks").mkdir()  # no solutions/ next to it
        with pytest.raises(FileNotFoundError) as info:
            repo_root(lonely)
        assert str(info.value) == (f"no course repository (a folder with notebooks/ and solutions/) at or "
                                   f"above {lonely.resolve()}; run from inside the repository or pass the "
                                   "folders explicitly")
        (lonely / "solutions").write_text("a file, not a folder")
        with pytest.raises(FileNotFoundError):
            repo_root(lonely)
        with pytest.raises(TypeError, match="start must be a path or None, got int"):
            repo_root(3)  # type: ignore[arg-type]
