"""Writing and reading a vector store's chunks, inside the caller's transaction.

A chunk row holds its text, its embedding (float32 bytes, unit length) and a copy of its file's
attributes. The keyword index follows the rows by itself (SQLite FTS5 triggers, PostgreSQL's
generated tsvector column: see ``db.py``). Every write here also gives the store a new version
token (``vector_store_chunk_versions``), which is how searches know their cached vectors are
stale: it is written in the same transaction, so it is never ahead of or behind the rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import db

__all__ = [
    "add_chunks",
    "delete_file_chunks",
    "delete_store_chunks",
    "file_chunks",
    "set_attributes",
    "store_version",
    "usage_bytes",
]

_chunks = db.vector_store_chunks
_versions = db.vector_store_chunk_versions


async def _touch(conn: AsyncConnection, vector_store_id: str) -> None:
    """Give the store a new version token (an upsert: the first write creates the row)."""
    values = {"vector_store_id": vector_store_id, "token": uuid.uuid4().hex}
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(_versions).values(**values)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[_versions.c.vector_store_id], set_={"token": values["token"]}
        )
    )


async def store_version(conn: AsyncConnection, vector_store_id: str) -> str | None:
    """The store's current version token (None before its first chunk)."""
    return (
        await conn.execute(
            sa.select(_versions.c.token).where(_versions.c.vector_store_id == vector_store_id)
        )
    ).scalar()


async def add_chunks(
    conn: AsyncConnection,
    vector_store_id: str,
    file_id: str,
    texts: Sequence[str],
    embeddings: np.ndarray,
    attributes: dict[str, Any] | None,
) -> None:
    """Store a file's chunks, numbered from 0 in the given order (delete the old ones first)."""
    if len(texts) != len(embeddings):
        raise ValueError(f"{len(texts)} chunk texts but {len(embeddings)} embeddings")
    if not texts:
        return
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    await conn.execute(
        sa.insert(_chunks),
        [
            {
                "vector_store_id": vector_store_id,
                "file_id": file_id,
                "chunk_index": i,
                # A NUL (a PDF's text may hold one) is no text, and PostgreSQL refuses it.
                "text": text.replace("\x00", ""),
                "attributes": attributes,
                "embedding": vectors[i].tobytes(),
            }
            for i, text in enumerate(texts)
        ],
    )
    await _touch(conn, vector_store_id)


async def delete_file_chunks(conn: AsyncConnection, vector_store_id: str, file_id: str) -> None:
    """Remove a file's chunks (and so their keyword index entries and embeddings)."""
    await conn.execute(
        sa.delete(_chunks).where(
            _chunks.c.vector_store_id == vector_store_id, _chunks.c.file_id == file_id
        )
    )
    await _touch(conn, vector_store_id)


async def delete_store_chunks(conn: AsyncConnection, vector_store_id: str) -> None:
    """Remove every chunk of a store (when it is deleted, or re-indexed with a new embedder)."""
    await conn.execute(sa.delete(_chunks).where(_chunks.c.vector_store_id == vector_store_id))
    # A new token rather than no row: a re-indexed store must never look like an old version.
    await _touch(conn, vector_store_id)


async def set_attributes(
    conn: AsyncConnection, vector_store_id: str, file_id: str, attributes: dict[str, Any] | None
) -> None:
    """Replace the attributes copied onto a file's chunks (what search filters read)."""
    await conn.execute(
        sa.update(_chunks)
        .where(_chunks.c.vector_store_id == vector_store_id, _chunks.c.file_id == file_id)
        .values(attributes=attributes)
    )
    await _touch(conn, vector_store_id)


async def file_chunks(conn: AsyncConnection, vector_store_id: str, file_id: str) -> list[str]:
    """A file's chunk texts, in order."""
    rows = await conn.execute(
        sa.select(_chunks.c.text)
        .where(_chunks.c.vector_store_id == vector_store_id, _chunks.c.file_id == file_id)
        .order_by(_chunks.c.chunk_index)
    )
    return list(rows.scalars())


async def usage_bytes(
    conn: AsyncConnection, vector_store_id: str, file_id: str | None = None
) -> int:
    """Bytes a store (or one of its files) uses: chunk text (UTF-8) plus embeddings."""
    if conn.dialect.name == "postgresql":
        size = sa.func.octet_length(_chunks.c.text) + sa.func.octet_length(_chunks.c.embedding)
    else:  # SQLite's length() counts bytes for blobs, characters for text
        size = sa.func.length(sa.cast(_chunks.c.text, sa.LargeBinary)) + sa.func.length(
            _chunks.c.embedding
        )
    query = sa.select(sa.func.coalesce(sa.func.sum(size), 0)).where(
        _chunks.c.vector_store_id == vector_store_id
    )
    if file_id is not None:
        query = query.where(_chunks.c.file_id == file_id)
    return int((await conn.execute(query)).scalar() or 0)
