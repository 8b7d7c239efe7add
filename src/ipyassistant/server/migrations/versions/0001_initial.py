"""The schema as it was when migrations began: API objects, runs' workers, vector stores.

A database made before migrations (the server ran ``create_all`` at each start) may hold some or
all of these tables already: only the missing ones are made, so that such a database is adopted
as it is (see ``schema.py``), whichever version last opened it.

Revision ID: 0001
Revises:
Create Date: 2025-06-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The keyword index over chunk text. SQLite: an FTS5 table whose content is the chunks table
# itself (no second copy of the text), kept in step by triggers, so every write to the chunks,
# whoever makes it, reaches the index in the same transaction. PostgreSQL: a generated tsvector
# column with a GIN index. ``IF NOT EXISTS``: a database from before migrations has them.
KEYWORD_INDEX = {
    "sqlite": (
        "CREATE VIRTUAL TABLE IF NOT EXISTS vector_store_chunks_fts USING fts5(text, "
        "content='vector_store_chunks', content_rowid='seq', "
        "tokenize='porter unicode61 remove_diacritics 2')",
        "CREATE TRIGGER IF NOT EXISTS vector_store_chunks_fts_insert AFTER INSERT ON "
        "vector_store_chunks BEGIN INSERT INTO vector_store_chunks_fts(rowid, text) "
        "VALUES (new.seq, new.text); END",
        "CREATE TRIGGER IF NOT EXISTS vector_store_chunks_fts_delete AFTER DELETE ON "
        "vector_store_chunks BEGIN INSERT INTO vector_store_chunks_fts(vector_store_chunks_fts, "
        "rowid, text) VALUES ('delete', old.seq, old.text); END",
        "CREATE TRIGGER IF NOT EXISTS vector_store_chunks_fts_update AFTER UPDATE OF text ON "
        "vector_store_chunks BEGIN INSERT INTO vector_store_chunks_fts(vector_store_chunks_fts, "
        "rowid, text) VALUES ('delete', old.seq, old.text); INSERT INTO "
        "vector_store_chunks_fts(rowid, text) VALUES (new.seq, new.text); END",
    ),
    "postgresql": (
        "ALTER TABLE vector_store_chunks ADD COLUMN IF NOT EXISTS text_search tsvector "
        "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
        "CREATE INDEX IF NOT EXISTS ix_vector_store_chunks_text_search ON vector_store_chunks "
        "USING GIN (text_search)",
    ),
}


def _ident(name: str, nullable: bool = False, **options: Any) -> sa.Column[Any]:
    return sa.Column(name, sa.String(64), nullable=nullable, **options)


def _seq() -> sa.Column[Any]:
    return sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True)


def _api_object(name: str, *columns: sa.Column[Any]) -> tuple[Any, ...]:
    """An API object's table: seq, id, created_at, its own columns, then the object's JSON."""
    return (
        name,
        _seq(),
        _ident("id", unique=True),
        sa.Column("created_at", sa.Integer, nullable=False),
        *columns,
        sa.Column("data", sa.JSON, nullable=False),
    )


def _tables() -> list[tuple[tuple[Any, ...], tuple[tuple[str, list[str]], ...]]]:
    """Each table's ``create_table`` arguments, and its indexes (name, columns)."""
    return [
        (_api_object("assistants"), ()),
        (_api_object("threads", _ident("active_run_id", nullable=True)), ()),
        (
            _api_object("messages", _ident("thread_id"), _ident("run_id", nullable=True)),
            (("ix_messages_thread_id", ["thread_id"]),),
        ),
        (
            _api_object(
                "runs",
                _ident("thread_id"),
                sa.Column("status", sa.String(32), nullable=False),
                _ident("worker_id", nullable=True),
                sa.Column("expires_at", sa.Integer, nullable=True),
            ),
            (("ix_runs_thread_id", ["thread_id"]), ("ix_runs_status", ["status"])),
        ),
        (
            _api_object("run_steps", _ident("run_id"), _ident("thread_id")),
            (("ix_run_steps_run_id", ["run_id"]),),
        ),
        (_api_object("files", sa.Column("purpose", sa.String(64), nullable=False)), ()),
        (
            _api_object(
                "vector_stores",
                sa.Column("embedder", sa.String(200), nullable=False),
                sa.Column("expires_at", sa.Integer, nullable=True),
            ),
            (),
        ),
        (
            (
                "vector_store_files",
                _seq(),
                _ident("vector_store_id"),
                _ident("id"),
                sa.Column("created_at", sa.Integer, nullable=False),
                sa.Column("status", sa.String(32), nullable=False),
                _ident("batch_id", nullable=True),
                _ident("worker_id", nullable=True),
                sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
                sa.Column("data", sa.JSON, nullable=False),
                sa.UniqueConstraint(
                    "vector_store_id", "id", name="uq_vector_store_files_store_file"
                ),
            ),
            (("ix_vector_store_files_status", ["status"]),),
        ),
        (
            _api_object("vector_store_file_batches", _ident("vector_store_id")),
            (("ix_vector_store_file_batches_vector_store_id", ["vector_store_id"]),),
        ),
        (
            (
                "vector_store_chunks",
                _seq(),
                _ident("vector_store_id"),
                _ident("file_id"),
                sa.Column("chunk_index", sa.Integer, nullable=False),
                sa.Column("text", sa.Text, nullable=False),
                sa.Column("attributes", sa.JSON, nullable=True),
                sa.Column("embedding", sa.LargeBinary, nullable=False),
            ),
            (("ix_vector_store_chunks_store_file", ["vector_store_id", "file_id"]),),
        ),
        (
            (
                "vector_store_chunk_versions",
                _ident("vector_store_id", primary_key=True),
                sa.Column("token", sa.String(32), nullable=False),
            ),
            (),
        ),
        (
            (
                "workers",
                _ident("id", primary_key=True),
                sa.Column("started_at", sa.Float, nullable=False),
                sa.Column("heartbeat_at", sa.Float, nullable=False),
            ),
            (),
        ),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    for (name, *columns), indexes in _tables():
        if name in existing:
            continue
        op.create_table(name, *columns)
        for index, on in indexes:
            op.create_index(index, name, on)
    for statement in KEYWORD_INDEX.get(bind.dialect.name, ()):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS vector_store_chunks_fts")
    for (name, *_columns), _indexes in reversed(_tables()):
        op.drop_table(name)
