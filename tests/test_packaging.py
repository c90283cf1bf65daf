"""pyproject.toml and environment.yml must agree; the repo's entry points must exist."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda package name -> PyPI name
NOT_PACKAGES = {"python", "pip"}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["dev"])
    return dict(_split(r) for r in reqs)


def environment_requirements(text: str) -> dict[str, str]:
    """Conda dependencies of environment.yml (top-level `- name spec` lines, not the pip section)."""
    out: dict[str, str] = {}
    in_deps = False
    for line in text.splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
            continue
        if in_deps and re.match(r"^\S", line):
            break
        m = re.match(r"^  - ([^:#]+?)\s*(#.*)?$", line)
        if in_deps and m:
            name, spec = _split(m.group(1))
            name = CONDA_NAMES.get(name, name)
            if name not in NOT_PACKAGES:
                out[name] = spec
    return out


def test_environment_yml_matches_pyproject():
    py = pyproject_requirements()
    env = environment_requirements((ROOT / "environment.yml").read_text())
    assert sorted(env) == sorted(py), (
        f"only in pyproject: {sorted(set(py) - set(env))}; only in environment.yml: {sorted(set(env) - set(py))}")
    assert env == py, "version constraints differ between environment.yml and pyproject.toml"


def test_environment_parser_sees_a_missing_package():
    text = "name: x\ndependencies:\n  - python>=3.10\n  - pytorch>=2.4\n  - numpy\n  - pip:\n      - -e .\n"
    assert environment_requirements(text) == {"torch": ">=2.4", "numpy": ""}


def test_entry_points_exist():
    assert (ROOT / ".ci" / "run").stat().st_mode & 0o111, ".ci/run must be executable"
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lab:", "test:", "exercises:", "lint:"):
        assert re.search(rf"^{target}", makefile, re.M), f"Makefile lacks the {target} target"
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
