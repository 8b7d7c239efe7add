"""A message's ``file_citation`` annotations as numbered sources, for the static transcript.

The Python twin of ``js/sources.ts`` (change both together). Each citation of a message gets a
number, the same for citations of the same file and quote, in the order they appear; the
sources list under the message names each number's file and shows what it quotes:

- the file's name: the citation's own ``file_name`` (a thread's history looks it up), else the
  name a ``file_search`` result of the state gives that file, else its id;
- the quote: the chunk a ``file_search`` result of the same run found in that file (the one
  containing the cited words when there are several; at most :data:`QUOTE_LIMIT` characters
  of it, around those words), when the run asked for the results' content; else the annotation's text, unless that is only a marker the model wrote
  (``【4:0†notes.md】``), which quotes nothing.

In the text, a citation whose span is such a marker is replaced by its number; any other span
(quoted words) is kept and the number follows it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .view_types import Citation, FileSearchItem, MessageItem, SearchResult, ViewState

__all__ = ["QUOTE_LIMIT", "Cited", "Source", "cite", "excerpt", "is_marker", "with_markers"]

#: The most characters of a found chunk a source quotes (the search step shows it whole).
QUOTE_LIMIT = 500


@dataclass(frozen=True)
class Source:
    """One numbered source of a message."""

    number: int
    file_id: str
    file_name: str
    quote: str | None


@dataclass(frozen=True)
class Cited:
    """A message's sources, and the number of each citation of each of its blocks."""

    sources: list[Source]
    #: ``numbers[b][c]``: the source number of citation ``c`` of block ``b`` (``[]`` for a
    #: block without citations).
    numbers: list[list[int]]


def is_marker(text: str) -> bool:
    """Whether an annotation's text is a marker the model wrote rather than quoted words."""
    return text.startswith("【") and text.endswith("】")


def _searches(state: ViewState) -> list[FileSearchItem]:
    return [item for item in state["items"] if item["kind"] == "file_search"]


def excerpt(quote: str, words: str, limit: int = QUOTE_LIMIT) -> str:
    """At most ``limit`` characters of ``quote`` (and ellipses), around ``words`` if it has them."""
    if len(quote) <= limit:
        return quote
    at = quote.find(words) if words else -1
    start = 0 if at < 0 else max(0, min(at - limit // 4, len(quote) - limit))
    end = start + limit
    return ("…" if start > 0 else "") + quote[start:end] + ("…" if end < len(quote) else "")


def _quote(citation: Citation, results: Sequence[SearchResult]) -> str | None:
    chunks = [r["content"] for r in results if r["file_id"] == citation["file_id"] and r["content"]]
    words = "" if is_marker(citation["text"]) else citation["text"].strip().strip('"“”')
    if chunks:
        chunk = next((chunk for chunk in chunks if words and words in chunk), chunks[0])
        return excerpt(chunk, words)
    return words or None


def cite(item: MessageItem, state: ViewState) -> Cited:
    """Number the citations of ``item`` and list its sources, using the searches in ``state``."""
    searches = _searches(state)
    names = {r["file_id"]: r["file_name"] for s in searches for r in s["results"] if r["file_name"]}
    same_run = [r for s in searches if s["run_id"] == item["run_id"] for r in s["results"]]
    sources: list[Source] = []
    by_key: dict[tuple[str, str | None], int] = {}
    numbers: list[list[int]] = []
    for block in item["blocks"]:
        block_numbers: list[int] = []
        for citation in block.get("citations", []) if block["type"] == "text" else []:
            quote = _quote(citation, same_run)
            key = (citation["file_id"], quote)
            if key not in by_key:
                name = citation.get("file_name") or names.get(citation["file_id"])
                by_key[key] = len(sources) + 1
                sources.append(
                    Source(len(sources) + 1, citation["file_id"], name or citation["file_id"], quote)
                )
            block_numbers.append(by_key[key])
        numbers.append(block_numbers)
    return Cited(sources, numbers)


#: Closing quote marks (straight, curly and guillemet) a citation's number is put after.
CLOSING_QUOTES = "\"'\u201d\u2019\u00bb"


def with_markers(
    text: str, citations: Sequence[Citation], numbers: Sequence[int], marker: Callable[[int], str]
) -> str:
    """``text`` with ``marker(number)`` put where each citation is (see the module docstring).

    A citation whose offsets do not fit the text (or overlap an earlier one) gets its marker
    at the end, so that no number is lost.
    """
    out: list[str] = []
    copied = 0
    trailing: list[str] = []
    for citation, number in sorted(zip(citations, numbers, strict=True), key=lambda c: c[0]["start"]):
        start, end = citation["start"], citation["end"]
        if not 0 <= copied <= start <= end <= len(text):
            trailing.append(marker(number))
            continue
        if is_marker(text[start:end]):
            out.append(text[copied:start] + marker(number))
        else:
            # A quotation's number follows its closing quote mark: "...".[1], not "...[1]".
            while end < len(text) and text[end] in CLOSING_QUOTES:
                end += 1
            out.append(text[copied:end] + marker(number))
        copied = end
    out.append(text[copied:])
    return "".join(out + trailing)
