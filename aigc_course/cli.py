"""The ``aigc-course`` command: ``doctor``, ``list``, ``make-exercises``, ``train`` and ``sample``.

    aigc-course doctor                  # is this machine ready for the course?
    aigc-course list                    # the lessons, their expected time, whether solutions exist
    aigc-course make-exercises --check  # is exercises/ in sync with solutions/?
    aigc-course train gpt --out runs/gpt [--config FILE] [--resume] ...   # train a model (see aigc_course.runs)
    aigc-course sample --ckpt runs/gpt --prompt "The "                      # text to stdout, or images to a PNG

Also runnable as ``python -m aigc_course`` and under ``torchrun`` (train). Heavy imports (torch) happen inside
``doctor``, ``train`` and ``sample`` only. Exit codes: 0 done, 1 failed (a message says why), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import platform
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TextIO

from . import __version__
from .exercises import generate_exercises, repo_root

MIN_PYTHON = (3, 10)
MIN_TORCH = (2, 4)
# (import name, distribution name, minimum version): the runtime dependencies in pyproject.toml.
PACKAGES: list[tuple[str, str, str]] = [
    ("numpy", "numpy", "1.24"),
    ("matplotlib", "matplotlib", "3.7"),
    ("sklearn", "scikit-learn", "1.3"),
    ("pooch", "pooch", "1.8"),
    ("safetensors", "safetensors", "0.4"),
    ("tqdm", "tqdm", "4.66"),
    ("ipywidgets", "ipywidgets", "8.0"),
    ("jupyterlab", "jupyterlab", "4.0"),
]

LESSON_FILE = re.compile(r"^\d\d_.+\.ipynb$")
_TITLE = re.compile(r"^#\s+(?:Lesson\s+\d+\s*[—–:-]+\s*)?(?P<title>.+?)\s*$")
_EXPECTED_TIME = re.compile(r"^\|\s*\*\*Expected time\*\*\s*\|\s*(?P<value>.*?)\s*\|?\s*$")


def _write(line: str, stream: TextIO | None = None) -> None:
    """print(), but never crashes on a console that cannot encode ✓, ✗ or an em dash."""
    stream = stream if stream is not None else sys.stdout
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        line.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        line = line.encode(encoding, errors="replace").decode(encoding, errors="replace")
    print(line, file=stream)


def _display(path: Path) -> str:
    """A path relative to the current directory when it is below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _version_tuple(version: str) -> tuple[int, ...]:
    """``"2.13.0+cpu"`` → ``(2, 13, 0)``; only the leading dotted numbers count."""
    m = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(x) for x in m.group(0).split(".")) if m else ()


# ----------------------------------------------------------------------------------------------- doctor


@dataclass
class DoctorCheck:
    """One doctor line: ``ok`` shows ✓ or ✗; a failed ``essential`` check makes the exit code 1."""

    ok: bool
    label: str
    detail: str
    essential: bool = True

    def line(self) -> str:
        mark = "✓" if self.ok else "✗"
        tag = "" if self.ok or self.essential else " (optional)"
        return f"{mark} {self.label}: {self.detail}{tag}"


def _check_python() -> DoctorCheck:
    v = sys.version_info
    ok = (v.major, v.minor) >= MIN_PYTHON
    need = ".".join(map(str, MIN_PYTHON))
    detail = platform.python_version() + ("" if ok else f" — the course needs Python >= {need}")
    return DoctorCheck(ok, "Python", detail)


def _check_torch() -> tuple[DoctorCheck, ModuleType | None]:
    try:
        import torch
    except ImportError as e:
        hint = "run: pip install 'torch>=2.4' (or `make install`)"
        return DoctorCheck(False, "torch", f"not importable ({e}) — {hint}"), None
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else (
        f"ROCm {torch.version.hip}" if getattr(torch.version, "hip", None) else "CPU-only build")
    ok = _version_tuple(torch.__version__)[:2] >= MIN_TORCH
    need = ".".join(map(str, MIN_TORCH))
    detail = f"{torch.__version__} ({build})"
    if not ok:
        detail += f" — needs >= {need}: pip install -U 'torch>={need}'"
    return DoctorCheck(ok, "torch", detail), torch


