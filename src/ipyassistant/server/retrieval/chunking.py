"""A document's text split into overlapping windows of tokens, the units file search indexes.

Tokens are counted offline with the tokenizer that ships inside the ``wordllama`` package (the
default embedder's: a 32k-entry BPE vocabulary), loaded with ``tokenizers`` straight from the
package's files. ``WordLlama.load()`` is never called: it looks for the tokenizer in the wrong
place and downloads it from the Hugging Face hub. Nor is ``wordllama`` imported: its
``__init__`` reconfigures the root logger.

:func:`chunk_text` tokenizes the text once and slices the token offsets: each window holds at
most ``max_tokens`` tokens and shares ``overlap`` tokens (or up to a quarter fewer, see below)
with the next. Within those bounds a window ends, and the next begins, at the best boundary on
offer: end of text, then paragraph (blank line), line, sentence, word, and only when a window
holds none of those, anywhere between two characters. Windows are at least three quarters full,
so a boundary never costs more than a quarter of a window.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

__all__ = [
    "AUTO_MAX_TOKENS",
    "AUTO_OVERLAP_TOKENS",
    "Chunk",
    "chunk_text",
    "count_tokens",
    "tokenizer",
    "wordllama_file",
]

#: The ``auto`` chunking strategy, as OpenAI's: windows of 800 tokens sharing 400.
AUTO_MAX_TOKENS = 800
AUTO_OVERLAP_TOKENS = 400

TOKENIZER_FILE = "tokenizers/l2_supercat_tokenizer_config.json"


@dataclass(frozen=True)
class Chunk:
    """One window of a document: ``text == document[start:end]`` (character offsets).

    ``tokens`` is the number of the document's tokens the window spans (at most the
    ``max_tokens`` it was cut with); whitespace at its edges is trimmed from ``text``.
    """

    text: str
    start: int
    end: int
    tokens: int


def wordllama_file(relative: str) -> Path:
    """The path of a file inside the installed ``wordllama`` package, found without importing it.

    ``relative`` is e.g. ``"tokenizers/l2_supercat_tokenizer_config.json"`` or
    ``"weights/l2_supercat_256.safetensors"``.
    """
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("file search needs the wordllama package: pip install wordllama")
    path = Path(next(iter(spec.submodule_search_locations)), relative)
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the wordllama package; reinstall wordllama")
    return path


@functools.cache
def tokenizer() -> Tokenizer:
    """The default embedder's tokenizer, loaded once from the ``wordllama`` package's files."""
    from tokenizers import Tokenizer

    loaded = Tokenizer.from_file(str(wordllama_file(TOKENIZER_FILE)))
    # Whole texts, token for token: the chunker and the embedder both need every token.
    loaded.no_padding()
    loaded.no_truncation()
    return loaded


def count_tokens(text: str) -> int:
    """The number of tokens in ``text`` (without the beginning-of-text marker)."""
    return sum(len(encoding) for _, encoding in _encode(text))


def chunk_text(
    text: str, max_tokens: int = AUTO_MAX_TOKENS, overlap: int = AUTO_OVERLAP_TOKENS
) -> list[Chunk]:
    """``text`` as windows of at most ``max_tokens`` tokens, consecutive ones sharing ``overlap``.

    A shared part is cut short by at most a quarter of ``overlap`` to start the next window at a
    better boundary. Windows of whitespace only are left out, so a blank text has no chunks;
    a text of at most ``max_tokens`` tokens is one chunk. Deterministic.
    """
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError(
            f"chunking needs max_tokens >= 1 and 0 <= overlap < max_tokens, "
            f"not max_tokens={max_tokens}, overlap={overlap}"
        )
    if not text.strip():
        return []
    # bounds[i]: the character where token i starts (the text's end for i == count); a window of
    # tokens [a, b) is text[bounds[a]:bounds[b]], so every character falls in some window.
    bounds = np.concatenate(
        [
            np.fromiter((start for start, _ in encoding.offsets), np.int64, len(encoding)) + at
            for at, encoding in _encode(text)
        ]
        + [np.array([len(text)], dtype=np.int64)]
    )
    count = len(bounds) - 1
    bounds[0] = 0
    levels = _cut_levels(text, bounds)

    fill = max(overlap + 1, -(-3 * max_tokens // 4))  # ceil(3/4 max), and always some progress
    slack = overlap // 4
    chunks = []
    first = 0
    while True:
        if count - first <= max_tokens:
            last = count
        else:
            last = _best(levels, first + fill, first + max_tokens, latest=True)
        chunk = _chunk(text, int(bounds[first]), int(bounds[last]), last - first)
        if chunk is not None:
            chunks.append(chunk)
        if last == count:
            return chunks
        first = _best(levels, last - overlap, last - overlap + slack, latest=False)


# Texts are tokenized in pieces of about this many characters: ``Tokenizer.encode_batch``
# releases the GIL (``encode`` holds it, stalling the server's event loop) and uses several cores
# when TOKENIZERS_PARALLELISM=true; and a piece's cost stays linear in its length.
_PIECE_CHARS = 16384
# Pieces are split at a single space between words, which the tokenizer's "prepend ▁" stands in
# for at the start of the next piece: the tokens are the same as the whole text's.
_PIECE_SPLIT = re.compile(r"(?<=\S) (?=\S)")


def _encode(text: str) -> list[tuple[int, Encoding]]:
    """``text``'s tokens as (character offset, encoding) of consecutive pieces of it."""
    starts, ends = [0], []
    while len(text) - starts[-1] > _PIECE_CHARS:
        split = _PIECE_SPLIT.search(text, starts[-1] + _PIECE_CHARS, starts[-1] + 2 * _PIECE_CHARS)
        if split is None:  # no word break (CJK, minified data): a few tokens may differ here
            ends.append(starts[-1] + _PIECE_CHARS)
            starts.append(ends[-1])
        else:
            ends.append(split.start())
            starts.append(split.end())
    ends.append(len(text))
    pieces = [text[start:end] for start, end in zip(starts, ends, strict=True)]
    encodings = tokenizer().encode_batch(pieces, add_special_tokens=False)
    return list(zip(starts, encodings, strict=True))


