"""The database schema (SQLAlchemy Core) and engine construction.

Each API object is stored whole as its wire JSON in ``data``, beside the few columns that
queries filter or order on. ``seq`` is an insertion counter: lists order by it, which keeps
the order stable for objects created within the same second. Nothing here is specific to
SQLite; PostgreSQL works through the same tables. The database gets this schema through the
migrations (``schema.py``): a change here needs a new revision.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["PING_AFTER_IDLE_SECONDS", "READ_ONLY", "TABLES", "api_keys", "create_engine", "metadata"]

#: Execution option marking a connection whose transactions only read.
READ_ONLY = "ipyassistant_read_only"
#: A pooled connection to a database server that has been idle longer than this is checked
#: before it is used again (see :func:`create_engine`).
PING_AFTER_IDLE_SECONDS = 2.0

metadata = sa.MetaData()


class _Id(sa.types.TypeDecorator[str]):
    """An object's id. No id holds a NUL, which PostgreSQL's text cannot hold at all: one in an
    id asked for (a path, a cursor) becomes U+FFFD, so that it finds nothing (a 404, as on
    SQLite) instead of failing the query."""

    impl = sa.String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return value.replace("\x00", "\ufffd") if value is not None else None


def _id(name: str, *, nullable: bool = False, **options: Any) -> sa.Column[Any]:
    """A column holding an object's id (every id fits the same width)."""
    return sa.Column(name, _Id(64), nullable=nullable, **options)


def _object_table(
    name: str, *columns: sa.Column[Any], indexes: tuple[str, ...] = (), listed: bool = False
) -> sa.Table:
    """An API object's table. ``owner`` is the name of the key that created the object (NULL:
    the server's own key, and objects from before keys); a ``listed`` table is listed by owner
    on its own (not under a parent), so it has an index for that list."""
    table = sa.Table(
        name,
        metadata,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        _id("id", unique=True),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        *columns,
        sa.Column("data", sa.JSON, nullable=False),
    )
    for column in indexes:
        sa.Index(f"ix_{name}_{column}", table.c[column])
    if listed:
        sa.Index(f"ix_{name}_owner_seq", table.c.owner, table.c.seq)
    return table


assistants = _object_table("assistants", listed=True)

# The thread lock: the id of the run that holds it, set by a conditional UPDATE so that it
# holds across server processes sharing one database.
threads = _object_table("threads", _id("active_run_id", nullable=True), listed=True)

messages = _object_table(
    "messages", _id("thread_id"), _id("run_id", nullable=True), indexes=("thread_id", "run_id")
)

runs = _object_table(
    "runs",
    _id("thread_id"),
    sa.Column("status", sa.String(32), nullable=False),
    _id("worker_id", nullable=True),
    sa.Column("expires_at", sa.Integer, nullable=True),
    indexes=("thread_id", "status"),
)

run_steps = _object_table("run_steps", _id("run_id"), _id("thread_id"), indexes=("run_id",))

files = _object_table("files", sa.Column("purpose", sa.String(64), nullable=False), listed=True)

# A vector store remembers the embedder its chunks were embedded with ("wordllama:…",
# "openai:MODEL"): a search embeds its query with the same one, and changing it re-indexes.
vector_stores = _object_table(
    "vector_stores",
    sa.Column("embedder", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.Integer, nullable=True),
    listed=True,
)

