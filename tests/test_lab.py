"""`make lab` really serves lesson 00 (headless, on loopback)."""

from __future__ import annotations

import json
import os
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


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None or not (ROOT / ".venv" / "bin" / "jupyter").exists(),
                    reason="needs make and the project's .venv")
def test_make_lab_serves_lesson_00(tmp_path):
    port, token = _free_port(), "aigc-test-token"
    args = (f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 "
            f"--IdentityProvider.token={token} --ServerApp.root_dir={ROOT}")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path)}
    cmd = ["make", "-s", "-o", ".venv/.aigc-installed", "lab", f"LAB_ARGS={args}"]  # -o: never reinstall here
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/api/contents/{LESSON}?content=0&token={token}"
    try:
        deadline, last = time.time() + 120, None
        while time.time() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    info = json.load(r)
                break
            except OSError as e:
                last = e
                time.sleep(0.5)
        else:
            pytest.fail(f"JupyterLab did not answer on port {port}: {last}")
        assert info["name"] == Path(LESSON).name and info["type"] == "notebook"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=10) as r:
            assert r.status == 200 and b"JupyterLab" in r.read()
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
