"""GLOSSARY.md (English / 中文) stays in sync with the lessons' bolded terms and Chinese titles.

The rule for "a lesson term": a phrase set in **bold** in a lesson's markdown that

* does not end in ``.``, ``:``, ``?`` or ``!`` (those are paragraph lead-ins such as **Chain rule.**, **Next:**),
* starts with a letter (not a number or result such as **1.595**, **−23.85**, **(a) target only:**),
* is not a cross-reference (**Lesson 08**), and
* has at most ``MAX_WORDS`` words after normalisation (longer ones are claims in summaries).

Such a phrase must match a glossary term after ``normalise`` (case, plural "s", hyphens, punctuation, a
leading article), or, when it has three or more words, contain one (**Forward KL covers modes** names
*forward KL*), or be one of the few ``NOT_TERMS`` below: header labels and plain words bolded for stress.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aigc_course.cli import read_lesson

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = ROOT / "GLOSSARY.md"
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*_solutions.ipynb"))
MAX_WORDS = 4
BOLD = re.compile(r"\*\*(.+?)\*\*")
CJK = re.compile(r"[\u3400-\u9fff]")
ZH_TITLE = re.compile(r"^## 第 (?P<nn>\d\d) 课(?:练习)? — (?P<title>.+?)\s*$")
ROW_LINK = re.compile(r"^\[(?P<nn>\d\d)\]\((?P<path>notebooks/[^)]+)\)$")

# Bold phrases that pass the shape rule but are not terms, as they appear in the lessons (normalised on use).
NOT_TERMS: frozenset[str] = frozenset({
    # the header table every lesson starts with (tests/test_notebooks.py::HEADER_ROWS, "GPU" is a glossary term)
    "Objectives", "Prerequisites", "Expected time",
    # labels of a paragraph or table, not of a concept
    "Correction", "The table",
    # ordinary words and phrases bolded for stress
    "infinite", "two basins", "Not symmetric", "a strong discriminator", "the standard recipe", "wrong sign",
    "collapses onto 1", "if and only if", "fixed", "every", "for every", "learned functions", "digits",
    "vowels", "the same targets", 'Generated "news" and "stories"', "nothing", "whole", "last", "previous",
    "same", "Images", "The head start disappears", "averaged", "bit for bit", "different sizes", "total",
})


def normalise(phrase: str) -> str:
    """Lower-case words without math dollars, punctuation, a leading article or a plural "s"."""
    if not isinstance(phrase, str):
        raise TypeError(f"phrase must be a str, got {type(phrase).__name__}")
    text = re.sub(r"[-‐–—/]", " ", phrase.casefold().replace("$", ""))
    words = re.sub(r"[^\w\s%×]", " ", text).split()
    if words and words[0] in ("the", "a", "an"):
        words = words[1:]
    return " ".join(w[:-1] if len(w) >= 4 and w.endswith("s") and not w.endswith("ss") else w for w in words)


def is_term_shaped(phrase: str) -> bool:
    """Whether a bolded phrase must be covered by the glossary (the shape rule in the module docstring)."""
    text = phrase.strip()
    if not text or re.search(r"[.:?!]$", text) or not re.match(r"[^\W\d_]", text):
        return False
    if re.fullmatch(r"(?i)lesson \d+", text):
        return False
    return 0 < len(normalise(text).split()) <= MAX_WORDS


def term_keys(english: str) -> set[str]:
    """The normalised forms a glossary English cell answers to: each ' / ' part, with and without '(…)'."""
    keys: set[str] = set()
    for part in english.split(" / "):
        keys.add(normalise(part))
        m = re.fullmatch(r"(?P<main>.+?)\s*\((?P<inner>[^()]+)\)", part.strip())
        if m:
            keys |= {normalise(m["main"]), normalise(m["inner"])}
    return keys - {""}


def is_covered(phrase: str, keys: set[str], not_terms: frozenset[str] = NOT_TERMS) -> bool:
    """A term-shaped bold phrase is covered by an exact key, by a key inside a phrase of 3+ words, or NOT_TERMS."""
    norm = normalise(phrase)
    if norm in keys or norm in {normalise(t) for t in not_terms}:
        return True
    padded = f" {norm} "
    return len(norm.split()) >= 3 and any(f" {k} " in padded for k in keys)


def glossary_rows(text: str) -> list[list[str]]:
    """The 4-cell rows of the '## Terms' table."""
    section = text.split("\n## Terms", 1)
    assert len(section) == 2, "GLOSSARY.md has no '## Terms' section"
    rows = []
    for line in section[1].splitlines():
        if not line.startswith("|") or set(line) <= set("|- ") or line.startswith("| English |"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"GLOSSARY.md row does not have 4 cells: {line}"
        rows.append(cells)
    return rows


def _markdown(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells if c["cell_type"] == "markdown"]


def uncovered_terms(markdown: list[str], keys: set[str]) -> list[str]:
    """The term-shaped bold phrases of some markdown that the glossary does not cover."""
    found = (m for text in markdown for m in BOLD.findall(text))
    return sorted({p for p in found if is_term_shaped(p) and not is_covered(p, keys)})


@pytest.fixture(scope="module")
def rows() -> list[list[str]]:
    return glossary_rows(GLOSSARY.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def keys(rows) -> set[str]:
    return set().union(*(term_keys(r[0]) for r in rows))


def test_normalise_and_shape_rule():
    assert normalise("The KV caches") == "kv cache" == normalise("KV cache")
    assert normalise("Top-p, or nucleus") == "top p or nucleu"
    assert normalise("loss") == "loss" and normalise("add-$k$ smoothing") == "add k smoothing"
    assert is_term_shaped("mode collapse") and is_term_shaped("β-VAE")
    assert not is_term_shaped("Chain rule.") and not is_term_shaped("Next:") and not is_term_shaped("1.595")
    assert not is_term_shaped("Lesson 08") and not is_term_shaped("A 2-D latent space sorts the digits")
    with pytest.raises(TypeError, match="phrase must be a str, got int"):
        normalise(3)


def test_term_keys_and_coverage():
    keys = term_keys("top-p sampling (nucleus sampling) / top-p")
    assert keys == {"top p sampling nucleu sampling", "top p sampling", "nucleu sampling", "top p"}
    assert is_covered("Top-p, or nucleus", keys)             # 4 words that contain "top p"
    assert not is_covered("top-k", keys)                     # short phrases must match exactly
    assert not is_covered("p sampling", keys)                # and whole words, not a substring
    assert is_covered("every", {"kv cache"}) and not is_covered("every", {"kv cache"}, frozenset())


def test_a_new_bold_term_missing_from_the_glossary_fails(keys):
    """The sync check can fail: a lesson that bolds a new term breaks it until the glossary gains a row."""
    lesson = ["Next we meet **diffusion models** and, again, **mode collapse**. **Why it works.**"]
    assert uncovered_terms(lesson, keys) == ["diffusion models"]
    assert uncovered_terms(lesson, keys | term_keys("diffusion model (DDPM)")) == []


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_every_bold_lesson_term_is_in_the_glossary(path, keys):
    missing = uncovered_terms(_markdown(path), keys)
    assert not missing, (f"{path.name} bolds terms GLOSSARY.md lacks: {missing}; add rows (or, for plain "
                         "emphasis, NOT_TERMS in tests/test_glossary.py)")


def test_not_terms_are_still_used_and_are_not_glossary_terms(keys):
    bold = {normalise(m) for p in LESSONS for text in _markdown(p) for m in BOLD.findall(text)}
    stale = sorted(t for t in NOT_TERMS if normalise(t) not in bold)
    assert not stale, f"NOT_TERMS entries no lesson bolds any more: {stale}"
    clash = sorted(t for t in NOT_TERMS if normalise(t) in keys)
    assert not clash, f"NOT_TERMS entries that are glossary terms: {clash}"


def test_rows_are_complete_linked_and_sorted(rows):
    assert len(rows) >= 100, f"GLOSSARY.md has only {len(rows)} terms"
    lesson_names = {p.name for p in LESSONS}
    for english, chinese, definition, lesson in rows:
        assert english and definition, f"empty English term or definition in the row for {english or chinese!r}"
        assert CJK.search(chinese), f"{english}: the 中文 column {chinese!r} has no Chinese characters"
        m = ROW_LINK.match(lesson)
        assert m, f"{english}: lesson cell {lesson!r} is not a link like [NN](notebooks/NN_topic.ipynb)"
        name = m["path"].removeprefix("notebooks/")
        assert name in lesson_names, f"{english}: {m['path']} is not a lesson"
        assert name.startswith(m["nn"] + "_"), f"{english}: link text {m['nn']} differs from {name}"
    order = [(r[3][1:3], r[0].casefold()) for r in rows]
    assert order == sorted(order), "GLOSSARY.md terms must be sorted by lesson, then alphabetically"


def test_no_duplicate_terms(rows):
    seen: dict[str, str] = {}
    for english, *_ in rows:
        for key in term_keys(english):
            assert key not in seen, f"{english!r} and {seen[key]!r} both define {key!r}"
            seen[key] = english
    chinese = [r[1] for r in rows]
    assert len(chinese) == len(set(chinese)), "a 中文 term appears in two rows"


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=[p.name for p in LESSONS + SOLUTIONS])
def test_title_cell_has_a_chinese_title(path):
    lines = _markdown(path)[0].splitlines()
    assert lines[0].startswith(f"# Lesson {path.name[:2]} — "), f"{path.name}: first line must stay the title"
    m = ZH_TITLE.match(lines[1]) if len(lines) > 1 else None
    assert m and m["nn"] == path.name[:2] and CJK.search(m["title"]), (
        f"{path.name}: the title cell's second line must be '## 第 {path.name[:2]} 课 — <中文标题>'")
    title = read_lesson(path, ROOT / "solutions").title
    assert not CJK.search(title) and lines[0].endswith(title), f"{path.name}: `aigc-course list` title is {title!r}"


def test_glossary_lists_each_lesson_with_its_chinese_title():
    text = GLOSSARY.read_text(encoding="utf-8")
    for path in LESSONS:
        zh = ZH_TITLE.match(_markdown(path)[0].splitlines()[1])["title"]
        assert f"(notebooks/{path.name}) | {zh} |" in text, f"GLOSSARY.md's lesson list lacks {path.name} — {zh}"
