"""Reading and writing API objects, in transactions.

``async with store.tx() as tx:`` opens one database transaction; every method of :class:`Tx`
runs inside it, so a request either writes all of its rows or none (no half-written rows).
Objects go in and come out as the plain dicts the API serves.

A transaction acts for a :class:`~.caller.Caller` (the server itself unless a route names the
request's): what it reads, lists, changes and deletes is limited to that caller's objects
(:meth:`Tx.visible`), so that another person's object is exactly as absent as one that never
existed. What it creates is owned by the caller, or, under a thread or a vector store, by
the owner of that parent (:data:`PARENTS`): a run and its messages and steps belong to the
thread's owner whoever started the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import db, schema
from .caller import SERVER, Caller
from .errors import InvalidRequest, NotFound, ThreadBusy

__all__ = ["ACTIVE_RUN_STATUSES", "PARENTS", "Cursor", "PageKeys", "Store", "Tx", "new_id", "now"]

ID_PREFIXES = {
    "assistant": "asst_",
    "thread": "thread_",
    "message": "msg_",
    "run": "run_",
    "run_step": "step_",
    "file": "file-",
    "vector_store": "vs_",
    "vector_store.files_batch": "vsfb_",
    "call": "call_",
}

#: Statuses in which a run holds its thread's lock.
ACTIVE_RUN_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")
#: Statuses in which some worker process must be executing the run.
EXECUTING_RUN_STATUSES = ("queued", "in_progress", "cancelling")

_NAMES = {
    "run_step": "run step",
    "vector_store": "vector store",
    "vector_store.file": "vector store file",
    "vector_store.files_batch": "vector store file batch",
}


#: Kinds owned by their parent's owner: (parent kind, the field naming the parent).
PARENTS = {
    "message": ("thread", "thread_id"),
    "run": ("thread", "thread_id"),
    "run_step": ("thread", "thread_id"),
    "vector_store.files_batch": ("vector_store", "vector_store_id"),
}


def new_id(kind: str) -> str:
    return ID_PREFIXES[kind] + uuid.uuid4().hex[:24]


def now() -> int:
    return int(time.time())


def _columns(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The indexed columns of an object, derived from the object itself."""
    cols: dict[str, Any] = {"id": obj["id"], "created_at": obj["created_at"], "data": obj}
    if kind == "message":
        cols.update(thread_id=obj["thread_id"], run_id=obj.get("run_id"))
    elif kind == "run":
        cols.update(
            thread_id=obj["thread_id"], status=obj["status"], expires_at=obj.get("expires_at")
        )
    elif kind == "run_step":
        cols.update(run_id=obj["run_id"], thread_id=obj["thread_id"])
    elif kind == "file":
        cols.update(purpose=obj["purpose"])
    elif kind == "vector_store":
        cols.update(embedder=obj["embedding_model"], expires_at=obj.get("expires_at"))
    elif kind == "vector_store.files_batch":
        cols.update(vector_store_id=obj["vector_store_id"])
    return cols


@dataclass(frozen=True)
class Cursor:
    """Which page of a list: at most ``limit`` objects in ``order``, after/before an id."""

    limit: int = 20
    order: str = "desc"
    after: str | None = None
    before: str | None = None


@dataclass(frozen=True)
class PageKeys:
    """Which stored objects one page of a list holds: their ``seq`` in the list's order."""

    kind: str
    seqs: list[int]
    descending: bool
    has_more: bool


#: An object's parent, named by kind and id: what it inherits its owner from.
Parent = tuple[str, str]


def _parent(kind: str, obj: dict[str, Any], parent: Parent | None) -> Parent | None:
    """What ``obj`` inherits its owner from: ``parent`` if given, else its kind's parent."""
    if parent is None and kind in PARENTS:
        parent_kind, field = PARENTS[kind]
        parent = (parent_kind, obj[field])
    return parent


