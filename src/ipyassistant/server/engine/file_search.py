"""The ``file_search`` tool in runs: the search, its results on the step, and who sees the chunks.

A model's ``file_search(query)`` call becomes a ``file_search`` tool call of a ``tool_calls``
step, executed here: the run searches the vector stores of its assistant and its thread
(``tool_resources.file_search.vector_store_ids``) after waiting, for at most
:attr:`~.RunEngine.index_wait_seconds`, for the thread's files still being indexed. The call
then holds::

    {"query": ..., "ranking_options": {"ranker", "score_threshold"},
     "results": [{"file_id", "file_name", "score", "content": [{"type": "text", "text"}]}]}

(``query`` is this server's addition: the API's object does not say what was searched.) The
step keeps each result's ``content``: the model reads it again on its next turns
(:func:`describe_call`), and the API gives it only to requests that ask for it with
``include[]=`` :data:`INCLUDE_CONTENT` (:func:`without_content`, :class:`WithoutContent`).

Results are numbered across the run's searches (:func:`sources`), so that a marker
``【n†FILE】`` the model writes names one file (see :mod:`..models.search_results`).
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from .. import db
from ..errors import NotFound
from ..events import EventSink
from ..models.base import ModelError
from ..models.search_results import ResultText, format_results
from ..store import Store, Tx

__all__ = [
    "DEFAULT_MAX_RESULTS",
    "INCLUDE_CONTENT",
    "FileSearcher",
    "IndexSearcher",
    "Query",
    "SearchHit",
    "WithoutContent",
    "decode_query",
    "describe_call",
    "enabled",
    "search",
    "sources",
    "without_content",
]

#: The ``include[]`` value that asks for the results' chunks.
INCLUDE_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"
#: Results per search when the tool does not say (``file_search.max_num_results``).
DEFAULT_MAX_RESULTS = 10
#: How often the wait for files being indexed looks again.
_POLL_SECONDS = 0.2


class SearchHit(Protocol):
    """One chunk a search found (:class:`~..retrieval.search.Hit` is one)."""

    @property
    def file_id(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def score(self) -> float: ...


@dataclass(frozen=True)
class Query:
    """What one ``file_search`` call asks for: its words, where, and how many results."""

    text: str
    vector_store_ids: tuple[str, ...]
    max_num_results: int
    #: The tool's ``ranking_options``: ``auto`` or ``default_2024_08_21`` (both hybrid).
    ranker: str
    score_threshold: float


class FileSearcher(Protocol):
    """Searches vector stores for a run (the engine's :attr:`~.RunEngine.file_searcher`)."""

    async def search(self, query: Query) -> Sequence[SearchHit]:
        """The best chunks for the query, best first, scores in [0, 1]."""
        ...


class IndexSearcher:
    """The server's :class:`FileSearcher`: hybrid search over the stores' index in the database."""

    def __init__(self, store: Store):
        self.store = store

    async def search(self, query: Query) -> Sequence[SearchHit]:
        # Imported on first use: retrieval loads numpy (and its embedders their weights),
        # which a server whose runs never search does not need.
        from ..retrieval.search import search as search_index

        async with self.store.read() as tx:
            return await search_index(
                tx.conn,
                query.vector_store_ids,
                [query.text],
                max_num_results=query.max_num_results,
                ranker=query.ranker,
                score_threshold=query.score_threshold,
            )


@dataclass(frozen=True)
class _Settings:
    max_num_results: int
    ranker: str
    score_threshold: float


def enabled(run: dict[str, Any]) -> bool:
    """Whether the run has the ``file_search`` tool."""
    return any(t["type"] == "file_search" for t in run["tools"])


def _settings(run: dict[str, Any]) -> _Settings:
    tool: dict[str, Any] = next((t for t in run["tools"] if t["type"] == "file_search"), {})
    options = tool.get("file_search") or {}
    ranking = options.get("ranking_options") or {}
    return _Settings(
        max_num_results=options.get("max_num_results") or DEFAULT_MAX_RESULTS,
        ranker=ranking.get("ranker") or "auto",
        score_threshold=float(ranking.get("score_threshold") or 0.0),
    )


def decode_query(arguments: str) -> str:
    """The query of a model's ``file_search`` arguments (raises :class:`ModelError`)."""
    try:
        query = json.loads(arguments or "{}")["query"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ModelError(
            f"The model called file_search with invalid arguments: {arguments[:200]!r}"
        ) from None
    if not isinstance(query, str) or not query.strip():
        raise ModelError(f"The model called file_search without a query: {arguments[:200]!r}")
    return query


async def _store_ids(tx: Tx, run: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The vector stores the run searches, and which of them are the thread's."""
    found: dict[str, list[str]] = {}
    for kind, object_id in (("assistant", run["assistant_id"]), ("thread", run["thread_id"])):
        try:
            owner = await tx.get(kind, object_id)
        except NotFound:
            found[kind] = []
            continue
        resources = (owner.get("tool_resources") or {}).get("file_search") or {}
        found[kind] = list(resources.get("vector_store_ids") or [])
    return list(dict.fromkeys(found["assistant"] + found["thread"])), found["thread"]


async def _indexing(store: Store, vector_store_ids: Sequence[str]) -> int:
    """How many files of these stores are still being indexed."""
    if not vector_store_ids:
        return 0
    table = db.vector_store_files
    async with store.read() as tx:
        count = await tx.conn.scalar(
            sa.select(sa.func.count())
            .select_from(table)
            .where(table.c.vector_store_id.in_(vector_store_ids), table.c.status == "in_progress")
        )
    return int(count or 0)


async def _wait_for_indexing(store: Store, vector_store_ids: Sequence[str], timeout: float) -> int:
    """Wait until these stores have no file being indexed, or ``timeout``; how many remain."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        pending = await _indexing(store, vector_store_ids)
        if not pending or loop.time() >= deadline:
            return pending
        await asyncio.sleep(min(_POLL_SECONDS, deadline - loop.time()))


async def search(
    store: Store,
    searcher: FileSearcher,
    run: dict[str, Any],
    call: dict[str, Any],
    wait_seconds: float,
) -> str:
    """Run a ``file_search`` call: fill its ``ranking_options`` and ``results``.

    Returns a note for the model on what could not be searched (no stores, files still
    being indexed), or ``""``.
    """
    settings = _settings(run)
    async with store.read() as tx:
        ids, thread_ids = await _store_ids(tx, run)
    pending = await _wait_for_indexing(store, thread_ids, wait_seconds)
    query = Query(
        call["file_search"]["query"],
        tuple(ids),
        settings.max_num_results,
        settings.ranker,
        settings.score_threshold,
    )
    hits = await searcher.search(query) if ids else []
    names: dict[str, str] = {}
    async with store.read() as tx:
        for hit in hits:
            if hit.file_id not in names:
                try:
                    names[hit.file_id] = str((await tx.get("file", hit.file_id))["filename"])
                except NotFound:  # deleted since it was indexed
                    names[hit.file_id] = hit.file_id
    call["file_search"].update(
        ranking_options={"ranker": settings.ranker, "score_threshold": settings.score_threshold},
        results=[
            {
                "file_id": hit.file_id,
                "file_name": names[hit.file_id],
                "score": min(max(float(hit.score), 0.0), 1.0),
                "content": [{"type": "text", "text": hit.text}],
            }
            for hit in hits
        ],
    )
    if not ids:
        return "No vector stores (no files) are attached to this assistant or thread."
    if pending:
        return f"{pending} files were still being indexed and could not be searched."
    return ""


def describe_call(call: dict[str, Any], first: int, note: str = "") -> str:
    """A ``file_search`` call's results as the model reads them, numbered from ``first``."""
    found = call["file_search"]
    results = [
        ResultText(
            number=first + i,
            file_name=result["file_name"],
            score=result["score"],
            text="\n".join(part["text"] for part in result.get("content") or []),
        )
        for i, result in enumerate(found.get("results") or [])
    ]
    return format_results(found.get("query", ""), results, note=note)


def sources(steps: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(file id, file name) of each result of the run's searches, in the markers' numbering."""
    found: list[tuple[str, str]] = []
    for step in steps:
        details = step["step_details"]
        for call in details.get("tool_calls") or [] if details["type"] == "tool_calls" else []:
            if call["type"] == "file_search":
                found += [
                    (r["file_id"], r["file_name"]) for r in call["file_search"].get("results") or []
                ]
    return found


def without_content(obj: dict[str, Any]) -> dict[str, Any]:
    """A step or step delta without its results' ``content`` (a copy, when it had some)."""
    details = (obj.get("delta") or obj).get("step_details") or {}
    calls = details.get("tool_calls") or []
    if not any(
        "content" in result
        for call in calls
        if call.get("type") == "file_search"
        for result in (call.get("file_search") or {}).get("results") or []
    ):
        return obj
    obj = copy.deepcopy(obj)
    for call in ((obj.get("delta") or obj)["step_details"])["tool_calls"]:
        for result in (call.get("file_search") or {}).get("results") or []:
            result.pop("content", None)
    return obj


class WithoutContent(EventSink):
    """Passes a run's events on to ``sink``, its steps without the results' ``content``."""

    def __init__(self, sink: EventSink):
        self.sink = sink

    def emit(self, event: str, data: dict[str, Any]) -> None:
        if event.startswith("thread.run.step."):
            data = without_content(data)
        self.sink.emit(event, data)

    def close(self) -> None:
        self.sink.close()
