"""The one-line header every lesson runs first: ``device = setup_lesson(seed=0)``."""

from __future__ import annotations

import platform

import torch

from . import __version__
from .config import fast_mode, require_bool
from .device import configure_threads, get_device, seed_everything


def setup_lesson(
    seed: int = 0, device: str | torch.device | None = None, quiet: bool = False
) -> torch.device:
    """Seed everything, set CPU threads, pick the device, set plot defaults; print a one-line summary.

    Returns the device the lesson should use. The environment (``AIGC_FAST``, ``AIGC_NUM_THREADS``,
    ``AIGC_DEVICE``) is read before anything changes; a bad value raises ValueError naming the variable.
    """
    require_bool(quiet, "quiet")
    fast = fast_mode()
    dev = get_device(device)
    threads = configure_threads()
    seed_everything(seed)
    try:
        import matplotlib.pyplot as plt

        plt.rcParams.update({"figure.figsize": (6.4, 3.6), "figure.dpi": 100, "axes.grid": True,
                             "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False})
    except ImportError:  # plotting is optional for scripts
        pass
    if not quiet:
        mode = "FAST (AIGC_FAST=1: tiny sizes, for CI)" if fast else "full"
        print(f"aigc_course {__version__} · torch {torch.__version__} · python {platform.python_version()}"
              f" · device {dev} · {threads} CPU thread(s) · mode {mode} · seed {seed}")
    return dev
