"""Mutation score per module from mutmut's results (run after `mutmut run`; `make mutation` does both).

For each targeted module: killed / tested and the score, then the surviving mutants by name (see one with
`.venv/bin/mutmut show NAME`). Exit code 1 when a module scores below the threshold (default 90 %) or was
not fully tested; 2 when there are no results to read.

    python benchmarks/mutation_score.py                      # every module in [tool.mutmut] only_mutate
    python benchmarks/mutation_score.py ngram checks         # only these (a file or a folder of the package)
    python benchmarks/mutation_score.py --threshold 85 --diffs

Killed: a test failed ("killed") or ran past its time limit ("timeout"). Tested: every mutant mutmut has
run, less those listed in the equivalents file (default benchmarks/mutation_equivalents.txt, if it exists:
one mutant name per line, then `#` and why no test can tell it from the original). Every other outcome
counts against the score and is listed: "survived", "no tests" (no selected test calls the mutated
function), "suspicious", "segfault" (the test process died) and "interrupted" (pytest exit code 2).
With --diffs, each survivor's diff is printed and survivors that change only a string literal are counted.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]

# mutmut 3.8's exit code → status (mutmut.stats.status_by_exit_code; anything else is "suspicious")
STATUS_BY_EXIT_CODE = {
    1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 2: "interrupted", None: "not checked",
    34: "skipped", 35: "suspicious", 36: "timeout", 37: "caught by type check", -24: "timeout", 24: "timeout",
    152: "timeout", 255: "timeout", -11: "segfault", -9: "segfault",
}
KILLED = {"killed", "timeout", "caught by type check"}
DEFAULT_TARGETS = ["aigc_course/divergences.py", "aigc_course/ngram.py", "aigc_course/checks/*",
                   "aigc_course/checkpoint.py", "aigc_course/train.py", "aigc_course/exercises.py"]


@dataclass
class ModuleScore:
    path: str
    status_by_mutant: dict[str, str]
    equivalent: dict[str, str] = field(default_factory=dict)  # mutant name → reason

    @property
    def counts(self) -> Counter:
        return Counter(s for m, s in self.status_by_mutant.items() if m not in self.equivalent)

    @property
    def tested(self) -> int:
        c = self.counts
        return sum(c.values()) - c["skipped"] - c["not checked"]

    @property
    def killed(self) -> int:
        return sum(self.counts[s] for s in KILLED)

    @property
    def score(self) -> float:
        return 100.0 * self.killed / self.tested if self.tested else float("nan")

    def missed(self) -> dict[str, str]:
        """Mutants that count against the score, name → status."""
        return {m: s for m, s in self.status_by_mutant.items()
                if m not in self.equivalent and s not in KILLED | {"skipped", "not checked"}}


def target_patterns(pyproject: Path) -> list[str]:
    """The only_mutate globs of [tool.mutmut] (the defaults above if pyproject.toml has none)."""
    if tomllib is None or not pyproject.is_file():
        return DEFAULT_TARGETS
    conf = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("mutmut", {})
    return list(conf.get("only_mutate") or DEFAULT_TARGETS)


def read_meta_files(mutants_dir: Path, patterns: list[str]) -> dict[str, dict[str, int | None]]:
    """``{"aigc_course/ngram.py": {mutant name: exit code or None}}`` from mutmut's ``*.py.meta`` files."""
    out: dict[str, dict[str, int | None]] = {}
    for meta in sorted(mutants_dir.rglob("*.py.meta")):
        source = meta.relative_to(mutants_dir).as_posix().removesuffix(".meta")
        if not any(fnmatch.fnmatch(source, p) for p in patterns):
            continue
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
            codes = data["exit_code_by_key"]
        except (OSError, ValueError, KeyError) as e:
            _fail(f"{meta}: not a mutmut 3 result file ({e})")
        if codes:  # a file without functions has no mutants
            out[source] = codes
    return out


def read_equivalents(path: Path | None) -> dict[str, str]:
    """``mutant_name  # why it is equivalent`` per line; blank lines and lines starting with # are ignored."""
    if path is None or not path.is_file():
        return {}
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        name, _, reason = line.partition("#")
        name = name.strip()
        if not name:
            continue
        if not reason.strip():
            _fail(f"{path}:{n}: equivalent mutant {name} has no reason (add `# why`)")
        out[name] = reason.strip()
    return out


