"""Grade filled-in exercise notebooks: ``aigc-course grade NOTEBOOK... [--csv FILE] [--timeout SECONDS]``.

Each notebook runs in a fresh kernel, in a separate process (``python -m aigc_course.grade _run ...``), with a
per-cell timeout, inside a temporary copy of its folder. An exercise is a code cell that calls a self-check
(``check_...(``); its label comes from the "Exercise N.M" heading above it. Outcomes:

* the cell runs without error → ``passed`` (✓);
* ``NotImplementedError``, or the self-check's "not implemented yet" → ``not attempted``;
* ``CheckFailed`` / ``AssertionError`` → ``failed`` with the check's hint; any other error → ``failed`` with the
  error's last line; a cell over the timeout → ``failed`` "timed out";
* the kernel died in the cell → ``failed``; every later exercise → ``not run (kernel died)``.

Isolation, honestly: the copy holds the notebook and the other files of its folder, but not ``solutions/``,
other notebooks, ``.git`` or virtual environments, so a submission that deletes its working directory harms only
the copy and ``../solutions/`` does not exist from there. It is *not* a security sandbox: the kernel runs as
you, with your permissions, and can read or delete any file by its absolute path. Grade untrusted submissions
in a container or a throw-away account.

>>> results = grade_notebook("exercises/01_generative_modeling_basics_exercises.ipynb", timeout=60)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

PASSED, FAILED, NOT_ATTEMPTED, NOT_RUN = "passed", "failed", "not attempted", "not run"
CSV_HEADER = ("notebook", "exercise", "status", "hint")
DEFAULT_TIMEOUT = 300
STARTUP_SECONDS = 120  # kernel start and imports, on top of the per-cell timeouts, for the watchdog

_CHECK_CALL = re.compile(r"(?<!def )\bcheck_\w+\(")  # a call to a self-check, not a definition
_EXERCISE_HEADING = re.compile(r"^ {0,3}#{1,6}\s.*?\b(Exercise\s+(\d+\.\d+)\b.*)$", re.MULTILINE)
_NOT_IMPLEMENTED = "not implemented yet"
# Never copied into the grading folder: the answers, other notebooks (other students' submissions), and
# things that are large or not the student's (virtual environments, git history).
_SKIPPED_DIRS = {"solutions", ".git", ".venv", "venv", "env", "__pycache__", ".ipynb_checkpoints",
                 "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


@dataclass(frozen=True)
class ExerciseResult:
    """The outcome of one exercise: ``status`` is passed, failed, not attempted or not run."""

    exercise: str  # "1.2", or "cell 7" when no "Exercise N.M" heading precedes the cell
    title: str     # the heading text, e.g. "Exercise 1.2 — The Gaussian KL of a VAE"
    status: str
    hint: str = ""


@dataclass(frozen=True)
class NotebookResult:
    """All exercises of one notebook, or ``error`` when the notebook could not be read or run."""

    notebook: str
    exercises: tuple[ExerciseResult, ...]
    error: str = ""

    @property
    def score(self) -> int:
        return sum(e.status == PASSED for e in self.exercises)


# ------------------------------------------------------------------------------------ the exercise cells


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def exercise_cells(cells: Sequence[dict]) -> list[tuple[int, str, str]]:
    """``(cell index, label, title)`` of each code cell that calls a self-check, in order."""
    found: list[tuple[int, str, str]] = []
    label: str | None = None
    title = ""
    for index, cell in enumerate(cells):
        src = _source(cell)
        if cell.get("cell_type") == "markdown":
            for m in _EXERCISE_HEADING.finditer(src):
                label, title = m.group(2), m.group(1).strip()
        elif cell.get("cell_type") == "code" and _CHECK_CALL.search(src):
            found.append((index, label or f"cell {index}", title or f"cell {index}"))
    return found


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _cell_outcome(record: dict | None, timeout: int) -> tuple[str, str]:
    """(status, hint) of an exercise cell from the runner's record of it (None: the cell never ran)."""
    if record is None:
        return NOT_RUN, "not run (the grader stopped before this cell)"
    kind = record["status"]
    if kind == "ok":
        return PASSED, ""
    if kind == "timeout":
        return FAILED, f"timed out after {timeout} s (an infinite loop?)"
    if kind == "dead":
        return FAILED, "the kernel died while running this cell (os._exit, a crash in C code, out of memory?)"
    if kind == "not run":
        return NOT_RUN, record.get("why", "not run")
    ename, evalue = record.get("ename", ""), str(record.get("evalue", ""))
    if ename == "NotImplementedError" or (ename == "CheckFailed" and _NOT_IMPLEMENTED in evalue):
        return NOT_ATTEMPTED, ""
    if ename in ("CheckFailed", "AssertionError"):
        hint = evalue.strip()
        hint = hint[1:].strip() if hint.startswith("✗") else hint
        return FAILED, hint or "AssertionError"
    return FAILED, f"{ename}: {_first_line(evalue)}" if evalue.strip() else ename


