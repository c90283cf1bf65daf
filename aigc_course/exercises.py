"""Generate student exercise notebooks from the solutions notebooks (nbgrader-style markers).

A solutions notebook marks each worked answer with ``### BEGIN SOLUTION`` / ``### END SOLUTION``. In the
generated notebook every such region becomes, at the marker's indentation::

    # YOUR CODE HERE
    raise NotImplementedError("Exercise 1.2: replace this line with your code")

(markdown regions become ``_Your answer here._``), and ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``
regions vanish. Markers are strict, so that no answer can leak into a student notebook: a marker is a line
holding exactly one of the four texts above (indented only in code cells; solution markers only in
markdown cells; none in raw cells), and any other line that looks like one (other case, ``_`` for a space,
plural or singular, more or fewer ``#``, text around it, a leading space in markdown) stops the generator
with an error naming the notebook, the cell and the line. Output is deterministic, so
``aigc-course make-exercises --check`` can tell when ``exercises/`` is stale. The generated notebook's
metadata key ``"aigc_course"`` records where it came from, for maintainers.

>>> written = generate_exercises(repo_root() / "solutions", repo_root() / "exercises")
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import nbformat

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)
_ENDS = {BEGIN_SOLUTION: END_SOLUTION, BEGIN_HIDDEN: END_HIDDEN}
_BEGINS = {v: k for k, v in _ENDS.items()}

CODE_STUB = "# YOUR CODE HERE"
MARKDOWN_STUB = "_Your answer here._"
# Notebook-level metadata key of a generated notebook: the maintainers' facts (source, how to regenerate).
METADATA_KEY = "aigc_course"

SOLUTIONS_NAME = re.compile(r"^(?P<num>\d\d)_(?P<topic>[A-Za-z0-9][A-Za-z0-9_\-]*?)_solutions\.ipynb$")
EXERCISES_NAME = re.compile(r"^(?P<num>\d\d)_(?P<topic>[A-Za-z0-9][A-Za-z0-9_\-]*?)_exercises\.ipynb$")

_EXERCISE_HEADING = re.compile(r"^ {0,3}#{1,6}\s.*?\bExercise\s+(\d+\.\d+)\b")
_LESSON_TITLE = re.compile(r"^#\s+Lesson\s+(\d+)\b")
# Anything that may be meant as a marker: BEGIN or END (any case), then SOLUTION... or HIDDEN..., joined by
# spaces, underscores or hyphens, at the start of a line or after a '#'. Such a line must be exactly a marker.
_CANDIDATE = re.compile(r"(?:^|#)\W*?(?:begin|end)[\s_\-]*(?:solution|hidden)", re.IGNORECASE)
_EXPECTED = (f"expected a line holding exactly {BEGIN_SOLUTION!r}, {END_SOLUTION!r}, {BEGIN_HIDDEN!r} or "
             f"{END_HIDDEN!r} (upper case, three '#', one space between words; indented only in code cells)")
# Cell metadata that only records a particular run of the notebook.
_VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "widgets", "timing", "collapsed", "scrolled", "hidden",
                           "heading_collapsed")
_KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info")
_FIRST_LINE_CHARS = 40


def note_text(lesson: str) -> str:
    """The student-facing note at the top of the exercise notebook generated from ``solutions/<lesson>``."""
    return (
        "_This is your notebook to work in: replace each `raise NotImplementedError(...)` line with your own "
        "code, then run the self-check below it (✓, or ✗ with a hint). Worked answers are in "
        f"`solutions/{lesson}`; try each exercise first, then compare._"
    )


def generated_metadata(lesson: str) -> dict[str, str]:
    """The maintainers' note stored under ``metadata["aigc_course"]`` of a generated exercise notebook."""
    return {
        "generated_from": f"solutions/{lesson}",
        "regenerate_with": "make exercises",
        "note": f"Generated file: edit solutions/{lesson}, not this notebook, then run `make exercises` "
                "(aigc-course make-exercises); `aigc-course make-exercises --check` reports a stale copy.",
    }


