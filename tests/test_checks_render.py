"""What a learner sees when a self-check fails in Jupyter: run cells in a real IPython kernel (the venv's
``python3`` kernel, as nbval's ``--nbval-current-env`` does) and read the error output it sends to the front
end. The traceback must hold the ✗ line and its hint, the student's own frame when their code raised, and
nothing from inside aigc_course."""

import os
import queue

import pytest

import aigc_course

jupyter_client = pytest.importorskip("jupyter_client")

PACKAGE_DIR = os.path.dirname(os.path.abspath(aigc_course.__file__))
REPO = os.path.dirname(PACKAGE_DIR)

SETUP = """
import torch
from aigc_course.checks import check_categorical_mle, check_perplexity
"""
WRONG_ANSWER = """
def categorical_mle(counts):
    return counts / counts.sum()

check_categorical_mle(categorical_mle)
"""
STUDENT_RAISES = """
def perplexity(log_probs):
    n_tokens = 0
    return torch.tensor(-log_probs.sum().item() / n_tokens).exp()  # student line 3

check_perplexity(perplexity)
"""


def _run(kc, code: str, timeout: float = 30.0) -> list[dict]:
    """Execute ``code``; return the iopub messages of that execution up to the kernel going idle."""
    msg_id = kc.execute(code)
    out = []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"kernel did not answer within {timeout} s")
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        out.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return out


@pytest.fixture(scope="module")
def kernel():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AIGC_NUM_THREADS": "1", "PYTHONPATH": REPO}
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3", cwd=REPO, env=env,
                                                     startup_timeout=60)
    try:
        errors = [m for m in _run(kc, SETUP, timeout=60) if m["msg_type"] == "error"]
        assert not errors, errors
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _error(messages: list[dict]) -> dict:
    errors = [m["content"] for m in messages if m["msg_type"] == "error"]
    assert len(errors) == 1, messages
    return errors[0]


def test_a_wrong_answer_shows_only_the_hint(kernel):
    err = _error(_run(kernel, WRONG_ANSWER))
    assert err["ename"] == "CheckFailed"
    lines = err["traceback"]
    assert lines[0] == "✗ Exercise 0.1 (categorical MLE): you divided by the grand total of the whole table; " \
                       "each context (row) needs its own total N(c) = Σ_x N(c, x)."
    assert len(lines) <= 3, lines  # the ✗ line, the case; no traceback
    assert not any(PACKAGE_DIR in line or "site-packages" in line for line in lines), lines


def test_the_students_own_error_shows_their_line_and_no_package_frame(kernel):
    err = _error(_run(kernel, STUDENT_RAISES))
    text = "\n".join(err["traceback"])
    assert err["traceback"][0] == "✗ Exercise 0.2 (perplexity): your function raised ZeroDivisionError: " \
                                  "float division by zero"
    assert "# student line 3" in text and ", line 3, in perplexity" in text
    assert err["traceback"][-1] == "ZeroDivisionError: float division by zero"
    assert PACKAGE_DIR not in text, text
