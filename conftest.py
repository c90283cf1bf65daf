"""Test-suite setup (for tests/, notebooks/ and solutions/): one torch thread per worker, cuda tests skipped
without a GPU, patient nbval, a per-notebook summary."""

from __future__ import annotations

import os

import pytest
import torch

# Two xdist workers × two torch threads on two cores stalls torch badly: one thread each.
torch.set_num_threads(int(os.environ.get("AIGC_NUM_THREADS", "1")))

NBVAL_OUTPUT_TIMEOUT = 120  # seconds a notebook cell may stay silent (nbval's default of 5 s is flaky)


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to spread one notebook's cells over several xdist workers: they share a kernel's state."""
    nbval_on = config.getoption("nbval", False) or config.getoption("nbval_lax", False)
    workers = config.getoption("numprocesses", None)
    dist = config.getoption("dist", "no")
    if nbval_on and workers and dist not in ("loadscope", "loadfile", "no"):
        raise pytest.UsageError(
            f"nbval with -n {workers} needs --dist loadscope (got --dist {dist}): otherwise the cells of one "
            "notebook run on different workers and fail with NameError. Use `make test`, or add --dist loadscope."
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_cuda)
        if hasattr(item, "output_timeout"):  # nbval cells
            item.output_timeout = max(getattr(item, "output_timeout", 0) or 0, NBVAL_OUTPUT_TIMEOUT)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """After --durations (which lists single cells): each notebook's result and total cell time."""
    seconds: dict[str, float] = {}
    outcomes: dict[str, dict[str, int]] = {}
    for reports in terminalreporter.stats.values():
        for rep in reports:
            nodeid = getattr(rep, "nodeid", "")
            if ".ipynb::" not in nodeid or not hasattr(rep, "duration"):
                continue
            nb = nodeid.split("::", 1)[0]
            seconds[nb] = seconds.get(nb, 0.0) + rep.duration
            if rep.when == "call" or (rep.when == "setup" and rep.outcome != "passed"):
                counts = outcomes.setdefault(nb, {})
                counts[rep.outcome] = counts.get(rep.outcome, 0) + 1
    if not seconds:
        return
    terminalreporter.write_sep("=", "nbval results per notebook (time = sum of its cells)")
    for nb, secs in sorted(seconds.items(), key=lambda kv: -kv[1]):
        counts = outcomes.get(nb, {})
        status = "PASSED" if set(counts) <= {"passed", "skipped"} else "FAILED"
        detail = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        terminalreporter.write_line(f"{status:6s} {secs:6.1f}s  {nb}  ({detail} cells)")
    terminalreporter.write_line(f"{'':6s} {sum(seconds.values()):6.1f}s  total over {len(seconds)} notebooks")
