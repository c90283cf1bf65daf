"""Loading a benchmark script (benchmarks/NAME.py, not a package module) for its tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """Import benchmarks/<name>.py as the module ``<name>_benchmark`` (registered in sys.modules, which
    dataclasses need to look their module up; removed again if the import fails)."""
    if str(BENCHMARKS) not in sys.path:     # the scripts import their shared helpers (benchmarks/_args.py)
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module