def _combine(records: dict[int, dict], cells: list[tuple[int, str, str]], timeout: int) -> list[ExerciseResult]:
    """One result per exercise label: the first cell of that exercise that did not pass decides."""
    by_label: dict[str, ExerciseResult] = {}
    for index, label, title in cells:
        status, hint = _cell_outcome(records.get(index), timeout)
        previous = by_label.get(label)
        if previous is None or previous.status == PASSED:
            by_label[label] = ExerciseResult(label, title, status, hint)
    return list(by_label.values())


def _expected_exercises(nb: dict) -> list[tuple[str, str]]:
    """(label, title) of the exercises of the course notebook this one was generated from, if known."""
    from .exercises import METADATA_KEY, exercise_name

    source = nb.get("metadata", {}).get(METADATA_KEY, {}).get("generated_from", "")
    try:
        reference = Path(__file__).resolve().parent.parent / "exercises" / exercise_name(Path(source).name)
        cells = json.loads(reference.read_text(encoding="utf-8"))["cells"]
    except (ValueError, OSError, KeyError, TypeError):
        return []
    return [(label, title) for _, label, title in exercise_cells(cells)]


# -------------------------------------------------------------------------------------- running a notebook


def _ignore(notebook_name: str, top: str):
    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = set()
        for name in names:
            path = os.path.join(folder, name)
            if name in _SKIPPED_DIRS and os.path.isdir(path):
                skipped.add(name)
            elif name.endswith(".ipynb") and not (folder == top and name == notebook_name):
                skipped.add(name)
        return skipped
    return ignore


def _kill(pid: int | None, group: bool = False) -> None:
    if not pid:
        return
    try:
        os.killpg(pid, signal.SIGKILL) if group else os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _kill_kernel(pid: int | None, connection_file: str) -> None:
    """Kill the runner's kernel, only if that pid is still that kernel (its connection file is in its cmdline)."""
    if not pid or not connection_file:
        return
    try:
        cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes().decode("utf-8", "replace")
    except (OSError, ValueError):
        return  # gone, or no /proc (macOS: the kernel's parent poller stops it once its runner is gone)
    if connection_file in cmdline.split("\0"):
        _kill(int(pid))


def _read_records(path: Path) -> tuple[dict[int, dict], tuple[int | None, str]]:
    """The runner's per-cell records by cell index, and (pid, connection file) of its kernel."""
    records: dict[int, dict] = {}
    kernel: tuple[int | None, str] = (None, "")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return records, kernel
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed runner
        if "kernel_pid" in record:
            kernel = (record["kernel_pid"], record.get("connection_file", ""))
        elif "cell" in record:
            records[int(record["cell"])] = record
    return records, kernel