def select(paths: list[str], wanted: list[str]) -> list[str]:
    """Keep the module paths named by ``wanted`` ("ngram", "checks", "checks/_core", "aigc_course/train.py")."""
    if not wanted:
        return paths
    chosen = []
    for w in wanted:
        stem = w.removesuffix(".py").removeprefix("aigc_course/").strip("/")
        hits = [p for p in paths if p.removesuffix(".py").removeprefix("aigc_course/") == stem
                or p.removeprefix("aigc_course/").startswith(stem + "/")]
        if not hits:
            _fail(f"no mutmut results for module {w!r}; known: {', '.join(paths) or 'none'}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def mutmut_show(name: str, path: str, status: str, root: Path) -> str:
    """One mutant's diff as `mutmut show NAME` prints it (mutmut in-process; its command line as a fallback)."""
    try:
        from mutmut.mutation.diff_apply import get_diff_for_mutant
    except ImportError:
        get_diff_for_mutant = None
    if get_diff_for_mutant is not None:
        here = Path.cwd()
        try:
            os.chdir(root)  # mutmut reads mutants/ relative to the current folder
            return f"# {name}: {status}\n{get_diff_for_mutant(name, path=path)}\n"
        except Exception as e:  # noqa: BLE001 - any failure: fall back to the command line
            print(f"(mutmut in-process diff failed for {name}: {e!r}; trying `mutmut show`)", file=sys.stderr)
        finally:
            os.chdir(here)
    exe = Path(sys.executable).with_name("mutmut")
    cmd = [str(exe) if exe.exists() else "mutmut", "show", name]
    try:
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"(mutmut show failed: {e})\n"
    return done.stdout if done.returncode == 0 else f"(mutmut show failed: {done.stderr.strip()})\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="modules to report (default: every target with results)")
    parser.add_argument("--threshold", type=float, default=90.0, help="minimum score in %% per module (default 90)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="folder holding mutants/ and pyproject.toml")
    parser.add_argument("--equivalents", type=Path, default=ROOT / "benchmarks" / "mutation_equivalents.txt",
                        help="file of mutants judged equivalent, with reasons (default: %(default)s, if present)")
    parser.add_argument("--diffs", action="store_true", help="print each survivor's diff (`mutmut show`)")
    args = parser.parse_args(argv)
    if not 0 <= args.threshold <= 100:
        parser.error(f"--threshold must be a percentage in [0, 100], got {args.threshold}")

    mutants_dir = args.root / "mutants"
    if not mutants_dir.is_dir():
        print(f"error: no {mutants_dir}/: run `make mutation` (or `mutmut run`) first", file=sys.stderr)
        return 2
    results = read_meta_files(mutants_dir, target_patterns(args.root / "pyproject.toml"))
    if not results:
        print(f"error: no mutmut results for the targets under {mutants_dir}/", file=sys.stderr)
        return 2
    equivalents = read_equivalents(args.equivalents)
    explicit = bool(args.modules)
    modules = [ModuleScore(p, {m: STATUS_BY_EXIT_CODE.get(c, "suspicious") for m, c in results[p].items()})
               for p in select(sorted(results), args.modules)]
    known = {m for codes in results.values() for m in codes}
    stale = sorted(set(equivalents) - known)
    for mod in modules:
        listed = {m: r for m, r in equivalents.items() if m in mod.status_by_mutant}
        # a killed mutant is not equivalent: mutant numbers shift when a function changes, so the list is stale
        stale += sorted(m for m in listed if mod.status_by_mutant[m] in KILLED)
        mod.equivalent = {m: r for m, r in listed.items() if mod.status_by_mutant[m] not in KILLED}
    if stale:
        print(f"warning: {args.equivalents}: {len(stale)} listed mutants are unknown or killed (stale list?): "
              + ", ".join(stale), file=sys.stderr)
    if not explicit:  # a partial run (`make mutation MODULES=ngram`) leaves the other modules unchecked: skip them
        modules = [m for m in modules if m.tested] or modules

    failed = []
    print(f"{'module':34s} {'killed':>7s} {'tested':>7s} {'score':>7s}  other")
    for mod in modules:
        c = mod.counts
        other = ", ".join(f"{n} {s}" for s, n in sorted(c.items()) if s not in KILLED and n)
        if mod.equivalent:
            other += f"{', ' if other else ''}{len(mod.equivalent)} equivalent"
        score = f"{mod.score:6.1f}%" if mod.tested else "    -  "
        print(f"{mod.path:34s} {mod.killed:7d} {mod.tested:7d} {score}  {other}")
        if c["not checked"]:
            failed.append(f"{mod.path}: {c['not checked']} mutants not checked (run interrupted?)")
        elif not mod.tested or mod.score < args.threshold:
            failed.append(f"{mod.path}: {mod.score:.1f}% < {args.threshold:g}%")
    total_killed, total_tested = sum(m.killed for m in modules), sum(m.tested for m in modules)
    if total_tested:
        print(f"{'total':34s} {total_killed:7d} {total_tested:7d} {100 * total_killed / total_tested:6.1f}%")

    for mod in modules:
        missed = mod.missed()
        if missed:
            print(f"\n{mod.path}: {len(missed)} not killed")
            text_only = 0
            for name, status in sorted(missed.items(), key=lambda kv: _natural(kv[0])):
                if not args.diffs:
                    print(f"  {name}  ({status})")
                    continue
                diff = mutmut_show(name, mod.path, status, args.root)
                text_only += _changes_only_strings(diff)
                print(f"  {name}  ({status}{', a string only' if _changes_only_strings(diff) else ''})")
                print("    " + diff.rstrip().replace("\n", "\n    "))
            if args.diffs:
                print(f"  ({text_only} of these {len(missed)} change only a string literal, e.g. a message)")
        if mod.equivalent:
            print(f"\n{mod.path}: {len(mod.equivalent)} judged equivalent (not counted)")
            for name, reason in sorted(mod.equivalent.items(), key=lambda kv: _natural(kv[0])):
                print(f"  {name}  # {reason}")

    if failed:
        print("\nbelow threshold or incomplete:\n  " + "\n  ".join(failed))
        return 1
    print(f"\nevery module at or above {args.threshold:g}%")
    return 0


_STRING = re.compile(r"""[rbfuRBFU]{0,2}("[^"\\]*(?:\\.[^"\\]*)*"|'[^'\\]*(?:\\.[^'\\]*)*')""")


def _changes_only_strings(diff: str) -> bool:
    """True when the mutant's diff differs from the original only inside string literals."""
    old = [ln[1:] for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    new = [ln[1:] for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    return bool(old) and [_STRING.sub('""', ln) for ln in old] == [_STRING.sub('""', ln) for ln in new]


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _natural(name: str) -> tuple[str, int]:
    """Sort ``x_f__mutmut_10`` after ``x_f__mutmut_9``."""
    head, _, num = name.rpartition("__mutmut_")
    return (head, int(num)) if num.isdigit() else (name, 0)


if __name__ == "__main__":
    sys.exit(main())