# A file in a vector store. Its id is the file's id, so it is unique only within its store;
# ``worker_id`` is the process indexing it (its lease is the workers table, as for runs);
# ``attempts`` counts the workers that claimed it, so a file that kills them is failed in the end.
vector_store_files = sa.Table(
    "vector_store_files",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    _id("vector_store_id"),
    _id("id"),
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    _id("batch_id", nullable=True),
    _id("worker_id", nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("data", sa.JSON, nullable=False),
    sa.UniqueConstraint("vector_store_id", "id", name="uq_vector_store_files_store_file"),
    sa.Index("ix_vector_store_files_status", "status"),
    sa.Index("ix_vector_store_files_batch_id", "batch_id"),
)

vector_store_file_batches = _object_table(
    "vector_store_file_batches", _id("vector_store_id"), indexes=("vector_store_id",)
)

# The searchable pieces of a store's files: text, its embedding (float32 bytes, normalised)
# and the file's attributes (copied, so that filters need no join). Written in the same
# transaction that marks the file completed, so a file is never half-indexed.
vector_store_chunks = sa.Table(
    "vector_store_chunks",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    _id("vector_store_id"),
    _id("file_id"),
    sa.Column("chunk_index", sa.Integer, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("attributes", sa.JSON, nullable=True),
    sa.Column("embedding", sa.LargeBinary, nullable=False),
    sa.Index("ix_vector_store_chunks_store_file", "vector_store_id", "file_id"),
)

# Changes whenever a store's chunks or their attributes change (a new random token each time,
# written in the same transaction): a process caching a store's vectors compares it in one
# primary-key read, and it stays right across processes and after a store is re-indexed.
vector_store_chunk_versions = sa.Table(
    "vector_store_chunk_versions",
    metadata,
    _id("vector_store_id", primary_key=True),
    sa.Column("token", sa.String(32), nullable=False),
)

# The keyword index over chunk text (SQLite: an FTS5 table kept in step by triggers;
# PostgreSQL: a generated tsvector column with a GIN index) is not in this metadata: the
# migrations make it (migrations/versions/0001_initial.py), and autogenerate leaves it out.

workers = sa.Table(
    "workers",
    metadata,
    _id("id", primary_key=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
)

# The keys of people (``ipyassistant keys``): only a SHA-256 of each key is kept. ``name`` is
# the person, and the ``owner`` of what their key creates; a revoked key keeps its row (its
# name may then be given a new key, which owns the same objects). Looked up by ``hash_prefix``,
# then compared whole in constant time.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("hash_prefix", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("admin", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used_at", sa.Float, nullable=True),
    sa.Column("revoked_at", sa.Float, nullable=True),
    sa.Index("ix_api_keys_hash_prefix", "hash_prefix"),
    # One live key a name: a revoked key's name may be given again.
    sa.Index(
        "ux_api_keys_live_name",
        "name",
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    ),
)

TABLES = {
    "assistant": assistants,
    "thread": threads,
    "message": messages,
    "run": runs,
    "run_step": run_steps,
    "file": files,
    "vector_store": vector_stores,
    # Listed and paged like the others, but its ids are unique only within a store.
    "vector_store.file": vector_store_files,
    "vector_store.files_batch": vector_store_file_batches,
}


def create_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """An async engine; for SQLite: WAL, a busy timeout and write-intent transactions. On a
    database server it keeps up to ``pool_size`` connections (the server's setting is
    ``ServerConfig.database_pool_size``; one-off work such as a migration needs few)."""
    if not url.startswith("sqlite"):
        return _server_engine(url, pool_size)

    database = sa.engine.make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa.event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front, so two writers wait on the busy
        # timeout instead of failing with "database is locked" when a read upgrades to a write.
        # Read-only transactions (Store.read) take no lock: WAL readers never block writers.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _server_engine(url: str, pool_size: int) -> AsyncEngine:
    """An engine for a database server (PostgreSQL): ``pool_size`` connections, no more, and
    idle ones checked before use.

    The pool has no overflow: connections opened beyond it would be closed again as soon as
    they were given back, and under a steady load past the pool that churn (a new server
    process each time, its statements prepared again) cost more than the work itself. A
    request that finds every connection busy waits for one instead.

    A connection can die while it waits in the pool (the server restarted, a proxy or
    ``idle_session_timeout`` closed it); using it would fail a request. SQLAlchemy's
    ``pool_pre_ping`` checks every connection at every checkout, which costs asyncpg three round
    trips (BEGIN, a ping, ROLLBACK) each time: most of a short run's database work under load.
    A connection given back moments ago is alive, so only one idle for longer than
    :data:`PING_AFTER_IDLE_SECONDS` is checked; a dead one is replaced by a new connection
    (SQLAlchemy's pessimistic disconnect handling). One that dies in use still fails that
    statement, and SQLAlchemy then replaces every pooled connection older than the failure.
    """
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)

    @sa.event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and opens a new one in its place.
            raise sa.exc.DisconnectionError(f"a pooled connection was dead: {exc}") from exc

    return engine
