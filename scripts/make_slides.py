"""Reveal.js slide decks of the lessons that work offline (`make slides`), and the slide metadata rules.

Every lesson cell carries ``metadata.slideshow.slide_type`` (the key that nbconvert, JupyterLab's property
inspector and jupyterlab-rise read). The rules, applied by ``--apply-metadata`` and checked by
tests/test_slides.py:

- the title cell (cell 0) and every markdown cell with a ``##`` heading: ``"slide"``;
- a markdown cell with a ``###`` heading (and no ``##`` one): ``"subslide"``;
- the setup cell (cell 1, the code cell that calls ``setup_lesson``): ``"skip"``;
- a code cell that draws a plot or an image (or shows a widget explorer): ``"subslide"``, so the figure
  has a slide of its own;
- a derivation (a markdown cell with display math, ``$$ … $$`` or ``\\begin{…}``) or a paragraph that
  opens with a bold lead-in (``**Gaussian KL.** …``): ``"subslide"``;
- a markdown cell that reports full-mode numbers (``In full mode …``): ``"notes"`` (speaker notes: the
  deck shows fast-mode outputs, the instructor sees the full-mode figures);
- a code cell made only of ``assert`` statements (the lesson's self-checks): ``"skip"``;
- any other cell: ``"-"`` (continues the current slide).

A heading in the middle of a markdown cell (the end of one section's discussion, then the next section's
``##`` heading) makes the whole cell a slide in JupyterLab; the exported deck splits such a cell at the
heading, so the paragraph before it stays on the previous slide (typed by the rules as a cell of its own).

Decks: ``python scripts/make_slides.py [--full] [LESSON ...]`` executes each lesson in a fresh kernel (fast
mode unless ``--full``), exports it with nbconvert's SlidesExporter and writes
``build/slides/NN_topic.slides.html``; reveal.js 4, MathJax 2 (the version nbconvert's reveal template
drives), jQuery and RequireJS come from the npm registry (``npm pack``, pinned versions) into
``build/slides/assets/``, so the decks open from the file system with no network.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
OUT_DIR = ROOT / "build" / "slides"
ASSETS = "assets"   # relative to the decks, so build/slides/ can be copied or zipped as a whole

SLIDE_TYPES = ("slide", "subslide", "fragment", "skip", "notes", "-")

# npm packages (pinned) -> (folder under assets/, path prefixes inside the package to keep).
NPM_PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "reveal.js@4.6.1": ("reveal.js", ("LICENSE", "dist/", "plugin/")),
    "mathjax@2.7.9": ("mathjax", (
        "LICENSE", "MathJax.js", "config/TeX-AMS_CHTML-full.js", "config/Safe.js", "extensions/", "jax/element/",
        "jax/input/TeX/", "jax/output/CommonHTML/", "jax/output/PreviewHTML/", "fonts/HTML-CSS/TeX/woff/")),
    "jquery@3.7.1": ("jquery", ("LICENSE.txt", "dist/jquery.min.js")),
    "requirejs@2.3.7": ("requirejs", ("require.js",)),
}
# nbconvert's reveal template always imports mermaid as an ES module; the lessons have no mermaid
# diagrams, so a no-op module inlined as a data: URL replaces the CDN copy (browsers refuse module
# scripts from file:// URLs, but not from data: URLs).
MERMAID_STUB = "data:text/javascript,export%20default%20%7Binitialize()%20%7B%7D%2C%20run()%20%7B%7D%7D%3B"

_PLOT = re.compile(r"\bplt\.|\bfigure_grid\(|\bshow_images\(|\bplot_\w+\(|\.imshow\(|_explorer\(")
_DISPLAY_MATH = re.compile(r"\$\$|\\begin\{")
_BOLD_LEAD = re.compile(r"\*\*[^*\n]+\*\*")
_HEADING = re.compile(r"(#{2,3}) \S")


def heading_levels(text: str) -> set[int]:
    """The levels (2 or 3) of the ``##``/``###`` heading lines of markdown ``text``, outside code fences."""
    levels, fenced = set(), False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := _HEADING.match(line)):
            levels.add(len(m.group(1)))
    return levels


