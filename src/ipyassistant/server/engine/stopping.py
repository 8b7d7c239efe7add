"""The runs executing in this process, and how they are asked to stop.

A run stops because a client cancelled it or because the server is shutting down; the reason
is recorded per run, and the run's task notices it at its next :meth:`RunTasks.check`. Only
the one await that may take long, a model call or a code execution
(:meth:`RunTasks.interruptible_await`), is interrupted by cancelling the task: a database
write is never cut in the middle, so the run can always end itself cleanly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["RunTasks", "Stopped"]

T = TypeVar("T")


class Stopped(Exception):
    """The run was asked to stop: cancelled by a client, or the server is shutting down."""


class RunTasks:
    """The task of each run executing here, its stop request, and whether it may be interrupted."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: Stop reason (``"cancel"`` or ``"shutdown"``) of each run asked to stop.
        self._stop: dict[str, str] = {}
        #: Runs awaiting a model call or a code execution, which a stop may cancel.
        self._interruptible: set[str] = set()

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def add(self, run_id: str, task: asyncio.Task[None]) -> None:
        self._tasks[run_id] = task

    def forget(self, run_id: str) -> None:
        """Drop a run whose task is ending, with its stop request."""
        self._tasks.pop(run_id, None)
        self._stop.pop(run_id, None)

    def signal(self, run_id: str, reason: str) -> None:
        """Ask a local run to stop; the first reason given wins."""
        task = self._tasks.get(run_id)
        if task is None or run_id in self._stop:
            return
        self._stop[run_id] = reason
        if run_id in self._interruptible:
            task.cancel()  # interrupts only that await; see interruptible_await

    async def stop_all(self, reason: str, timeout: float) -> None:
        """Ask every local run to stop, and wait up to ``timeout`` seconds for their tasks."""
        for run_id in list(self._tasks):
            self.signal(run_id, reason)
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=timeout)

    def reason(self, run_id: str) -> str:
        """Why the run was asked to stop (``"cancel"`` unless it was a shutdown)."""
        return self._stop.get(run_id, "cancel")

    def check(self, run_id: str) -> None:
        """Raise :class:`Stopped` if the run was asked to stop."""
        if run_id in self._stop:
            raise Stopped

    async def interruptible_await(self, run_id: str, awaitable: Awaitable[T]) -> T:
        """Await a model call or a code execution, which a stop request may cancel.

        Only this await is cancelled (see :meth:`signal`), never a database write; the
        ``CancelledError`` becomes :class:`Stopped` and the run goes on to end itself.
        """
        # A stop requested while we were elsewhere (e.g. in a database write) did not cancel
        # the task: honour it before waiting again.
        self.check(run_id)
        self._interruptible.add(run_id)
        try:
            return await awaitable
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if run_id in self._stop and task is not None:
                if hasattr(task, "uncancel"):  # Python >= 3.11
                    task.uncancel()
                raise Stopped from None
            raise
        finally:
            self._interruptible.discard(run_id)