def _check_package(module: str, dist: str, minimum: str) -> DoctorCheck:
    hint = f"run: pip install '{dist}>={minimum}' (or `make install`)"
    if importlib.util.find_spec(module) is None:
        return DoctorCheck(False, dist, f"not installed — {hint}")
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return DoctorCheck(True, dist, "installed (version unknown)")
    if _version_tuple(version) < _version_tuple(minimum):
        upgrade = f"run: pip install -U '{dist}>={minimum}' (or `make install`)"
        return DoctorCheck(False, dist, f"{version} is older than {minimum} — {upgrade}")
    return DoctorCheck(True, dist, version)


def _check_device(torch: ModuleType) -> list[DoctorCheck]:
    from .device import get_device

    try:
        dev = get_device()
    except (ValueError, TypeError) as e:
        return [DoctorCheck(False, "device", f"{e} — unset or fix AIGC_DEVICE")]
    detail = str(dev)
    if dev.type == "cuda":
        detail += f" ({torch.cuda.get_device_name(dev)})"
    elif dev.type == "cpu":
        detail += " (no GPU found; every lesson runs on CPU)"
    checks = [DoctorCheck(True, "device", detail)]
    try:
        if dev.type == "cuda":
            bf16 = bool(torch.cuda.is_bf16_supported())
            where = "CUDA autocast"
        else:
            x = torch.ones(2, 2, dtype=torch.bfloat16)
            bf16 = bool(torch.isfinite((x @ x).float()).all())
            where = "CPU tensors (autocast stays off on CPU by default)"
    except (RuntimeError, TypeError) as e:
        bf16, where = False, str(e)
    bf16_detail = f"supported on {where}" if bf16 else f"not supported ({where})"
    checks.append(DoctorCheck(bf16, "bfloat16", bf16_detail, essential=False))
    checks.append(_check_threads(torch))
    return checks


def _check_threads(torch: ModuleType) -> DoctorCheck:
    from .device import THREADS_ENV, threads_from_env

    try:
        wanted = threads_from_env()
    except ValueError as e:
        return DoctorCheck(False, "torch threads", f"{e} — fix or unset {THREADS_ENV}; setup_lesson would fail")
    if wanted is None:
        return DoctorCheck(True, "torch threads", f"{torch.get_num_threads()} (set {THREADS_ENV} to change)")
    return DoctorCheck(True, "torch threads", f"{wanted} ({THREADS_ENV}={wanted}; setup_lesson applies it)")


def _check_fast_mode() -> DoctorCheck:
    from .config import FAST_ENV, fast_mode

    try:
        on = fast_mode()
    except ValueError as e:
        return DoctorCheck(False, "fast mode", f"{e} — fix or unset {FAST_ENV}; setup_lesson would fail")
    detail = "ON (AIGC_FAST=1: tiny sizes, for CI)" if on else "off (full-size runs)"
    return DoctorCheck(True, "fast mode", detail)


