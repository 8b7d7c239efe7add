"""The schema's migrations (Alembic), on SQLite and on PostgreSQL.

The revisions make exactly ``db.py``'s schema (so a change to it without a revision fails here),
a database made before migrations is adopted with its rows, and ``serve --no-migrate`` refuses an
out-of-date database, naming the command that upgrades it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from _servers import sync_url
from ipyassistant.cli import main
from ipyassistant.server import db, schema

pytestmark = pytest.mark.both_databases  # SQLite and PostgreSQL (conftest.py)

_VECTOR_STORE_TABLES = [t for t in db.metadata.sorted_tables if t.name.startswith("vector_store")]


@pytest.fixture
def empty_url(request: pytest.FixtureRequest, database_backend: str, tmp_path: Path) -> str:
    """A new database without tables."""
    if database_backend == "postgresql":
        return str(request.getfixturevalue("postgres").new_database(empty=True))
    return f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"


def _sql(url: str, *statements: str) -> list[list[tuple[object, ...]]]:
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            results = [conn.exec_driver_sql(s) for s in statements]
            return [list(r) if r.returns_rows else [] for r in results]
    finally:
        engine.dispose()


def _run_alembic(url: str, action: str, revision: str) -> None:
    from alembic import command

    getattr(command, action)(schema.alembic_config(url), revision)


def test_the_migrations_make_the_metadata_s_schema(empty_url):
    assert schema.current_revision(empty_url) is None
    assert not schema.is_up_to_date(empty_url)
    schema.upgrade(empty_url)
    assert schema.current_revision(empty_url) == schema.head_revision()
    assert schema.is_up_to_date(empty_url)
    # Autogenerate sees no difference: a change to db.py needs a revision (see schema.py).
    assert schema.differences(empty_url) == []
    schema.upgrade(empty_url)  # a second upgrade changes nothing
    assert schema.differences(empty_url) == []


def test_the_keyword_index_is_made_and_follows_the_chunks(empty_url, database_backend):
    schema.upgrade(empty_url)
    insert = (
        "INSERT INTO vector_store_chunks (vector_store_id, file_id, chunk_index, text, embedding)"
        " VALUES ('vs_1', 'file-1', 0, 'zebras eat saltgrass', {blob})"
    )
    if database_backend == "postgresql":
        [[], rows] = _sql(
            empty_url,
            insert.format(blob="'\\x00'::bytea"),
            "SELECT seq FROM vector_store_chunks WHERE text_search @@ to_tsquery('english', 'zebra')",
        )
    else:
        [[], rows] = _sql(
            empty_url,
            insert.format(blob="x'00'"),
            "SELECT rowid FROM vector_store_chunks_fts WHERE vector_store_chunks_fts MATCH 'zebras'",
        )
    assert len(rows) == 1


def test_a_database_from_before_migrations_is_adopted_with_its_rows(empty_url):
    """As the server left it when it ran create_all at each start: tables, no alembic_version."""
    engine = sa.create_engine(sync_url(empty_url))
    db.metadata.create_all(engine)
    engine.dispose()
    _sql(
        empty_url,
        "INSERT INTO assistants (id, created_at, data) VALUES ('asst_1', 1, '{\"id\": \"asst_1\"}')",
    )
    schema.upgrade(empty_url)
    assert schema.current_revision(empty_url) == schema.head_revision()
    assert schema.differences(empty_url) == []
    assert _sql(empty_url, "SELECT id FROM assistants") == [[("asst_1",)]]


def test_a_database_from_before_keys_and_vector_stores_is_upgraded(empty_url):
    """Older still: no keys, no vector stores (made by an earlier version's create_all)."""
    _run_alembic(empty_url, "upgrade", "0001")
    _sql(
        empty_url,
        "INSERT INTO assistants (id, created_at, data) VALUES ('asst_1', 1, '{}')",
        "DROP TABLE alembic_version",
        *(f"DROP TABLE {t.name}" for t in reversed(_VECTOR_STORE_TABLES)),
    )
    schema.upgrade(empty_url)
    assert schema.current_revision(empty_url) == schema.head_revision()
    assert schema.differences(empty_url) == []
    assert _sql(empty_url, "SELECT id, owner FROM assistants") == [[("asst_1", None)]]


def test_the_revisions_go_down_and_up_again(empty_url):
    schema.upgrade(empty_url)
    _run_alembic(empty_url, "downgrade", "base")
    assert schema.current_revision(empty_url) is None
    schema.upgrade(empty_url)
    assert schema.differences(empty_url) == []


def test_serve_no_migrate_refuses_an_old_schema_and_db_upgrade_upgrades_it(
    empty_url, tmp_path, capsys
):
    serve = ["serve", "--no-migrate", "--database-url", empty_url, "--data-dir", str(tmp_path)]
    serve += ["--api-key", "k", "--code-sandbox", "none"]
    assert main(serve) == 2
    error = capsys.readouterr().err
    assert "this server needs revision" in error
    assert f"ipyassistant db upgrade --database-url '{empty_url}'" in error
    assert schema.current_revision(empty_url) is None  # refused, not upgraded

    assert main(["db", "upgrade", "--database-url", empty_url]) == 0
    assert "Upgraded the schema from nothing" in capsys.readouterr().err
    assert main(["db", "current", "--database-url", empty_url]) == 0
    head = schema.head_revision()
    assert capsys.readouterr().out == f"current: {head}\nnewest: {head}\n"
    assert main(["db", "upgrade", "--database-url", empty_url]) == 0
    assert "up to date" in capsys.readouterr().err


@pytest.mark.parametrize(
    "lookup, index",
    [
        # Ending a run reads the messages it left open.
        ("SELECT data FROM messages WHERE run_id = 'run_1' ORDER BY seq", "ix_messages_run_id"),
        # Counting a file batch reads its files.
        ("SELECT status FROM vector_store_files WHERE batch_id = 'vsfb_1'", "ix_vector_store_files_batch_id"),
    ],
)
def test_lookups_done_for_every_run_or_batch_use_an_index(empty_url, database_backend, lookup, index):
    """Not a scan of every message or file ever stored."""
    schema.upgrade(empty_url)
    if database_backend == "postgresql":
        # Tables this small are scanned whatever their indexes: make a scan the last resort.
        [_, plan] = _sql(empty_url, "SET enable_seqscan = off", f"EXPLAIN {lookup}")
    else:
        [plan] = _sql(empty_url, f"EXPLAIN QUERY PLAN {lookup}")
    assert index in " ".join(str(row) for row in plan)
