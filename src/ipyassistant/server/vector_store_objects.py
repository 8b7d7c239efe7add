"""Vector store objects as the wire protocol shapes them: stores, their files, file batches,
search result pages and file content pages (plain dicts that validate against the spec).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .store import new_id, now

__all__ = [
    "DAY",
    "FILE_STATUSES",
    "batch_object",
    "chunking_strategy",
    "content_page",
    "expires_at",
    "search_page",
    "vector_store_file_object",
    "vector_store_object",
]

DAY = 86_400
#: A vector store file's statuses, in the order ``file_counts`` lists them.
FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")


def file_counts(counts: Mapping[str, int] | None = None) -> dict[str, int]:
    """``file_counts`` from a count per status (missing statuses count 0)."""
    counts = counts or {}
    out = {status: int(counts.get(status, 0)) for status in FILE_STATUSES}
    out["total"] = sum(out.values())
    return out


def expires_at(expires_after: Mapping[str, Any] | None, last_active_at: int) -> int | None:
    """When a store expires: ``days`` after its last activity (the only anchor there is)."""
    if not expires_after:
        return None
    return last_active_at + int(expires_after["days"]) * DAY


def vector_store_object(
    *,
    name: str | None,
    description: str | None,
    metadata: dict[str, str] | None,
    expires_after: dict[str, Any] | None,
    embedding_model: str,
) -> dict[str, Any]:
    """A new, empty store (``completed``: it has nothing to index yet)."""
    created = now()
    store: dict[str, Any] = {
        "id": new_id("vector_store"),
        "object": "vector_store",
        "created_at": created,
        "name": name or "",
        "usage_bytes": 0,
        "file_counts": file_counts(),
        "status": "completed",
        "expires_at": expires_at(expires_after, created),
        "last_active_at": created,
        "metadata": metadata or {},
        # Beyond the spec: the embedder its chunks are embedded with (see vector_store_schemas).
        "embedding_model": embedding_model,
    }
    if description is not None:
        store["description"] = description
    if expires_after:
        store["expires_after"] = dict(expires_after)
    return store


def chunking_strategy(requested: Mapping[str, Any] | None, auto: tuple[int, int]) -> dict[str, Any]:
    """The strategy a file is chunked with, as the file object reports it (``auto`` resolved)."""
    if requested and requested.get("type") == "static":
        return {"type": "static", "static": dict(requested["static"])}
    size, overlap = auto
    return {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}


def vector_store_file_object(
    vector_store_id: str,
    file_id: str,
    *,
    strategy: dict[str, Any],
    attributes: dict[str, Any] | None,
) -> dict[str, Any]:
    """A file just added to a store: ``in_progress`` until the indexer is done with it."""
    return {
        "id": file_id,
        "object": "vector_store.file",
        "usage_bytes": 0,
        "created_at": now(),
        "vector_store_id": vector_store_id,
        "status": "in_progress",
        "last_error": None,
        "chunking_strategy": strategy,
        "attributes": attributes or {},
    }


def batch_object(vector_store_id: str, total: int) -> dict[str, Any]:
    """A new batch of ``total`` files, all ``in_progress``."""
    return {
        "id": new_id("vector_store.files_batch"),
        "object": "vector_store.files_batch",
        "created_at": now(),
        "vector_store_id": vector_store_id,
        "status": "in_progress" if total else "completed",
        "file_counts": file_counts({"in_progress": total}),
    }


def search_page(queries: Sequence[str], results: list[dict[str, Any]]) -> dict[str, Any]:
    """One page of search results (the whole answer: ``max_num_results`` bounds it)."""
    return {
        "object": "vector_store.search_results.page",
        "search_query": list(queries),
        "data": results,
        "has_more": False,
        "next_page": None,
    }


def content_page(chunks: Sequence[str]) -> dict[str, Any]:
    """A file's indexed text, chunk by chunk, in order."""
    return {
        "object": "vector_store.file_content.page",
        "data": [{"type": "text", "text": text} for text in chunks],
        "has_more": False,
        "next_page": None,
    }
