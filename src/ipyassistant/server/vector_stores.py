"""Vector stores and their files, in the database: what the routes and the indexer change.

A store's files are rows of ``vector_store_files`` (one per store and file, ``in_progress``
until the :class:`~ipyassistant.server.retrieval.indexer.Indexer` ends them ``completed`` or
``failed``); its chunks are B's index (:mod:`.retrieval.index`). Every function here runs
inside the caller's transaction (:class:`~ipyassistant.server.store.Tx`), so a request changes
files, counts and chunks together or not at all.

Upkeep: :func:`refresh` recounts a store's ``file_counts``, ``usage_bytes`` and ``status``
(and its batches' counts and statuses) after any change to its files; :func:`touch` moves
``last_active_at`` (and with it ``expires_at``) on use. A store past ``expires_at`` reads as
``expired`` at once (:func:`as_read`); the indexer also writes that status down.

Deleting a ``/files`` object removes it from every store that holds it (:func:`remove_file`):
a store must not keep serving chunks of a file that no longer exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from . import db
from . import vector_store_objects as vso
from .errors import InvalidRequest, NotFound
from .retrieval import index
from .retrieval.chunking import AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS
from .retrieval.embedders import get_embedder
from .schemas import CreateMessage, NewToolResources, ToolResources
from .store import Parent, Tx, now

__all__ = [
    "THREAD_STORE_DAYS",
    "add_file",
    "as_read",
    "attach_message_files",
    "cancel_batch",
    "create_store",
    "delete_file",
    "delete_store",
    "embedder_name",
    "file_row",
    "get_usable",
    "plain",
    "refresh",
    "refresh_batch",
    "reindex",
    "remove_file",
    "resolve_tool_resources",
    "touch",
    "write_file",
]

#: A thread's own store (made for message attachments) expires this long after its last use.
THREAD_STORE_DAYS = 7

_files = db.vector_store_files


async def embedder_name(name: str | None, param: str = "embedding_model") -> str:
    """The canonical name of embedder ``name`` (None: the server's default), or a 400."""
    try:
        # Loading an embedder may read its weights from disk: not on the event loop.
        embedder = await asyncio.to_thread(get_embedder, name)
    except ValueError as exc:  # an unknown name: the message lists the accepted forms
        raise InvalidRequest(str(exc), param=param, code="invalid_value") from None
    except Exception as exc:  # a known kind this server cannot use (no API key, no weights)
        raise InvalidRequest(
            f"The embedding model {name!r} cannot be used here: {exc}", param=param, code="invalid_value"
        ) from None
    return embedder.name


def as_read(store: dict[str, Any]) -> dict[str, Any]:
    """A store as served: ``expired`` as soon as ``expires_at`` passes."""
    expires = store.get("expires_at")
    if expires is not None and expires <= now() and store["status"] != "expired":
        store = {**store, "status": "expired"}
    return store


async def get_usable(tx: Tx, vector_store_id: str, action: str, param: str | None = None) -> dict[str, Any]:
    """A store that may be searched or given files (404 if absent, 400 if expired)."""
    store = as_read(await tx.get("vector_store", vector_store_id, param=param))
    if store["status"] == "expired":
        raise InvalidRequest(
            f"Vector store {vector_store_id} expired at {store['expires_at']}, so it cannot "
            f"{action}. Create a new vector store (or set a longer expires_after before it expires).",
            param=param,
            code="vector_store_expired",
        )
    return store


def touch(store: dict[str, Any]) -> dict[str, Any]:
    """``store`` used now: ``last_active_at`` and, from it, ``expires_at`` move on."""
    store["last_active_at"] = now()
    store["expires_at"] = vso.expires_at(store.get("expires_after"), store["last_active_at"])
    return store


# -- files of a store -----------------------------------------------------------------------


async def file_row(tx: Tx, vector_store_id: str, file_id: str) -> dict[str, Any]:
    """A store's file (404 naming both if the store does not hold it)."""
    row = (
        await tx.conn.execute(
            sa.select(_files.c.data).where(
                _files.c.vector_store_id == vector_store_id, _files.c.id == file_id
            )
        )
    ).first()
    if row is None:
        raise NotFound(
            f"No file found with id '{file_id}' in vector store '{vector_store_id}'.",
            code="not_found",
        )
    return dict(row[0])


async def add_file(
    tx: Tx,
    vector_store_id: str,
    file_id: str,
    *,
    chunking: Any = None,
    attributes: dict[str, Any] | None = None,
    batch_id: str | None = None,
    param: str | None = "file_id",
) -> dict[str, Any]:
    """Put file ``file_id`` in the store, ``in_progress``; a file it holds is indexed again."""
    if not await tx.exists("file", file_id):
        raise NotFound.of("file", file_id, param)
    strategy = vso.chunking_strategy(
        plain(chunking), (AUTO_MAX_TOKENS, AUTO_OVERLAP_TOKENS)
    )
    obj = vso.vector_store_file_object(
        vector_store_id, file_id, strategy=strategy, attributes=attributes
    )
    values = {"status": "in_progress", "batch_id": batch_id, "worker_id": None, "attempts": 0, "data": obj}
    updated = await tx.conn.execute(
        sa.update(_files)
        .where(_files.c.vector_store_id == vector_store_id, _files.c.id == file_id)
        .values(**values)
    )
    if not updated.rowcount:
        await tx.conn.execute(
            sa.insert(_files).values(
                vector_store_id=vector_store_id, id=file_id, created_at=obj["created_at"], **values
            )
        )
    tx.queued_indexing = True
    return obj


async def write_file(tx: Tx, obj: dict[str, Any], *where: sa.ColumnElement[bool]) -> bool:
    """Store a file's new state (its status column follows); False if ``where`` did not hold."""
    result = await tx.conn.execute(
        sa.update(_files)
        .where(_files.c.vector_store_id == obj["vector_store_id"], _files.c.id == obj["id"], *where)
        .values(status=obj["status"], data=obj)
    )
    return bool(result.rowcount)


async def delete_file(tx: Tx, vector_store_id: str, file_id: str) -> None:
    """Take a file out of a store, with its chunks and embeddings."""
    await file_row(tx, vector_store_id, file_id)
    await tx.conn.execute(
        sa.delete(_files).where(_files.c.vector_store_id == vector_store_id, _files.c.id == file_id)
    )
    await index.delete_file_chunks(tx.conn, vector_store_id, file_id)
    await refresh(tx, vector_store_id)


async def remove_file(tx: Tx, file_id: str) -> None:
    """Take a deleted ``/files`` object out of every store that holds it."""
    rows = await tx.conn.execute(sa.select(_files.c.vector_store_id).where(_files.c.id == file_id))
    for (vector_store_id,) in list(rows):
        await delete_file(tx, vector_store_id, file_id)


async def delete_store(tx: Tx, vector_store_id: str) -> None:
    """Delete a store with its files, batches and chunks (the ``/files`` objects stay)."""
    await tx.get("vector_store", vector_store_id)
    await tx.conn.execute(sa.delete(_files).where(_files.c.vector_store_id == vector_store_id))
    batches = db.vector_store_file_batches
    await tx.conn.execute(sa.delete(batches).where(batches.c.vector_store_id == vector_store_id))
    await index.delete_store_chunks(tx.conn, vector_store_id)
    await tx.delete("vector_store", vector_store_id)


async def reindex(tx: Tx, vector_store_id: str) -> None:
    """A new embedder: every file of the store is indexed again (old vectors are unusable)."""
    tx.queued_indexing = True
    await index.delete_store_chunks(tx.conn, vector_store_id)
    rows = await tx.conn.execute(
        sa.select(_files.c.data).where(
            _files.c.vector_store_id == vector_store_id, _files.c.status != "cancelled"
        )
    )
    for (data,) in list(rows):
        obj = {**data, "status": "in_progress", "last_error": None, "usage_bytes": 0}
        await tx.conn.execute(
            sa.update(_files)
            .where(_files.c.vector_store_id == vector_store_id, _files.c.id == obj["id"])
            .values(status="in_progress", worker_id=None, attempts=0, data=obj)
        )


# -- counts and statuses --------------------------------------------------------------------


async def _counts(tx: Tx, *where: sa.ColumnElement[bool]) -> dict[str, int]:
    rows = await tx.conn.execute(
        sa.select(_files.c.status, sa.func.count()).where(*where).group_by(_files.c.status)
    )
    return vso.file_counts({status: n for status, n in rows})


async def refresh(tx: Tx, vector_store_id: str, batch_ids: Sequence[str] = ()) -> dict[str, Any]:
    """Recount a store's files and usage, and its batches' (all of them, or ``batch_ids``)."""
    store = await tx.get("vector_store", vector_store_id)
    counts = await _counts(tx, _files.c.vector_store_id == vector_store_id)
    store["file_counts"] = counts
    store["usage_bytes"] = await index.usage_bytes(tx.conn, vector_store_id)
    if store["status"] != "expired":
        store["status"] = "in_progress" if counts["in_progress"] else "completed"
    await tx.update("vector_store", store)
    batches = db.vector_store_file_batches
    query = sa.select(batches.c.data).where(batches.c.vector_store_id == vector_store_id)
    if batch_ids:
        query = query.where(batches.c.id.in_(batch_ids))
    for (data,) in list(await tx.conn.execute(query)):
        batch = dict(data)
        if batch["status"] == "in_progress" or batch_ids:
            await refresh_batch(tx, batch)
    return store


async def refresh_batch(tx: Tx, batch: dict[str, Any]) -> dict[str, Any]:
    """Recount a batch: ``in_progress`` while any of its files is, then ``completed``
    (``failed`` if every file failed); a cancelled batch stays ``cancelled``."""
    counts = await _counts(tx, _files.c.batch_id == batch["id"])
    batch["file_counts"] = counts
    if batch["status"] != "cancelled":
        if counts["in_progress"]:
            batch["status"] = "in_progress"
        elif counts["total"] and counts["failed"] == counts["total"]:
            batch["status"] = "failed"
        else:
            batch["status"] = "completed"
    return await tx.update("vector_store.files_batch", batch)


async def cancel_batch(tx: Tx, batch: dict[str, Any]) -> dict[str, Any]:
    """Cancel the batch's files not indexed yet (one being indexed is dropped at its end)."""
    if batch["status"] != "in_progress":
        raise InvalidRequest(
            f"Cannot cancel file batch {batch['id']} with status '{batch['status']}'.",
            param="batch_id",
            code="invalid_value",
        )
    rows = await tx.conn.execute(
        sa.select(_files.c.data).where(
            _files.c.batch_id == batch["id"], _files.c.status == "in_progress"
        )
    )
    for (data,) in list(rows):
        obj = {**data, "status": "cancelled"}
        await write_file(tx, obj, _files.c.status == "in_progress")
        await tx.conn.execute(
            sa.update(_files)
            .where(_files.c.vector_store_id == obj["vector_store_id"], _files.c.id == obj["id"])
            .values(worker_id=None)
        )
    batch["status"] = "cancelled"
    await tx.update("vector_store.files_batch", batch)
    await refresh(tx, batch["vector_store_id"], [batch["id"]])
    return await tx.get("vector_store.files_batch", batch["id"])


# -- creating stores ------------------------------------------------------------------------


async def create_store(
    tx: Tx,
    *,
    embedding_model: str,
    name: str | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    expires_after: dict[str, Any] | None = None,
    file_ids: Sequence[str] = (),
    chunking: Any = None,
    param: str = "",
    parent: Parent | None = None,
) -> dict[str, Any]:
    """A new store holding ``file_ids`` (404 naming ``{param}file_ids[i]`` for a missing one),
    owned by the caller, or by ``parent``'s owner."""
    store = vso.vector_store_object(
        name=name,
        description=description,
        metadata=metadata,
        expires_after=expires_after,
        embedding_model=embedding_model,
    )
    await tx.insert("vector_store", store, parent=parent)
    for i, file_id in enumerate(dict.fromkeys(file_ids)):
        await add_file(
            tx, store["id"], file_id, chunking=chunking, param=f"{param}file_ids[{i}]"
        )
    return await refresh(tx, store["id"])


async def resolve_tool_resources(
    tx: Tx, resources: NewToolResources | ToolResources | None, param: str
) -> dict[str, Any]:
    """Tool resources as stored: ``file_ids`` and ``vector_store_ids`` checked (each must be
    the caller's: a run would give its model another's), ``vector_stores`` made."""
    out: dict[str, Any] = {}
    if resources is None:
        return out
    if resources.code_interpreter is not None:
        for i, file_id in enumerate(resources.code_interpreter.file_ids):
            if not await tx.exists("file", file_id):
                raise NotFound.of("file", file_id, f"{param}.code_interpreter.file_ids[{i}]")
        out["code_interpreter"] = resources.code_interpreter.model_dump(mode="json")
    search = resources.file_search
    if search is None:
        return out
    where = f"{param}.file_search"
    ids = list(search.vector_store_ids or [])
    for i, vector_store_id in enumerate(ids):
        await get_usable(tx, vector_store_id, "be used", f"{where}.vector_store_ids[{i}]")
    for i, new in enumerate(getattr(search, "vector_stores", None) or []):
        store = await create_store(
            tx,
            embedding_model=await embedder_name(None),
            metadata=new.metadata,
            file_ids=new.file_ids,
            chunking=new.chunking_strategy,
            param=f"{where}.vector_stores[{i}].",
        )
        ids.append(store["id"])
    out["file_search"] = {"vector_store_ids": ids}
    return out


async def attach_message_files(tx: Tx, thread_id: str, message: CreateMessage) -> bool:
    """Put a message's ``file_search`` attachments in its thread's store; True if any.

    The thread's store is the first of its ``vector_store_ids``; a thread without one gets
    a new store, made on demand, expiring :data:`THREAD_STORE_DAYS` days after its last use
    and recorded in the thread's ``tool_resources``.
    """
    wanted = [
        a.file_id
        for a in message.attachments or []
        if any(tool.type == "file_search" for tool in a.tools)
    ]
    if not wanted:
        return False
    thread = await tx.get("thread", thread_id)
    resources = thread.get("tool_resources") or {}
    ids = list((resources.get("file_search") or {}).get("vector_store_ids") or [])
    store = None
    if ids and await tx.exists("vector_store", ids[0]):
        store = as_read(await tx.get("vector_store", ids[0]))
    if store is None or store["status"] == "expired":
        store = await create_store(
            tx,
            embedding_model=await embedder_name(None),
            name=f"thread {thread_id}",
            expires_after={"anchor": "last_active_at", "days": THREAD_STORE_DAYS},
            parent=("thread", thread_id),  # the thread's, whoever added the message
        )
        ids = [store["id"], *ids[1:]] if ids else [store["id"]]
        thread["tool_resources"] = {**resources, "file_search": {"vector_store_ids": ids}}
        await tx.update("thread", thread)
    for file_id in wanted:
        await add_file(tx, store["id"], file_id, param=None)
    await tx.update("vector_store", touch(await refresh(tx, store["id"])))
    return True


def plain(value: Any) -> Any:
    """A request model as plain JSON (what a file object records)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value
