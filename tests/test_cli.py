"""The ``aigc-course`` command line, run in-process on temporary folders (plus one subprocess run)."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import aigc_course
from aigc_course import cli
from aigc_course.cli import main

ROOT = Path(__file__).resolve().parents[1]

HEADER = """# Lesson {nn} — {title}

| | |
|---|---|
| **Objectives** | learn |
| **Prerequisites** | none |
| **Expected time** | {time} |
| **GPU** | Not needed |
"""


def _lesson(path: Path, nn: str, title: str, time: str, *cells) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = new_notebook(cells=[new_markdown_cell(HEADER.format(nn=nn, title=title, time=time)),
                             new_code_cell("device = setup_lesson(seed=0)"), *cells])
    nbformat.write(nb, path)


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A miniature course repository; the current directory is its root."""
    _lesson(tmp_path / "notebooks/00_welcome.ipynb", "00", "Welcome: the AIGC pipeline, end to end",
            "fast mode ≈ 10 s · full mode ≈ 2 min on a laptop CPU")
    _lesson(tmp_path / "notebooks/01_divergences.ipynb", "01", "Divergences", "fast ≈ 5 s · full ≈ 3 min")
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), tmp_path / "notebooks/02_draft.ipynb")
    (tmp_path / "notebooks/03_broken.ipynb").write_text("{ not json")
    (tmp_path / "notebooks/scratch.ipynb").write_text("{}")  # not a lesson name: ignored
    _lesson(tmp_path / "solutions/01_divergences_solutions.ipynb", "01", "Exercises: divergences",
            "fast ≈ 5 s", new_markdown_cell("### Exercise 1.1 — a number"),
            new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\ncheck_x(x)"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _rows(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}


def test_list_shows_titles_times_and_solutions(course, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:2] == ["#", "lesson"] and "solutions" in header
    rows = _rows(out)
    assert sorted(rows) == ["00", "01", "02", "03"]
    assert "Welcome: the AIGC pipeline, end to end" in rows["00"] and "Lesson 00" not in rows["00"]
    assert "fast mode ≈ 10 s · full mode ≈ 2 min on a laptop CPU" in rows["00"]
    assert rows["00"].rstrip().endswith("no") and rows["01"].rstrip().endswith("yes")
    assert "Divergences" in rows["01"] and "full ≈ 3 min" in rows["01"]
    # tolerant of notebooks without a header or with broken JSON: file name and "?"
    assert "02_draft.ipynb" in rows["02"] and " ? " in rows["02"]
    assert "03_broken.ipynb" in rows["03"] and " ? " in rows["03"]
    assert "scratch" not in out


def test_list_with_explicit_folder_from_elsewhere(course, tmp_path_factory, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert main(["list", "--notebooks", str(course / "notebooks")]) == 0
    assert "Divergences" in capsys.readouterr().out
    assert main(["list"]) == 1  # no repository above this folder
    assert "--notebooks" in capsys.readouterr().err
    assert main(["list", "--notebooks", str(course / "nope")]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_make_exercises_writes_then_reports_up_to_date(course, capsys):
    assert main(["make-exercises", "--check"]) == 1
    err = capsys.readouterr().err
    assert "01_divergences_exercises.ipynb" in err and "make exercises" in err

    assert main(["make-exercises"]) == 0
    out = capsys.readouterr().out
    assert "wrote exercises/01_divergences_exercises.ipynb" in out
    nb = nbformat.read(course / "exercises/01_divergences_exercises.ipynb", as_version=4)
    assert 'NotImplementedError("Exercise 1.1: replace this line with your code")' in nb.cells[-1].source

    assert main(["make-exercises"]) == 0
    assert capsys.readouterr().out.strip() == "exercises/ is up to date"
    assert main(["make-exercises", "--check"]) == 0
    assert "exercises/ is up to date" in capsys.readouterr().out


def test_make_exercises_with_folders_and_errors(course, capsys):
    out_dir = course / "elsewhere"
    args = ["make-exercises", "--solutions", str(course / "solutions"), "--exercises", str(out_dir)]
    assert main(args) == 0
    assert (out_dir / "01_divergences_exercises.ipynb").is_file()
    assert not (course / "exercises").exists()
    capsys.readouterr()

    bad = course / "solutions/02_bad_solutions.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("### BEGIN SOLUTION\nx = 1")]), bad)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: 02_bad_solutions.ipynb: cell 0 (code cell starting '### BEGIN SOLUTION')")
    assert "never closed" in err


class TestMakeExercisesFaults:
    """Every failure ends with one `error: ...` line naming the file and exit code 1, never a traceback."""

    def _run(self, capsys, *extra) -> tuple[int, str, str]:
        code = main(["make-exercises", *extra])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    def _one_error_line(self, err: str) -> str:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "Traceback" not in err
        return lines[0]

    @pytest.mark.parametrize("data, expected", [
        (b"{ not json", "error: 02_bad_solutions.ipynb: not valid JSON (Expecting property name enclosed in "
                        "double quotes at line 1, column 3)"),
        (b"\xff\xfe", "error: 02_bad_solutions.ipynb: not UTF-8 text (bad byte at offset 0); a notebook is a "
                      "JSON file in UTF-8"),
        (b'{"cells": [{"cell_type": "code", "source": "x"}], "metadata": {}, "nbformat": 4, '
         b'"nbformat_minor": 5}',
         "error: 02_bad_solutions.ipynb: not a valid Jupyter notebook (nbformat v4 schema): cell 0: "),
        (b"[]", "error: 02_bad_solutions.ipynb: not a Jupyter notebook (a JSON object with 'cells' was expected)"),
    ])
    def test_invalid_json_and_schema_invalid_notebooks(self, course, capsys, data, expected):
        (course / "solutions/02_bad_solutions.ipynb").write_bytes(data)
        for check in ([], ["--check"]):
            code, out, err = self._run(capsys, *check)
            assert code == 1 and out == ""
            assert self._one_error_line(err).startswith(expected)
        assert not (course / "exercises").exists()

    def test_unreadable_solutions_file(self, course, capsys):
        folder = course / "solutions/02_odd_solutions.ipynb"
        folder.mkdir()  # a folder where a file is expected: reading it fails whoever runs the test
        code, _, err = self._run(capsys)
        assert code == 1
        assert self._one_error_line(err) == (f"error: {folder}: cannot read the solutions notebook (Is a "
                                             "directory)")

    def test_unwritable_output_folder(self, course, capsys):
        (course / "blocker").write_text("a file where a folder should be")
        target = course / "blocker/exercises"
        code, out, err = self._run(capsys, "--exercises", str(target))
        assert code == 1 and out == ""
        assert self._one_error_line(err) == (
            f"error: {target / '01_divergences_exercises.ipynb'}: cannot write the exercise notebook (Not a "
            f"directory); is {target} a writable folder?")

    def test_permission_denied_on_write(self, course, capsys, monkeypatch):
        from pathlib import Path as _Path

        def denied(self, data):
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(_Path, "write_bytes", denied)
        code, _, err = self._run(capsys)
        assert code == 1
        line = self._one_error_line(err)
        assert line.endswith("cannot write the exercise notebook (Permission denied); is "
                             f"{course / 'exercises'} a writable folder?")
        assert list((course / "exercises").iterdir()) == []  # no temporary file left behind

    def test_exercises_path_that_is_a_file(self, course, capsys):
        (course / "exercises").write_text("oops")
        code, _, err = self._run(capsys)
        assert code == 1
        assert self._one_error_line(err) == (f"error: exercises_dir {str(course / 'exercises')!r} exists but is "
                                             "not a directory")

    def test_no_repository(self, tmp_path_factory, capsys, monkeypatch):
        monkeypatch.chdir(tmp_path_factory.mktemp("nowhere"))
        code, _, err = self._run(capsys)
        assert code == 1
        assert self._one_error_line(err) == ("error: no course repository here or above; pass --solutions DIR "
                                             "(and --exercises DIR)")


def _fake_data_module(monkeypatch, cached):
    module = types.ModuleType("aigc_course.data")
    module.cached_datasets = cached
    monkeypatch.setitem(sys.modules, "aigc_course.data", module)
    monkeypatch.setattr(aigc_course, "data", module, raising=False)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """Doctor inputs that do not depend on this machine: CPU device, fast mode off, an empty data cache."""
    for var in ("AIGC_DEVICE", "AIGC_FAST", "AIGC_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AIGC_DATA_DIR", str(tmp_path / "cache"))


def _lines(out: str) -> dict[str, str]:
    return {line[2:].split(":")[0]: line for line in out.splitlines() if line[:1] in "✓✗"}


class TestDoctor:
    def test_passes_on_a_working_install(self, course, clean_env, capsys, monkeypatch):
        _fake_data_module(monkeypatch, lambda: {"tinyshakespeare": True, "mnist": False})
        assert main(["doctor"]) == 0
        out = capsys.readouterr().out
        lines = _lines(out)
        for label in ("Python", "torch", "numpy", "matplotlib", "scikit-learn", "pooch", "safetensors",
                      "tqdm", "ipywidgets", "jupyterlab", "device", "bfloat16", "torch threads", "fast mode",
                      "data cache", "datasets", "notebooks"):
            assert label in lines, f"doctor lacks a {label} line"
        for label in ("Python", "torch", "numpy", "device", "fast mode", "data cache", "notebooks",
                      "torch threads"):
            assert lines[label].startswith("✓"), lines[label]
        assert "off" in lines["fast mode"]
        assert "created on first download" in lines["data cache"]
        assert "cached: tinyshakespeare" in lines["datasets"] and "mnist" in lines["datasets"]
        assert lines["notebooks"] == f"✓ notebooks: notebooks/ (4 lessons) in the course repository {course}"
        assert out.rstrip().endswith("All essential checks passed: run `make lab` to start with lesson 00.")

    def test_inside_a_lesson_kernel(self, course, clean_env, capsys, monkeypatch):
        """The doctor cell of lesson 00 runs with cwd = notebooks/ in a kernel: no shell advice, no '.'."""
        _fake_data_module(monkeypatch, lambda: {})
        monkeypatch.chdir(course / "notebooks")
        (course / "notebooks/02_draft.ipynb").unlink()
        (course / "notebooks/03_broken.ipynb").unlink()
        fake_ipython = types.ModuleType("IPython")
        fake_ipython.get_ipython = lambda: types.SimpleNamespace(kernel=object())
        monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
        assert cli._in_notebook_kernel()
        assert main(["doctor"]) == 0
        out = capsys.readouterr().out
        assert _lines(out)["notebooks"] == f"✓ notebooks: notebooks/ (2 lessons) in the course repository {course}"
        assert "make lab" not in out and ": . (" not in out
        assert out.rstrip().endswith("All essential checks passed: this machine is ready for the course.")

    def test_kernel_detection(self, monkeypatch):
        monkeypatch.delitem(sys.modules, "IPython", raising=False)
        assert not cli._in_notebook_kernel()
        terminal = types.ModuleType("IPython")
        terminal.get_ipython = lambda: types.SimpleNamespace()  # an IPython shell without a kernel
        monkeypatch.setitem(sys.modules, "IPython", terminal)
        assert not cli._in_notebook_kernel()
        terminal.get_ipython = lambda: None
        assert not cli._in_notebook_kernel()

    def test_one_lesson_is_singular(self, course, clean_env, capsys, monkeypatch):
        _fake_data_module(monkeypatch, lambda: {})
        for name in ("00_welcome.ipynb", "02_draft.ipynb", "03_broken.ipynb"):
            (course / "notebooks" / name).unlink()
        main(["doctor"])
        assert "notebooks/ (1 lesson) in" in _lines(capsys.readouterr().out)["notebooks"]

    def test_reports_fast_mode_cache_and_unknown_datasets(self, course, clean_env, capsys, monkeypatch):
        monkeypatch.setenv("AIGC_FAST", "1")
        (course / "cache").mkdir()
        monkeypatch.setitem(sys.modules, "aigc_course.data", None)  # import fails → "unknown"
        assert main(["doctor"]) == 0
        lines = _lines(capsys.readouterr().out)
        assert lines["fast mode"].startswith("✓") and "ON" in lines["fast mode"]
        assert "exists, writable" in lines["data cache"]
        datasets = lines["datasets"]
        assert datasets.startswith("✗") and "unknown" in datasets and datasets.endswith("(optional)")

    @pytest.mark.parametrize("variable, value, label", [
        ("AIGC_NUM_THREADS", "abc", "torch threads"), ("AIGC_NUM_THREADS", "0", "torch threads"),
        ("AIGC_NUM_THREADS", "2.5", "torch threads"), ("AIGC_NUM_THREADS", "100000", "torch threads"),
        ("AIGC_FAST", "abc", "fast mode"), ("AIGC_FAST", "maybe", "fast mode"),
        ("AIGC_DEVICE", "tpu", "device"),
    ])
    def test_a_bad_environment_variable_fails_the_check_naming_it(self, course, clean_env, capsys, monkeypatch,
                                                                 variable, value, label):
        _fake_data_module(monkeypatch, lambda: {})
        monkeypatch.setattr(cli, "PACKAGES", [])
        monkeypatch.setenv(variable, value)
        assert main(["doctor"]) == 1
        captured = capsys.readouterr()
        line = _lines(captured.out)[label]
        assert line.startswith(f"✗ {label}: environment variable {variable} ") and repr(value) in line
        assert captured.err.strip() == f"1 essential check(s) failed: {label}"
        assert "All essential checks passed" not in captured.out

    def test_a_valid_thread_count_is_shown(self, course, clean_env, capsys, monkeypatch):
        _fake_data_module(monkeypatch, lambda: {})
        monkeypatch.setenv("AIGC_NUM_THREADS", "3")
        assert main(["doctor"]) == 0
        assert _lines(capsys.readouterr().out)["torch threads"] == (
            "✓ torch threads: 3 (AIGC_NUM_THREADS=3; setup_lesson applies it)")

    def test_fails_on_a_missing_or_old_package(self, course, clean_env, capsys, monkeypatch):
        _fake_data_module(monkeypatch, lambda: {})
        monkeypatch.setattr(cli, "PACKAGES", [*cli.PACKAGES, ("no_such_module_xyz", "no-such-dist", "1.0")])
        assert main(["doctor"]) == 1
        line = _lines(capsys.readouterr().out)["no-such-dist"]
        assert line.startswith("✗") and "pip install 'no-such-dist>=1.0'" in line

        monkeypatch.setattr(cli, "PACKAGES", [("numpy", "numpy", "999.0")])
        assert main(["doctor"]) == 1
        assert "older than 999.0" in _lines(capsys.readouterr().out)["numpy"]


def test_doctor_minimum_versions_match_pyproject():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = dict(d.replace(" ", "").split(">=") for d in deps)
    assert declared.pop("torch") == ".".join(map(str, cli.MIN_TORCH))
    assert {dist: minimum for _, dist, minimum in cli.PACKAGES} == declared


def test_usage_errors_return_2_and_version(capsys):
    assert main([]) == 2
    assert "usage: aigc-course" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["make-exercises", "--bogus"]) == 2
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"aigc-course {aigc_course.__version__}"
    with pytest.raises(TypeError, match="argv"):
        main("doctor")  # type: ignore[arg-type]


def test_console_script_is_declared():
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="aigc-course")
    assert script.value == "aigc_course.cli:main"


def test_command_line_exits_2_with_usage_on_bad_arguments():
    """One real process: `python -m aigc_course` exits 2 with usage on stderr (bad flag, or no command)."""
    for argv in (["--no-such-flag"], []):
        proc = subprocess.run([sys.executable, "-m", "aigc_course", *argv], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert "usage: aigc-course" in proc.stderr and proc.stdout == ""
