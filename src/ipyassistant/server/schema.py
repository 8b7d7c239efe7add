"""The database schema's versions: Alembic's migrations (``migrations/``), run as a library.

The server upgrades its database to the newest revision when it starts (``ipyassistant serve
--no-migrate`` refuses an out-of-date one instead, and ``ipyassistant db upgrade`` upgrades it
on its own). Users need no ``alembic.ini``: the configuration is built here.

A database made before migrations (the server ran ``create_all`` at each start) has tables but
no ``alembic_version``: it is adopted, stamped at the revision whose schema it has (see
:func:`_adopt`), then upgraded like any other.

Upgrades run in one transaction, one process at a time: PostgreSQL takes an advisory lock,
SQLite's write transaction (``BEGIN IMMEDIATE``, see ``db.py``) is exclusive anyway. So
several processes starting at once on one database upgrade it once.

A schema change is a new revision: change ``db.py``, then generate one against a database at
the newest revision and review it::

    from alembic import command
    from ipyassistant.server import schema
    command.revision(schema.alembic_config(URL), "what changed", autogenerate=True)

``tests/test_schema.py`` fails while ``db.py`` and the revisions disagree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from . import db

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "MIGRATIONS",
    "SchemaOutOfDate",
    "alembic_config",
    "check_current",
    "current_revision",
    "differences",
    "engine_revision",
    "head_revision",
    "include_name",
    "is_up_to_date",
    "upgrade",
    "upgrade_engine",
]

#: Alembic's script folder: ``env.py`` and the revisions.
MIGRATIONS = Path(__file__).with_name("migrations")
# The advisory lock upgrades take on PostgreSQL (any constant that other software is unlikely
# to use: "ipya" in ASCII).
_UPGRADE_LOCK = 0x69707961
# What the keyword index adds beside the metadata (see migrations/versions/0001_initial.py):
# FTS5's table and its shadow tables on SQLite, the tsvector column and its index on PostgreSQL.
_KEYWORD_INDEX_PREFIX = "vector_store_chunks_fts"
_KEYWORD_INDEX_NAMES = frozenset({"text_search", "ix_vector_store_chunks_text_search"})

_T = TypeVar("_T")


def alembic_config(url: str | None = None, connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration for the server's migrations, on ``url`` or ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def include_name(name: str | None, kind: str, _parents: Any) -> bool:
    """Autogenerate's filter: leave out the keyword index, which is not in the metadata."""
    if name is None:
        return True
    if kind == "table" and name.startswith(_KEYWORD_INDEX_PREFIX):
        return False
    return name not in _KEYWORD_INDEX_NAMES


def head_revision() -> str:
    """The newest revision of the migrations."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations have no revision"
    return head


class SchemaOutOfDate(RuntimeError):
    """The database is not at the newest revision, and the server was told not to upgrade it."""


def check_current(revision: str | None, url: str) -> None:
    """Raise :class:`SchemaOutOfDate` (saying what to run) unless ``revision`` is the newest."""
    head = head_revision()
    if revision == head:
        return
    # As given (a password hidden): the user copies it into the command.
    parsed = sa.engine.make_url(url)
    shown = parsed.render_as_string(hide_password=True) if parsed.password else url
    at = f"revision {revision}" if revision else "no revision (new, or from before migrations)"
    raise SchemaOutOfDate(
        f"the database {shown} is at {at}, this server needs revision {head}. Upgrade it "
        f"with: ipyassistant db upgrade --database-url '{shown}' (or start the server without "
        "--no-migrate, which upgrades it)."
    )


def _current(connection: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _adopt(connection: sa.Connection) -> str | None:
    """The revision to stamp a database made by ``create_all`` at (None: upgrade it from none).

    One made since keys (0002) is recognised by their table and the objects' ``owner`` column.
    An older one is upgraded from the start: 0001 makes only the tables it lacks (it may be from
    before vector stores), 0002 adds keys.
    """
    inspector = sa.inspect(connection)
    tables = set(inspector.get_table_names())
    if "alembic_version" in tables or "assistants" not in tables:
        return None
    columns = {c["name"] for c in inspector.get_columns("assistants")}
    if "api_keys" in tables and "owner" in columns:
        return "0002"
    return None


def _upgrade(connection: sa.Connection) -> None:
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_UPGRADE_LOCK})")
    config = alembic_config(connection=connection)
    if _current(connection) is None and (baseline := _adopt(connection)) is not None:
        command.stamp(config, baseline)
    command.upgrade(config, "head")


def _differences(connection: sa.Connection) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(
        connection, opts={"include_name": include_name, "compare_type": True}
    )
    return list(compare_metadata(context, db.metadata))


async def upgrade_engine(engine: AsyncEngine) -> None:
    """Upgrade the database behind ``engine`` to the newest revision (adopting an old one)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def engine_revision(engine: AsyncEngine) -> str | None:
    """The revision of the database behind ``engine`` (None: empty, or from before migrations)."""
    return await _on_engine(engine, _current)


async def _on_engine(engine: AsyncEngine, work: Callable[[sa.Connection], _T]) -> _T:
    async with engine.connect() as connection:
        return await connection.run_sync(work)


def _with_engine(url: str, work: Callable[[AsyncEngine], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        engine = db.create_engine(url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def upgrade(url: str) -> None:
    """Upgrade the database at ``url`` (the server's async URL) to the newest revision."""
    _with_engine(url, upgrade_engine)


def current_revision(url: str) -> str | None:
    """The database's revision; None for one that is empty or from before migrations."""
    return _with_engine(url, engine_revision)


def is_up_to_date(url: str) -> bool:
    """Whether the database at ``url`` is at the newest revision."""
    return current_revision(url) == head_revision()


def differences(url: str) -> list[Any]:
    """What autogenerate finds between the database and ``db.metadata`` (none: in step)."""
    return _with_engine(url, lambda engine: _on_engine(engine, _differences))