def _lesson_number(lesson: str, cells: list) -> str | None:
    """Lesson number as written in exercise numbers ("1" for lesson 01), from the file name or the title."""
    m = re.match(r"(\d+)_", lesson)
    if m:
        return str(int(m.group(1)))
    if cells and cells[0]["cell_type"] == "markdown":
        for line in _source(cells[0]).splitlines():
            t = _LESSON_TITLE.match(line.strip())
            if t:
                return str(int(t.group(1)))
    return None


def _source(cell: Mapping) -> str:
    return "".join(cell["source"])  # a str, or a list of lines (joining a str gives it back)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(source: str) -> str:
    """The first non-blank line of a cell, shortened, to show which cell an error is about."""
    return _shorten(source.strip().split("\n")[0].strip(), _FIRST_LINE_CHARS)


class _Rewriter:
    """Walks the cells in order, tracking the current "Exercise N.M" heading and a fallback counter."""

    def __init__(self, lesson: str, lesson_number: str | None):
        self.lesson = lesson
        self.lesson_number = lesson_number
        self.current_exercise: str | None = None
        self.code_regions = 0
        self.has_solution = False

    def _exercise_label(self, where: str) -> str:
        self.code_regions += 1
        if self.current_exercise is not None:
            return self.current_exercise
        if self.lesson_number is None:
            raise ValueError(
                f"{where}: no 'Exercise N.M' heading precedes this solution and the lesson number is not in "
                "the file name or title, so the exercise cannot be numbered")
        return f"{self.lesson_number}.{self.code_regions}"

    @staticmethod
    def _marker(body: str, cell_type: str, where: str) -> tuple[str, str]:
        """(marker, indentation) of a line that looks like a marker; ValueError unless it is exactly one."""
        core = body.rstrip()
        marker = core.lstrip()
        indent = core[: len(core) - len(marker)]
        if marker not in MARKERS or not set(indent) <= {" ", "\t"}:
            raise ValueError(f"{where}: {core!r} looks like an exercise marker but is not exactly one; "
                             f"{_EXPECTED}")
        if cell_type == "markdown":
            if marker not in (BEGIN_SOLUTION, END_SOLUTION):
                raise ValueError(f"{where}: {marker!r} in a markdown cell; hidden tests belong in code cells")
            if indent:
                raise ValueError(f"{where}: {marker!r} is indented; in a markdown cell a marker must start "
                                 "the line")
        elif cell_type != "code":
            raise ValueError(f"{where}: {marker!r} in a {cell_type} cell, which is copied as it is; markers "
                             "work only in code and markdown cells")
        return marker, indent

    def rewrite(self, source: str, index: int, cell_type: str) -> str:
        """Return ``source`` with its marked regions replaced; ValueError on any marker problem."""
        out: list[str] = []
        opened: tuple[str, int] | None = None  # the BEGIN marker of the region we are inside, and its line
        cell = f"{self.lesson}: cell {index} ({cell_type} cell starting {_first_line(source)!r})"
        for lineno, line in enumerate(source.splitlines(keepends=True), start=1):
            body = line.rstrip("\r\n")
            where = f"{cell}, line {lineno}"
            if not _CANDIDATE.search(body):
                if opened is not None:
                    continue  # inside a region: drop the line
                if cell_type == "markdown":
                    m = _EXERCISE_HEADING.match(body)
                    if m:
                        self.current_exercise = m.group(1)
                out.append(line)
                continue
            marker, indent = self._marker(body, cell_type, where)
            if marker in _ENDS:  # a BEGIN marker
                if opened is not None:
                    raise ValueError(f"{where}: nested {marker!r} inside the {opened[0]!r} opened on "
                                     f"line {opened[1]}; close it with {_ENDS[opened[0]]!r} first")
                opened = (marker, lineno)
                if marker == BEGIN_SOLUTION:
                    self.has_solution = True
                    stub = [f"{indent}{MARKDOWN_STUB}"]
                    if cell_type == "code":
                        label = self._exercise_label(where)
                        stub = [f"{indent}{CODE_STUB}",
                                f'{indent}raise NotImplementedError("Exercise {label}: replace this line '
                                'with your code")']
                continue
            if opened is None:  # an END marker
                raise ValueError(f"{where}: {marker!r} without a matching {_BEGINS[marker]!r} before it")
            if _ENDS[opened[0]] != marker:
                raise ValueError(f"{where}: {marker!r} closes the {opened[0]!r} opened on line "
                                 f"{opened[1]}; expected {_ENDS[opened[0]]!r}")
            if marker == END_SOLUTION:  # the stub ends like the END line: a newline, or none at the cell's end
                out.append("\n".join(stub) + line[len(body):])
            opened = None  # hidden tests leave nothing behind
        if opened is not None:
            raise ValueError(f"{cell}, line {opened[1]}: {opened[0]!r} is never closed with "
                             f"{_ENDS[opened[0]]!r} (regions cannot span cells)")
        return "".join(out)


