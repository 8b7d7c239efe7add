"""Indexes for two lookups that scanned their whole table: a run's messages, a batch's files.

Ending a run reads the messages it left open (``messages.run_id``), and counting a file batch
reads its files (``vector_store_files.batch_id``); without an index each read was a full scan,
slower with every message or file the server ever stored. A database adopted from
``create_all`` (stamped 0002) may already have them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_messages_run_id": ("messages", ["run_id"]),
    "ix_vector_store_files_batch_id": ("vector_store_files", ["batch_id"]),
}


def upgrade() -> None:
    for name, (table, columns) in _INDEXES.items():
        op.create_index(name, table, columns, if_not_exists=True)


def downgrade() -> None:
    for name, (table, _columns) in _INDEXES.items():
        op.drop_index(name, table)
