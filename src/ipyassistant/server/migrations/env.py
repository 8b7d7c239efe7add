"""Alembic's environment for the server's schema.

:mod:`ipyassistant.server.schema` runs the migrations on a connection it already holds (inside
its transaction, under its lock), passed as ``config.attributes["connection"]``. Without one (a
developer running Alembic's own commands on a config from :func:`schema.alembic_config`), the
URL in the config is opened here: an async URL (the server's) through the server's own engine,
a sync one directly.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context

from ipyassistant.server import db, schema

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=db.metadata,
        include_name=schema.include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = db.create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def _run_url(url: str) -> None:
    if sa.engine.make_url(url).get_dialect().is_async:
        asyncio.run(_run_async(url))
        return
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=db.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _run(given)
else:
    _run_url(config.get_main_option("sqlalchemy.url") or "")
