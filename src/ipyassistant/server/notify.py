"""How a cancel recorded by one server process wakes the process executing the run.

Several ``serve`` processes share one database, and a run executes in the process that received
the request that started it. A cancel may reach any process: it writes ``cancelling`` on the
run's row (the truth), then the executing process must notice. A :class:`Notifier` only says
*when to look*; the process then reads the database (:meth:`Tx.cancelling_runs`), so a wake-up
that is lost, doubled or late changes nothing but the delay:

- :class:`PostgresNotifier`: ``NOTIFY`` in the cancelling transaction (delivered at commit, so
  never before the row is visible), ``LISTEN`` on a dedicated connection with a reconnect loop.
  The payload is a run id, a hint that lets processes not executing it skip the read.
- :class:`PollingNotifier` (SQLite, which has no such channel): a look every ``poll_seconds``
  while this process executes runs.

Either way the heartbeat (:mod:`.engine.reaper`) looks too, so a cancel is never missed for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from .store import Store, Tx

__all__ = ["CHANNEL", "Notifier", "PollingNotifier", "PostgresNotifier", "notifier_for"]

log = logging.getLogger("ipyassistant.server")

#: The PostgreSQL channel of run wake-ups; each payload is a run id.
CHANNEL = "ipyassistant_runs"

#: Called with a run id hint, or None for "look at all of this process's runs".
Wake = Callable[[str | None], None]


class Notifier:
    """Wakes the process executing a run when another process changed the run's row."""

    async def start(self, wake: Wake) -> None:
        """Call ``wake`` from now on whenever this process should look at its runs' rows."""

    async def publish(self, tx: Tx, run_id: str) -> None:
        """Inside the transaction that changed ``run_id``: wake its process once it commits."""

    async def stop(self) -> None:
        """Stop waking."""


class PollingNotifier(Notifier):
    """Wakes every ``poll_seconds`` while ``busy()``: for databases without a notification channel."""

    def __init__(self, busy: Callable[[], bool], poll_seconds: float = 0.5):
        self.busy = busy
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self, wake: Wake) -> None:
        self._task = asyncio.create_task(self._loop(wake), name="ipyassistant-cancel-poll")

    async def _loop(self, wake: Wake) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            if self.busy():
                wake(None)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class PostgresNotifier(Notifier):
    """``LISTEN``/``NOTIFY`` on :data:`CHANNEL`, over a connection of its own (asyncpg).

    The listening connection is checked every ``ping_seconds`` and opened again when lost; each
    (re)connection wakes the process once, for the notifications sent while it was away.
    """

    def __init__(self, store: Store, ping_seconds: float = 5.0, retry_seconds: float = 1.0):
        self.store = store
        self.ping_seconds = ping_seconds
        self.retry_seconds = retry_seconds
        self._task: asyncio.Task[None] | None = None
        #: The listening driver connection while there is one (tests end it to check the reconnect).
        self.connection: Any = None

    async def start(self, wake: Wake) -> None:
        self._task = asyncio.create_task(self._listen_forever(wake), name="ipyassistant-listen")

    async def publish(self, tx: Tx, run_id: str) -> None:
        await tx.conn.execute(sa.select(sa.func.pg_notify(CHANNEL, run_id)))

    async def _listen_forever(self, wake: Wake) -> None:
        while True:
            try:
                await self._listen(wake)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: listen again when it is back
                log.warning("listening for run changes failed (%s); retrying", exc)
            self.connection = None
            await asyncio.sleep(self.retry_seconds)

    async def _listen(self, wake: Wake) -> None:
        async with self.store.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection  # an asyncpg.Connection
            lost = asyncio.Event()
            try:
                driver.add_termination_listener(lambda _connection: lost.set())
                await driver.add_listener(CHANNEL, lambda *args: wake(args[3] or None))
                self.connection = driver
                wake(None)  # what was sent before we listened (or while we were away)
                while not driver.is_closed():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(lost.wait(), self.ping_seconds)
                    if lost.is_set():
                        break
                    await asyncio.wait_for(driver.execute("SELECT 1"), self.ping_seconds)
            finally:
                # A listening connection never goes back to the pool.
                await conn.invalidate()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def notifier_for(store: Store, busy: Callable[[], bool]) -> Notifier:
    """LISTEN/NOTIFY on PostgreSQL through asyncpg; polling while ``busy()`` elsewhere."""
    engine = store.engine
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "asyncpg":
        return PostgresNotifier(store)
    return PollingNotifier(busy)
