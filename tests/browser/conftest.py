"""Fixtures for the real-browser test: a JupyterLab server on a free loopback port serving temporary copies of
the lessons (fast mode, its own settings, no state in the repository or the home folder), and a headless Debian
Chromium driven by Playwright. Both skip with a clear message where they cannot be had."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "browser"
SERVER_START_TIMEOUT = 90.0  # seconds; JupyterLab takes ~10 s on two cores
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
# Without the background-networking flags Chromium keeps dialling out, which a closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
# Lab settings: every cell in the DOM (no windowing), no news or update checks (no network, no toasts).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}
KERNEL_ENV = {"AIGC_FAST": "1", "AIGC_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
              "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def chromium_path() -> str | None:
    """The system Chromium: $AIGC_CHROMIUM if set, else the first of the usual Debian/Ubuntu paths present."""
    env = os.environ.get("AIGC_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    found = next((p for p in CHROMIUM_CANDIDATES if Path(p).is_file()), None)
    return found or shutil.which("chromium")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LabServer:
    """A running JupyterLab: its base URL, token, served folder and process."""

    url: str
    token: str
    root_dir: Path
    process: subprocess.Popen

    def api(self, method: str, path: str) -> object:
        """Call the server's REST API (``path`` like "/api/kernels"); returns the decoded JSON or None."""
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def notebook_url(self, name: str) -> str:
        """The URL that opens ``name`` (relative to the served folder) in JupyterLab, token included, in a
        workspace of its own (else JupyterLab restores the previously opened notebooks next to it)."""
        workspace = "ws-" + "".join(ch if ch.isalnum() else "-" for ch in Path(name).stem)
        return f"{self.url}/lab/workspaces/{workspace}/tree/{name}?token={self.token}"

    def shutdown_kernels(self) -> None:
        """Stop every running kernel (between lessons, so they do not pile up in memory)."""
        for kernel in self.api("GET", "/api/kernels") or []:
            self.api("DELETE", f"/api/kernels/{kernel['id']}")


def _stop(proc: subprocess.Popen, server: LabServer | None) -> None:
    """Shut the server down through its API (it stops its kernels), then terminate or kill what is left."""
    try:
        parent = psutil.Process(proc.pid)
        family = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    if server is not None and proc.poll() is None:
        try:
            server.shutdown_kernels()
            server.api("POST", "/api/shutdown")
        except (OSError, urllib.error.URLError):
            pass
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    _, alive = psutil.wait_procs(family, timeout=5)
    for p in alive:  # kernels run in their own sessions: kill them one by one, never by name
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab on a free loopback port with a random token, serving a temporary folder (the tests copy
    lessons into ``root_dir``), fast mode in the environment its kernels inherit; stopped at the end."""
    pytest.importorskip("jupyterlab", reason="the browser test needs JupyterLab (pip install -e '.[dev]')")
    base = tmp_path_factory.mktemp("lab")
    root_dir, settings, config = base / "root", base / "settings", base / "config"
    for d in (root_dir, settings, config, base / "runtime", base / "workspaces", base / "data"):
        d.mkdir()
    for rel, value in LAB_SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value), encoding="utf-8")
    token, port = secrets.token_hex(16), free_port()
    env = {**os.environ, **KERNEL_ENV, "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"), "JUPYTER_CONFIG_DIR": str(config),
           "JUPYTER_RUNTIME_DIR": str(base / "runtime"), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root_dir}", "--ServerApp.open_browser=False",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log_path = base / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=root_dir, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = LabServer(url=f"http://127.0.0.1:{port}", token=token, root_dir=root_dir, process=proc)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode} while starting:\n"
                            f"{log_path.read_text(errors='replace')[-3000:]}")
            try:
                server.api("GET", "/api/status")
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on port {port} within {SERVER_START_TIMEOUT:.0f} s:\n"
                                f"{log_path.read_text(errors='replace')[-3000:]}")
                time.sleep(0.25)
        yield server
    finally:
        _stop(proc, server)


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A headless system Chromium (fresh profile) under Playwright; skips where either is missing."""
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="the browser test needs Playwright for Python (pip install playwright; see scripts/"
               "install_browser_deps.sh)", exc_type=ImportError)
    exe = chromium_path()
    if exe is None:
        pytest.skip("the browser test needs Chromium (Debian: apt-get install chromium; or set AIGC_CHROMIUM to "
                    "a Chrome/Chromium binary; see scripts/install_browser_deps.sh)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as p:
        try:
            context = p.chromium.launch_persistent_context(
                str(profile), executable_path=exe, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000}, timeout=60_000)
        except sync_api.Error as exc:
            pytest.skip(f"Chromium at {exe} did not start under Playwright: {str(exc).splitlines()[0]}")
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """build/browser/, where each lesson's screenshot goes (git-ignored with build/)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
