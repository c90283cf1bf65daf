"""The lessons as a learner sees them: JupyterLab in a real (headless) Chromium, Run → Run All Cells, then no
error output anywhere, every plotting cell rendered as an image, and the ipywidgets explorers live (a slider
moved with the keyboard changes what they show). One screenshot per lesson in build/browser/.

`make test` runs it with everything else, `make test-browser` alone; it skips with a message where Playwright or
Chromium is missing (scripts/install_browser_deps.sh installs both)."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSON_DIR = ROOT / "notebooks"
RUN_ALL_TIMEOUT_MS = 300_000  # fast mode takes 6-16 s per lesson on two cores; generous for a loaded CI machine
UI_TIMEOUT_MS = 60_000

# The lessons driven, and for those with an ipywidgets explorer: which slider to nudge (its description label),
# its readout before and after one ArrowRight step, and which widget must change (the Image's src in lesson 06,
# the HTML text in lesson 07).
LESSONS = {
    "00_welcome_aigc_pipeline": None,
    "03_dcgan_images": None,
    "06_vae_in_practice": {"slider": "z1", "readout": ("2.00", "2.05"), "shows": ".widget-image"},
    "07_autoregressive_lm": {"slider": "seed", "readout": ("0", "1"), "shows": ".widget-html"},
}

CODE_CELL = ".jp-Notebook .jp-CodeCell"
# JupyterLab 4.6 renders error outputs (tracebacks) like stderr streams, as application/vnd.jupyter.stderr on
# the .jp-OutputArea-output element; older and newer versions may use application/vnd.jupyter.error.
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'
STDERR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
STDERR_FAILURE = re.compile(r"Traceback|Error\b|Exception\b")
PROMPT_DONE = re.compile(r"^\[\d+\]:$")


def code_cell_count(path: Path) -> int:
    """How many code cells the notebook at ``path`` has."""
    return sum(c["cell_type"] == "code" for c in json.loads(path.read_text(encoding="utf-8"))["cells"])


def _lesson_path(stem: str) -> Path:
    path = LESSON_DIR / f"{stem}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"lesson {stem!r} not found in {LESSON_DIR}")
    return path


def expected_image_cells(path: Path) -> list[int]:
    """Indices (among code cells) of the cells that call plt.show(): each must show at least one image."""
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    out = []
    for i, cell in enumerate(cells):
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        code = "\n".join(line.split("#", 1)[0] for line in src.splitlines())
        if "plt.show()" in code:
            out.append(i)
    return out


def run_all_cells(page) -> None:
    """Run → Run All Cells through the menu bar, as a learner would."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item:visible .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


KERNEL_IDLE_JS = """() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]
    .some(e => /^(?!No Kernel).+ \\| Idle$/.test(e.textContent.trim()))"""