def split_at_headings(text: str) -> list[str]:
    """``text`` cut before each ``##``/``###`` heading line (outside code fences); pieces keep their text."""
    pieces, current, fenced = [], [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and _HEADING.match(line) and any(x.strip() for x in current):
            pieces.append("\n".join(current).rstrip("\n"))
            current = []
        current.append(line)
    pieces.append("\n".join(current).rstrip("\n"))
    return [p for p in pieces if p.strip()]


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def _only_asserts(code: str) -> bool:
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return False
    return bool(body) and all(isinstance(stmt, ast.Assert) for stmt in body)


def is_setup_cell(index: int, cell: dict[str, Any]) -> bool:
    """True for the lesson's setup cell: cell 1, a code cell calling ``setup_lesson``."""
    return index == 1 and cell.get("cell_type") == "code" and "setup_lesson(" in _source(cell)


def plots(cell: dict[str, Any]) -> bool:
    """True for a code cell that draws a figure, an image grid or a widget explorer."""
    return cell.get("cell_type") == "code" and bool(_PLOT.search(_source(cell)))


def expected_slide_type(index: int, cell: dict[str, Any]) -> str:
    """The slide type that the rules in this module's docstring give cell ``index``."""
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    if not isinstance(cell, dict) or "cell_type" not in cell:
        raise TypeError(f"cell must be a notebook cell dict with a cell_type, got {type(cell).__name__}")
    text = _source(cell).lstrip()
    if index == 0:
        return "slide"
    if is_setup_cell(index, cell):
        return "skip"
    if cell["cell_type"] == "markdown":
        levels = heading_levels(text)
        if 2 in levels:
            return "slide"
        if 3 in levels:
            return "subslide"
        if text.startswith("In full mode"):
            return "notes"
        if _DISPLAY_MATH.search(text) or _BOLD_LEAD.match(text):
            return "subslide"
        return "-"
    if cell["cell_type"] == "code":
        if plots(cell):
            return "subslide"
        if _only_asserts(_source(cell)):
            return "skip"
    return "-"


def slide_type(cell: dict[str, Any]) -> str | None:
    """The cell's ``metadata.slideshow.slide_type``, or None when it has none."""
    value = cell.get("metadata", {}).get("slideshow", {}).get("slide_type")
    return value if isinstance(value, str) else None


def metadata_problems(nb: dict[str, Any], *, strict: bool = False) -> list[str]:
    """Every way notebook ``nb`` breaks the slide rules, one message each (empty when it follows them).

    The hard rules: every cell has a known slide type, the title and ``##`` cells are slides, ``###`` cells
    subslides, the setup cell is skipped and a plotting cell starts a (sub)slide. ``strict=True`` also
    requires every other cell to have exactly the type that :func:`expected_slide_type` gives.
    """
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise TypeError("nb must be a notebook dict with a 'cells' list")
    problems = []
    for i, cell in enumerate(nb["cells"]):
        got = slide_type(cell)
        head = _source(cell).strip().split("\n", 1)[0][:60]
        where = f"cell {i} ({head!r})"
        if got is None:
            problems.append(f"{where} has no metadata.slideshow.slide_type")
            continue
        if got not in SLIDE_TYPES:
            problems.append(f"{where} has unknown slide_type {got!r}")
            continue
        want = expected_slide_type(i, cell)
        hard = (i == 0 or is_setup_cell(i, cell)
                or (cell["cell_type"] == "markdown" and bool(heading_levels(_source(cell)))))
        if (hard or strict) and got != want:
            problems.append(f"{where} is {got!r}, the rules say {want!r}")
        elif plots(cell) and got not in ("slide", "subslide"):
            problems.append(f"{where} plots, so it must start a slide or subslide, not {got!r}")
    if nb["cells"] and slide_type(nb["cells"][0]) != "slide":
        problems.append("the first cell must be a 'slide' (a deck starts with a slide)")
    return problems


def apply_metadata(nb: dict[str, Any]) -> int:
    """Set every cell's slide type from the rules (nothing else changes); returns how many changed."""
    changed = 0
    for i, cell in enumerate(nb["cells"]):
        want = expected_slide_type(i, cell)
        if slide_type(cell) != want:
            cell.setdefault("metadata", {}).setdefault("slideshow", {})["slide_type"] = want
            changed += 1
    return changed


def split_heading_cells(nb: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``nb`` whose markdown cells are cut at their ``##``/``###`` headings, for the deck.

    The piece before the first heading gets the type the rules give it as a cell of its own; each piece
    from a heading on is a ``"slide"`` (``##``) or ``"subslide"`` (``###``).
    """
    out = copy.deepcopy(nb)
    cells: list[dict[str, Any]] = []
    for i, cell in enumerate(out["cells"]):
        pieces = split_at_headings(_source(cell)) if cell["cell_type"] == "markdown" and i > 0 else []
        if len(pieces) < 2:
            cells.append(cell)
            continue
        for k, piece in enumerate(pieces):
            part = copy.deepcopy(cell)
            part["source"] = piece
            if "id" in cell:
                part["id"] = f"{cell['id']}-{k}"
            levels = heading_levels(piece.split("\n", 1)[0])
            kind = ("slide" if 2 in levels else "subslide") if levels else expected_slide_type(i, part)
            part.setdefault("metadata", {}).setdefault("slideshow", {})["slide_type"] = kind
            cells.append(part)
    out["cells"] = cells
    return out


def write_notebook(path: Path, nb: dict[str, Any]) -> None:
    """Write ``nb`` as nbformat and nbstripout do (sorted keys, 1-space indent, non-ASCII kept, final newline)."""
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def lessons(names: Sequence[str] = ()) -> list[Path]:
    """The lessons named by number, stem or file (``"03"``, ``"03_dcgan_images"``, a path), or all of them."""
    every = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    chosen = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"lesson names must be str, got {type(name).__name__}")
        if name.endswith(".ipynb") and Path(name).is_file():
            chosen.append(Path(name))
            continue
        hits = [p for p in every if p.stem == name or p.name == name or p.stem[:2] == name]
        if not hits:
            raise ValueError(f"lesson {name!r} not found in {NOTEBOOKS}")
        chosen += hits
    return chosen


# --- offline assets ------------------------------------------------------------------------------------

def _extract(tgz: Path, dest: Path, keep: tuple[str, ...]) -> None:
    with tarfile.open(tgz) as tar:
        for member in tar.getmembers():
            name = member.name.split("/", 1)[1] if "/" in member.name else member.name
            if name.startswith("/") or ".." in Path(name).parts:
                raise ValueError(f"{tgz.name}: unsafe path {member.name!r} in the package")
            if not member.isfile() or not any(name == k or (k.endswith("/") and name.startswith(k))
                                              for k in keep):
                continue
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            target.write_bytes(src.read())


def ensure_assets(out_dir: Path = OUT_DIR, npm: str = "npm") -> Path:
    """Fetch reveal.js, MathJax, jQuery and RequireJS with ``npm pack`` (once) into ``out_dir/assets``."""
    assets = out_dir / ASSETS
    cache = ROOT / "build" / "npm-cache"   # the packed tarballs, kept between builds
    for spec, (folder, keep) in NPM_PACKAGES.items():
        dest = assets / folder
        stamp = dest / ".version"
        wanted = f"{spec} {' '.join(keep)}"
        if stamp.exists() and stamp.read_text() == wanted:
            continue
        name, version = spec.rsplit("@", 1)
        tgz = cache / f"{name}-{version}.tgz"
        if not tgz.exists():
            if shutil.which(npm) is None:
                raise RuntimeError(f"{npm!r} not found: install Node.js/npm (Debian: apt-get install npm) "
                                   f"to fetch {spec} for the offline decks")
            cache.mkdir(parents=True, exist_ok=True)
            subprocess.run([npm, "pack", spec, "--silent", "--pack-destination", str(cache)], check=True,
                           stdout=subprocess.DEVNULL)
        shutil.rmtree(dest, ignore_errors=True)
        _extract(tgz, dest, keep)
        stamp.write_text(wanted)
    return assets


def exporter_config(prefix: str = ASSETS) -> dict[str, Any]:
    """The SlidesExporter settings that make a deck load everything from ``prefix`` (relative)."""
    return {
        "reveal_url_prefix": f"{prefix}/reveal.js",
        "mathjax_url": f"{prefix}/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
        "jquery_url": f"{prefix}/jquery/dist/jquery.min.js",
        "require_js_url": f"{prefix}/requirejs/require.js",
        "mermaid_js_url": MERMAID_STUB,
        "reveal_scroll": True,       # long slides scroll instead of being cut off
        "reveal_theme": "white",      # "simple" and others @import Google fonts; "white" has local fonts
        "reveal_transition": "none",
    }


# --- building ------------------------------------------------------------------------------------------

def execute(nb: dict[str, Any], cwd: Path, *, full: bool = False, timeout: int = 600) -> dict[str, Any]:
    """Run ``nb`` in a fresh python3 kernel in ``cwd`` (fast mode unless ``full``); returns the copy run."""
    import nbformat
    from nbclient import NotebookClient

    node = nbformat.reads(json.dumps(nb), as_version=4)   # joins list sources
    env = {"AIGC_FAST": "0" if full else "1", "TQDM_DISABLE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)   # the kernel inherits this process's environment
    try:
        NotebookClient(node, timeout=timeout, kernel_name="python3", store_widget_state=False,
                       resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return json.loads(nbformat.writes(node))


def export(nb: dict[str, Any], title: str) -> str:
    """The reveal.js HTML of ``nb`` with every script and stylesheet taken from the local assets."""
    import nbformat
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    node = nbformat.reads(json.dumps(split_heading_cells(nb)), as_version=4)
    node.metadata.pop("widgets", None)   # the widget manager would come from a CDN; widgets are live-only
    node.metadata["title"] = title
    settings = exporter_config()
    mermaid = settings.pop("mermaid_js_url")
    exporter = SlidesExporter(config=Config({"SlidesExporter": settings}))
    exporter.mermaid_js_url = mermaid   # not a configurable trait in nbconvert 7
    html, _ = exporter.from_notebook_node(node)
    return html


def remote_references(html: str) -> list[str]:
    """Every http(s) URL that ``html`` loads a script, stylesheet or module from (empty = offline)."""
    pattern = (r"""<script[^>]*\bsrc=["'](https?:[^"']*)|<link[^>]*\bhref=["'](https?:[^"']*)"""
               r"""|\bimport\s+\w+\s+from\s+["'](https?:[^"']*)|["'](https?://[^"']*reveal[^"']*)["']"""
               r"""|["'](https?://[^"']*mathjax[^"']*)["']""")
    return sorted({next(g for g in m.groups() if g) for m in re.finditer(pattern, html, re.I)})


def build(paths: Iterable[Path], out_dir: Path = OUT_DIR, *, full: bool = False, run: bool = True,
          timeout: int = 600) -> list[Path]:
    """Write ``out_dir/NN_topic.slides.html`` for each lesson (executed first unless ``run=False``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        nb = json.loads(path.read_text(encoding="utf-8"))
        problems = metadata_problems(nb)
        if problems:
            raise ValueError(f"{path.name}: slide metadata breaks the rules "
                             f"(run scripts/make_slides.py --apply-metadata):\n  " + "\n  ".join(problems))
        start = time.perf_counter()
        if run:
            with tempfile.TemporaryDirectory(prefix="aigc_slides_") as tmp:
                nb = execute(nb, Path(tmp), full=full, timeout=timeout)
        title = _source(nb["cells"][0]).lstrip("# ").split("\n", 1)[0]
        html = export(nb, title)
        bad = remote_references(html)
        if bad:
            raise RuntimeError(f"{path.name}: the deck still loads from the network: {bad}")
        target = out_dir / f"{path.stem}.slides.html"
        target.write_text(html, encoding="utf-8")
        written.append(target)
        print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}"
              f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the decks, or check/apply the slide metadata."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers or stems (default: every lesson)")
    parser.add_argument("--full", action="store_true", help="execute in full mode (default: fast mode)")
    parser.add_argument("--no-execute", action="store_true", help="export the stripped notebooks as they are")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default build/slides)")
    parser.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds")
    parser.add_argument("--check-metadata", action="store_true", help="report cells that break the rules")
    parser.add_argument("--apply-metadata", action="store_true",
                        help="set every cell's slide type from the rules (metadata only)")
    args = parser.parse_args(argv)
    paths = lessons(args.lessons)
    if args.check_metadata or args.apply_metadata:
        bad = 0
        for path in paths:
            nb = json.loads(path.read_text(encoding="utf-8"))
            if args.apply_metadata:
                n = apply_metadata(nb)
                if n:
                    write_notebook(path, nb)
                print(f"{path.name}: {n} cells updated")
            for problem in metadata_problems(nb, strict=True):
                bad += 1
                print(f"{path.name}: {problem}")
        return 1 if bad else 0
    ensure_assets(args.out)
    build(paths, args.out, full=args.full, run=not args.no_execute, timeout=args.timeout)
    print(f"open {args.out / paths[0].stem}.slides.html in a browser (works offline; assets in "
          f"{args.out / ASSETS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