def _writable(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _check_cache() -> list[DoctorCheck]:
    from .config import cache_dir

    path = cache_dir()
    if path.is_dir():
        ok = _writable(path)
        detail = f"{path} (exists, {'writable' if ok else 'NOT writable — set AIGC_DATA_DIR'})"
    elif path.exists():
        ok, detail = False, f"{path} exists but is not a folder — set AIGC_DATA_DIR"
    else:
        parent = next((p for p in path.parents if p.exists()), None)
        ok = parent is not None and parent.is_dir() and _writable(parent)
        detail = f"{path} ({'created on first download' if ok else 'cannot be created — set AIGC_DATA_DIR'})"
    checks = [DoctorCheck(ok, "data cache", detail)]
    try:
        from .data import cached_datasets

        status = dict(cached_datasets())
    except Exception as e:  # the data module is optional for the doctor; any failure means "unknown"
        checks.append(DoctorCheck(False, "datasets", f"unknown ({type(e).__name__}: {e})", essential=False))
        return checks
    have = sorted(name for name, cached in status.items() if cached)
    missing = sorted(name for name, cached in status.items() if not cached)
    detail = f"cached: {', '.join(have) or 'none'}"
    if missing:
        detail += f"; downloaded on first use: {', '.join(missing)}"
    checks.append(DoctorCheck(True, "datasets", detail, essential=False))
    return checks


def _check_notebooks() -> DoctorCheck:
    try:
        root = repo_root()
    except FileNotFoundError:
        return DoctorCheck(False, "notebooks", "no notebooks/ folder at or above the current directory — run "
                     "from the course repository", essential=False)
    count = len([p for p in (root / "notebooks").glob("*.ipynb") if LESSON_FILE.match(p.name)])
    # Relative to the repository root, never ".": inside a lesson the kernel's folder is notebooks/ itself.
    detail = f"notebooks/ ({count} lesson{'' if count == 1 else 's'}) in the course repository {root}"
    return DoctorCheck(True, "notebooks", detail, essential=False)


def _in_notebook_kernel() -> bool:
    """True when running inside a Jupyter kernel (e.g. the doctor cell of lesson 00), not in a shell."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def doctor_checks() -> list[DoctorCheck]:
    """Every doctor check, in display order."""
    checks = [_check_python()]
    torch_check, torch = _check_torch()
    checks.append(torch_check)
    checks += [_check_package(*spec) for spec in PACKAGES]
    if torch is not None:
        checks += _check_device(torch)
    checks.append(_check_fast_mode())
    checks += _check_cache()
    checks.append(_check_notebooks())
    return checks


def _cmd_doctor(args: argparse.Namespace) -> int:
    checks = doctor_checks()
    for c in checks:
        _write(c.line())
    failed = [c.label for c in checks if c.essential and not c.ok]
    if failed:
        _write(f"\n{len(failed)} essential check(s) failed: {', '.join(failed)}", sys.stderr)
        return 1
    if _in_notebook_kernel():
        _write("\nAll essential checks passed: this machine is ready for the course.")
    else:
        _write("\nAll essential checks passed: run `make lab` to start with lesson 00.")
    return 0


# ------------------------------------------------------------------------------------------------- list


@dataclass
class LessonInfo:
    number: str
    title: str
    expected_time: str
    has_solutions: bool


def read_lesson(path: Path, solutions_dir: Path) -> LessonInfo:
    """Parse a lesson's header cell; a missing or odd header gives the file name and "?"."""
    title, expected = path.name, "?"
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        first = nb["cells"][0]
        source = first["source"] if isinstance(first["source"], str) else "".join(first["source"])
        if first.get("cell_type") != "markdown":
            source = ""
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        source = ""
    for line in source.splitlines():
        stripped = line.strip()
        if title == path.name and stripped.startswith("# "):
            m = _TITLE.match(stripped)
            title = m.group("title") if m else title
        m = _EXPECTED_TIME.match(stripped)
        if m and m.group("value"):
            expected = m.group("value")
    solution = solutions_dir / f"{path.stem}_solutions.ipynb"
    return LessonInfo(path.name[:2], title, expected, solution.is_file())


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _cmd_list(args: argparse.Namespace) -> int:
    notebooks = args.notebooks if args.notebooks is not None else _root_or_none()
    if notebooks is None:
        _write("error: no notebooks/ folder here or above; pass --notebooks DIR", sys.stderr)
        return 1
    if args.notebooks is None:
        notebooks = notebooks / "notebooks"
    if not notebooks.is_dir():
        _write(f"error: --notebooks {notebooks} is not a folder", sys.stderr)
        return 1
    solutions = args.solutions if args.solutions is not None else notebooks.parent / "solutions"
    paths = sorted(p for p in notebooks.glob("*.ipynb") if LESSON_FILE.match(p.name))
    if not paths:
        _write(f"no lessons (NN_topic.ipynb) in {_display(notebooks)}")
        return 0
    rows = [["#", "lesson", "expected time", "solutions"]]
    for lesson in (read_lesson(p, solutions) for p in paths):
        solutions_column = "yes" if lesson.has_solutions else "no"
        rows.append([lesson.number, lesson.title, lesson.expected_time, solutions_column])
    for line in _table(rows):
        _write(line)
    return 0


def _root_or_none() -> Path | None:
    try:
        return repo_root()
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------------------------------- make-exercises


def _cmd_make_exercises(args: argparse.Namespace) -> int:
    solutions, exercises = args.solutions, args.exercises
    if solutions is None or exercises is None:
        root = _root_or_none()
        if solutions is None and root is None:
            _write("error: no course repository here or above; pass --solutions DIR (and --exercises DIR)",
                   sys.stderr)
            return 1
        solutions = solutions if solutions is not None else root / "solutions"
        exercises = exercises if exercises is not None else solutions.parent / "exercises"
    try:
        changed = generate_exercises(solutions, exercises, check=args.check)
    except (ValueError, OSError) as e:  # a bad notebook, or a file that cannot be read or written
        _write("error: " + str(e).replace("\n", " "), sys.stderr)
        return 1
    folder = _display(exercises).rstrip("/") + "/"
    if args.check:
        if not changed:
            _write(f"{folder} is up to date")
            return 0
        _write(f"{folder} is out of date with {_display(solutions)}/:", sys.stderr)
        for path in changed:
            _write(f"  {_display(path)}", sys.stderr)
        _write("run `make exercises` (aigc-course make-exercises) and commit the result", sys.stderr)
        return 1
    if not changed:
        _write(f"{folder} is up to date")
    for path in changed:
        _write(f"{'wrote' if path.exists() else 'removed'} {_display(path)}")
    return 0


# ------------------------------------------------------------------------------------------ train, sample

FAMILIES = ("gan", "vae", "gpt")   # aigc_course.runs.FAMILIES, repeated so that parsing imports no torch


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    return parse


def _float_arg(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _usage_error(args: argparse.Namespace, message: str) -> int:
    """What argparse does for a bad argument, for errors found after parsing: usage, message, exit code 2."""
    parser: argparse.ArgumentParser = args.parser
    parser.print_usage(sys.stderr)
    _write(f"{parser.prog}: error: {message}", sys.stderr)
    return 2


def _cmd_train(args: argparse.Namespace) -> int:
    from .device import configure_threads
    from .runs import ConfigError, RunError, describe_run, read_config_file, train_run

    try:
        configure_threads()
        overrides = read_config_file(args.config) if args.config is not None else None
        result = train_run(args.family, args.out, overrides=overrides, resume=args.resume, data_path=args.data,
                           device=args.device, amp=args.amp, compile=args.compile, grad_accum=args.grad_accum,
                           progress=not args.no_progress, log=lambda line: _write(line, sys.stderr))
    except ConfigError as e:
        return _usage_error(args, str(e))
    except RunError as e:
        _write(f"error: {e}", sys.stderr)
        return 1
    if result.is_main:   # under torchrun only rank 0 reports
        _write(describe_run(result))
    return 0


_TEXT_OPTIONS = ("prompt", "max_new_tokens", "temperature", "top_k", "top_p")
_IMAGE_OPTIONS = ("n", "out", "nrow", "scale")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _cmd_sample(args: argparse.Namespace) -> int:
    from .runs import ConfigError, RunError, load_run, sample_images, sample_text, save_image_grid

    try:
        run = load_run(args.ckpt, device=args.device)
        wrong = _IMAGE_OPTIONS if run.family == "gpt" else _TEXT_OPTIONS
        given = [_flag(k) for k in wrong if getattr(args, k) is not None]
        if given:
            kind = "text" if run.family == "gpt" else "images"
            return _usage_error(args, f"{', '.join(given)} do(es) not apply: {args.ckpt} is a {run.family} run, "
                                      f"which samples {kind}")
        if run.family == "gpt":
            text = sample_text(run, args.prompt or "", 200 if args.max_new_tokens is None else args.max_new_tokens,
                               temperature=1.0 if args.temperature is None else args.temperature,
                               top_k=args.top_k, top_p=args.top_p, seed=args.seed)
            _write(text)
            return 0
        n = 64 if args.n is None else args.n
        images = sample_images(run, n, seed=args.seed)
        nrow = args.nrow if args.nrow is not None else (run.arch.get("num_classes") or 8)
        out = args.out if args.out is not None else Path(args.ckpt) / "samples.png"
        path = save_image_grid(images, out, nrow=nrow, scale=4 if args.scale is None else args.scale)
    except ConfigError as e:
        return _usage_error(args, str(e))
    except (RunError, OSError) as e:
        _write(f"error: {e}", sys.stderr)
        return 1
    _write(f"wrote {n} {run.family} samples to {_display(path)}")
    return 0


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a GAN, VAE or character GPT with checkpoints (resumable)",
        description="Train one model family into the run folder --out DIR: config.json, ckpt/, model.safetensors, "
                    "model.json, history.json and log.csv (vocab.json for gpt). Defaults train in well under a "
                    "minute on a CPU; --config FILE (JSON or TOML: sections model, train, data; keys seed, device, "
                    "amp, compile) overrides them. Under torchrun every process trains (DDP), rank 0 writes.")
    p.add_argument("family", choices=FAMILIES, help="gan: DCGAN on 8x8 digits · vae: VAE on 8x8 digits · "
                                                    "gpt: character GPT on a text")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="run folder (new or empty, or --resume)")
    p.add_argument("--config", type=Path, metavar="FILE", help="JSON or TOML settings overriding the defaults")
    p.add_argument("--device", metavar="D", help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--amp", action="store_true", default=None, help="bfloat16 mixed precision (autocast)")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the models (CUDA only)")
    p.add_argument("--grad-accum", type=_int_at_least(1), metavar="N",
                   help="accumulate gradients over N micro-batches per optimizer step")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in DIR from its latest checkpoint (same config required)")
    p.add_argument("--data", metavar="PATH", help="gpt: train on this UTF-8 text file instead of the docs corpus")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train, parser=p)


