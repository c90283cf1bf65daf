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
    assert err.startswith("error: 02_bad_solutions.ipynb: cell 0") and "never closed" in err


def _fake_data_module(monkeypatch, cached):
    module = types.ModuleType("aigc_course.data")
    module.cached_datasets = cached
    monkeypatch.setitem(sys.modules, "aigc_course.data", module)
    monkeypatch.setattr(aigc_course, "data", module, raising=False)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """Doctor inputs that do not depend on this machine: CPU device, fast mode off, an empty data cache."""
    for var in ("AIGC_DEVICE", "AIGC_FAST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AIGC_DATA_DIR", str(tmp_path / "cache"))


def _lines(out: str) -> dict[str, str]:
    return {line[2:].split(":")[0]: line for line in out.splitlines() if line[:1] in "✓✗"}


def test_doctor_passes_on_a_working_install(course, clean_env, capsys, monkeypatch):
    _fake_data_module(monkeypatch, lambda: {"tinyshakespeare": True, "mnist": False})
    assert main(["doctor"]) == 0
    lines = _lines(capsys.readouterr().out)
    for label in ("Python", "torch", "numpy", "matplotlib", "scikit-learn", "pooch", "safetensors",
                  "tqdm", "ipywidgets", "jupyterlab", "device", "bfloat16", "torch threads", "fast mode",
                  "data cache", "datasets", "notebooks"):
        assert label in lines, f"doctor lacks a {label} line"
    for label in ("Python", "torch", "numpy", "device", "fast mode", "data cache", "notebooks"):
        assert lines[label].startswith("✓"), lines[label]
    assert "off" in lines["fast mode"]
    assert "created on first download" in lines["data cache"]
    assert "cached: tinyshakespeare" in lines["datasets"] and "mnist" in lines["datasets"]
    assert "2 lessons" not in lines["notebooks"] and "4 lessons" in lines["notebooks"]


def test_doctor_reports_fast_mode_cache_and_unknown_datasets(course, clean_env, capsys, monkeypatch):
    monkeypatch.setenv("AIGC_FAST", "1")
    (course / "cache").mkdir()
    monkeypatch.setitem(sys.modules, "aigc_course.data", None)  # import fails → "unknown"
    assert main(["doctor"]) == 0
    lines = _lines(capsys.readouterr().out)
    assert lines["fast mode"].startswith("✓") and "ON" in lines["fast mode"]
    assert "exists, writable" in lines["data cache"]
    datasets = lines["datasets"]
    assert datasets.startswith("✗") and "unknown" in datasets and datasets.endswith("(optional)")


def test_doctor_fails_on_a_bad_device_or_a_missing_package(course, clean_env, capsys, monkeypatch):
    _fake_data_module(monkeypatch, lambda: {})
    monkeypatch.setenv("AIGC_DEVICE", "tpu")
    assert main(["doctor"]) == 1
    captured = capsys.readouterr()
    assert _lines(captured.out)["device"].startswith("✗") and "AIGC_DEVICE" in captured.out
    assert "device" in captured.err

    monkeypatch.delenv("AIGC_DEVICE")
    monkeypatch.setattr(cli, "PACKAGES", [*cli.PACKAGES, ("no_such_module_xyz", "no-such-dist", "1.0")])
    assert main(["doctor"]) == 1
    line = _lines(capsys.readouterr().out)["no-such-dist"]
    assert line.startswith("✗") and "pip install 'no-such-dist>=1.0'" in line

    monkeypatch.setattr(cli, "PACKAGES", [("numpy", "numpy", "999.0")])
    assert main(["doctor"]) == 1
    assert "older than 999.0" in _lines(capsys.readouterr().out)["numpy"]

    monkeypatch.setattr(cli, "PACKAGES", [])
    monkeypatch.setenv("AIGC_FAST", "maybe")
    assert main(["doctor"]) == 1
    assert _lines(capsys.readouterr().out)["fast mode"].startswith("✗")


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
