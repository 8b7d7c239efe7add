"""``ipyassistant db``: the server's database schema, upgraded or shown without the server.

``serve`` upgrades the schema itself when it starts; these commands are for a database that is
upgraded on its own (``serve --no-migrate``, e.g. several processes sharing one database and an
upgrade done once, at a time chosen for it).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_database_arguments", "add_db_parser", "schema_problem"]


def add_db_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``db upgrade``, ``db current``."""
    parser = commands.add_parser(
        "db",
        help="upgrade or show the server database's schema",
        description="The server's database schema (Alembic migrations shipped with the server).",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    upgrade = actions.add_parser("upgrade", help="upgrade the schema to this version's newest")
    upgrade.set_defaults(handler=_upgrade)
    current = actions.add_parser("current", help="print the schema's revision and the newest")
    current.set_defaults(handler=_current)
    for action in (upgrade, current):
        add_database_arguments(action)


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--database-url``: which server's database a command works on."""
    parser.add_argument(
        "--data-dir", default=None, help="the server's data directory (IPYASSISTANT_DATA_DIR)"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="the server's database (IPYASSISTANT_DATABASE_URL; default SQLite in the data directory)",
    )


def _url(args: argparse.Namespace) -> str:
    from .config import ServerConfig

    config = ServerConfig.from_env(data_dir=args.data_dir, database_url=args.database_url)
    return config.resolved_database_url


def _upgrade(args: argparse.Namespace) -> int:
    from . import schema

    url = _url(args)
    before = schema.current_revision(url)
    schema.upgrade(url)
    after = schema.current_revision(url)
    if before == after:
        print(f"The schema is up to date (revision {after}).", file=sys.stderr)
    else:
        print(f"Upgraded the schema from {before or 'nothing'} to revision {after}.", file=sys.stderr)
    return 0


def _current(args: argparse.Namespace) -> int:
    from . import schema

    print(f"current: {schema.current_revision(_url(args)) or 'none'}")
    print(f"newest: {schema.head_revision()}")
    return 0


def schema_problem(url: str) -> str | None:
    """Why ``serve --no-migrate`` may not start on the database at ``url`` (None: it may)."""
    from . import schema

    try:
        schema.check_current(schema.current_revision(url), url)
    except schema.SchemaOutOfDate as exc:
        return str(exc)
    return None