def _validation_error(lesson: str, nb: Mapping) -> str | None:
    """None for a valid nbformat v4 notebook, else a one-line description of the first schema error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. MissingIDFieldWarning for nbformat 4.4 notebooks
        try:
            nbformat.validate(nbformat.from_dict(nb))  # from_dict copies: validate() may repair in place
        except nbformat.ValidationError as e:
            path = list(e.absolute_path)
            where = f"cell {path[1]}: " if len(path) > 1 and path[0] == "cells" else ""
            message = _shorten(" ".join(str(e.message).split()), 120)
            return f"{lesson}: not a valid Jupyter notebook (nbformat v4 schema): {where}{message}"
        except Exception as e:  # the validator itself trips on some malformed structures
            return (f"{lesson}: not a valid Jupyter notebook (nbformat v4 schema): {type(e).__name__} in the "
                    f"validator: {_shorten(str(e), 120)}")
    return None


def make_exercise_notebook(nb: nbformat.NotebookNode, lesson: str) -> nbformat.NotebookNode:
    """Turn a solutions notebook into the student exercise notebook (a new object; ``nb`` is untouched).

    ``lesson`` is the solutions file name (e.g. ``"01_divergences_solutions.ipynb"``); it names the file in
    error messages and in the generated note, and gives the lesson number for exercises without an
    ``Exercise N.M`` heading. Raises ValueError for a notebook that breaks the nbformat v4 schema, for any
    marker problem (near-miss, misplaced, unbalanced, nested) and when there is no solution region.
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
    problem = _validation_error(lesson, nb)
    if problem is not None:
        raise ValueError(problem)

    source_cells = nb["cells"]
    rewriter = _Rewriter(lesson, _lesson_number(lesson, source_cells))
    cells: list[nbformat.NotebookNode] = []
    for index, src_cell in enumerate(source_cells):
        cell = nbformat.from_dict(src_cell)  # a copy
        original = _source(cell)
        cell["source"] = rewriter.rewrite(original, index, cell["cell_type"])
        if not original.endswith("\n"):  # no blank tail left behind by a removed final region
            cell["source"] = cell["source"].rstrip("\n")
        if original.strip() and not cell["source"].strip():
            continue  # the whole cell was hidden tests
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell["metadata"] = nbformat.from_dict(
            {k: v for k, v in cell["metadata"].items() if k not in _VOLATILE_CELL_METADATA})
        cells.append(cell)
    if not rewriter.has_solution:
        raise ValueError(f"{lesson}: no {BEGIN_SOLUTION!r} ... {END_SOLUTION!r} region found; a solutions "
                         "notebook needs at least one exercise")

    has_header = cells[0]["cell_type"] == "markdown" and _source(cells[0]).startswith("# ")
    cells.insert(1 if has_header else 0, nbformat.v4.new_markdown_cell(note_text(lesson)))
    # Cell ids are the cell positions, exactly what nbstripout (`make strip`, the git filter) writes, so a
    # stripped exercise notebook is byte-identical to a freshly generated one and reruns never differ.
    for position, cell in enumerate(cells):
        cell["id"] = str(position)

    metadata = nbformat.from_dict({k: nb["metadata"][k] for k in _KEPT_NOTEBOOK_METADATA if k in nb["metadata"]})
    metadata[METADATA_KEY] = generated_metadata(lesson)
    out = nbformat.v4.new_notebook(cells=cells, metadata=metadata)
    out["nbformat_minor"] = max(5, nb["nbformat_minor"])  # ids need 4.5
    nbformat.validate(out)
    return out


