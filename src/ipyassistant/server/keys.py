"""People's API keys in the database: made, listed, revoked, and recognised on each request.

A key is ``ipa-`` and 32 random bytes (URL-safe base64). The database keeps only its SHA-256:
a key is shown once, when it is made, and cannot be read back. SHA-256 and not a password hash
(bcrypt, argon2): those are slow on purpose, to make guessing a low-entropy password costly;
a key of 256 random bits cannot be guessed however fast the hash, and a slow hash would cost
every request tens of milliseconds of CPU. A key is looked up by the first characters of its
hash (an indexed column) and its whole hash then compared in constant time.

The key is looked up in the database on every request, with no cache: a revoked key is
refused by every server process from its next request on. The lookup is one indexed read in a
read-only transaction, about 1 ms on SQLite (a GET of an assistant: 1.9-2.6 ms with the
server's key, 2.7-3.1 ms with a person's, p50 on a busy 2-core machine): too little to be
worth a cache that would outlive a revocation.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from . import db
from .caller import Caller
from .store import Store

__all__ = ["KEY_PREFIX", "KeyBook", "KeyInfo", "hash_key", "new_key"]

KEY_PREFIX = "ipa-"
#: How many characters of a key's hash are its indexed lookup column.
_PREFIX_CHARS = 16
#: ``last_used_at`` is written at most this often a key, so that requests do not all write.
_USE_RESOLUTION_SECONDS = 60.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")

_keys = db.api_keys


def new_key() -> str:
    """A new random key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The hex SHA-256 of ``key``: what the database keeps of it."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    """What ``keys list`` shows of a key (never the key, nor its hash)."""

    name: str
    admin: bool
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


class KeyBook:
    """The keys of one database."""

    def __init__(self, store: Store):
        self.store = store
        # Once a key exists (rows are never deleted) the server is closed for good.
        self._has_keys = False

    async def create(self, name: str, *, admin: bool = False) -> str:
        """Make a key for ``name`` and return it (the one time it is seen); ValueError if the
        name is not valid or already has a live key."""
        if not _NAME.match(name):
            raise ValueError(
                f"invalid key name {name!r}: use letters, digits and . _ @ + - (at most 64)"
            )
        key = new_key()
        digest = hash_key(key)
        try:
            async with self.store.tx() as tx:
                await tx.conn.execute(
                    sa.insert(_keys).values(
                        name=name,
                        hash_prefix=digest[:_PREFIX_CHARS],
                        key_hash=digest,
                        admin=admin,
                        created_at=time.time(),
                    )
                )
        except sa.exc.IntegrityError:  # the unique index on live names
            raise ValueError(f"{name!r} already has a key; revoke it first to make another") from None
        return key

    async def list(self) -> list[KeyInfo]:
        """Every key, live or revoked, in the order they were made."""
        query = sa.select(
            _keys.c.name, _keys.c.admin, _keys.c.created_at, _keys.c.last_used_at, _keys.c.revoked_at
        ).order_by(_keys.c.seq)
        async with self.store.read() as tx:
            return [KeyInfo(*row) for row in await tx.conn.execute(query)]

    async def revoke(self, name: str) -> bool:
        """Revoke ``name``'s live key; False if it has none."""
        async with self.store.tx() as tx:
            result = await tx.conn.execute(
                sa.update(_keys)
                .where(_keys.c.name == name, _keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        return bool(result.rowcount)

    async def caller(self, key: str) -> Caller | None:
        """The caller ``key`` identifies, or None if it is no live key."""
        digest = hash_key(key)
        query = sa.select(
            _keys.c.seq, _keys.c.name, _keys.c.admin, _keys.c.key_hash, _keys.c.last_used_at
        ).where(_keys.c.hash_prefix == digest[:_PREFIX_CHARS], _keys.c.revoked_at.is_(None))
        async with self.store.read() as tx:
            rows = list(await tx.conn.execute(query))
        for seq, name, admin, stored, last_used in rows:
            if hmac.compare_digest(stored.encode(), digest.encode()):
                if last_used is None or last_used < time.time() - _USE_RESOLUTION_SECONDS:
                    await self._used(seq)
                return Caller(owner=name, admin=bool(admin))
        return None

    async def _used(self, seq: int) -> None:
        async with self.store.tx() as tx:
            await tx.conn.execute(
                sa.update(_keys).where(_keys.c.seq == seq).values(last_used_at=time.time())
            )

    async def any(self) -> bool:
        """Whether the database has any key (live or revoked)."""
        if not self._has_keys:
            async with self.store.read() as tx:
                self._has_keys = (await tx.conn.scalar(sa.select(_keys.c.seq).limit(1))) is not None
        return self._has_keys
