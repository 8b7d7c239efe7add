"""`ipyassistant serve` killed with SIGKILL while it indexes a file: nothing half-indexed, resumed."""

from __future__ import annotations

import io
import sqlite3

import pytest

from _serve_process import free_port
from _wait import wait_until
from ipyassistant.server.retrieval.chunking import chunk_text
from test_server_crash import serve


def _document() -> str:
    """A text long enough that parsing, chunking and embedding it takes a few seconds."""
    paragraphs = [
        f"Record {i}: the {('amber', 'cobalt', 'jade', 'ochre')[i % 4]} ledger of district {i % 97} "
        f"lists {i * 7 % 1000} crates shipped on day {i % 365}, checked by inspector {i % 53}."
        for i in range(60_000)
    ]
    paragraphs[41_234] = "The lighthouse keeper of Port Quill repaired the great lamp in 1998."
    return "\n\n".join(paragraphs)


@pytest.mark.slow
def test_kill_9_while_indexing_leaves_nothing_half_indexed_and_the_next_server_finishes(tmp_path):
    text = _document()
    port = free_port()
    first = serve(tmp_path, port)
    try:
        with first.client() as client:
            uploaded = client.files.create(file=("ledger.txt", io.BytesIO(text.encode())), purpose="assistants")
            store = client.vector_stores.create(name="ledgers", file_ids=[uploaded.id])
            entry = client.vector_stores.files.retrieve(uploaded.id, vector_store_id=store.id)
            assert entry.status == "in_progress"
        # Killed mid-way: the file was claimed and is being read, chunked or embedded.
        wait_until(lambda: _claimed(tmp_path, uploaded.id), timeout=30, interval=0.02, message="the indexer to claim the file")
    finally:
        first.kill()
    assert _chunks(tmp_path, uploaded.id) == 0, "a killed attempt left chunks behind"

    second = serve(tmp_path, port)
    try:
        with second.client() as client:

            def indexed() -> object:
                entry = client.vector_stores.files.retrieve(uploaded.id, vector_store_id=store.id)
                return entry if entry.status != "in_progress" else None

            entry = wait_until(indexed, timeout=180, interval=0.2, message="the next server to index the file")
            assert entry.status == "completed", entry.last_error
            # One whole set of chunks: exactly what chunking the text gives, each once.
            assert _chunks(tmp_path, uploaded.id) == len(chunk_text(text))
            found = client.vector_stores.search(store.id, query="Who repaired the great lamp of the lighthouse?")
            assert "repaired the great lamp in 1998" in found.data[0].content[0].text
            assert client.vector_stores.retrieve(store.id).file_counts.completed == 1
    finally:
        second.terminate()


def _database(data_dir) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "ipyassistant.sqlite3", timeout=30)


def _claimed(data_dir, file_id: str) -> bool:
    with _database(data_dir) as db:
        row = db.execute("SELECT worker_id FROM vector_store_files WHERE id = ?", (file_id,)).fetchone()
    return row is not None and row[0] is not None


def _chunks(data_dir, file_id: str) -> int:
    with _database(data_dir) as db:
        return int(db.execute("SELECT count(*) FROM vector_store_chunks WHERE file_id = ?", (file_id,)).fetchone()[0])
