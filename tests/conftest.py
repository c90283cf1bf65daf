"""Test-suite setup: one torch thread per worker, cuda tests skipped without a GPU, patient nbval."""

from __future__ import annotations

import os

import pytest
import torch

# Two xdist workers × two torch threads on two cores stalls torch badly: one thread each.
torch.set_num_threads(int(os.environ.get("AIGC_NUM_THREADS", "1")))

NBVAL_OUTPUT_TIMEOUT = 120  # seconds a notebook cell may stay silent (nbval's default of 5 s is flaky)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_cuda)
        if hasattr(item, "output_timeout"):  # nbval cells
            item.output_timeout = max(getattr(item, "output_timeout", 0) or 0, NBVAL_OUTPUT_TIMEOUT)
