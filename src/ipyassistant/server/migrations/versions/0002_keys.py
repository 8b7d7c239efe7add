"""Keys of people: the ``api_keys`` table, and the ``owner`` of every API object.

``owner`` is the name of the key that created the object; NULL (the server's own key) for every
object made before keys.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_OWNED = (
    "assistants",
    "threads",
    "messages",
    "runs",
    "run_steps",
    "files",
    "vector_stores",
    "vector_store_file_batches",
)
# The tables listed by owner on their own (not under a parent): an index for that list.
_LISTED = ("assistants", "threads", "files", "vector_stores")


def upgrade() -> None:
    for table in _OWNED:
        op.add_column(table, sa.Column("owner", sa.String(64), nullable=True))
    for table in _LISTED:
        op.create_index(f"ix_{table}_owner_seq", table, ["owner", "seq"])
    op.create_table(
        "api_keys",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("hash_prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_used_at", sa.Float, nullable=True),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )
    op.create_index("ix_api_keys_hash_prefix", "api_keys", ["hash_prefix"])
    op.create_index(
        "ux_api_keys_live_name",
        "api_keys",
        ["name"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    for table in _LISTED:
        op.drop_index(f"ix_{table}_owner_seq", table)
    for table in _OWNED:
        op.drop_column(table, "owner")
