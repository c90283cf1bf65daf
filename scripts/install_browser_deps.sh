#!/usr/bin/env bash
# What `make test-browser` needs besides the dev extra: Playwright for Python in the venv and a system Chromium
# (Playwright's own browser download is not used: the test points Playwright at /usr/bin/chromium).
# Never fails: where something cannot be had, it says so and the browser test skips with the same message.
#   usage: scripts/install_browser_deps.sh [VENV]      (default .venv)
set -uo pipefail
VENV="${1:-.venv}"
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
    echo "install_browser_deps: no $PY yet; playwright comes with the dev extra (make install)"
elif "$PY" -c "import playwright.sync_api" 2>/dev/null; then
    echo "install_browser_deps: playwright already in $VENV"
elif ! "$PY" -m pip install --quiet "playwright>=1.45"; then
    echo "install_browser_deps: WARNING: could not pip-install playwright; the browser test will skip" >&2
fi

have_chromium() {
    [ -n "${AIGC_CHROMIUM:-}" ] && [ -x "${AIGC_CHROMIUM}" ] && return 0
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
        || command -v google-chrome >/dev/null 2>&1
}

if have_chromium; then
    echo "install_browser_deps: chromium found"
elif command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
    if [ "$(id -u)" = "0" ] || [ -n "$SUDO" ]; then
        # Debian's package is `chromium` (Ubuntu's is a snap shim; set AIGC_CHROMIUM to a real binary there).
        { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } \
            || echo "install_browser_deps: WARNING: apt-get install chromium failed; the browser test will skip" >&2
    else
        echo "install_browser_deps: WARNING: no chromium and no root/sudo to apt-get it; the browser test will skip" >&2
    fi
else
    echo "install_browser_deps: WARNING: no chromium and no apt-get (set AIGC_CHROMIUM=/path/to/chrome)" >&2
fi
exit 0
