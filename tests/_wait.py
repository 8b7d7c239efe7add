"""The one way tests wait for something that happens elsewhere: poll it until a deadline.

A run on the server, a kernel, a child process, a thread: tests wait for all of them the same
way, with :func:`wait_until` (or :func:`wait_until_async` inside a coroutine, which leaves the
event loop free between polls). Every wait has a deadline, so a broken test fails saying what
it waited for instead of hanging; the deadline guards a hang and is never the thing a test
checks. The wait returns the predicate's truthy value, so a test can use what it waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["wait_for_run", "wait_until", "wait_until_async"]

T = TypeVar("T")


def _timed_out(timeout: float, message: str | Callable[[], str]) -> AssertionError:
    what = message() if callable(message) else message
    return AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = 30.0,
    interval: float = 0.02,
    message: str | Callable[[], str] = "the condition",
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy.

    Returns that value. Raises ``AssertionError`` naming ``message`` (what was waited for; a
    callable is asked only then, to describe the state at the deadline) once ``timeout``
    seconds passed. The predicate is always called at least once, and once after the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, message)
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], T],
    *,
    timeout: float = 30.0,
    interval: float = 0.02,
    message: str | Callable[[], str] = "the condition",
) -> T:
    """:func:`wait_until` for coroutines: sleeps with ``asyncio.sleep``, so the loop runs on."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, message)
        await asyncio.sleep(interval)


def wait_for_run(
    client: Any,
    thread_id: str,
    run_id: str,
    statuses: set[str],
    *,
    timeout: float = 30.0,
    interval: float = 0.02,
) -> Any:
    """Retrieve a run (with an ``openai.OpenAI`` client) until its status is one of ``statuses``.

    Returns the run; at the deadline the message names the status it was left in.
    """
    seen: list[str] = []

    def reached() -> Any:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        seen.append(run.status)
        return run if run.status in statuses else None

    return wait_until(
        reached,
        timeout=timeout,
        interval=interval,
        message=lambda: f"run {run_id} to be one of {sorted(statuses)}, not {seen[-1]}",
    )
