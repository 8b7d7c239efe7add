"""What several resources' routes share: list paging, streamed responses, checks of bodies.

The list endpoints take the same query parameters (:data:`Page`) and stream their page from
the database (:func:`listing`); runs and tool outputs stream events (:func:`sse`). The checks
here apply to bodies that more than one route accepts: tools (assistants and runs) and
messages (threads, messages and runs).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from .. import objects
from ..bodies import JSONBodyRoute
from ..caller import Caller
from ..errors import InvalidRequest, NotFound
from ..events import EventStream
from ..schemas import CreateMessage
from ..store import Cursor, PageKeys, Store, Tx

__all__ = [
    "Order",
    "Page",
    "check_files",
    "check_tools",
    "cursor",
    "delete_one",
    "deleted",
    "fetch",
    "fetch_own",
    "get_own",
    "listing",
    "message_row",
    "new_router",
    "sse",
]

Order = Annotated[Literal["asc", "desc"], Query()]


def new_router() -> APIRouter:
    """A router for one resource's routes: each parses its JSON body first (see :mod:`..bodies`)."""
    return APIRouter(route_class=JSONBodyRoute)


def cursor(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
) -> Cursor:
    """The query parameters every list endpoint takes."""
    return Cursor(limit, order, after, before)


Page = Annotated[Cursor, Depends(cursor)]


def listing(store: Store, keys: PageKeys) -> StreamingResponse:
    """A list page, streamed from the database one object at a time."""
    return StreamingResponse(store.stream_page(keys), media_type="application/json")


def sse(events: EventStream) -> StreamingResponse:
    """A run's events as server-sent events."""
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


async def fetch(store: Store, caller: Caller, kind: str, object_id: str) -> dict[str, Any]:
    """One of the caller's objects by id (404 if there is none), read in a transaction of its own."""
    async with store.read(caller) as tx:
        return await tx.get(kind, object_id)


async def delete_one(store: Store, caller: Caller, kind: str, object_id: str) -> None:
    """Delete one of the caller's objects by id (404 if there is none) in a transaction of its own."""
    async with store.tx(caller) as tx:
        if not await tx.delete(kind, object_id):
            raise NotFound.of(kind, object_id)


def deleted(kind: str, object_id: str) -> dict[str, Any]:
    """The body of a successful delete."""
    return {"id": object_id, "object": f"{kind}.deleted", "deleted": True}


def check_tools(tools: list[dict[str, Any]], param: str) -> None:
    """Refuse two function tools of one name."""
    names = set()
    for i, tool in enumerate(tools):
        if tool["type"] == "function":
            name = tool["function"]["name"]
            if name in names:
                raise InvalidRequest(
                    f"Two function tools are named {name!r}.",
                    param=f"{param}[{i}].function.name",
                    code="invalid_value",
                )
            names.add(name)


async def check_files(tx: Tx, message: CreateMessage, param: str) -> None:
    """Every file a new message attaches or shows exists (else 404 naming where it is)."""
    prefix = f"{param}." if param else ""  # the message is the whole body: no prefix
    for i, attachment in enumerate(message.attachments or []):
        if not await tx.exists("file", attachment.file_id):
            raise NotFound.of("file", attachment.file_id, f"{prefix}attachments[{i}].file_id")
    if isinstance(message.content, list):
        for i, part in enumerate(message.content):
            if part.type == "image_file" and not await tx.exists("file", part.image_file.file_id):
                raise NotFound.of(
                    "file", part.image_file.file_id, f"{prefix}content[{i}].image_file.file_id"
                )


def message_row(thread_id: str, message: CreateMessage) -> dict[str, Any]:
    """The stored message a user's :class:`CreateMessage` makes in ``thread_id``."""
    return objects.message_object(
        thread_id,
        message.role,
        objects.user_content(message.content),
        attachments=[a.model_dump(mode="json") for a in message.attachments or []],
        metadata=message.metadata,
    )


async def get_own(tx: Tx, kind: str, object_id: str, thread_id: str) -> dict[str, Any]:
    """An object of a thread (message, run, step), as if absent when it is another thread's."""
    obj = await tx.get(kind, object_id)
    if obj["thread_id"] != thread_id:
        raise NotFound.of(kind.replace("_", " "), object_id)
    return obj


async def fetch_own(
    store: Store, caller: Caller, kind: str, object_id: str, thread_id: str
) -> dict[str, Any]:
    """:func:`get_own`, read in a transaction of its own."""
    async with store.read(caller) as tx:
        return await get_own(tx, kind, object_id, thread_id)
