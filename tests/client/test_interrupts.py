"""Interrupting a call (Ctrl-C, a kernel interrupt, cancelling a task) cancels its server run."""

from __future__ import annotations

import _thread
import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable

import openai
import pytest

from _wait import wait_until, wait_until_async
from ipyassistant import Assistant, Thread

DEADLINE = 15.0


def newest_run(api: openai.OpenAI, thread: Thread):
    page = api.beta.threads.runs.list(thread.id, limit=1)
    return page.data[0] if page.data else None


def assistant_ids(api: openai.OpenAI) -> set[str]:
    return {a.id for a in api.beta.assistants.list(limit=100)}


def running(api: openai.OpenAI, thread: Thread) -> bool:
    """Whether the thread's newest run is in progress."""
    run = newest_run(api, thread) if thread.id is not None else None
    return run is not None and run.status == "in_progress"


def interrupt_when_running(api: openai.OpenAI, thread: Thread, interrupt: Callable[[], None]):
    """A watcher that interrupts the main thread once the thread's run is in progress."""

    def watch() -> None:
        wait_until(lambda: running(api, thread), timeout=DEADLINE, message="the run to start")
        interrupt()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def test_keyboard_interrupt_in_a_sync_tool_cancels_the_run_and_propagates(api):
    def ctrl_c() -> str:
        """Behave as if the user pressed Ctrl-C inside the tool."""
        raise KeyboardInterrupt

    thread = Thread()
    ai = Assistant(tools=[ctrl_c])
    before = assistant_ids(api)
    with pytest.raises(KeyboardInterrupt):
        ai.say("go", thread=thread, event_handler_class=None)
    assert newest_run(api, thread).status == "cancelled"
    assert ai.id is None and assistant_ids(api) == before  # the lazy assistant went away too
    thread.add("the thread accepts messages again")
    run = ai.say("and runs", thread=thread, tool_choice="none", event_handler_class=None)
    assert run.run.status == "completed"


@pytest.mark.parametrize(
    "interrupt",
    [_thread.interrupt_main, lambda: os.kill(os.getpid(), signal.SIGINT)],
    ids=["interrupt_main", "SIGINT"],
)
def test_interrupting_a_waiting_sync_call_cancels_the_run(api, interrupt, ctrl_c_raises):
    thread = Thread()
    thread.add("before")
    ai = Assistant()
    watcher = interrupt_when_running(api, thread, interrupt)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        ai.say("/sleep 60\nslow", thread=thread, event_handler_class=None)
    watcher.join()
    assert time.monotonic() - started < DEADLINE
    assert newest_run(api, thread).status == "cancelled"
    thread.add("usable again")
    assert ai.say("hi", thread=thread, event_handler_class=None).run.status == "completed"


async def test_cancelling_an_async_call_cancels_the_run(api):
    thread = Thread()
    ai = Assistant()
    task = asyncio.create_task(
        ai.say_async("/sleep 60\nslow", thread=thread, event_handler_class=None)
    )
    await wait_until_async(lambda: running(api, thread), timeout=DEADLINE, message="the run to start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert newest_run(api, thread).status == "cancelled"
    assert ai.id is None
    await thread.add_async("usable again")
