"""The indexing job: turns the ``in_progress`` files of vector stores into searchable chunks.

Its state is in the database, like runs': a file is claimed by writing this worker's id on
its row (a conditional UPDATE, so two workers never index one file), then read from the
:class:`~ipyassistant.server.files.FileStore`, parsed (:func:`.parsing.extract_text`, in a
thread), chunked (:func:`.chunking.chunk_text`) and embedded with its store's embedder. Then
ONE transaction replaces its chunks, marks it ``completed`` and recounts its store: a crash at
any point before that commit leaves nothing of the attempt behind.

A file whose worker stopped heartbeating (the run engine's heartbeat, the same lease as runs)
is claimed again and indexed from the start; after :data:`MAX_ATTEMPTS` claims it is failed
with ``server_error`` instead, so a file that kills its workers cannot loop forever. A file
cancelled, removed or re-added while it was being indexed is left alone at the end: the
commit only applies while the row is still this worker's claim.

Failures end the file ``failed`` with ``last_error.code`` ``unsupported_file`` (a type the
parsers do not read), ``invalid_file`` (unreadable or empty text) or ``server_error``.

Each pass also writes ``expired`` on stores whose ``expires_at`` has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import sqlalchemy as sa

from .. import db
from .. import vector_stores as stores
from ..config import ServerConfig
from ..files import FileStore
from ..store import Store, Tx, now
from . import chunking, embedders, index, parsing

__all__ = ["MAX_ATTEMPTS", "Indexer"]

log = logging.getLogger("ipyassistant.server")

#: Claims of one file (a worker died with it each time but the last) before it is failed.
MAX_ATTEMPTS = 3

_files = db.vector_store_files


class _Failed(Exception):
    """Indexing a file failed in a way its ``last_error`` reports."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Indexer:
    """The background task of one worker that indexes files and expires stores.

    The app calls :meth:`start` and :meth:`stop` with its lifespan (after the run engine
    started: the heartbeat it writes is this worker's lease) and :meth:`wake` after adding
    files, so that they start at once rather than at the next poll.
    """

    def __init__(self, store: Store, files: FileStore, config: ServerConfig, worker_id: str):
        self.store = store
        self.files = files
        self.config = config
        self.worker_id = worker_id
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="ipyassistant-indexer")

    async def stop(self) -> None:
        """Stop at once: a file being indexed stays claimed, and is resumed by the next worker."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        """Look for work now (files were just added)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self._expire_stores()
                while await self.run_once():
                    pass
            except Exception:  # keep indexing through a passing database error
                log.exception("indexing failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.heartbeat_seconds)
            self._wake.clear()

    async def run_once(self) -> bool:
        """Claim and index one file; False if there was none to claim."""
        claimed = await self._claim()
        if claimed is None:
            return False
        await self._index(claimed)
        return True

    # -- claiming ---------------------------------------------------------------------------

    async def _claim(self) -> dict[str, Any] | None:
        """The next file nobody alive is indexing, now this worker's (or failed, if tried out)."""
        alive = sa.select(db.workers.c.id).where(
            db.workers.c.heartbeat_at >= time.time() - self.config.worker_lease_seconds
        )
        async with self.store.tx() as tx:
            row = (
                await tx.conn.execute(
                    sa.select(_files.c.seq, _files.c.worker_id, _files.c.attempts, _files.c.data)
                    .where(
                        _files.c.status == "in_progress",
                        sa.or_(_files.c.worker_id.is_(None), _files.c.worker_id.not_in(alive)),
                    )
                    .order_by(_files.c.seq)
                    .limit(1)
                )
            ).first()
            if row is None:
                return None
            seq, owner, attempts, data = row
            obj = dict(data)
            if attempts >= MAX_ATTEMPTS:
                log.warning("failing file %s: indexing it stopped %d times", obj["id"], attempts)
                await self._fail(
                    tx,
                    obj,
                    "server_error",
                    f"Indexing this file was interrupted {attempts} times (the server stopped "
                    "each time); it was given up. Add it again to retry.",
                    _files.c.seq == seq,
                )
                return obj  # handled: look for the next one
            owned = _files.c.worker_id.is_(None) if owner is None else _files.c.worker_id == owner
            result = await tx.conn.execute(
                sa.update(_files)
                .where(_files.c.seq == seq, _files.c.status == "in_progress", owned)
                .values(worker_id=self.worker_id, attempts=attempts + 1)
            )
            if not result.rowcount:  # pragma: no cover - the same transaction read it
                return None
        return {**obj, "_seq": seq}

    def _mine(self, seq: int) -> list[sa.ColumnElement[bool]]:
        """Conditions under which a claimed row is still this worker's to end."""
        return [
            _files.c.seq == seq,
            _files.c.status == "in_progress",
            _files.c.worker_id == self.worker_id,
        ]

    # -- indexing ---------------------------------------------------------------------------

    async def _index(self, claimed: dict[str, Any]) -> None:
        if "_seq" not in claimed:
            return  # failed while claiming
        seq = claimed.pop("_seq")
        try:
            texts, vectors = await self._embed(claimed)
        except _Failed as failure:
            async with self.store.tx() as tx:
                await self._fail(tx, claimed, failure.code, failure.message, *self._mine(seq))
            return
        try:
            async with self.store.tx() as tx:
                await self._commit(tx, claimed, seq, texts, vectors)
        except Exception as exc:  # rolled back: no chunk of this attempt was kept
            log.exception("saving the chunks of file %s failed", claimed["id"])
            async with self.store.tx() as tx:
                await self._fail(
                    tx, claimed, "server_error", f"{type(exc).__name__}: {exc}", *self._mine(seq)
                )

    async def _embed(self, obj: dict[str, Any]) -> tuple[list[str], Any]:
        """The file's chunks and their embeddings (or :class:`_Failed` saying why not)."""
        vector_store_id, file_id = obj["vector_store_id"], obj["id"]
        async with self.store.read() as tx:
            row = (
                await tx.conn.execute(
                    sa.select(db.vector_stores.c.embedder).where(
                        db.vector_stores.c.id == vector_store_id
                    )
                )
            ).first()
            if row is None:
                raise _Failed("server_error", "The vector store was deleted.")
            if not await tx.exists("file", file_id):
                raise _Failed("server_error", f"The file {file_id} was deleted.")
            filename = (await tx.get("file", file_id))["filename"]
        try:
            data = await asyncio.to_thread(self.files.read_bytes, file_id)
            text = await asyncio.to_thread(parsing.extract_text, data, filename)
            sizes = obj["chunking_strategy"]["static"]
            chunks = await asyncio.to_thread(
                chunking.chunk_text,
                text,
                sizes["max_chunk_size_tokens"],
                sizes["chunk_overlap_tokens"],
            )
            texts = [chunk.text for chunk in chunks]
            embedder = await asyncio.to_thread(embedders.get_embedder, row[0])
            vectors = await embedder.embed(texts)
        except parsing.UnsupportedFile as exc:
            raise _Failed("unsupported_file", str(exc)) from None
        except parsing.InvalidFile as exc:
            raise _Failed("invalid_file", str(exc)) from None
        except FileNotFoundError:
            raise _Failed("server_error", f"The content of file {file_id} is missing.") from None
        except Exception as exc:
            log.exception("indexing file %s of %s failed", file_id, vector_store_id)
            raise _Failed("server_error", f"{type(exc).__name__}: {exc}") from None
        return texts, vectors

    async def _commit(
        self, tx: Tx, claimed: dict[str, Any], seq: int, texts: list[str], vectors: Any
    ) -> None:
        """Replace the file's chunks and mark it completed, if it is still this worker's."""
        row = (await tx.conn.execute(sa.select(_files.c.data).where(*self._mine(seq)))).first()
        if row is None:
            return  # cancelled, removed or re-added meanwhile: this attempt is void
        obj = dict(row[0])  # the attributes as they are now (they may have changed)
        vector_store_id, file_id = obj["vector_store_id"], obj["id"]
        await index.delete_file_chunks(tx.conn, vector_store_id, file_id)
        await index.add_chunks(
            tx.conn, vector_store_id, file_id, texts, vectors, obj.get("attributes") or None
        )
        obj.update(
            status="completed",
            last_error=None,
            usage_bytes=await index.usage_bytes(tx.conn, vector_store_id, file_id),
        )
        await self._end(tx, obj, *self._mine(seq))

    async def _fail(
        self, tx: Tx, obj: dict[str, Any], code: str, message: str, *where: sa.ColumnElement[bool]
    ) -> None:
        obj = {**obj, "status": "failed", "last_error": {"code": code, "message": message}}
        await self._end(tx, obj, *where)

    async def _end(self, tx: Tx, obj: dict[str, Any], *where: sa.ColumnElement[bool]) -> None:
        result = await tx.conn.execute(
            sa.update(_files)
            .where(*where)
            .values(status=obj["status"], data=obj, worker_id=None)
        )
        if result.rowcount and await tx.exists("vector_store", obj["vector_store_id"]):
            await stores.refresh(tx, obj["vector_store_id"])

    # -- expiry -----------------------------------------------------------------------------

    async def _expire_stores(self) -> None:
        table = db.vector_stores
        async with self.store.tx() as tx:
            rows = await tx.conn.execute(
                sa.select(table.c.data).where(
                    table.c.expires_at.is_not(None), table.c.expires_at <= now()
                )
            )
            for (data,) in list(rows):
                if data["status"] != "expired":
                    await tx.update("vector_store", {**data, "status": "expired"})
