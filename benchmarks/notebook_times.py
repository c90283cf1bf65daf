"""Time every lesson and solutions notebook, as CI runs them, against an empty-notebook baseline.

    python benchmarks/notebook_times.py              # fast mode (AIGC_FAST=1), 1 torch thread
    python benchmarks/notebook_times.py --full       # full mode (what a learner runs), all threads
    python benchmarks/notebook_times.py notebooks/01_generative_modeling_basics.ipynb

Prints, per notebook, the wall time, the ratio to the baseline (a notebook that only starts a kernel and
imports aigc_course, torch and matplotlib) and the peak RSS of the kernel, then the budget verdict:
fast mode ≤ 20 s per notebook, full mode ≤ 10 min and < 4 GiB.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
PEAK_RSS = (
    "import resource, sys\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == 'darwin' else 1024))"
)


def run(nb: nbformat.NotebookNode, cwd: Path) -> tuple[float, int]:
    nb = nbformat.from_dict(nb)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_RSS))
    client = NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    start = time.perf_counter()
    client.execute()
    secs = time.perf_counter() - start
    out = nb.cells[-1].outputs[0]["text"]
    return secs, int(out.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--full", action="store_true", help="full mode instead of fast mode")
    args = ap.parse_args()

    os.environ["TQDM_DISABLE"] = "1"
    if args.full:
        os.environ.pop("AIGC_FAST", None)
    else:
        os.environ.update(AIGC_FAST="1", AIGC_NUM_THREADS="1", OMP_NUM_THREADS="1")
    paths = args.paths or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")) + sorted(
        (ROOT / "solutions").glob("[0-9]*.ipynb"))
    baseline_nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import torch, matplotlib.pyplot as plt\nimport aigc_course.plotting, aigc_course.train")])
    base, _ = run(baseline_nb, ROOT / "notebooks")
    mode = "full" if args.full else "fast"
    print(f"mode: {mode}; baseline (kernel start + imports): {base:.1f} s")
    print(f"{'notebook':58s} {'wall':>8s} {'× base':>7s} {'peak RSS':>9s}")
    budget = 600.0 if args.full else 20.0
    total, worst_ok = 0.0, True
    for p in paths:
        p = p.resolve()
        secs, rss = run(nbformat.read(p, as_version=4), p.parent)
        total += secs
        ok = secs <= budget and rss < 4 * 2**30
        worst_ok &= ok
        print(f"{str(p.relative_to(ROOT)):58s} {secs:7.1f}s {secs / base:6.1f}× {rss / 2**20:7.0f}MiB"
              f"{'' if ok else '  OVER BUDGET'}")
    print(f"total {total:.1f} s over {len(paths)} notebooks; budget per notebook {budget:.0f} s: "
          f"{'all within' if worst_ok else 'EXCEEDED'}")
    return 0 if worst_ok else 1


if __name__ == "__main__":
    sys.exit(main())
