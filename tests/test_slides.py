"""Slide metadata of the lessons and the offline reveal.js decks (scripts/make_slides.py, `make slides`)."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

_spec = importlib.util.spec_from_file_location("make_slides", ROOT / "scripts" / "make_slides.py")
assert _spec is not None and _spec.loader is not None
slides = importlib.util.module_from_spec(_spec)
sys.modules["make_slides"] = slides
_spec.loader.exec_module(slides)


def _nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _md(text: str, kind: str | None = None) -> dict:
    meta = {"slideshow": {"slide_type": kind}} if kind else {}
    return {"cell_type": "markdown", "metadata": meta, "source": text}


def _code(text: str, kind: str | None = None) -> dict:
    meta = {"slideshow": {"slide_type": kind}} if kind else {}
    return {"cell_type": "code", "metadata": meta, "source": text, "outputs": [], "execution_count": None}


def _toy() -> dict:
    """A lesson-shaped notebook whose metadata follows the rules."""
    cells = [
        _md("# Lesson 99 — Toy\n\n| **Expected time** | fast ≈ 5 s |", "slide"),
        _code("from aigc_course.notebook import setup_lesson\nsetup_lesson()", "skip"),
        _md("## 1. First section\n\nSome text.", "slide"),
        _code("x = 1 + 1", "-"),
        _code("fig, ax = plt.subplots()\nax.plot([1, 2])", "subslide"),
        _md("The sum is 2.", "-"),
        _md("### A detail", "subslide"),
        _md("**Derivation.** Expand the square:\n\n$$ (a+b)^2 = a^2 + 2ab + b^2 $$", "subslide"),
        _code("assert x == 2\nassert x > 1", "skip"),
        _md("In full mode this prints 42.", "notes"),
        _md("Discussion of section 1.\n\n## 2. Second section\n\nMore.", "slide"),
    ]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_lesson_slide_metadata_follows_the_rules(path):
    nb = _nb(path)
    assert slides.metadata_problems(nb) == [], (
        f"{path.name}: run `.venv/bin/python scripts/make_slides.py --apply-metadata`")
    kinds = [slides.slide_type(c) for c in nb["cells"]]
    headings = sum(1 for c in nb["cells"][1:] if c["cell_type"] == "markdown"
                   and 2 in slides.heading_levels(slides._source(c)))
    assert kinds.count("slide") >= headings + 1 >= 4, f"{path.name}: a slide per ## section plus the title"
    assert kinds[1] == "skip", f"{path.name}: the setup cell is not shown"


def test_toy_notebook_follows_rules_strictly():
    assert slides.metadata_problems(_toy(), strict=True) == []


def test_metadata_problems_name_each_broken_rule():
    nb = _toy()
    del nb["cells"][3]["metadata"]["slideshow"]                        # no entry
    nb["cells"][2]["metadata"]["slideshow"]["slide_type"] = "-"        # ## heading not a slide
    nb["cells"][1]["metadata"]["slideshow"]["slide_type"] = "slide"    # setup shown
    nb["cells"][4]["metadata"]["slideshow"]["slide_type"] = "fragment"  # plot not on its own slide
    nb["cells"][5]["metadata"]["slideshow"]["slide_type"] = "Slide"    # unknown value
    nb["cells"][10]["metadata"]["slideshow"]["slide_type"] = "notes"   # mid-cell ## heading hidden
    assert slides.metadata_problems(nb) == [
        "cell 1 ('from aigc_course.notebook import setup_lesson') is 'slide', the rules say 'skip'",
        "cell 2 ('## 1. First section') is '-', the rules say 'slide'",
        "cell 3 ('x = 1 + 1') has no metadata.slideshow.slide_type",
        "cell 4 ('fig, ax = plt.subplots()') plots, so it must start a slide or subslide, not 'fragment'",
        "cell 5 ('The sum is 2.') has unknown slide_type 'Slide'",
        "cell 10 ('Discussion of section 1.') is 'notes', the rules say 'slide'",
    ]


def test_free_cells_are_only_flagged_in_strict_mode():
    nb = _toy()
    nb["cells"][5]["metadata"]["slideshow"]["slide_type"] = "fragment"   # an instructor's choice
    assert slides.metadata_problems(nb) == []
    assert slides.metadata_problems(nb, strict=True) == ["cell 5 ('The sum is 2.') is 'fragment', the rules say '-'"]


def test_first_cell_must_be_a_slide():
    nb = {"cells": [_md("Intro", "-"), _md("## 1. A", "slide")]}
    assert slides.metadata_problems(nb)[-1] == "the first cell must be a 'slide' (a deck starts with a slide)"


@pytest.mark.parametrize(("index", "cell", "kind"), [
    (0, _md("# Lesson 01 — X"), "slide"),
    (1, _code("setup_lesson()"), "skip"),
    (1, _code("x = 1"), "-"),                        # cell 1 without setup_lesson is not the setup cell
    (5, _code("setup_lesson()"), "-"),                # only cell 1 is the setup cell
    (3, _md("## 2. A section"), "slide"),
    (3, _md("Text first.\n\n## 2. A section"), "slide"),
    (3, _md("### Detail\n\ntext"), "subslide"),
    (3, _md("## 2. A\n\n### B"), "slide"),
    (3, _md("```\n## not a heading\n```"), "-"),
    (3, _md("#### Small heading"), "-"),
    (3, _md("In full mode the loss is 1.2."), "notes"),
    (3, _md("In full mode the loss is 1.2.\n\n## 3. Next"), "slide"),
    (3, _md("**Bold lead.** text"), "subslide"),
    (3, _md("Plain text with **bold** later."), "-"),
    (3, _md("We have\n\n$$ a = b $$"), "subslide"),
    (3, _md("Inline $a = b$ only."), "-"),
    (3, _code("fig, axes = figure_grid(4)"), "subslide"),
    (3, _code("show_images(x)"), "subslide"),
    (3, _code("explorer = latent_explorer(vae)"), "subslide"),
    (3, _code("assert a == 1"), "skip"),
    (3, _code("assert a == 1\nb = 2"), "-"),
    (3, _code("plot = 3  # not a plot call"), "-"),
])
def test_expected_slide_type(index, cell, kind):
    assert slides.expected_slide_type(index, cell) == kind


def test_expected_slide_type_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"^index must be a non-negative int, got -1$"):
        slides.expected_slide_type(-1, _md("x"))
    with pytest.raises(ValueError, match=r"^index must be a non-negative int, got True$"):
        slides.expected_slide_type(True, _md("x"))
    with pytest.raises(TypeError, match=r"^cell must be a notebook cell dict with a cell_type, got str$"):
        slides.expected_slide_type(2, "## x")
    with pytest.raises(TypeError, match=r"^nb must be a notebook dict with a 'cells' list$"):
        slides.metadata_problems({"cells": "x"})
    with pytest.raises(ValueError, match=r"^lesson '99' not found in "):
        slides.lessons(["99"])


def test_apply_metadata_changes_only_slide_types():
    nb = _toy()
    for cell in nb["cells"]:
        cell["metadata"].pop("slideshow")
    nb["cells"][3]["metadata"]["tags"] = ["keep"]
    before = copy.deepcopy(nb)
    assert slides.apply_metadata(nb) == len(nb["cells"])
    for old, new in zip(before["cells"], nb["cells"], strict=True):
        assert new["source"] == old["source"]
        assert {k: v for k, v in new["metadata"].items() if k != "slideshow"} == old["metadata"]
    assert [slides.slide_type(c) for c in nb["cells"]] == [slides.slide_type(c) for c in _toy()["cells"]]
    assert slides.apply_metadata(nb) == 0


def test_split_heading_cells_keeps_the_previous_discussion_off_the_new_slide():
    out = slides.split_heading_cells(_toy())
    tail = out["cells"][-2:]
    assert [slides._source(c) for c in tail] == ["Discussion of section 1.", "## 2. Second section\n\nMore."]
    assert [slides.slide_type(c) for c in tail] == ["-", "slide"]
    two = slides.split_heading_cells({"cells": [_md("# T", "slide"), _md("## A\n\nx\n### B\ny", "slide")]})
    assert [(slides._source(c), slides.slide_type(c)) for c in two["cells"][1:]] == [
        ("## A\n\nx", "slide"), ("### B\ny", "subslide")]
    assert len(_toy()["cells"]) == 11   # the input is not modified


def test_cli_checks_and_applies_metadata(tmp_path, capsys):
    path = tmp_path / "toy.ipynb"
    nb = _toy()
    nb["cells"][2]["metadata"] = {}
    slides.write_notebook(path, nb)
    assert slides.main(["--check-metadata", str(path)]) == 1
    assert "toy.ipynb: cell 2 ('## 1. First section') has no metadata.slideshow.slide_type" in capsys.readouterr().out
    assert slides.main(["--apply-metadata", str(path)]) == 0
    assert "toy.ipynb: 1 cells updated" in capsys.readouterr().out
    assert _nb(path) == _toy()
    assert slides.main(["--check-metadata", str(path)]) == 0


def test_slide_metadata_survives_nbstripout(tmp_path):
    path = tmp_path / LESSONS[0].name
    path.write_text(LESSONS[0].read_text(encoding="utf-8"), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "nbstripout", str(path)], check=True)
    kinds = [slides.slide_type(c) for c in _nb(path)["cells"]]
    assert kinds == [slides.slide_type(c) for c in _nb(LESSONS[0])["cells"]]
    assert None not in kinds


def test_offline_deck_from_the_stripped_lesson():
    """The deck of lesson 00 (not executed) loads reveal.js and MathJax from relative paths only."""
    nb = _nb(LESSONS[0])
    html = slides.export(nb, "Lesson 00")
    assert slides.remote_references(html) == []
    sources = re.findall(r"""<(?:script|link)[^>]*\b(?:src|href)=["']([^"'#]+)""", html)
    assert sorted(set(sources)) == [
        "assets/jquery/dist/jquery.min.js",
        "assets/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
        "assets/requirejs/require.js",
        "assets/reveal.js/dist/reveal.css",
        "assets/reveal.js/dist/theme/white.css",
    ]
    assert '"assets/reveal.js/dist/reveal.js"' in html and '"assets/reveal.js/plugin/notes/notes.js"' in html
    assert "import mermaid from 'data:text/javascript," in html
    # one top-level <section> per slide (## cells cut at their headings), each holding its subslides
    split = slides.split_heading_cells(nb)["cells"]
    n_slides = sum(slides.slide_type(c) == "slide" for c in split)
    body = html[html.index('<div class="slides">'):]
    depth, top = 0, 0
    for tag in re.findall(r"</?section\b", body):
        if tag == "<section":
            top += depth == 0
            depth += 1
        else:
            depth -= 1
    assert top == n_slides and depth == 0
    setup = slides._source(nb["cells"][1]).split("\n", 1)[0]
    assert setup not in html   # the skipped setup cell is not in the deck


def test_remote_references_detects_the_cdn_defaults():
    """nbconvert's own defaults load from CDNs; the checker must see them (so the test above can fail)."""
    import nbformat
    from nbconvert import SlidesExporter

    node = nbformat.reads(LESSONS[0].read_text(encoding="utf-8"), as_version=4)
    html, _ = SlidesExporter().from_notebook_node(node)
    found = slides.remote_references(html)
    assert any("reveal.js" in u for u in found) and any("mathjax" in u.lower() for u in found), found
    assert any("require" in u for u in found) and any("mermaid" in u for u in found), found