def exercise_name(solutions_name: str) -> str:
    """``"01_kl_solutions.ipynb"`` → ``"01_kl_exercises.ipynb"``; ValueError for any other name pattern."""
    m = SOLUTIONS_NAME.match(solutions_name)
    if not m:
        raise ValueError(f"solutions file {solutions_name!r} must be named NN_topic_solutions.ipynb "
                         "(two digits, a topic, '_solutions.ipynb')")
    return f"{m.group('num')}_{m.group('topic')}_exercises.ipynb"


def read_solutions(solutions_path: str | os.PathLike) -> nbformat.NotebookNode:
    """Read a solutions notebook as nbformat v4. OSError naming the file when it cannot be read,
    ValueError naming it when it is not UTF-8 JSON or not a notebook."""
    path = Path(solutions_path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise OSError(f"{path}: cannot read the solutions notebook ({e.strerror or e})") from e
    try:
        text = raw.decode()  # UTF-8
    except UnicodeDecodeError as e:
        raise ValueError(f"{path.name}: not UTF-8 text (bad byte at offset {e.start}); a notebook is a JSON "
                         "file in UTF-8") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path.name}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise ValueError(f"{path.name}: not a Jupyter notebook (a JSON object with 'cells' was expected)")
    problem = _validation_error(path.name, data) if data.get("nbformat") == 4 else None
    if problem is not None:  # before nbformat.reads, whose own errors on v4 files are less precise
        raise ValueError(problem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return nbformat.reads(text, as_version=4)
        except Exception as e:  # nbformat raises many kinds for odd versions (NBFormatError, KeyError, ...)
            raise ValueError(f"{path.name}: not a readable Jupyter notebook ({type(e).__name__}: {e})") from None


def render_exercises(solutions_path: str | os.PathLike) -> bytes:
    """The exact bytes of the exercise notebook generated from one solutions notebook."""
    path = Path(solutions_path)
    nb = read_solutions(path)
    text = nbformat.writes(make_exercise_notebook(nb, path.name))  # indent 1, sorted keys, no final newline
    return (text + "\n").encode()


def _write_atomically(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):  # e.g. it was never created
            tmp.unlink()
        raise OSError(f"{target}: cannot write the exercise notebook ({e.strerror or e}); is "
                      f"{target.parent} a writable folder?") from e


def generate_exercises(
    solutions_dir: str | os.PathLike, exercises_dir: str | os.PathLike, *, check: bool = False
) -> list[Path]:
    """Write ``exercises/NN_topic_exercises.ipynb`` for every ``solutions/NN_topic_solutions.ipynb``.

    Every notebook is rendered before anything is written, so one bad notebook leaves ``exercises/``
    untouched. Only files whose bytes change are rewritten; exercise files whose solutions notebook is gone
    are removed. Returns the paths written or removed. With ``check=True`` nothing is touched and the return
    value lists the stale, missing and orphaned exercise files (empty means up to date). Raises ValueError
    for a bad notebook (naming it) and OSError naming the file that cannot be read or written.
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
    rendered = {target: render_exercises(source) for target, source in wanted.items()}
    changed: list[Path] = []
    for target, data in rendered.items():
        if target.is_file() and target.read_bytes() == data:
            continue
        changed.append(target)
        if not check:
            _write_atomically(target, data)
    if exercises_dir.is_dir():
        for orphan in sorted(exercises_dir.glob("*_exercises.ipynb")):
            if EXERCISES_NAME.match(orphan.name) and orphan not in wanted:
                changed.append(orphan)
                if not check:
                    try:
                        orphan.unlink()
                    except OSError as e:
                        raise OSError(f"{orphan}: cannot remove this exercise notebook, whose solutions "
                                      f"notebook is gone ({e.strerror or e})") from e
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
