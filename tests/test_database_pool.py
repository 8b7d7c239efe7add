"""The server's connections: to PostgreSQL, a bounded pool that keeps its connections and checks
the ones that waited idle before using them again (the server may have restarted meanwhile); to
SQLite, one writer at a time, taking turns in the order they asked."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from _postgres import PostgresCluster
from _servers import sync_url
from ipyassistant.cli import main
from ipyassistant.server import db
from ipyassistant.server.config import ServerConfig


def _terminate_backends(url: str) -> int:
    """End every other connection to ``url``'s database, as a server restart would."""
    engine = sa.create_engine(sync_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            ended = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).scalar()
            return int(ended or 0)
    finally:
        engine.dispose()


async def _backend_pid(engine: sa.ext.asyncio.AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one())


async def test_a_connection_that_died_idle_in_the_pool_is_replaced(postgres: PostgresCluster, monkeypatch):
    url = postgres.new_database()
    engine = db.create_engine(url, pool_size=1)
    try:
        first = await _backend_pid(engine)
        assert _terminate_backends(url) == 1

        # Given back just now, the connection is used unchecked: its death fails the request.
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)
        with pytest.raises(sa.exc.DBAPIError):
            await _backend_pid(engine)
        assert (second := await _backend_pid(engine)) != first  # and the pool then replaced it

        # Idle for longer than the threshold, a dead connection is found and replaced before use.
        assert _terminate_backends(url) == 1
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        assert await _backend_pid(engine) not in (first, second)
    finally:
        await engine.dispose()


async def test_the_pool_keeps_its_connections_under_more_concurrent_work_than_it_holds(postgres: PostgresCluster):
    """Work beyond the pool waits for a connection instead of opening (and closing) more."""
    url = postgres.new_database()
    engine = db.create_engine(url, pool_size=4)
    try:

        async def work() -> int:
            async with engine.connect() as conn:
                await conn.exec_driver_sql("SELECT pg_sleep(0.02)")
                return int((await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one())

        first = await asyncio.gather(*(work() for _ in range(16)))
        second = await asyncio.gather(*(work() for _ in range(16)))
        assert len(set(first)) <= 4
        assert set(second) <= set(first)  # the same connections, none opened since
    finally:
        await engine.dispose()


def test_the_pool_size_is_a_setting(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("IPYASSISTANT_DATABASE_POOL_SIZE", "7")
    assert ServerConfig.from_env().database_pool_size == 7
    assert ServerConfig.from_env(database_pool_size=3).database_pool_size == 3
    monkeypatch.delenv("IPYASSISTANT_DATABASE_POOL_SIZE")
    assert ServerConfig.from_env().database_pool_size == 20

    assert main(["serve", "--database-pool-size", "1", "--data-dir", str(tmp_path)]) == 2
    assert "must be at least 2: one connection listens for cancels" in capsys.readouterr().err
    monkeypatch.setenv("IPYASSISTANT_DATABASE_POOL_SIZE", "0")
    assert main(["serve", "--data-dir", str(tmp_path)]) == 2
    assert "(IPYASSISTANT_DATABASE_POOL_SIZE) must be at least 2" in capsys.readouterr().err


async def test_sqlite_writers_of_a_process_take_turns_in_the_order_they_asked(tmp_path):
    """Not in whatever order SQLite's busy handler lets them retry (it sleeps up to 100 ms
    between tries, leaving the CPU idle while writes wait)."""
    from ipyassistant.server.store import Store

    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    await store.migrate()
    committed: list[int] = []

    async def write(i: int) -> None:
        async with store.tx() as tx:
            await tx.conn.execute(sa.insert(db.workers).values(id=f"w{i}", started_at=i, heartbeat_at=i))
            await asyncio.sleep(0.002)  # the write lock is held across awaits, as in the engine
            committed.append(i)

    try:
        tasks = []
        for i in range(24):
            tasks.append(asyncio.create_task(write(i)))
            await asyncio.sleep(0)  # each asks after the one before
        await asyncio.gather(*tasks)
    finally:
        await store.close()
    assert committed == list(range(24))