def _add_sample_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample", help="sample from a trained run: images to a PNG (gan, vae) or text to stdout (gpt)",
        description="Sample from the run folder of `aigc-course train` (its model.safetensors, or the latest "
                    "checkpoint while it trains).")
    p.add_argument("--ckpt", type=Path, required=True, metavar="DIR", help="the run folder (train's --out)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed of the samples (default 0)")
    p.add_argument("--device", metavar="D", help="default: the best available")
    images = p.add_argument_group("gan and vae runs")
    images.add_argument("--n", type=_int_at_least(1), metavar="N", help="number of images (default 64)")
    images.add_argument("--out", type=Path, metavar="FILE", help="PNG to write (default DIR/samples.png)")
    images.add_argument("--nrow", type=_int_at_least(1), metavar="K", help="images per row (default 8; 10 for "
                                                                           "a conditional model: one per digit)")
    images.add_argument("--scale", type=_int_at_least(1), metavar="S", help="pixels per image pixel (default 4)")
    text = p.add_argument_group("gpt runs")
    text.add_argument("--prompt", metavar="TEXT", help="text to continue (default: a newline)")
    text.add_argument("--max-new-tokens", type=_int_at_least(0), metavar="N", help="characters to add (default 200)")
    text.add_argument("--temperature", type=_float_arg, metavar="T", help="0: greedy; default 1")
    text.add_argument("--top-k", type=_int_at_least(1), metavar="K", help="sample among the K likeliest")
    text.add_argument("--top-p", type=_float_arg, metavar="P", help="nucleus sampling, P in (0, 1]")
    p.set_defaults(func=_cmd_sample, parser=p)