class Tx:
    """The operations available inside one transaction, acting for ``caller``."""

    def __init__(self, conn: AsyncConnection, caller: Caller = SERVER):
        self.conn = conn
        self.caller = caller
        #: Whether this transaction gave files to the indexer: wake it once committed.
        self.queued_indexing = False

    def as_server(self) -> Tx:
        """This transaction seen by the server: for the upkeep a caller's change entails in
        objects it cannot see (a deleted file leaves an admin's store that held it)."""
        return Tx(self.conn, SERVER)

    def visible(self, table: sa.Table) -> list[sa.ColumnElement[bool]]:
        """The condition that limits ``table`` to the caller's objects (none for an admin).

        Tables without an ``owner`` (a store's files) are reached only through their owned
        parent, which the routes read first.
        """
        if self.caller.admin or "owner" not in table.c:
            return []
        return [table.c.owner == self.caller.owner]

    # -- generic objects ------------------------------------------------------------------

    async def insert(
        self, kind: str, obj: dict[str, Any], *, parent: Parent | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Insert ``obj``, owned by the caller, or by the owner of its parent (if it has one,
        or ``parent`` names one)."""
        owner = self._owner(_parent(kind, obj, parent))
        values = {**_columns(kind, obj), "owner": owner, **extra}
        await self.conn.execute(sa.insert(db.TABLES[kind]).values(**values))
        return obj

    async def insert_many(
        self, kind: str, objs: Sequence[dict[str, Any]], *, parent: Parent | None = None
    ) -> None:
        """Insert several objects, owned as :meth:`insert` says: one statement for each run of
        objects with the same parent, in their order."""
        table = db.TABLES[kind]
        for key, group in itertools.groupby(objs, lambda obj: _parent(kind, obj, parent)):
            rows = [_columns(kind, obj) for obj in group]
            await self.conn.execute(sa.insert(table).values(owner=self._owner(key)), rows)

    def _owner(self, parent: Parent | None) -> Any:
        """The owner of a new object: its parent's (read by the insert itself), or the caller."""
        if parent is None:
            return self.caller.owner
        table = db.TABLES[parent[0]]
        return sa.select(table.c.owner).where(table.c.id == parent[1]).scalar_subquery()

    async def get(
        self, kind: str, object_id: str, *, param: str | None = None, lock: bool = False
    ) -> dict[str, Any]:
        """The object, or :class:`NotFound` naming what was asked for.

        ``lock``: other transactions that change it wait until this one ends (``FOR UPDATE``
        on PostgreSQL; SQLite's write transactions already take turns).
        """
        table = db.TABLES[kind]
        query = sa.select(table.c.data).where(table.c.id == object_id, *self.visible(table))
        row = (await self.conn.execute(query.with_for_update() if lock else query)).first()
        if row is None:
            raise NotFound.of(_NAMES.get(kind, kind), object_id, param)
        return dict(row[0])

    async def exists(self, kind: str, object_id: str) -> bool:
        table = db.TABLES[kind]
        row = await self.conn.execute(
            sa.select(table.c.seq).where(table.c.id == object_id, *self.visible(table))
        )
        return row.first() is not None

    async def update(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        await self._write(kind, obj)
        return obj

    async def update_run(self, run: dict[str, Any], expected_status: str) -> bool:
        """Write ``run`` only if its stored status is still ``expected_status``."""
        return await self._write("run", run, db.runs.c.status == expected_status)

    async def _write(self, kind: str, obj: dict[str, Any], *where: sa.ColumnElement[bool]) -> bool:
        """Replace a stored object (and its indexed columns); False if no row matched."""
        table = db.TABLES[kind]
        cols = _columns(kind, obj)
        del cols["id"], cols["created_at"]
        result = await self.conn.execute(
            sa.update(table)
            .where(table.c.id == obj["id"], *self.visible(table), *where)
            .values(**cols)
        )
        return bool(result.rowcount)

    async def delete(self, kind: str, object_id: str) -> bool:
        table = db.TABLES[kind]
        result = await self.conn.execute(
            sa.delete(table).where(table.c.id == object_id, *self.visible(table))
        )
        return bool(result.rowcount)

    async def page_keys(
        self, kind: str, cursor: Cursor, *, where: Sequence[sa.ColumnElement[bool]] = ()
    ) -> PageKeys:
        """A page in ``order`` of insertion; ``after``/``before`` are object ids (cursors).

        Only the keys: the objects themselves are read by :meth:`Store.stream_page`, one at
        a time, so that a page of large messages is never held whole.
        """
        limit, order, after, before = cursor.limit, cursor.order, cursor.after, cursor.before
        table = db.TABLES[kind]
        where = [*where, *self.visible(table)]
        query = sa.select(table.c.seq).where(*where)
        descending = order == "desc"
        for object_id, param, forward in ((after, "after", True), (before, "before", False)):
            if object_id is None:
                continue
            # Within the list: an id may name objects elsewhere (a file in another store).
            seq = (
                await self.conn.execute(
                    sa.select(table.c.seq).where(table.c.id == object_id, *where)
                )
            ).scalar()
            if seq is None:
                raise InvalidRequest(
                    f"No {_NAMES.get(kind, kind)} found with id '{object_id}' for '{param}'.",
                    param=param,
                    code="invalid_value",
                )
            # "after" moves on in the list's order, "before" moves back.
            if forward == descending:
                query = query.where(table.c.seq < seq)
            else:
                query = query.where(table.c.seq > seq)
        # With only "before", take the items nearest to the cursor (then restore the order).
        backwards = before is not None and after is None
        ascending = descending == backwards
        query = query.order_by(table.c.seq.asc() if ascending else table.c.seq.desc())
        seqs = list((await self.conn.execute(query.limit(limit + 1))).scalars())
        has_more = len(seqs) > limit
        seqs = seqs[:limit]
        return PageKeys(kind, seqs[::-1] if backwards else seqs, descending, has_more)

    # -- the thread lock ------------------------------------------------------------------

    async def lock_thread(self, thread_id: str, run_id: str, action: str = "run") -> None:
        """Make ``run_id`` the thread's active run, or raise :class:`ThreadBusy`."""
        table = db.threads
        result = await self.conn.execute(
            sa.update(table)
            .where(table.c.id == thread_id, table.c.active_run_id.is_(None), *self.visible(table))
            .values(active_run_id=run_id)
        )
        if result.rowcount != 1:
            await self.ensure_thread_idle(thread_id, action)
            raise ThreadBusy(thread_id, "(unknown)", action)  # pragma: no cover - raced away

    async def ensure_thread_idle(self, thread_id: str, action: str) -> None:
        """Raise :class:`ThreadBusy` (naming the run) if the thread has an active run."""
        table = db.threads
        row = (
            await self.conn.execute(
                sa.select(table.c.active_run_id).where(table.c.id == thread_id, *self.visible(table))
            )
        ).first()
        if row is None:
            raise NotFound.of("thread", thread_id)
        if row[0] is not None:
            raise ThreadBusy(thread_id, row[0], action)

    async def unlock_thread(self, thread_id: str, run_id: str) -> None:
        table = db.threads
        await self.conn.execute(
            sa.update(table)
            .where(table.c.id == thread_id, table.c.active_run_id == run_id)
            .values(active_run_id=None)
        )

    async def delete_thread(self, thread_id: str) -> None:
        """Delete a thread with its messages, runs and steps (refused while a run is active)."""
        await self.ensure_thread_idle(thread_id, "delete")
        for table in (db.run_steps, db.runs, db.messages):
            await self.conn.execute(sa.delete(table).where(table.c.thread_id == thread_id))
        await self.conn.execute(sa.delete(db.threads).where(db.threads.c.id == thread_id))

    # -- runs owned by workers ------------------------------------------------------------

    async def _objects(
        self, table: sa.Table, *where: sa.ColumnElement[bool]
    ) -> list[dict[str, Any]]:
        """The objects of ``table`` that match ``where``, in the order they were created."""
        rows = await self.conn.execute(sa.select(table.c.data).where(*where).order_by(table.c.seq))
        return [dict(r[0]) for r in rows]

    async def runs_where(self, *where: sa.ColumnElement[bool]) -> list[dict[str, Any]]:
        return await self._objects(db.runs, *where)

    async def run_steps(self, run_id: str) -> list[dict[str, Any]]:
        """A run's steps, in the order they were created."""
        return await self._objects(db.run_steps, db.run_steps.c.run_id == run_id)

    async def open_steps(self, run_id: str) -> list[dict[str, Any]]:
        return [s for s in await self.run_steps(run_id) if s["status"] == "in_progress"]

    async def open_records(self, run_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A run's steps and its messages still ``in_progress`` (read in one query), each in
        the order they were created."""
        steps, messages = db.run_steps, db.messages
        query = sa.union_all(
            sa.select(sa.literal(0).label("kind"), steps.c.seq, steps.c.data).where(
                steps.c.run_id == run_id
            ),
            sa.select(sa.literal(1), messages.c.seq, messages.c.data).where(
                messages.c.run_id == run_id
            ),
        ).order_by("kind", "seq")
        found: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        for kind, _seq, data in await self.conn.execute(query):
            if data["status"] == "in_progress":
                found[kind].append(dict(data))
        return found

    async def thread_messages(self, thread_id: str) -> list[dict[str, Any]]:
        return await self._objects(db.messages, db.messages.c.thread_id == thread_id)

    async def heartbeat(self, worker_id: str) -> None:
        t = time.time()
        result = await self.conn.execute(
            sa.update(db.workers).where(db.workers.c.id == worker_id).values(heartbeat_at=t)
        )
        if result.rowcount == 0:
            await self.conn.execute(
                sa.insert(db.workers).values(id=worker_id, started_at=t, heartbeat_at=t)
            )

    async def remove_worker(self, worker_id: str) -> None:
        await self.conn.execute(sa.delete(db.workers).where(db.workers.c.id == worker_id))

    async def orphaned_runs(self, lease_seconds: float) -> list[dict[str, Any]]:
        """Executing runs whose worker is gone: no heartbeat within ``lease_seconds``."""
        alive = sa.select(db.workers.c.id).where(
            db.workers.c.heartbeat_at >= time.time() - lease_seconds
        )
        return await self.runs_where(
            db.runs.c.status.in_(EXECUTING_RUN_STATUSES),
            sa.or_(db.runs.c.worker_id.is_(None), db.runs.c.worker_id.not_in(alive)),
        )

    async def expired_runs(self) -> list[dict[str, Any]]:
        return await self.runs_where(
            db.runs.c.status.in_(ACTIVE_RUN_STATUSES),
            db.runs.c.expires_at.is_not(None),
            db.runs.c.expires_at <= now(),
        )

    async def worker_runs(self, worker_id: str) -> list[dict[str, Any]]:
        """The runs ``worker_id`` is executing."""
        return await self.runs_where(
            db.runs.c.status.in_(EXECUTING_RUN_STATUSES), db.runs.c.worker_id == worker_id
        )

    async def cancelling_runs(self, worker_id: str) -> list[str]:
        rows = await self.conn.execute(
            sa.select(db.runs.c.id).where(
                db.runs.c.status == "cancelling", db.runs.c.worker_id == worker_id
            )
        )
        return [r[0] for r in rows]


class Store:
    """The database behind the server."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        # SQLite lets one writer in at a time. Its other writers wait in a busy handler that
        # sleeps between tries (1 ms, 2 ms, … up to 100 ms), so under concurrent runs writes
        # waited far longer than they took, with the CPU idle. Writers of this process queue
        # here instead, in turn; the busy timeout still arbitrates between processes.
        self._writers = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @classmethod
    def from_url(cls, url: str, pool_size: int = 5) -> Store:
        """The database at ``url``; on a database server, with up to ``pool_size`` connections."""
        return cls(db.create_engine(url, pool_size=pool_size))

    async def migrate(self) -> None:
        """Bring the database's schema to the newest revision (see :mod:`.schema`)."""
        await schema.upgrade_engine(self.engine)

    async def schema_revision(self) -> str | None:
        """The database's schema revision (None: empty, or from before migrations)."""
        return await schema.engine_revision(self.engine)

    @asynccontextmanager
    async def tx(self, caller: Caller = SERVER) -> AsyncIterator[Tx]:
        """A transaction that may write, for ``caller`` (by default the server, which sees
        everything); committed on success, rolled back on error."""
        async with self._writers or contextlib.nullcontext(), self.engine.begin() as conn:
            yield Tx(conn, caller)

    @asynccontextmanager
    async def read(self, caller: Caller = SERVER) -> AsyncIterator[Tx]:
        """A transaction that only reads (on SQLite it takes no write lock), for ``caller``."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**{db.READ_ONLY: True})
            async with conn.begin():
                yield Tx(conn, caller)

    async def stream_page(self, keys: PageKeys) -> AsyncIterator[bytes]:
        """The page's ``ListXResponse`` body as JSON, built from the stored text of each object.

        The objects are not decoded: each row's JSON goes out as stored, one row at a time. An
        object deleted since :meth:`Tx.page_keys` is left out.
        """
        table = db.TABLES[keys.kind]
        yield b'{"object":"list","data":['
        first = last = ""
        if keys.seqs:
            query = (
                sa.select(table.c.id, sa.cast(table.c.data, sa.Text))
                .where(table.c.seq.in_(keys.seqs))
                .order_by(table.c.seq.desc() if keys.descending else table.c.seq.asc())
                .execution_options(yield_per=1)  # rows are fetched as they are sent
            )
            async with self.read() as tx:
                async for object_id, text in await tx.conn.stream(query):
                    yield (b"," if first else b"") + text.encode()
                    first = first or object_id
                    last = object_id
        tail = {"first_id": first, "last_id": last, "has_more": keys.has_more}
        yield b"]," + json.dumps(tail).encode()[1:]

    async def close(self) -> None:
        await self.engine.dispose()
