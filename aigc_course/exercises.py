"""Generate student exercise notebooks from the solutions notebooks (nbgrader-style markers).

A solutions notebook marks each worked answer with ``### BEGIN SOLUTION`` / ``### END SOLUTION``. In the
generated notebook every such region becomes, at the marker's indentation::

    # YOUR CODE HERE
    raise NotImplementedError("Exercise 1.2: replace this line with your code")

(markdown regions become ``_Your answer here._``), and ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``
regions vanish. Output is deterministic, so ``aigc-course make-exercises --check`` can tell when
``exercises/`` is stale.

>>> written = generate_exercises(repo_root() / "solutions", repo_root() / "exercises")
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path

import nbformat

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
_ENDS = {BEGIN_SOLUTION: END_SOLUTION, BEGIN_HIDDEN: END_HIDDEN}
_BEGINS = {v: k for k, v in _ENDS.items()}

CODE_STUB = "# YOUR CODE HERE"
MARKDOWN_STUB = "_Your answer here._"

SOLUTIONS_NAME = re.compile(r"^(?P<num>\d\d)_(?P<topic>[A-Za-z0-9][A-Za-z0-9_\-]*?)_solutions\.ipynb$")
EXERCISES_NAME = re.compile(r"^(?P<num>\d\d)_(?P<topic>[A-Za-z0-9][A-Za-z0-9_\-]*?)_exercises\.ipynb$")

_EXERCISE_HEADING = re.compile(r"^ {0,3}#{1,6}\s.*?\bExercise\s+(\d+\.\d+)\b")
_LESSON_TITLE = re.compile(r"^#\s+Lesson\s+(\d+)\b")
# A line that looks like a marker but is not exactly one (wrong number of #, extra text): refuse it, or the
# answer would leak into the student notebook.
_NEAR_MARKER = re.compile(r"^#+\s*(BEGIN|END)\s+(SOLUTION|HIDDEN\s+TESTS)\b")
# Cell metadata that only records a particular run of the notebook.
_VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "widgets", "timing", "collapsed", "scrolled", "hidden",
                           "heading_collapsed")
_KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info")


def _note_text(lesson: str) -> str:
    return (
        f"_This notebook is generated from `solutions/{lesson}` by `aigc-course make-exercises`; edit the "
        "solutions notebook, not this one. Replace each `raise NotImplementedError` with your code and run "
        "the self-check below it._"
    )


def _lesson_number(lesson: str, cells: list) -> str | None:
    """Lesson number as written in exercise numbers ("1" for lesson 01), from the file name or the title."""
    m = re.match(r"(\d+)_", Path(lesson).name)
    if m:
        return str(int(m.group(1)))
    for cell in cells[:1]:
        if cell.get("cell_type") == "markdown":
            for line in _source(cell).splitlines():
                t = _LESSON_TITLE.match(line.strip())
                if t:
                    return str(int(t.group(1)))
    return None


def _source(cell: Mapping) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


class _Rewriter:
    """Walks the cells in order, tracking the current "Exercise N.M" heading and a fallback counter."""

    def __init__(self, lesson: str, lesson_number: str | None):
        self.lesson = lesson
        self.lesson_number = lesson_number
        self.current_exercise: str | None = None
        self.code_regions = 0
        self.solution_regions = 0

    def _exercise_label(self, index: int) -> str:
        self.code_regions += 1
        if self.current_exercise is not None:
            return self.current_exercise
        if self.lesson_number is None:
            raise ValueError(
                f"{self.lesson}: cell {index}: no 'Exercise N.M' heading precedes this solution and the "
                "lesson number is not in the file name or title, so the exercise cannot be numbered")
        return f"{self.lesson_number}.{self.code_regions}"

    def rewrite(self, source: str, index: int, cell_type: str) -> str:
        """Return ``source`` with its marked regions replaced; raise ValueError on unbalanced markers."""
        out: list[str] = []
        open_marker: str | None = None  # BEGIN marker of the region we are inside
        open_line = 0
        stub: list[str] = []
        for lineno, line in enumerate(source.splitlines(keepends=True), start=1):
            body = line.rstrip("\r\n")
            stripped = body.strip()
            where = f"{self.lesson}: cell {index}, line {lineno}"
            if stripped in _ENDS:  # a BEGIN marker
                if open_marker is not None:
                    raise ValueError(f"{where}: nested {stripped!r} inside the {open_marker!r} opened on "
                                     f"line {open_line}; close it with {_ENDS[open_marker]!r} first")
                open_marker, open_line = stripped, lineno
                indent = body[: len(body) - len(body.lstrip())]
                if stripped == BEGIN_SOLUTION:
                    self.solution_regions += 1
                    if cell_type == "code":
                        label = self._exercise_label(index)
                        stub = [f"{indent}{CODE_STUB}",
                                f'{indent}raise NotImplementedError("Exercise {label}: replace this line '
                                'with your code")']
                    else:
                        stub = [f"{indent}{MARKDOWN_STUB}"]
                else:
                    stub = []  # hidden tests leave nothing behind
                continue
            if stripped in _BEGINS:  # an END marker
                if open_marker is None:
                    raise ValueError(f"{where}: {stripped!r} without a matching {_BEGINS[stripped]!r}")
                if _ENDS[open_marker] != stripped:
                    raise ValueError(f"{where}: {stripped!r} closes the {open_marker!r} opened on line "
                                     f"{open_line}; expected {_ENDS[open_marker]!r}")
                if stub:  # the stub ends the way the END line ended: a newline, or none at the end of a cell
                    out.append("\n".join(stub) + line[len(body):])
                open_marker = None
                continue
            if _NEAR_MARKER.search(stripped):
                raise ValueError(f"{where}: {stripped!r} looks like an exercise marker but is not exactly "
                                 f"{BEGIN_SOLUTION!r}, {END_SOLUTION!r}, {BEGIN_HIDDEN!r} or {END_HIDDEN!r}")
            if open_marker is not None:
                continue  # inside a region: drop the line
            if cell_type == "markdown":
                m = _EXERCISE_HEADING.match(body)
                if m:
                    self.current_exercise = m.group(1)
            out.append(line)
        if open_marker is not None:
            raise ValueError(f"{self.lesson}: cell {index}, line {open_line}: {open_marker!r} is never "
                             f"closed with {_ENDS[open_marker]!r} (regions cannot span cells)")
        return "".join(out)


def make_exercise_notebook(nb: nbformat.NotebookNode, lesson: str) -> nbformat.NotebookNode:
    """Turn a solutions notebook into the student exercise notebook (a new object; ``nb`` is untouched).

    ``lesson`` is the solutions file name (e.g. ``"01_divergences_solutions.ipynb"``); it names the file in
    error messages and in the generated note, and gives the lesson number for exercises without an
    ``Exercise N.M`` heading. Raises ValueError on unbalanced markers or when there is no solution region.
    """
    if not isinstance(nb, Mapping) or "cells" not in nb:
        raise TypeError(f"nb must be an nbformat.NotebookNode (a dict with 'cells'), got {type(nb).__name__}")
    if not isinstance(lesson, (str, os.PathLike)):
        raise TypeError(f"lesson must be the solutions file name as a str, got {type(lesson).__name__}")
    lesson = Path(lesson).name
    if not lesson:
        raise ValueError("lesson must be a non-empty file name such as '01_topic_solutions.ipynb'")
    if nb.get("nbformat") != 4:
        raise ValueError(f"{lesson}: nb must be an nbformat v4 notebook, got nbformat={nb.get('nbformat')!r}")

    source_cells = nb["cells"]
    rewriter = _Rewriter(lesson, _lesson_number(lesson, source_cells))
    cells: list[nbformat.NotebookNode] = []
    for index, src_cell in enumerate(source_cells):
        cell = nbformat.from_dict(copy.deepcopy(dict(src_cell)))
        cell_type = cell.get("cell_type")
        if cell_type in ("code", "markdown"):
            original = _source(cell)
            cell["source"] = rewriter.rewrite(original, index, cell_type)
            if not original.endswith("\n"):  # no blank tail left behind by a removed final region
                cell["source"] = cell["source"].rstrip("\n")
            if original.strip() and not cell["source"].strip():
                continue  # the whole cell was hidden tests
        if cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        metadata = cell.get("metadata", {})
        cell["metadata"] = nbformat.from_dict(
            {k: v for k, v in metadata.items() if k not in _VOLATILE_CELL_METADATA})
        cells.append(cell)
    if rewriter.solution_regions == 0:
        raise ValueError(f"{lesson}: no {BEGIN_SOLUTION!r} ... {END_SOLUTION!r} region found; a solutions "
                         "notebook needs at least one exercise")

    first = cells[0] if cells else {}
    has_header = first.get("cell_type") == "markdown" and _source(first).startswith("# ")
    cells.insert(1 if has_header else 0, nbformat.v4.new_markdown_cell(_note_text(lesson)))
    # Cell ids are the cell positions, exactly what nbstripout (`make strip`, the git filter) writes, so a
    # stripped exercise notebook is byte-identical to a freshly generated one and reruns never differ.
    for position, cell in enumerate(cells):
        cell["id"] = str(position)

    nb_metadata = nb.get("metadata", {})
    metadata = {k: copy.deepcopy(nb_metadata[k]) for k in _KEPT_NOTEBOOK_METADATA if k in nb_metadata}
    out = nbformat.v4.new_notebook(cells=cells, metadata=metadata)
    out["nbformat_minor"] = max(5, int(nb.get("nbformat_minor", 0)))  # ids need 4.5
    nbformat.validate(out)
    return out


def exercise_name(solutions_name: str) -> str:
    """``"01_kl_solutions.ipynb"`` → ``"01_kl_exercises.ipynb"``; ValueError for any other name pattern."""
    m = SOLUTIONS_NAME.match(solutions_name)
    if not m:
        raise ValueError(f"solutions file {solutions_name!r} must be named NN_topic_solutions.ipynb "
                         "(two digits, a topic, '_solutions.ipynb')")
    return f"{m.group('num')}_{m.group('topic')}_exercises.ipynb"


def render_exercises(solutions_path: str | os.PathLike) -> bytes:
    """The exact bytes of the exercise notebook generated from one solutions notebook."""
    path = Path(solutions_path)
    nb = nbformat.read(path, as_version=4)
    text = nbformat.writes(make_exercise_notebook(nb, path.name), version=4)  # indent 1, sorted keys
    if not text.endswith("\n"):
        text += "\n"
    return text.encode("utf-8")


def generate_exercises(
    solutions_dir: str | os.PathLike, exercises_dir: str | os.PathLike, *, check: bool = False
) -> list[Path]:
    """Write ``exercises/NN_topic_exercises.ipynb`` for every ``solutions/NN_topic_solutions.ipynb``.

    Only files whose bytes change are rewritten; exercise files whose solutions notebook is gone are
    removed. Returns the paths written or removed. With ``check=True`` nothing is touched and the return
    value lists the stale, missing and orphaned exercise files (empty means up to date).
    """
    if not isinstance(solutions_dir, (str, os.PathLike)):
        raise TypeError(f"solutions_dir must be a path, got {type(solutions_dir).__name__}")
    if not isinstance(exercises_dir, (str, os.PathLike)):
        raise TypeError(f"exercises_dir must be a path, got {type(exercises_dir).__name__}")
    if not isinstance(check, bool):
        raise TypeError(f"check must be a bool, got {type(check).__name__}")
    solutions_dir, exercises_dir = Path(solutions_dir), Path(exercises_dir)
    if not solutions_dir.is_dir():
        raise ValueError(f"solutions_dir {str(solutions_dir)!r} is not a directory")
    if exercises_dir.exists() and not exercises_dir.is_dir():
        raise ValueError(f"exercises_dir {str(exercises_dir)!r} exists but is not a directory")

    sources = sorted(p for p in solutions_dir.glob("*.ipynb") if not p.name.startswith("."))
    wanted = {exercises_dir / exercise_name(p.name): p for p in sources}  # names checked before any work
    changed: list[Path] = []
    for target, source in wanted.items():
        data = render_exercises(source)
        if target.is_file() and target.read_bytes() == data:
            continue
        changed.append(target)
        if not check:
            exercises_dir.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
    if exercises_dir.is_dir():
        for orphan in sorted(exercises_dir.glob("*_exercises.ipynb")):
            if EXERCISES_NAME.match(orphan.name) and orphan not in wanted:
                changed.append(orphan)
                if not check:
                    orphan.unlink()
    return changed


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The course repository root: the first folder holding both ``solutions/`` and ``notebooks/``,
    searching from ``start`` (default: the current directory) upwards. FileNotFoundError if none."""
    if start is not None and not isinstance(start, (str, os.PathLike)):
        raise TypeError(f"start must be a path or None, got {type(start).__name__}")
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "solutions").is_dir() and (folder / "notebooks").is_dir():
            return folder
    raise FileNotFoundError(f"no course repository (a folder with notebooks/ and solutions/) at or above "
                            f"{here}; run from inside the repository or pass the folders explicitly")
