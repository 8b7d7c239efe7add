"""``/threads`` and their ``/messages``: create, read, modify and delete both.

Creating a thread together with a run (``POST /threads/runs``) is in :mod:`.runs`; it
inserts the thread with :func:`insert_thread`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import Response

from .. import db, objects, vector_stores
from ..auth import CallerDep
from ..schemas import CreateMessage, CreateThread, ModifyMetadata, ModifyThread
from ..store import Tx
from .common import (
    Page,
    check_files,
    deleted,
    fetch,
    fetch_own,
    get_own,
    listing,
    message_row,
    new_router,
)

if TYPE_CHECKING:
    from ..app import Server

__all__ = ["insert_thread", "router"]


async def insert_thread(tx: Tx, body: CreateThread, param: str = "") -> dict[str, Any]:
    """Insert a new thread and its first messages; ``param`` locates ``body`` in the request."""
    thread = objects.thread_object(body.metadata, None)
    thread["tool_resources"] = await vector_stores.resolve_tool_resources(
        tx, body.tool_resources, f"{param}tool_resources"
    )
    await tx.insert("thread", thread)
    rows = []
    attached = False
    for i, message in enumerate(body.messages or []):
        await check_files(tx, message, f"{param}messages[{i}]")
        attached |= await vector_stores.attach_message_files(tx, thread["id"], message)
        rows.append(message_row(thread["id"], message))
    await tx.insert_many("message", rows)
    # A message's file_search attachments may have given the thread a store.
    return await tx.get("thread", thread["id"]) if attached else thread


def router(server: Server) -> APIRouter:
    """The threads' and messages' routes, on ``server``'s store and code interpreter."""
    store = server.store
    routes = new_router()

    @routes.post("/threads")
    async def create_thread(body: CreateThread, caller: CallerDep) -> dict[str, Any]:
        async with store.tx(caller) as tx:
            thread = await insert_thread(tx, body)
        if tx.queued_indexing:  # its messages or tool resources gave it files
            server.indexer.wake()
        return thread

    @routes.get("/threads/{thread_id}")
    async def get_thread(thread_id: str, caller: CallerDep) -> dict[str, Any]:
        return await fetch(store, caller, "thread", thread_id)

    @routes.post("/threads/{thread_id}")
    async def modify_thread(thread_id: str, body: ModifyThread, caller: CallerDep) -> dict[str, Any]:
        async with store.tx(caller) as tx:
            thread = await tx.get("thread", thread_id)
            if "metadata" in body.model_fields_set:
                thread["metadata"] = body.metadata or {}
            if "tool_resources" in body.model_fields_set:
                thread["tool_resources"] = await vector_stores.resolve_tool_resources(
                    tx, body.tool_resources, "tool_resources"
                )
            return await tx.update("thread", thread)

    @routes.delete("/threads/{thread_id}")
    async def delete_thread(thread_id: str, caller: CallerDep) -> dict[str, Any]:
        async with store.tx(caller) as tx:
            await tx.delete_thread(thread_id)
        # The thread's kernel and working directory go with it.
        await server.code_interpreter.discard_thread(thread_id, remove_files=True)
        return deleted("thread", thread_id)

    # -- messages ------------------------------------------------------------------------

    @routes.post("/threads/{thread_id}/messages")
    async def create_message(thread_id: str, body: CreateMessage, caller: CallerDep) -> dict[str, Any]:
        async with store.tx(caller) as tx:
            await tx.ensure_thread_idle(thread_id, "add messages to")
            await check_files(tx, body, "")
            await vector_stores.attach_message_files(tx, thread_id, body)
            message = await tx.insert("message", message_row(thread_id, body))
        if tx.queued_indexing:
            server.indexer.wake()
        return message

    @routes.get("/threads/{thread_id}/messages")
    async def list_messages(
        thread_id: str, page: Page, caller: CallerDep, run_id: str | None = None
    ) -> Response:
        where = [db.messages.c.thread_id == thread_id]
        if run_id is not None:
            where.append(db.messages.c.run_id == run_id)
        async with store.read(caller) as tx:
            await tx.get("thread", thread_id)
            keys = await tx.page_keys("message", page, where=where)
        return listing(store, keys)

    @routes.get("/threads/{thread_id}/messages/{message_id}")
    async def get_message(thread_id: str, message_id: str, caller: CallerDep) -> dict[str, Any]:
        return await fetch_own(store, caller, "message", message_id, thread_id)

    @routes.post("/threads/{thread_id}/messages/{message_id}")
    async def modify_message(
        thread_id: str, message_id: str, body: ModifyMetadata, caller: CallerDep
    ) -> dict[str, Any]:
        async with store.tx(caller) as tx:
            message = await get_own(tx, "message", message_id, thread_id)
            message["metadata"] = body.metadata or {}
            return await tx.update("message", message)

    @routes.delete("/threads/{thread_id}/messages/{message_id}")
    async def delete_message(thread_id: str, message_id: str, caller: CallerDep) -> dict[str, Any]:
        async with store.tx(caller) as tx:
            await get_own(tx, "message", message_id, thread_id)
            await tx.ensure_thread_idle(thread_id, "delete messages of")
            await tx.delete("message", message_id)
        return deleted("thread.message", message_id)

    return routes
