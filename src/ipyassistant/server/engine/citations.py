"""A message's citations: ``file_citation`` of the search results it quotes, ``file_path`` of
the files the code interpreter saved.

``file_citation``: a model cites a search result by writing its marker ``【n†FILE】`` (see
:mod:`..models.search_results`) right after the words it supports. As the reply streams,
:class:`CitationStream` holds back what may be a marker, removes each marker it can resolve
and annotates the words before it: the quotation it closes (``"…"``, without the quotes), or
else the sentence it ends. A marker with no words before it stays in the text and is itself
the annotation's text, as OpenAI's are. Each annotation streams as a message delta as soon
as its marker is complete (:func:`stream_text`).

``file_path``: :func:`cite_saved_files`, when the message closes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .. import objects
from ..models.search_results import MARKER
from .segment import Segment

__all__ = ["CitationStream", "cite_saved_files", "flush_text", "stream_text"]

#: Beyond this many characters (or a line break) an opening bracket is not a marker.
_MAX_MARKER = 200
#: Where a sentence ends: the text after it starts the next sentence.
_SENTENCE_END = re.compile("[.!?][\"'\u201d\u2019)\\]]*\\s+|\n")
_CLOSING_QUOTES = {'"': '"', "”": "“"}


class CitationStream:
    """Turns the markers in a streamed reply into ``file_citation`` annotations.

    ``sources`` are the (file id, file name) of the run's search results, in the markers'
    numbering. :meth:`feed` takes each piece of the model's text and returns the text to
    show (markers removed) and the annotations completed; :meth:`flush` returns what is
    still held back when the reply ends. Offsets are into the text shown.
    """

    def __init__(self, sources: Sequence[tuple[str, str]]):
        self.sources = list(sources)
        self.text = ""
        self._held = ""

    def feed(self, piece: str) -> tuple[str, list[dict[str, Any]]]:
        """The text to show for ``piece``, and the annotations its markers made."""
        rest, self._held = self._held + piece, ""
        start = len(self.text)
        annotations: list[dict[str, Any]] = []
        while rest:
            bracket = rest.find("【")
            if bracket < 0:
                self.text += rest
                break
            self.text += rest[:bracket]
            rest = rest[bracket:]
            close = rest.find("】")
            if close < 0 and len(rest) < _MAX_MARKER and "\n" not in rest:
                self._held = rest  # perhaps a marker whose end is still to come
                break
            match = MARKER.match(rest) if close >= 0 else None
            annotation = self._annotate(match.group(0), match) if match else None
            if annotation is None:
                self.text += rest[0]  # not a marker (or not one we know): plain text
                rest = rest[1:]
                continue
            annotations.append(annotation)
            rest = rest[match.end() :]  # type: ignore[union-attr]
        return self.text[start:], annotations

    def flush(self) -> str:
        """The text held back at the end of the reply (an unfinished marker is just text)."""
        held, self._held = self._held, ""
        self.text += held
        return held

    def _file(self, match: re.Match[str]) -> str | None:
        """The file id a marker names: by its number, else by its file name."""
        number = int(match.group(2) or match.group(1))
        name = (match.group(3) or "").strip()
        if number < len(self.sources) and name in ("", self.sources[number][1]):
            return self.sources[number][0]
        return next((file_id for file_id, n in self.sources if name and n == name), None)

    def _annotate(self, marker: str, match: re.Match[str]) -> dict[str, Any] | None:
        file_id = self._file(match)
        if file_id is None:
            return None
        start, end = _cited_span(self.text)
        if start == end:  # nothing to cite: the marker stays and is cited
            start, end = len(self.text), len(self.text) + len(marker)
            self.text += marker
        return {
            "type": "file_citation",
            "text": self.text[start:end],
            "start_index": start,
            "end_index": end,
            "file_citation": {"file_id": file_id},
        }


def _cited_span(text: str) -> tuple[int, int]:
    """The words a marker put at the end of ``text`` cites: a quotation, or a sentence."""
    body = text.rstrip()
    end = len(body)
    if body and body[-1] in _CLOSING_QUOTES:
        opening = body.rfind(_CLOSING_QUOTES[body[-1]], 0, end - 1)
        if opening >= 0 and opening + 1 < end - 1:
            return opening + 1, end - 1
    start = 0
    for found in _SENTENCE_END.finditer(body):
        start = found.end()
    while start < end and body[start].isspace():
        start += 1
    return (start, end) if start < end else (end, end)


def stream_text(seg: Segment, piece: str) -> None:
    """Add model text to the open message: its delta, then the annotations its markers made."""
    assert seg.message is not None
    text, annotations = seg.citations.feed(piece) if seg.citations else (piece, [])
    if text:
        seg.text.append(text)
        seg.sink.emit("thread.message.delta", objects.message_delta(seg.message["id"], 0, text))
    _add_annotations(seg, annotations)


def flush_text(seg: Segment) -> None:
    """Show the text the open message's citation stream still holds (the reply has ended)."""
    if seg.citations is not None and seg.message is not None:
        text = seg.citations.flush()
        if text:
            seg.text.append(text)
            seg.sink.emit("thread.message.delta", objects.message_delta(seg.message["id"], 0, text))


def cite_saved_files(seg: Segment) -> None:
    """Annotate the files the code saved where the message mentions them (``file_path``).

    A file the text does not mention is listed at its end, so that every saved file is
    cited; the addition and the annotations are streamed as message deltas.
    """
    if not seg.saved_files or seg.message is None:
        return
    text = "".join(seg.text)
    spans: list[tuple[str, str, int]] = []
    missing: list[tuple[str, str]] = []
    for path, file_id in seg.saved_files:
        found = next(
            ((n, i) for n in (path, path.rsplit("/", 1)[-1]) if (i := text.find(n)) >= 0),
            None,
        )
        if found is None:
            missing.append((path, file_id))
        else:
            spans.append((found[0], file_id, found[1]))
    if missing:
        extra = ("\n\n" if text else "") + "Files:"
        for path, file_id in missing:
            extra += "\n- "
            spans.append((path, file_id, len(text) + len(extra)))
            extra += path
        seg.text.append(extra)
        seg.sink.emit("thread.message.delta", objects.message_delta(seg.message["id"], 0, extra))
    seg.saved_files = []
    _add_annotations(
        seg,
        [
            {
                "type": "file_path",
                "text": name,
                "start_index": start,
                "end_index": start + len(name),
                "file_path": {"file_id": file_id},
            }
            for name, file_id, start in spans
        ],
    )


def _add_annotations(seg: Segment, annotations: list[dict[str, Any]]) -> None:
    """Add annotations to the open message's text block, and stream them (numbered on)."""
    if not annotations or seg.message is None:
        return
    first = len(seg.annotations)
    seg.annotations.extend(annotations)
    numbered = [{"index": first + i, **a} for i, a in enumerate(annotations)]
    seg.sink.emit(
        "thread.message.delta",
        {
            "id": seg.message["id"],
            "object": "thread.message.delta",
            "delta": {"content": [{"index": 0, "type": "text", "text": {"annotations": numbered}}]},
        },
    )