# How good a place between two tokens is to cut at: higher is better.
_ILLEGAL = -1  # inside one character (the byte-fallback tokens of an emoji, say)
_ANYWHERE, _WORD, _SENTENCE, _LINE, _PARAGRAPH, _END = range(6)

_SPACES = np.array([code for code in range(0x3001) if chr(code).isspace()], dtype=np.uint32)
# Sentence ends, and what may close a sentence after them; with the CJK full stop and marks.
_SENTENCE_ENDS = np.array([ord(c) for c in ".!?\u2026\u3002\uff01\uff1f"], dtype=np.uint32)
_CLOSERS = np.array([ord(c) for c in "\"')]\u201d\u2019\u00bb"], dtype=np.uint32)
_WIDE = 0x2E80  # from here on (CJK, kana, emoji, ...) text has no spaces between words


def _cut_levels(text: str, bounds: npt.NDArray[np.int64]) -> npt.NDArray[np.int8]:
    """The level (``_ILLEGAL`` … ``_END``) of a cut before each token, vectorised over the text.

    A cut at character ``p`` is judged by the run of whitespace around it (the characters from
    the last non-space before ``p`` to the first non-space from ``p`` on): two newlines in it make
    a paragraph break, one a line break; a sentence ending before it, a sentence break; any
    whitespace, a word break. Without whitespace, a cut next to a wide character (CJK) is a word
    break, or a sentence break after its full stop.
    """
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    size = len(codes)
    space = np.isin(codes, _SPACES)
    index = np.arange(size)
    # last_solid[j]: the last non-space at or before j (-1: none); next_solid[j]: the first at or
    # after j (size: none).
    last_solid = np.maximum.accumulate(np.where(space, -1, index))
    next_solid = np.minimum.accumulate(np.where(space, size, index)[::-1])[::-1]
    newlines = np.concatenate(([0], np.cumsum(codes == 10)))

    cuts = bounds[1:-1]  # the cuts worth judging: between tokens, not at the text's ends
    before = np.maximum(cuts - 1, 0)
    run_start = last_solid[before] + 1  # the whitespace run around the cut is [run_start, run_end)
    run_end = next_solid[cuts]
    spaced = run_end > run_start
    breaks = newlines[run_end] - newlines[run_start]
    solid_before = codes[np.maximum(run_start - 1, 0)]
    ender = np.isin(solid_before, _SENTENCE_ENDS) | (
        np.isin(solid_before, _CLOSERS)
        & np.isin(codes[np.maximum(run_start - 2, 0)], _SENTENCE_ENDS)
    )
    wide = (codes[before] >= _WIDE) | (codes[np.minimum(cuts, size - 1)] >= _WIDE)

    levels = np.full(len(bounds), _END, dtype=np.int8)
    inner = np.full(len(cuts), _ANYWHERE, dtype=np.int8)
    inner[wide | spaced] = _WORD
    inner[ender & (spaced | wide)] = _SENTENCE
    inner[spaced & (breaks == 1)] = _LINE
    inner[spaced & (breaks >= 2)] = _PARAGRAPH
    inner[cuts == bounds[:-2]] = _ILLEGAL  # this token starts where the previous one does
    levels[1:-1] = inner
    return levels


def _best(levels: npt.NDArray[np.int8], low: int, high: int, *, latest: bool) -> int:
    """The cut in ``[low, high]`` with the highest level: the latest or the earliest of ties."""
    window = levels[low : high + 1]
    ties = np.flatnonzero(window == window.max())
    return low + int(ties[-1] if latest else ties[0])


def _chunk(text: str, start: int, end: int, tokens: int) -> Chunk | None:
    """The window ``text[start:end]`` less the whitespace at its edges (None if that is all)."""
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        return None
    start += len(piece) - len(piece.lstrip())
    return Chunk(text=stripped, start=start, end=start + len(stripped), tokens=tokens)
