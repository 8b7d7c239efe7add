"""File search as chat models see it: the results as text, and the markers that cite them.

The run engine gives a model the results of its ``file_search(query)`` call as text
(:func:`format_results`): one section per result, headed by its *marker* ``【n†FILE_NAME】``
and its score, then the chunk's text. ``n`` numbers the results of a run across all its
searches, so a marker names one result. A model cites a result by writing its marker right
after the words it supports (:data:`CITING_NOTE`, told to the model); the engine removes the
markers from the reply and turns each into a ``file_citation`` annotation.

Models that read results back (the ``test`` model) use :func:`parse_results`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CITING_NOTE", "MARKER", "ResultText", "format_results", "marker", "parse_results"]

#: A citation marker: ``【3†notes.md】``; OpenAI's ``【4:0†notes.md】`` form and a marker
#: without a name (``【3】``) are read too.
MARKER = re.compile(r"【(\d+)(?::(\d+))?(?:†([^】\n]*))?】")

#: Told to the model (after the instructions) when the run has file search.
CITING_NOTE = (
    "The file_search tool searches the files the user gave you, by meaning and by keywords. "
    "Each result it returns starts with a marker such as 【0†notes.md】. When your reply uses a "
    "result, write its marker right after the sentence or the quotation it supports, e.g. "
    '"The report is due on Friday."【0†notes.md】'
)

_HEADER = re.compile(r"^【(\d+)†([^】\n]*)】 score (\d+(?:\.\d+)?)$", re.MULTILINE)


@dataclass(frozen=True)
class ResultText:
    """One search result as the model reads it."""

    number: int
    file_name: str
    score: float
    text: str


def marker(number: int, file_name: str) -> str:
    """The marker that cites result ``number`` (from the file ``file_name``)."""
    return f"【{number}†{file_name}】"


def format_results(query: str, results: Sequence[ResultText], *, note: str = "") -> str:
    """The text of one ``file_search`` call's results; ``note`` says why there are none."""
    if not results:
        return f"file_search found nothing for {json.dumps(query, ensure_ascii=False)}." + (
            f" {note}" if note else ""
        )
    head = f"file_search results for {json.dumps(query, ensure_ascii=False)}, best first:"
    parts = [head + (f" ({note})" if note else "")]
    for result in results:
        parts.append(
            f"{marker(result.number, result.file_name)} score {result.score:.2f}\n{result.text}"
        )
    return "\n\n".join(parts)


def parse_results(text: str) -> list[ResultText]:
    """The results in a text :func:`format_results` made (none for any other text)."""
    headers = list(_HEADER.finditer(text))
    results = []
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        results.append(
            ResultText(
                number=int(header.group(1)),
                file_name=header.group(2),
                score=float(header.group(3)),
                text=text[header.end() : end].strip(),
            )
        )
    return results
