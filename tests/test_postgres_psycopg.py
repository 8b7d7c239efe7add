"""The server on PostgreSQL through psycopg 3 (``postgresql+psycopg://``), asyncpg's alternative.

The rest of the suite runs on asyncpg; this walks once through what differs by driver: JSON
columns, lists streamed from a server-side cursor, the keyword index, a run.
"""

from __future__ import annotations

import pytest

from _wait import wait_until


def test_a_server_on_psycopg_serves_objects_search_and_runs(make_server, postgres):
    url = postgres.new_database().replace("+asyncpg", "+psycopg")
    running = make_server(database_url=url)
    with running.client() as client:
        assistant = client.beta.assistants.create(model="test", metadata={"k": "v"})
        doc = client.files.create(file=("z.txt", b"The zebra Quillon eats saltgrass."), purpose="assistants")
        store = client.vector_stores.create(file_ids=[doc.id])
        wait_until(lambda: client.vector_stores.retrieve(store.id).status == "completed", message="indexing")
        [hit] = client.vector_stores.search(store.id, query="what does Quillon eat").data
        assert hit.file_id == doc.id and hit.score == pytest.approx(1.0)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
        assert run.status == "completed"
        assert [a.id for a in client.beta.assistants.list().data] == [assistant.id]
        assert client.beta.threads.messages.list(thread.id).data[0].role == "assistant"
