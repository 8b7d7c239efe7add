"""``ipyassistant keys``: make, list and revoke people's API keys in the server's database.

The commands work on the database directly (the server need not run), the one ``serve``
uses with the same ``--database-url`` / ``--data-dir``. A key made here is printed once, on
standard output alone (so that ``KEY=$(ipyassistant keys create ada)`` works); the database
keeps only its hash.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from .cli_db import add_database_arguments

if TYPE_CHECKING:  # the commands import the server's modules only when they run
    from .keys import KeyBook, KeyInfo

__all__ = ["add_keys_parser", "database_has_keys"]

_T = TypeVar("_T")


def add_keys_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``keys create NAME [--admin]``, ``keys list``, ``keys revoke NAME``."""
    parser = commands.add_parser(
        "keys",
        help="make, list and revoke API keys (one a person)",
        description="Each person gets a key of their own; what a key creates only it (and "
        "admin keys) can see. The server's --api-key is an admin key too.",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a key for NAME and print it (once)")
    create.add_argument("name", metavar="NAME", help="who the key is for (e.g. ada)")
    create.add_argument("--admin", action="store_true", help="the key sees every object")
    create.set_defaults(handler=_create)
    listing = actions.add_parser("list", help="the keys: names, admin, dates (never the keys)")
    listing.set_defaults(handler=_list)
    revoke = actions.add_parser("revoke", help="revoke NAME's key (refused from its next request)")
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(handler=_revoke)
    for action in (create, listing, revoke):
        add_database_arguments(action)


def _with_keys(args: argparse.Namespace, use: Callable[[KeyBook], Awaitable[_T]]) -> _T:
    """Run ``use(keys)`` on the database ``args`` name (its schema upgraded first)."""
    from .config import ServerConfig
    from .keys import KeyBook
    from .store import Store

    config = ServerConfig.from_env(data_dir=args.data_dir, database_url=args.database_url)

    async def main() -> _T:
        store = Store.from_url(config.resolved_database_url)
        try:
            await store.migrate()
            return await use(KeyBook(store))
        finally:
            await store.close()

    return asyncio.run(main())


def _create(args: argparse.Namespace) -> int:
    async def create(keys: KeyBook) -> str:
        return await keys.create(args.name, admin=args.admin)

    try:
        key = _with_keys(args, create)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(key, flush=True)
    kind = "an admin key" if args.admin else "a key"
    print(
        f"Made {kind} for {args.name}. It is shown this once; the server keeps only its hash.",
        file=sys.stderr,
    )
    return 0


def _when(moment: float | None) -> str:
    return "-" if moment is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(moment))


def _list(args: argparse.Namespace) -> int:
    async def every(keys: KeyBook) -> list[KeyInfo]:
        return await keys.list()

    rows = [
        (
            info.name,
            "yes" if info.admin else "no",
            _when(info.created_at),
            _when(info.last_used_at),
            _when(info.revoked_at),
        )
        for info in _with_keys(args, every)
    ]
    header = ("NAME", "ADMIN", "CREATED", "LAST USED", "REVOKED")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _revoke(args: argparse.Namespace) -> int:
    async def revoke(keys: KeyBook) -> bool:
        return await keys.revoke(args.name)

    if not _with_keys(args, revoke):
        print(f"error: {args.name!r} has no key to revoke", file=sys.stderr)
        return 1
    print(f"Revoked {args.name}'s key.", file=sys.stderr)
    return 0


def database_has_keys(data_dir: str | None, database_url: str | None) -> bool:
    """Whether ``serve``'s database holds keys (then it may serve without ``--api-key``)."""

    async def any_key(keys: KeyBook) -> bool:
        return await keys.any()

    return _with_keys(argparse.Namespace(data_dir=data_dir, database_url=database_url), any_key)
