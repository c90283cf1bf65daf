"""`make lab` really serves the course (headless, on loopback): the repository root, opened at lesson 00."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSON = "notebooks/00_welcome_aigc_pipeline.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def _listing(base: str, token: str, folder: str) -> dict[str, str]:
    """The Jupyter contents API's listing of `folder` (relative to the server root): name -> type."""
    status, body = _get(f"{base}/api/contents/{folder}?content=1&token={token}")
    assert status == 200
    info = json.loads(body)
    assert info["type"] == "directory", info
    return {item["name"]: item["type"] for item in info["content"]}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None or not (ROOT / ".venv" / "bin" / "jupyter").exists(),
                    reason="needs make and the project's .venv")
def test_make_lab_serves_the_repository_and_opens_lesson_00(tmp_path):
    port, token = _free_port(), "aigc-test-token"
    # Only what a learner on a headless machine would add: no root_dir and no URL, those must come from `make lab`.
    args = (f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 "
            f"--IdentityProvider.token={token}")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    cmd = ["make", "-s", "-o", ".venv/.aigc-installed", "lab", f"LAB_ARGS={args}"]  # -o: never reinstall here
    log = tmp_path / "lab.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
    try:
        deadline, last = time.time() + 120, None
        while time.time() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                status, body = _get(f"{base}/api/contents/{LESSON}?content=0&token={token}", timeout=5)
                break
            except OSError as e:
                last = e
                time.sleep(0.5)
        else:
            pytest.fail(f"JupyterLab did not answer on port {port}: {last}\n{log.read_text()}")
        # lesson 00 resolves at notebooks/..., so the server's root is the repository, not notebooks/
        info = json.loads(body)
        assert info["name"] == Path(LESSON).name and info["type"] == "notebook" and info["path"] == LESSON

        # every folder the lessons send the learner to is in the file browser, with its notebooks
        top = _listing(base, token, "")
        assert {"notebooks", "exercises", "solutions"} <= {n for n, t in top.items() if t == "directory"}, top
        for folder in ("notebooks", "exercises", "solutions"):
            on_disk = {p.name for p in (ROOT / folder).glob("*.ipynb")}
            served = {n for n, t in _listing(base, token, folder).items() if t == "notebook"}
            assert on_disk and served == on_disk, (folder, served, on_disk)

        # the link printed with --no-browser opens lesson 00, and that page is JupyterLab
        deadline = time.time() + 30
        while "?token=" not in log.read_text() and time.time() < deadline:
            time.sleep(0.2)
        # (Jupyter prints "?token=..." when the token was given explicitly, so match the path only)
        links = re.findall(rf"http://127\.0\.0\.1:{port}(/[^\s?]*)\?token=", log.read_text())
        assert links and all(link == f"/lab/tree/{LESSON}" for link in links), log.read_text()
        status, page = _get(f"{base}{links[0]}?token={token}")
        assert status == 200 and b"JupyterLab" in page
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=30)
                break
            except ProcessLookupError:  # already gone
                break
            except subprocess.TimeoutExpired:
                continue