def wait_until_done(page) -> None:
    """Wait until the kernel is idle and no cell is queued or running ([*]); the first cell must have run."""
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
                .map(p => p.textContent.trim());
            const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
            const idle = [...document.querySelectorAll('.jp-StatusBar-TextItem')]
                .some(e => /^(?!No Kernel).+ \\| Idle$/.test(e.textContent.trim()));
            return prompts.length > 0 && /^\\[\\d+\\]:$/.test(prompts[0]) && !prompts.some(p => p === '[*]:')
                && idle && (status === null || status.getAttribute('data-status') === 'idle');
        }""",
        timeout=RUN_ALL_TIMEOUT_MS, polling=250)


def error_outputs(page) -> list[str]:
    """The text (in page order) of every error output, and of every stderr stream that looks like a failure."""
    outputs = page.locator(f"{ERROR_OUTPUT}, {STDERR_OUTPUT}")
    found = []
    for i in range(outputs.count()):
        out = outputs.nth(i)
        text = out.inner_text()
        if out.get_attribute("data-mime-type") == "application/vnd.jupyter.error" or STDERR_FAILURE.search(text):
            found.append(text[:2000])
    return found


def slider(page, description: str):
    """The ipywidgets slider labelled ``description``."""
    label = page.locator(".widget-label", has_text=re.compile(rf"^{re.escape(description)}$"))
    return page.locator(".jp-OutputArea .widget-slider", has=label).first


def nudge_slider(page, description: str) -> None:
    """Focus the handle of the slider labelled ``description`` and press ArrowRight (one step up)."""
    handle = slider(page, description).locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    handle.press("ArrowRight")


WIDGET_STATE_JS = """sel => {
    const el = document.querySelector('.jp-OutputArea ' + sel);
    if (el === null) return '';
    return el.tagName === 'IMG' ? (el.getAttribute('src') || '') : el.innerText;
}"""


def widget_state(page, selector: str) -> str:
    """What a widget shows: an Image's src (a new blob URL per PNG) or an HTML widget's text."""
    return page.evaluate(WIDGET_STATE_JS, selector)


def open_and_run_all(page, lab, notebook: Path) -> tuple[list[str], float]:
    """Copy ``notebook`` into the server's folder (outputs never go to the repository), open it, wait for the
    kernel, Run All Cells through the menu and wait until everything ran; returns (code cell prompts, seconds)."""
    shutil.copy2(notebook, lab.root_dir / notebook.name)
    n_code = code_cell_count(notebook)
    started = time.monotonic()
    page.goto(lab.notebook_url(notebook.name), wait_until="domcontentloaded")
    # The kernel is ready once the status bar reads "<kernel name> | Idle" (the toolbar's execution indicator
    # already says idle while the status bar still reads "No Kernel | Initializing").
    page.wait_for_function(KERNEL_IDLE_JS, timeout=RUN_ALL_TIMEOUT_MS, polling=250)
    # Cells are attached progressively: wait until all are in the DOM (windowing is off, see conftest.py).
    page.wait_for_function("([sel, n]) => document.querySelectorAll(sel).length === n",
                           arg=[f"{CODE_CELL} .jp-InputPrompt", n_code])
    run_all_cells(page)
    # Fail fast (not after the long timeout) if Run All did not start anything.
    page.wait_for_function("sel => /^\\[(\\*|\\d+)\\]:$/.test(document.querySelector(sel).textContent.trim())",
                           arg=f"{CODE_CELL} .jp-InputPrompt", polling=100)
    wait_until_done(page)
    prompts = [t.strip() for t in page.locator(f"{CODE_CELL} .jp-InputPrompt").all_inner_texts()]
    return prompts, time.monotonic() - started


def _new_page(browser_context):
    page = browser_context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    return page


@pytest.mark.parametrize("stem", list(LESSONS))
def test_lesson_runs_in_jupyterlab(stem: str, browser_context, lab, screenshots: Path) -> None:
    src = _lesson_path(stem)
    page = _new_page(browser_context)
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    try:
        prompts, ran = open_and_run_all(page, lab, src)
        errors = error_outputs(page)
        assert not errors, f"{stem}: {len(errors)} error output(s) in JupyterLab:\n" + "\n---\n".join(errors)
        not_run = [i for i, p in enumerate(prompts) if not PROMPT_DONE.match(p)]
        assert not not_run, f"{stem}: code cells {not_run} did not run (prompts {[prompts[i] for i in not_run]})"

        expected = expected_image_cells(src)
        assert expected, f"{stem}: no plt.show() cell; the lesson should plot something"
        code_cells = page.locator(CODE_CELL)
        no_image = [i for i in expected
                    if code_cells.nth(i).locator('.jp-OutputArea-output[data-mime-type="image/png"] img').count() == 0]
        assert not no_image, f"{stem}: code cells {no_image} call plt.show() but show no rendered PNG image"
        n_png = page.locator('.jp-OutputArea-output[data-mime-type="image/png"] img').count()
        assert n_png >= len(expected), f"{stem}: {n_png} PNG outputs, expected at least {len(expected)}"
        unloaded = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea img')]
            .filter(img => !(img.complete && img.naturalWidth > 0)).length""")
        assert unloaded == 0, f"{stem}: {unloaded} output image(s) did not decode"

        widget = LESSONS[stem]
        if widget is not None:
            shows = page.locator(f".jp-OutputArea {widget['shows']}").first
            shows.scroll_into_view_if_needed()
            before = widget_state(page, widget["shows"])
            assert before, f"{stem}: the explorer's {widget['shows']} shows nothing"
            readout = slider(page, widget["slider"]).locator(".widget-readout")
            assert readout.inner_text().strip() == widget["readout"][0], f"{stem}: unexpected start of the slider"
            nudge_slider(page, widget["slider"])
            page.wait_for_function("([el, want]) => el.textContent.trim() === want",
                                   arg=[readout.element_handle(), widget["readout"][1]])
            page.wait_for_function(f"([sel, before]) => {{ const now = ({WIDGET_STATE_JS})(sel); "
                                   "return now !== '' && now !== before; }",
                                   arg=[widget["shows"], before], timeout=UI_TIMEOUT_MS)
            shows.scroll_into_view_if_needed()
            assert not error_outputs(page), f"{stem}: moving slider {widget['slider']!r} raised an error"
        page.screenshot(path=str(screenshots / f"{stem}.png"))
        assert not page_errors, f"{stem}: JavaScript errors in the page: {page_errors}"
        print(f"{stem}: {len(prompts)} code cells, {n_png} PNG outputs, opened and ran in {ran:.1f} s")
    except Exception:
        page.screenshot(path=str(screenshots / f"{stem}-FAILED.png"))
        raise
    finally:
        page.close()
        lab.shutdown_kernels()


def test_the_checks_see_a_failing_notebook(browser_context, lab, tmp_path: Path, screenshots: Path) -> None:
    """The control: in a notebook whose second cell raises, the error output is found, the third cell is left
    unrun, a stderr Traceback counts, and a cell without plt.show() is not expected to plot."""
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}, "cells": [
        {"cell_type": "code", "id": "a", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "import sys\nprint('Traceback (most recent call last): shown on stderr', file=sys.stderr)"},
        {"cell_type": "code", "id": "b", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "raise ValueError('boom from the control notebook')"},
        {"cell_type": "code", "id": "c", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "print('never runs')  # plt.show() in a comment does not count"},
    ]}
    path = tmp_path / "zz_control_failing.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    page = _new_page(browser_context)
    try:
        prompts, _ = open_and_run_all(page, lab, path)
        errors = error_outputs(page)
        assert len(errors) == 2, errors
        assert "Traceback (most recent call last): shown on stderr" in errors[0]
        assert "ValueError" in errors[1] and "boom from the control notebook" in errors[1]
        assert [bool(PROMPT_DONE.match(p)) for p in prompts] == [True, True, False], prompts
        assert expected_image_cells(path) == []
    except Exception:
        page.screenshot(path=str(screenshots / "control-FAILED.png"))
        raise
    finally:
        page.close()
        lab.shutdown_kernels()
