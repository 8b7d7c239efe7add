"""What a :class:`~.chat_panel.ChatPanel` asks of the client: its history, uploads, runs, images.

Each call runs on the portal's loop, whoever awaits it (see :mod:`ipyassistant._portal`), so
that the kernel's loop only waits on a future and keeps handling the panel's messages.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import openai
from openai.types import FileObject
from openai.types.beta.threads import Run as RunObject

from .._portal import client, on_portal, portal
from .view_state import ViewState, empty_state, file_ids, item_from_message

if TYPE_CHECKING:
    from ..threads import Thread

__all__ = ["cancel_run", "file_bytes", "load_history", "retrieve_run", "upload"]


@on_portal
async def upload(name: str, data: bytes) -> FileObject:
    """Upload an attached file (purpose ``assistants``)."""
    api = await client()
    return await api.files.create(file=(name, data), purpose="assistants")


@on_portal
async def cancel_run(thread_id: str, run_id: str) -> None:
    """Ask the server to cancel a run (Stop)."""
    api = await client()
    await api.beta.threads.runs.cancel(run_id, thread_id=thread_id)


@on_portal
async def retrieve_run(thread_id: str, run_id: str) -> RunObject:
    """The run as the server has it now (how a stopped turn's run ended)."""
    api = await client()
    return await api.beta.threads.runs.retrieve(run_id, thread_id=thread_id)


@on_portal
async def file_bytes(file_id: str) -> bytes:
    """The content of a file (an image a message shows)."""
    api = await client()
    response = await api.files.content(file_id)
    return response.content


@on_portal
async def _history(thread: Thread, limit: int) -> tuple[ViewState, dict[str, bytes]]:
    messages = await thread.get_messages_async(limit=limit)
    state: ViewState = {**empty_state(), "items": [item_from_message(m) for m in messages]}
    await _name_cited_files(state)
    images: dict[str, bytes] = {}
    for file_id in file_ids(state):
        with contextlib.suppress(openai.APIError):  # deleted since: shown as a placeholder
            images[file_id] = await file_bytes(file_id)
    return state, images


async def _name_cited_files(state: ViewState) -> None:
    """Give the citations of ``state`` their files' names: a history has no search steps to
    take them from (see :mod:`.sources`)."""
    citations = [
        citation
        for item in state["items"]
        if item["kind"] == "message"
        for block in item["blocks"]
        if block["type"] == "text"
        for citation in block.get("citations", [])
    ]
    if not citations:
        return
    api = await client()
    names: dict[str, str] = {}
    for file_id in dict.fromkeys(c["file_id"] for c in citations):
        with contextlib.suppress(openai.APIError):  # deleted since: its id names it
            names[file_id] = (await api.files.retrieve(file_id)).filename
    for citation in citations:
        if citation["file_id"] in names:
            citation["file_name"] = names[citation["file_id"]]


def load_history(thread: Thread, limit: int) -> tuple[ViewState, dict[str, bytes]]:
    """The last ``limit`` messages of ``thread`` as a view state, with their images' bytes."""
    if thread.id is None:  # not created yet: nothing said
        return empty_state(), {}
    return portal().call(_history(thread, limit))
