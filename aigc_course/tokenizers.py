"""A small byte-level BPE tokenizer (Sennrich et al. 2016; GPT-2's byte-level variant), written for reading.

Text → UTF-8 bytes → ids. The vocabulary starts with the 256 possible bytes (id b is byte b), so any text
can be encoded and nothing is ever "unknown". Training repeats one step until the vocabulary reaches
``vocab_size``:

    count every pair of adjacent ids  →  the most frequent pair (a, b) becomes a new id 256 + i  →
    replace every occurrence of (a, b) by it.

Encoding replays the learned merges on new text in the order they were learned (earliest first), and
decoding concatenates the bytes of the ids.

Before counting, the text is split into chunks by a regular expression (``pattern``), and pairs are never
counted across chunk boundaries, so a token never glues the end of one word to the start of the next.
:data:`GPT2_SPLIT_PATTERN` is GPT-2's split rewritten for Python's built-in ``re`` (see its comment);
``pattern=None`` treats the whole text as one chunk.

>>> tok = ByteBPE.train(docs_corpus(50_000), vocab_size=512)
>>> ids = tok.encode("The quick brown fox")      # int64 tensor (T,), like CharVocab.encode
>>> tok.decode(ids)
'The quick brown fox'
>>> tok.save("bpe.json"); ByteBPE.load("bpe.json") == tok
True
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import torch

__all__ = ["GPT2_SPLIT_PATTERN", "ByteBPE", "FORMAT_VERSION"]

# GPT-2's pattern is  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+  , whose
# \p{L} (letter) and \p{N} (number) classes need the third-party `regex` module. The same split with the
# classes Python's `re` has: letters = [^\W\d_] (word characters that are not decimal digits or "_"),
# numbers = \d (decimal digits), anything else that is not whitespace = (?:[^\w\s]|_). Checked over all
# code points, the classes differ from GPT-2's only for non-decimal numerals (categories No/Nl, e.g. "²",
# "Ⅻ"), which count as letters here, and the separators \x1c-\x1f, which `re` counts as whitespace (plus
# code points that one Unicode version assigns and the other does not).
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\w\s]|_)+|\s+(?!\S)|\s+"""

FORMAT_VERSION = 1
_FORMAT = "aigc_course.ByteBPE"


def _compile(pattern: str | None) -> Any:
    """Compile with Python's ``re``; a pattern ``re`` rejects (e.g. GPT-2's \\p{L}) uses ``regex`` if installed."""
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str (a regular expression) or None, got {type(pattern).__name__}")
    try:
        return re.compile(pattern)
    except re.error as err:
        try:
            import regex
        except ImportError:
            raise ValueError(f"pattern {pattern!r} is not a valid regular expression for Python's re ({err}); "
                             "classes such as \\p{L} need the `regex` package (pip install regex)") from None
        try:
            return regex.compile(pattern)
        except regex.error as err2:
            raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {err2}") from None


def _split(text: str, compiled: Any) -> list[str]:
    """Chunks of ``text``: the pattern's matches, plus any text between matches as chunks of its own, so no
    character is lost whatever the pattern (joining the chunks gives ``text`` back)."""
    if compiled is None:
        return [text] if text else []
    chunks, pos = [], 0
    for m in compiled.finditer(text):
        if m.start() > pos:
            chunks.append(text[pos:m.start()])
        if m.end() > m.start():
            chunks.append(m.group())
        pos = max(pos, m.end())
    if pos < len(text):
        chunks.append(text[pos:])
    return chunks


