"""Following a run that its stream no longer shows: polling, and catching up after a break.

A stream whose connection breaks is followed by polling the run (:func:`poll`); once it ends or
waits for tool outputs, the handler is given the completions it missed
(:func:`replay_completions`). A run stopped before its first event named it is found on its
thread (:func:`find_started_run`), so that it can be cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import openai
from openai import AsyncAssistantEventHandler
from openai.types.beta.threads import Message
from openai.types.beta.threads import Run as RunObject
from openai.types.beta.threads.runs import RunStep

from ._portal import client

if TYPE_CHECKING:
    from .runs import Run

__all__ = ["TERMINAL_STATUSES", "connection_lost", "find_started_run", "poll", "replay_completions"]

#: A run in one of these states is over; its thread accepts messages and runs again.
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})


async def poll(run: Run, until: frozenset[str], deadline: float | None = None) -> None:
    """Retrieve ``run.run`` until its status is in ``until`` (or the deadline passes).

    ``run.run`` is replaced at each retrieval, so that an interrupted poll leaves the latest.
    """
    assert run.run is not None
    api = await client()
    pause = 0.02
    while run.run.status not in until:
        if deadline is not None and time.monotonic() > deadline:
            return
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)
        run.run = await api.beta.threads.runs.retrieve(run.run.id, thread_id=run.run.thread_id)


async def replay_completions(
    handler: AsyncAssistantEventHandler,
    streamed: Mapping[str, Message | RunStep],
    messages: list[Message],
    steps: list[RunStep],
) -> None:
    """Give ``handler`` the completions of ``messages`` and ``steps`` its stream did not show.

    ``streamed`` holds what the stream showed, by id; an item still in progress, or streamed
    in its present status, is not given again.
    """
    # In the stream's order: by completion, a message before the step that created it.
    items: list[Message | RunStep] = [*messages, *steps]
    for item in sorted(items, key=lambda i: i.completed_at or i.created_at):
        before = streamed.get(item.id)
        if item.status == "in_progress" or (before is not None and before.status == item.status):
            continue
        with contextlib.suppress(Exception):  # a handler's failure must not stop the run
            if isinstance(item, Message):
                await handler.on_message_done(item)
            else:
                await handler.on_run_step_done(item)


async def find_started_run(thread_id: str | None, assistant_id: str | None) -> RunObject | None:
    """Find our run when we were stopped before its first event named it.

    It is the thread's newest run if that is still active (and, with ``assistant_id``, that
    assistant's).
    """
    if thread_id is None:
        return None
    api = await client()
    page = await api.beta.threads.runs.list(thread_id, limit=1, order="desc")
    newest = page.data[0] if page.data else None
    if newest is None or newest.status in TERMINAL_STATUSES:
        return None
    if assistant_id is not None and newest.assistant_id != assistant_id:
        return None
    return newest


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is a broken or timed-out connection while reading a stream.

    The SDK leaves its HTTP library's errors unwrapped there: those of ``httpx2`` or ``httpx``,
    whichever it has loaded (looked up rather than imported, not to load the one it does not use).
    """
    if isinstance(exc, openai.APIConnectionError):
        return True
    for name in ("httpx2", "httpx"):
        module = sys.modules.get(name)
        if module is not None and isinstance(exc, module.TransportError):
            return True
    return False