def grade_notebook(notebook: str | os.PathLike, timeout: int = DEFAULT_TIMEOUT,
                   env: dict[str, str] | None = None) -> NotebookResult:
    """Run ``notebook`` in a fresh kernel inside a temporary copy of its folder and grade its exercises.

    ``timeout`` is the limit per cell in seconds; ``env`` the kernel's environment (default: this process's).
    Raises TypeError/ValueError for bad arguments; a notebook that cannot be read gives a result with ``error``.
    """
    if not isinstance(notebook, (str, os.PathLike)):
        raise TypeError(f"notebook must be a path, got {type(notebook).__name__}")
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        raise TypeError(f"timeout must be an int number of seconds, got {type(timeout).__name__}")
    if timeout < 1:
        raise ValueError(f"timeout must be at least 1 second, got {timeout}")
    path = Path(notebook)
    name = str(notebook)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
            raise ValueError("not an nbformat v4 notebook")
    except (OSError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        return NotebookResult(name, (), error=f"cannot read the notebook: {why}")

    cells = exercise_cells(nb["cells"])
    if not cells:  # nothing to run: no kernel needed
        return NotebookResult(name, tuple(_missing(nb, set())))
    code_cells = sum(c.get("cell_type") == "code" for c in nb["cells"])
    with tempfile.TemporaryDirectory(prefix="aigc-grade-") as scratch, \
            tempfile.TemporaryDirectory(prefix="aigc-grade-results-") as private:
        top = path.resolve().parent
        work = Path(scratch) / "work" / (top.name or "notebook")
        try:
            shutil.copytree(top, work, symlinks=True, ignore=_ignore(path.name, str(top)))
        except (shutil.Error, OSError) as e:
            return NotebookResult(name, (), error=f"cannot copy its folder {top} for grading: {e}")
        results = Path(private) / "cells.jsonl"
        command = [sys.executable, "-m", "aigc_course.grade", "_run", str(work / path.name),
                   "--results", str(results), "--timeout", str(timeout)]
        limit = STARTUP_SECONDS + (timeout + 5) * (code_cells + 2)
        process = subprocess.Popen(command, cwd=scratch, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, stderr = process.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill(process.pid, group=True)
            _, stderr = process.communicate()
        records, kernel = _read_records(results)
        if process.returncode != 0:  # a runner killed or crashed may leave its kernel running: stop it
            _kill_kernel(*kernel)
        if process.returncode != 0 and not records:
            tail = _first_line(stderr.decode("utf-8", "replace")) or f"exit code {process.returncode}"
            return NotebookResult(name, (), error=f"the grader could not run the notebook: {tail}")
    graded = _combine(records, cells, timeout)
    return NotebookResult(name, tuple(graded + _missing(nb, {e.exercise for e in graded})))


def _missing(nb: dict, seen: set[str]) -> list[ExerciseResult]:
    """The course's exercises for this notebook that no longer have a self-checked cell in it: failed."""
    return [ExerciseResult(label, title, FAILED, "no cell calls this exercise's self-check any more")
            for label, title in _expected_exercises(nb) if label not in seen]


# ------------------------------------------------------------------------------------------ the runner


def _run(notebook: Path, results: Path, timeout: int) -> int:
    """Execute the notebook cell by cell in a fresh kernel, appending one JSON record per code cell."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=timeout, allow_errors=True, interrupt_on_timeout=False,
                            shutdown_kernel="immediate", kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})
    # The execute reply, not the cell's outputs, says whether a cell failed: after a timed-out cell nbclient
    # leaves that cell's output reader running, and it can swallow the outputs of the cells after it.
    replies: dict[int, dict] = {}

    def on_error(cell: object, cell_index: int, execute_reply: dict) -> None:
        replies[cell_index] = execute_reply.get("content", {})

    client.on_cell_error = on_error
    with results.open("a", encoding="utf-8") as out:
        def record(**fields: object) -> None:
            out.write(json.dumps(fields) + "\n")
            out.flush()

        with client.setup_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            provisioner = getattr(client.km, "provisioner", None)
            pid = getattr(getattr(provisioner, "process", None), "pid", None)
            record(kernel_pid=pid, connection_file=str(getattr(client.km, "connection_file", "")))
            stopped = ""
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                if stopped:
                    record(cell=index, status="not run", why=stopped)
                    continue
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    record(cell=index, status="timeout")
                    if not _recover(client):
                        stopped = "not run (the kernel stayed busy after a timed-out cell)"
                    continue
                except DeadKernelError:
                    record(cell=index, status="dead")
                    stopped = "not run (kernel died)"
                    continue
                error = replies.pop(index, None)
                if error is None:
                    record(cell=index, status="ok")
                else:
                    record(cell=index, status="error", ename=error.get("ename", ""),
                           evalue=error.get("evalue", ""))
    return 0


def _recover(client) -> bool:
    """Interrupt a kernel stuck in a timed-out cell; True when it answers again within a few seconds."""
    import asyncio

    import nbformat
    from jupyter_core.utils import ensure_event_loop
    from nbclient.util import ensure_async, run_sync

    loop = ensure_event_loop()  # the loop run_sync runs nbclient on: stop the timed-out cell's readers
    stale = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in stale:
        task.cancel()
    if stale:
        loop.run_until_complete(asyncio.gather(*stale, return_exceptions=True))
    try:
        async def interrupt() -> None:
            await ensure_async(client.km.interrupt_kernel())

        run_sync(interrupt)()
        probe = nbformat.v4.new_code_cell("pass")
        saved = client.timeout
        client.timeout = 10
        client.nb.cells.append(probe)  # execute_cell stores the cell at its index
        try:
            client.execute_cell(probe, len(client.nb.cells) - 1)
        finally:
            client.timeout = saved
            client.nb.cells.pop()
    except Exception:  # noqa: BLE001 - timed out again, kernel died, or anything else: the kernel is lost
        return False
    return True


# ------------------------------------------------------------------------------------------ reporting


def format_result(result: NotebookResult) -> list[str]:
    """The lines printed for one notebook: a ✓/✗/· line per exercise, then the score."""
    lines = [result.notebook]
    if result.error:
        return lines + [f"  error: {result.error}"]
    for e in result.exercises:
        if e.status == PASSED:
            lines.append(f"  ✓ {e.title}")
        elif e.status == FAILED:
            hint = e.hint.splitlines() or [""]
            lines.append(f"  ✗ {e.title}: {hint[0]}")
            lines += [f"      {line}" for line in hint[1:]]
        elif e.status == NOT_ATTEMPTED:
            lines.append(f"  · {e.title}: not attempted")
        else:
            lines.append(f"  · {e.title}: {e.hint or 'not run'}")
    lines.append(f"  score: {result.score}/{len(result.exercises)}")
    return lines


def csv_rows(results: Sequence[NotebookResult]) -> list[tuple[str, str, str, str]]:
    """Rows (notebook, exercise, status, hint) for ``--csv``; an unreadable notebook gives status "error"."""
    rows: list[tuple[str, str, str, str]] = []
    for r in results:
        if r.error:
            rows.append((r.notebook, "", "error", r.error))
        rows += [(r.notebook, e.exercise, e.status, e.hint) for e in r.exercises]
    return rows


def grade_command(notebooks: Sequence[str], csv_path: str | os.PathLike | None = None,
                  timeout: int = DEFAULT_TIMEOUT, stream: TextIO | None = None) -> int:
    """What ``aigc-course grade`` does: 0 when grading ran (whatever the score), 1 if a notebook was unreadable."""
    from .cli import _write

    stream = stream if stream is not None else sys.stdout
    results = []
    for notebook in notebooks:
        result = grade_notebook(notebook, timeout=timeout)
        results.append(result)
        for line in format_result(result):
            _write(line, stream)
    if len(results) > 1:
        total = sum(len(r.exercises) for r in results)
        _write(f"total: {sum(r.score for r in results)}/{total} in {len(results)} notebooks", stream)
    if csv_path is not None:
        try:
            with open(csv_path, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(CSV_HEADER)
                writer.writerows(csv_rows(results))
        except OSError as e:
            _write(f"error: cannot write --csv {csv_path}: {e.strerror or e}", sys.stderr)
            return 1
    return 1 if any(r.error for r in results) else 0


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m aigc_course.grade _run NOTEBOOK --results FILE --timeout S``: the isolated runner."""
    parser = argparse.ArgumentParser(prog="python -m aigc_course.grade")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("_run", help="internal: execute one notebook copy, writing per-cell records")
    run.add_argument("notebook", type=Path)
    run.add_argument("--results", type=Path, required=True)
    run.add_argument("--timeout", type=int, required=True)
    args = parser.parse_args(argv)
    return _run(args.notebook, args.results, args.timeout)


if __name__ == "__main__":
    sys.exit(_main())
