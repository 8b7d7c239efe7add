"""The worker's heartbeat, and the ending of runs nobody will end otherwise.

Each worker process writes a heartbeat every ``heartbeat_seconds``. On each beat it fails the
executing runs of workers whose heartbeat is older than ``worker_lease_seconds`` (their
server died), expires runs past their ``expires_at`` (a ``requires_action`` nobody answered),
fails its own runs whose task ended without ending them, and passes on the cancels other
workers recorded for its runs. So after a crash no run stays active and no thread stays
locked.

Cancels are also looked for between beats, when the process's :class:`~..notify.Notifier`
wakes it (:meth:`Reaper.wake`): the beat only catches what a wake-up missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..config import ServerConfig
from ..events import NO_EVENTS
from ..store import Store
from .records import finish
from .stopping import RunTasks

__all__ = ["Reaper"]

log = logging.getLogger("ipyassistant.server")


class Reaper:
    """The heartbeat of worker ``worker_id`` and the maintenance done on each beat."""

    def __init__(self, store: Store, config: ServerConfig, worker_id: str, runs: RunTasks):
        self.store = store
        self.config = config
        self.worker_id = worker_id
        self.runs = runs
        self._task: asyncio.Task[None] | None = None
        #: Own runs seen without a task at the last beat.
        self._suspects: set[str] = set()
        #: The look for cancels a wake-up started, and whether another wake-up came since.
        self._looking: asyncio.Task[None] | None = None
        self._look_again = False

    def start(self) -> None:
        """Beat every ``heartbeat_seconds`` from now on, in a background task."""
        self._task = asyncio.create_task(self._loop(), name="ipyassistant-maintenance")

    async def stop(self) -> None:
        """Stop beating and looking (the worker's row stays until :meth:`deregister`)."""
        for task in (self._task, self._looking):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def wake(self, run_id: str | None) -> None:
        """Look for cancels of this worker's runs soon: of ``run_id`` (a hint), or of any.

        A hint naming a run executing elsewhere costs nothing. Wake-ups that come while a look
        is under way make one more look after it, so none is lost and none piles up.
        """
        if run_id is not None and run_id not in self.runs:
            return
        self._look_again = True
        if self._looking is None or self._looking.done():
            self._looking = asyncio.create_task(self._look(), name="ipyassistant-cancels")

    async def _look(self) -> None:
        while self._look_again:
            self._look_again = False
            try:
                async with self.store.read() as tx:
                    cancels = await tx.cancelling_runs(self.worker_id)
            except Exception:  # the next wake-up, or the next beat, looks again
                log.exception("looking for cancelled runs failed")
                return
            for run_id in cancels:
                self.runs.signal(run_id, "cancel")

    async def deregister(self) -> None:
        """Remove this worker's heartbeat: it no longer executes runs."""
        async with self.store.tx() as tx:
            await tx.remove_worker(self.worker_id)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            try:
                await self.maintain()
            except Exception:  # keep the heartbeat alive through a passing database error
                log.exception("run maintenance failed")

    async def maintain(self) -> None:
        """Heartbeat; fail dead workers' runs; expire stale ones; pick up remote cancels."""
        async with self.store.tx() as tx:
            await tx.heartbeat(self.worker_id)
        async with self.store.tx() as tx:
            for run in await tx.orphaned_runs(self.config.worker_lease_seconds):
                if run["id"] in self.runs:
                    continue
                log.warning("failing run %s: the server executing it stopped", run["id"])
                await finish(
                    tx,
                    run,
                    "failed",
                    NO_EVENTS,
                    error=(
                        "server_error",
                        "The server executing this run stopped before it finished.",
                    ),
                )
            for run in await tx.expired_runs():
                if run["status"] == "requires_action" or run["id"] not in self.runs:
                    await finish(tx, run, "expired", NO_EVENTS)
            remote_cancels = await tx.cancelling_runs(self.worker_id)
            # Our own runs with no task (their task died before it could end them): end them
            # when seen twice in a row, since a run is saved a moment before its task starts.
            lost = {
                r["id"]: r for r in await tx.worker_runs(self.worker_id) if r["id"] not in self.runs
            }
            for run_id in lost.keys() & self._suspects:
                log.warning("failing run %s: its task ended without ending it", run_id)
                await finish(
                    tx,
                    lost[run_id],
                    "failed",
                    NO_EVENTS,
                    error=("server_error", "The run stopped unexpectedly."),
                )
            self._suspects = set(lost)
        for run_id in remote_cancels:
            self.runs.signal(run_id, "cancel")
