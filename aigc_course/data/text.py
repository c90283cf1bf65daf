"""An offline English corpus (Python's bundled help topics) and a character-level vocabulary."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from numbers import Integral, Real

import torch

# Typographic characters in the help topics, spelled out in ASCII; anything else non-ASCII is decomposed
# (NFKD, e.g. "e" + accent) and whatever is still non-ASCII is dropped.
_ASCII_REPLACEMENTS = {
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u2014": "--",
    "\u2013": "-", "\u00a0": " ", "\u00df": "ss", "\u00b0": " degrees", "\u2022": "*", "\u00d7": "x",
}
_SPACES = re.compile(r"[ \t\f\v]+")
_BLANK_RUNS = re.compile(r"\n{3,}")


def _to_ascii(text: str) -> str:
    text = text.translate(str.maketrans(_ASCII_REPLACEMENTS))
    text = unicodedata.normalize("NFKD", text)
    return text.encode("ascii", "ignore").decode("ascii")


def _normalise_line(line: str) -> str:
    # Leading indentation carries the structure of code examples, so it is kept (tabs -> 4 spaces);
    # every run of spaces/tabs after it becomes one space, and trailing whitespace goes.
    body = line.lstrip(" \t\f\v")
    if not body:
        return ""
    indent = line[: len(line) - len(body)].expandtabs(4).replace("\f", "").replace("\v", "")
    return indent + _SPACES.sub(" ", body).rstrip()


def _normalise_whitespace(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = (_normalise_line(line) for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")


@functools.lru_cache(maxsize=1)
def _full_docs_corpus() -> str:
    try:
        from pydoc_data.topics import topics
    except ImportError as err:  # some OS packagers split the stdlib docs out
        raise RuntimeError("docs_corpus needs Python's bundled pydoc_data package, which this Python lacks; "
                           "install your distribution's full standard library (e.g. python3-full)") from err

    parts = (_normalise_whitespace(_to_ascii(topics[key])) for key in sorted(topics))
    return "\n\n".join(p for p in parts if p) + "\n"


def docs_corpus(max_chars: int | None = None) -> str:
    """English text from Python's bundled documentation (``pydoc_data.topics``, ~79 help topics).

    Topics are joined in sorted-key order with one blank line between them; non-ASCII characters are
    replaced or dropped; inside a line every run of spaces/tabs becomes one space (the leading indentation of
    code examples is kept, tabs as 4 spaces), trailing spaces go, and there is never more than one blank line
    in a row. Identical on every machine with the same Python version (~450k chars).
    ``max_chars`` keeps only the first characters.
    """
    if max_chars is not None:
        if isinstance(max_chars, bool) or not isinstance(max_chars, int):
            raise TypeError(f"max_chars must be an int or None, got {type(max_chars).__name__}")
        if max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    text = _full_docs_corpus()
    return text if max_chars is None else text[:max_chars]


def train_val_split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Split ``text`` into (train, val) at one character boundary: the last ``val_fraction`` is validation.

    No shuffling, so validation is a contiguous passage the model never saw. Both parts are non-empty.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if len(text) < 2:
        raise ValueError(f"text must have at least 2 characters to split, got {len(text)}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, Real):
        raise TypeError(f"val_fraction must be a float in (0, 1), got {type(val_fraction).__name__}")
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    n_val = min(max(round(len(text) * float(val_fraction)), 1), len(text) - 1)
    cut = len(text) - n_val
    return text[:cut], text[cut:]


class CharVocab:
    """Character-level vocabulary: ``stoi`` maps char -> id, ``itos`` id -> char (ids 0..V-1)."""

    def __init__(self, chars: Sequence[str]) -> None:
        if isinstance(chars, str) or not isinstance(chars, Sequence):
            raise TypeError(f"chars must be a sequence of single characters, got {type(chars).__name__}")
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"chars must hold single characters, got {ch!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("chars must not repeat a character")
        if len(chars) == 0:
            raise ValueError("chars must hold at least one character")
        self.itos: dict[int, str] = dict(enumerate(chars))
        self.stoi: dict[str, int] = {ch: i for i, ch in self.itos.items()}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """Vocabulary of the sorted unique characters of ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("text must not be empty")
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        preview = "".join(self.itos[i] for i in range(min(len(self), 40)))
        return f"CharVocab(size={len(self)}, chars={preview!r}{'...' if len(self) > 40 else ''})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.itos == other.itos

    __hash__ = None  # type: ignore[assignment]  # mutable dicts inside

    def encode(self, text: str) -> torch.Tensor:
        """Ids of the characters of ``text``: int64 tensor (T,)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        stoi = self.stoi
        try:
            ids = [stoi[ch] for ch in text]
        except KeyError as err:
            ch = err.args[0]
            raise ValueError(f"text contains character {ch!r} (position {text.index(ch)}), which is not in "
                             f"the vocabulary of {len(self)} characters") from None
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: torch.Tensor | Iterable[int]) -> str:
        """Text for ids: a 1-D integer tensor (T,) or an iterable of ints."""
        if isinstance(ids, torch.Tensor):
            if ids.ndim != 1:
                raise ValueError(f"ids must be a 1-D tensor (T,), got shape {tuple(ids.shape)}")
            if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
                raise TypeError(f"ids must be an integer tensor, got dtype {ids.dtype}")
            ids = ids.tolist()
        elif isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise TypeError(f"ids must be a 1-D integer tensor or an iterable of ints, "
                            f"got {type(ids).__name__}")
        out = []
        itos = self.itos
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, Integral):
                raise TypeError(f"ids must hold ints, got {type(i).__name__}")
            i = int(i)
            if i not in itos:
                raise ValueError(f"id {i} is out of range for a vocabulary of {len(self)} characters")
            out.append(itos[i])
        return "".join(out)