# ------------------------------------------------------------------------------------------------ grade


def _cmd_grade(args: argparse.Namespace) -> int:
    from .grade import grade_command

    if args.csv is not None and not args.csv.resolve().parent.is_dir():
        return _usage_error(args, f"--csv {args.csv}: folder {args.csv.parent} does not exist")
    return grade_command(args.notebooks, csv_path=args.csv, timeout=args.timeout)


def _add_grade_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grade", help="grade filled-in exercise notebooks: each exercise passed, failed (with the "
                                "self-check's hint) or not attempted, and a score",
        description="Run each exercises notebook in a fresh kernel, in a separate process, inside a temporary "
                    "copy of its folder without solutions/ (not a security sandbox: the kernel runs as you), and "
                    "print one line per exercise and a score. Exit code 0 whatever the score, 1 if a notebook "
                    "cannot be read.")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="exercises notebooks (.ipynb) to grade")
    p.add_argument("--csv", type=Path, metavar="FILE",
                   help="also write one row per notebook and exercise: notebook, exercise, status, hint")
    p.add_argument("--timeout", type=_int_at_least(1), default=300, metavar="SECONDS",
                   help="limit per cell (default 300); a cell over it fails as 'timed out'")
    p.set_defaults(func=_cmd_grade, parser=p)


# ------------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aigc-course", description="Companion tool of the AIGC course.")
    parser.add_argument("--version", action="version", version=f"aigc-course {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("doctor", help="check Python, packages, device, fast mode and data cache")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("list", help="list the lessons with their expected time")
    p.add_argument("--notebooks", type=Path, metavar="DIR", help="lesson folder (default: <repo>/notebooks)")
    p.add_argument("--solutions", type=Path, metavar="DIR",
                   help="solutions folder (default: next to the lesson folder)")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("make-exercises", help="regenerate exercises/ from solutions/")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if exercises/ is stale")
    p.add_argument("--solutions", type=Path, metavar="DIR", help="default: <repo>/solutions")
    p.add_argument("--exercises", type=Path, metavar="DIR", help="default: next to the solutions folder")
    p.set_defaults(func=_cmd_make_exercises)

    _add_train_parser(sub)
    _add_sample_parser(sub)
    _add_grade_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for usage errors, as argparse does)."""
    if argv is not None and (isinstance(argv, str) or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argv must be a list of str or None, got {argv!r}")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage error (2), --help or --version (0): return the code instead of exiting
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 2
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