def _no_surrogates(name: str, text: str) -> None:
    """ValueError for a lone surrogate (e.g. "\\ud800"): not valid Unicode, so it has no UTF-8 bytes."""
    m = re.search("[\ud800-\udfff]", text)
    if m is not None:
        raise ValueError(f"{name} contains the lone surrogate {m.group()!r} at position {m.start()}, which is "
                         "not valid Unicode and has no UTF-8 bytes")


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` in ``ids``, left to right, by ``new_id``."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _pair_counts(chunks: dict[tuple[int, ...], int]) -> Counter:
    """How often each adjacent pair occurs, over chunks weighted by how often each chunk occurs."""
    counts: Counter = Counter()
    for ids, n in chunks.items():
        for pair in zip(ids, ids[1:], strict=False):
            counts[pair] += n
    return counts


class ByteBPE:
    """A byte-level BPE tokenizer: 256 byte tokens plus ``merges`` (token 256 + i = merges[i] joined).

    Build one with :meth:`ByteBPE.train` or :meth:`ByteBPE.load`. ``encode(text)`` → int64 tensor (T,),
    ``decode(ids)`` → str, ``token_bytes(i)`` → the bytes of token i, ``vocab_size`` = 256 + len(merges).
    """

    def __init__(self, merges: Sequence[tuple[int, int]] = (), pattern: str | None = GPT2_SPLIT_PATTERN) -> None:
        self._compiled = _compile(pattern)
        self.pattern = pattern
        checked: list[tuple[int, int]] = []
        for i, pair in enumerate(merges):
            new_id = 256 + i
            if (not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(
                    isinstance(a, Integral) and not isinstance(a, bool) and 0 <= a < new_id for a in pair)):
                raise ValueError(f"merges[{i}] must be a pair of existing token ids in [0, {new_id}) "
                                 f"(token {new_id} is made from earlier ones), got {pair!r}")
            checked.append((int(pair[0]), int(pair[1])))
        if len(set(checked)) != len(checked):
            raise ValueError("merges must not repeat a pair")
        self.merges: list[tuple[int, int]] = checked
        self._rank = {pair: i for i, pair in enumerate(checked)}  # pair -> merge index (earlier = first)
        self._bytes = [bytes([b]) for b in range(256)]
        for a, b in checked:
            self._bytes.append(self._bytes[a] + self._bytes[b])
        self._cache: dict[str, list[int]] = {}

    # -- training ----------------------------------------------------------------------------------

    @classmethod
    def train(cls, text: str, vocab_size: int, *, pattern: str | None = GPT2_SPLIT_PATTERN) -> ByteBPE:
        """Learn ``vocab_size - 256`` merges on ``text`` (or fewer, if the text runs out of adjacent pairs).

        Each step merges the pair of adjacent ids that occurs most often within the chunks of ``text``;
        ties go to the smallest pair, comparing (first id, second id), so training is deterministic.
        Counts are over adjacent positions (as in minbpe), so "aaa" counts the pair (a, a) twice, while the
        merge replaces non-overlapping occurrences left to right ("aaa" → [aa, a]).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, Integral):
            raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__} {vocab_size!r}")
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be >= 256 (the 256 byte tokens come first), got {vocab_size}")
        compiled = _compile(pattern)
        _no_surrogates("text", text)
        # Each distinct chunk once, with its count: words repeat, so this is much faster than the raw text.
        chunks: dict[tuple[int, ...], int] = dict(Counter(tuple(c.encode("utf-8")) for c in _split(text, compiled)))
        merges: list[tuple[int, int]] = []
        for new_id in range(256, int(vocab_size)):
            counts = _pair_counts(chunks)
            if not counts:
                break
            best = max(counts.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))[0]
            merges.append(best)
            merged: dict[tuple[int, ...], int] = {}
            for ids, n in chunks.items():
                key = tuple(_merge(list(ids), best, new_id)) if len(ids) > 1 else ids
                merged[key] = merged.get(key, 0) + n
            chunks = merged
        return cls(merges, pattern)

    # -- encoding and decoding ---------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """256 byte tokens + one token per merge."""
        return 256 + len(self.merges)

    def _encode_chunk(self, chunk: str) -> list[int]:
        ids = list(chunk.encode("utf-8"))
        while len(ids) > 1:
            # the pair that was learned first among those present; merging in that order replays training
            pair = min(zip(ids, ids[1:], strict=False), key=lambda p: self._rank.get(p, len(self._rank)))
            if pair not in self._rank:
                break
            ids = _merge(ids, pair, 256 + self._rank[pair])
        return ids

    def encode(self, text: str) -> torch.Tensor:
        """Token ids of ``text``: int64 tensor (T,) (T = 0 for ""). Every valid str can be encoded (a lone
        surrogate such as "\\ud800", which is not valid Unicode, gets a ValueError)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        _no_surrogates("text", text)
        out: list[int] = []
        for chunk in _split(text, self._compiled):
            ids = self._cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk)
                if len(self._cache) < 100_000:
                    self._cache[chunk] = ids
            out.extend(ids)
        return torch.tensor(out, dtype=torch.long)

    def _ids(self, ids: torch.Tensor | Iterable[int]) -> list[int]:
        if isinstance(ids, torch.Tensor):
            if ids.ndim != 1:
                raise ValueError(f"ids must be a 1-D tensor (T,), got shape {tuple(ids.shape)}")
            if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
                raise TypeError(f"ids must be an integer tensor, got dtype {ids.dtype}")
            ids = ids.tolist()
        elif isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise TypeError(f"ids must be a 1-D integer tensor or an iterable of ints, got {type(ids).__name__}")
        out = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, Integral):
                raise TypeError(f"ids must hold ints, got {type(i).__name__}")
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {int(i)} is out of range for a vocabulary of {self.vocab_size} tokens")
            out.append(int(i))
        return out

    def decode(self, ids: torch.Tensor | Iterable[int]) -> str:
        """Text of ``ids`` (a 1-D integer tensor or an iterable of ints).

        The ids' bytes are joined and decoded as UTF-8 with ``errors="replace"``: ids that do not form
        valid UTF-8 (a multi-byte character cut in two, as a model sampling ids one at a time may produce)
        give U+FFFD "�" instead of an error. ``decode(encode(s)) == s`` for every str s.
        """
        return b"".join(self._bytes[i] for i in self._ids(ids)).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes token ``token_id`` stands for (one byte for ids < 256)."""
        return self._bytes[self._ids([token_id])[0]]

    def __len__(self) -> int:
        return self.vocab_size

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByteBPE) and self.merges == other.merges and self.pattern == other.pattern

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        pat = "none" if self.pattern is None else ("gpt2" if self.pattern == GPT2_SPLIT_PATTERN else "custom")
        return f"ByteBPE(vocab_size={self.vocab_size}, merges={len(self.merges)}, pattern={pat})"

    # -- saving and loading ------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer as JSON: format name, version, pattern and the merges in order. Returns the path."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        path = Path(path)
        data = {"format": _FORMAT, "version": FORMAT_VERSION, "pattern": self.pattern,
                "merges": [list(p) for p in self.merges]}
        path.write_text(json.dumps(data, indent=0) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ByteBPE:
        """Read a tokenizer written by :meth:`save`; a missing, damaged or other-version file raises an error
        that names it (FileNotFoundError, or ValueError)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer file at {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"tokenizer file {path} is damaged: not valid JSON ({err})") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"tokenizer file {path} is not a ByteBPE file (expected a JSON object with "
                             f"\"format\": \"{_FORMAT}\")")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"tokenizer file {path} has format version {data.get('version')!r}; this "
                             f"aigc_course reads version {FORMAT_VERSION}")
        merges, pattern = data.get("merges"), data.get("pattern")
        if not isinstance(merges, list) or not (pattern is None or isinstance(pattern, str)):
            raise ValueError(f"tokenizer file {path} is damaged: \"merges\" must be a list and \"pattern\" a "
                             "string or null")
        try:
            return cls([tuple(m) if isinstance(m, list) else m for m in merges], pattern)
        except (TypeError, ValueError) as err:
            raise ValueError(f"tokenizer file {path} is damaged: {err}") from None
