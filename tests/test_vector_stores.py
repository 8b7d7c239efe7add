"""Vector stores through the official SDK: every endpoint, sync and async, every body checked
against the spec (the shared server's recorder), and the indexing job's outcomes."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import openai
import pytest
import sqlalchemy as sa

from _servers import RunningServer
from _wait import wait_until
from ipyassistant.server import db

pytestmark = pytest.mark.both_databases  # SQLite and PostgreSQL (conftest.py)

FACTS = {
    "zebra.md": "# Zebras\n\nThe zebra Quillon lives on the Marrowind plateau and eats saltgrass.",
    "comet.txt": "The comet Vettrana returns every 41 years and glows a pale green.",
    "organ.md": "The cathedral organ at Brisk has 7,312 pipes and a cracked bellows.",
}
POLL = 20  # ms between the SDK's polls


def upload(client: openai.OpenAI, name: str, text: str | bytes) -> Any:
    data = text.encode() if isinstance(text, str) else text
    return client.files.create(file=(name, data), purpose="assistants")


def wait_store(client: openai.OpenAI, store_id: str) -> Any:
    return wait_until(
        lambda: (s := client.vector_stores.retrieve(store_id)).status != "in_progress" and s,
        message=f"vector store {store_id} to be indexed",
    )


def app_server(running: RunningServer) -> Any:
    return running.thread.server.app_server


def pause_indexing(running: RunningServer) -> None:
    """Files stay in_progress: the server's indexer claims nothing."""

    async def nothing() -> bool:
        return False

    app_server(running).indexer.run_once = nothing


def sql(running: RunningServer, statement: str, **params: Any) -> list[Any]:
    with running.db() as conn:
        result = conn.execute(sa.text(statement), params)
        return list(result) if result.returns_rows else []


def sql_data(running: RunningServer, statement: str, **params: Any) -> list[Any]:
    """The objects ``statement`` selects (its one column: the JSON ``data``)."""
    with running.db() as conn:
        result = conn.execute(sa.text(statement).columns(sa.column("data", sa.JSON)), params)
        return list(result.scalars())


# -- stores -------------------------------------------------------------------------------


def test_store_create_list_retrieve_update_delete(client):
    files = [upload(client, name, text) for name, text in FACTS.items()]
    store = client.vector_stores.create(
        name="facts",
        file_ids=[f.id for f in files],
        metadata={"topic": "trivia"},
        expires_after={"anchor": "last_active_at", "days": 3},
    )
    assert store.object == "vector_store" and store.name == "facts"
    assert store.file_counts.total == 3
    assert store.expires_at == store.last_active_at + 3 * 86_400
    done = wait_store(client, store.id)
    assert done.status == "completed" and done.file_counts.completed == 3
    assert done.usage_bytes > 0
    assert done.model_extra and done.model_extra["embedding_model"]  # the store's embedder
    assert store.id in [s.id for s in client.vector_stores.list(limit=100)]
    updated = client.vector_stores.update(store.id, name="renamed", metadata={"k": "v"}, expires_after=None)
    assert (updated.name, updated.metadata, updated.expires_at) == ("renamed", {"k": "v"}, None)
    assert client.vector_stores.delete(store.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)
    # The files themselves stay.
    assert client.files.retrieve(files[0].id).id == files[0].id


def test_unknown_ids_and_bad_chunking_are_refused_naming_the_param(client):
    with pytest.raises(openai.NotFoundError) as exc:
        client.vector_stores.create(file_ids=["file-nope"])
    assert exc.value.param == "file_ids[0]"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.create(vector_store_id="vs_nope", file_id="file-nope")
    store = client.vector_stores.create()
    with pytest.raises(openai.NotFoundError) as exc:
        client.vector_stores.files.create(vector_store_id=store.id, file_id="file-nope")
    assert exc.value.param == "file_id"
    bad = {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 101}}
    with pytest.raises(openai.BadRequestError) as exc:
        client.vector_stores.create(chunking_strategy=bad)  # type: ignore[arg-type]
    assert exc.value.param == "chunking_strategy.static.chunk_overlap_tokens"
    small = {"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}}
    with pytest.raises(openai.BadRequestError) as exc:
        client.vector_stores.create(chunking_strategy=small)  # type: ignore[arg-type]
    assert exc.value.param == "chunking_strategy.static.max_chunk_size_tokens"
    with pytest.raises(openai.BadRequestError) as exc:
        client.vector_stores.create(extra_body={"embedding_model": "nowhere:thing"})
    assert exc.value.param == "embedding_model"


# -- files --------------------------------------------------------------------------------


def test_files_create_poll_list_update_content_delete(client):
    store = client.vector_stores.create(name="files")
    doc = upload(client, "zebra.md", FACTS["zebra.md"])
    static = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50}}
    added = client.vector_stores.files.create_and_poll(
        file_id=doc.id,
        vector_store_id=store.id,
        chunking_strategy=static,  # type: ignore[arg-type]
        attributes={"author": "ann", "year": 2020},
        poll_interval_ms=POLL,
    )
    assert added.status == "completed" and added.last_error is None
    assert added.chunking_strategy.static.max_chunk_size_tokens == 100  # type: ignore[union-attr]
    assert added.attributes == {"author": "ann", "year": 2020}
    uploaded = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("comet.txt", io.BytesIO(FACTS["comet.txt"].encode())),
        poll_interval_ms=POLL,
    )
    assert uploaded.status == "completed"
    assert uploaded.chunking_strategy.static.max_chunk_size_tokens == 800  # type: ignore[union-attr]
    listed = client.vector_stores.files.list(store.id, filter="completed")
    assert {f.id for f in listed} == {doc.id, uploaded.id}
    assert client.vector_stores.files.list(store.id, filter="failed").data == []
    first = client.vector_stores.files.list(store.id, order="asc", limit=1)
    assert [f.id for f in first.data] == [doc.id] and first.has_more
    assert client.vector_stores.files.retrieve(doc.id, vector_store_id=store.id).usage_bytes > 0
    changed = client.vector_stores.files.update(doc.id, vector_store_id=store.id, attributes={"author": "bo"})
    assert changed.attributes == {"author": "bo"}
    content = list(client.vector_stores.files.content(doc.id, vector_store_id=store.id))
    assert "Quillon" in " ".join(part.text or "" for part in content)
    # Deleting a store's file removes its chunks from search.
    assert client.vector_stores.files.delete(doc.id, vector_store_id=store.id).deleted
    hits = client.vector_stores.search(store.id, query="zebra Quillon saltgrass")
    assert doc.id not in {h.file_id for h in hits}
    assert client.vector_stores.retrieve(store.id).file_counts.total == 1
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.retrieve(doc.id, vector_store_id=store.id)


def test_deleting_a_file_removes_it_from_every_store(client):
    doc = upload(client, "organ.md", FACTS["organ.md"])
    stores = [client.vector_stores.create(file_ids=[doc.id]) for _ in range(2)]
    for store in stores:
        wait_store(client, store.id)
    client.files.delete(doc.id)
    for store in stores:
        again = client.vector_stores.retrieve(store.id)
        assert again.file_counts.total == 0 and again.usage_bytes == 0
        assert client.vector_stores.search(store.id, query="cathedral organ pipes").data == []


def test_indexing_failures_say_why(client, server):
    store = client.vector_stores.create()
    odd = upload(client, "data.xyz", b"\x89\x01\x02 not a known format")
    empty = upload(client, "empty.txt", b"   \n\n ")
    lost = upload(client, "lost.md", "# gone")
    (server.config.files_dir / lost.id).unlink()  # its bytes vanished from the server
    codes = {}
    for file in (odd, empty, lost):
        done = client.vector_stores.files.create_and_poll(
            file_id=file.id, vector_store_id=store.id, poll_interval_ms=POLL
        )
        assert done.status == "failed" and done.last_error is not None
        assert done.last_error.message
        codes[file.filename] = done.last_error.code
    assert codes == {"data.xyz": "unsupported_file", "empty.txt": "invalid_file", "lost.md": "server_error"}
    assert wait_store(client, store.id).file_counts.failed == 3


# -- batches ------------------------------------------------------------------------------


def test_file_batches_upload_create_list(client):
    store = client.vector_stores.create()
    batch = client.vector_stores.file_batches.upload_and_poll(
        store.id,
        files=[(name, io.BytesIO(text.encode())) for name, text in FACTS.items()],
        poll_interval_ms=POLL,
    )
    assert batch.status == "completed" and batch.file_counts.completed == 3
    assert len(client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id).data) == 3
    docs = [upload(client, f"again-{name}", text) for name, text in FACTS.items()]
    per_file = client.vector_stores.file_batches.create_and_poll(
        store.id,
        files=[{"file_id": d.id, "attributes": {"n": i}} for i, d in enumerate(docs)],
        poll_interval_ms=POLL,
    )
    assert per_file.file_counts.total == 3 and per_file.status == "completed"
    got = client.vector_stores.file_batches.retrieve(per_file.id, vector_store_id=store.id)
    assert got.id == per_file.id
    attributes = {f.id: f.attributes for f in client.vector_stores.files.list(store.id, limit=100)}
    assert attributes[docs[2].id] == {"n": 2}
    assert client.vector_stores.retrieve(store.id).file_counts.completed == 6
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.file_batches.create(store.id, file_ids=[d.id for d in docs], files=[])


def test_cancelling_a_batch_cancels_its_pending_files(make_server):
    running = make_server()
    pause_indexing(running)
    with running.client() as client:
        store = client.vector_stores.create()
        docs = [upload(client, name, text) for name, text in FACTS.items()]
        batch = client.vector_stores.file_batches.create(store.id, file_ids=[d.id for d in docs])
        assert batch.status == "in_progress" and batch.file_counts.in_progress == 3
        cancelled = client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)
        assert cancelled.status == "cancelled" and cancelled.file_counts.cancelled == 3
        files = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id, filter="cancelled")
        assert len(files.data) == 3
        again = client.vector_stores.retrieve(store.id)
        assert again.status == "completed" and again.file_counts.cancelled == 3
        with pytest.raises(openai.BadRequestError):
            client.vector_stores.file_batches.cancel(batch.id, vector_store_id=store.id)


# -- search -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def searched(server: RunningServer) -> tuple[str, dict[str, str]]:
    with server.client() as client:
        store = client.vector_stores.create(name="search")
        ids = {}
        for i, (name, text) in enumerate(FACTS.items()):
            doc = upload(client, name, text)
            ids[name] = doc.id
            client.vector_stores.files.create_and_poll(
                file_id=doc.id,
                vector_store_id=store.id,
                attributes={"author": "ann" if i < 2 else "bo", "year": 2000 + i},
                poll_interval_ms=POLL,
            )
        return store.id, ids


def test_search_finds_the_file_with_the_fact(client, searched):
    store_id, ids = searched
    page = client.vector_stores.search(store_id, query="Which comet glows green?", max_num_results=2)
    assert page.data[0].file_id == ids["comet.txt"] and page.data[0].filename == "comet.txt"
    assert len(page.data) <= 2
    assert all(0 <= hit.score <= 1 for hit in page.data)
    assert "Vettrana" in page.data[0].content[0].text
    assert page.data[0].attributes == {"author": "ann", "year": 2001}
    both = client.vector_stores.search(store_id, query=["zebra saltgrass", "organ pipes"], rewrite_query=True)
    assert {ids["zebra.md"], ids["organ.md"]} <= {h.file_id for h in both.data}
    dense = client.vector_stores.search(store_id, query="comet", ranking_options={"ranker": "none"})
    assert dense.data
    strict = client.vector_stores.search(store_id, query="comet", ranking_options={"score_threshold": 0.5})
    assert all(hit.score >= 0.5 for hit in strict.data)


def test_search_filters_on_attributes(client, searched):
    store_id, ids = searched
    only_bo = client.vector_stores.search(
        store_id, query="zebra comet organ", filters={"type": "eq", "key": "author", "value": "bo"}
    )
    assert {h.file_id for h in only_bo.data} == {ids["organ.md"]}
    compound = client.vector_stores.search(
        store_id,
        query="zebra comet organ",
        filters={
            "type": "and",
            "filters": [
                {"type": "eq", "key": "author", "value": "ann"},
                {"type": "gte", "key": "year", "value": 2001},
            ],
        },
    )
    assert {h.file_id for h in compound.data} == {ids["comet.txt"]}
    with pytest.raises(openai.BadRequestError) as exc:
        client.vector_stores.search(store_id, query="x", filters={"type": "near", "key": "a", "value": 1})  # type: ignore[arg-type, typeddict-item]
    assert (exc.value.param or "").startswith("filters")


def test_a_filter_the_search_cannot_apply_is_a_400_on_filters(client, searched, monkeypatch):
    from ipyassistant.server.routes import vector_stores as routes

    async def refuses(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("filter 'in' needs a list of values")

    monkeypatch.setattr(routes, "search", refuses)
    with pytest.raises(openai.BadRequestError) as exc:
        client.vector_stores.search(searched[0], query="x", filters={"type": "in", "key": "a", "value": "b"})
    assert exc.value.param == "filters" and "list" in exc.value.message


# -- expiry -------------------------------------------------------------------------------


def test_an_expired_store_refuses_search_and_new_files(make_server):
    running = make_server()
    with running.client() as client:
        store = client.vector_stores.create(expires_after={"anchor": "last_active_at", "days": 1})
        doc = upload(client, "comet.txt", FACTS["comet.txt"])
        with running.db() as conn:
            row = db.vector_stores.c.id == store.id
            data = conn.execute(sa.select(db.vector_stores.c.data).where(row)).scalar_one()
            conn.execute(sa.update(db.vector_stores).where(row).values(expires_at=1, data={**data, "expires_at": 1}))
        assert client.vector_stores.retrieve(store.id).status == "expired"
        with pytest.raises(openai.BadRequestError) as exc:
            client.vector_stores.search(store.id, query="comet")
        assert exc.value.code == "vector_store_expired" and "expired" in exc.value.message
        with pytest.raises(openai.BadRequestError) as exc:
            client.vector_stores.files.create(vector_store_id=store.id, file_id=doc.id)
        assert exc.value.code == "vector_store_expired"
        # The indexer writes the status down too.
        wait_until(
            lambda: sql_data(running, "SELECT data FROM vector_stores")[0]["status"] == "expired",
            message="the store to be marked expired",
        )
        assert client.vector_stores.delete(store.id).deleted


# -- crash recovery -----------------------------------------------------------------------


def test_a_dead_workers_file_is_resumed_or_failed(make_server, tmp_path):
    first = make_server(data_dir=tmp_path / "data")
    pause_indexing(first)
    with first.client() as client:
        store = client.vector_stores.create()
        docs = [upload(client, name, text) for name, text in list(FACTS.items())[:2]]
        for doc in docs:
            client.vector_stores.files.create(vector_store_id=store.id, file_id=doc.id)
    first.stop()
    # As a worker that died indexing them: claimed, no heartbeat; one was tried out already.
    sql(first, "UPDATE vector_store_files SET worker_id = 'worker_dead', attempts = 1")
    sql(first, "UPDATE vector_store_files SET attempts = 3 WHERE id = :id", id=docs[1].id)
    second = make_server(data_dir=tmp_path / "data")
    with second.client() as client:
        done = wait_store(client, store.id)
        assert (done.file_counts.completed, done.file_counts.failed) == (1, 1)
        failed = client.vector_stores.files.retrieve(docs[1].id, vector_store_id=store.id)
        assert failed.last_error is not None and failed.last_error.code == "server_error"
        assert "interrupted" in failed.last_error.message


def test_a_failure_while_saving_chunks_leaves_none(make_server, monkeypatch):
    from ipyassistant.server.retrieval import indexer

    real = indexer.index.add_chunks

    async def half(conn: Any, *args: Any, **kwargs: Any) -> None:
        await real(conn, *args, **kwargs)  # written, then the transaction fails
        raise RuntimeError("disk full")

    monkeypatch.setattr(indexer.index, "add_chunks", half)
    running = make_server()
    with running.client() as client:
        store = client.vector_stores.create()
        doc = upload(client, "organ.md", FACTS["organ.md"])
        done = client.vector_stores.files.create_and_poll(
            file_id=doc.id, vector_store_id=store.id, poll_interval_ms=POLL
        )
        assert done.status == "failed" and done.last_error is not None
        assert "disk full" in done.last_error.message
    assert sql(running, "SELECT count(*) FROM vector_store_chunks")[0][0] == 0


# -- tool resources and attachments --------------------------------------------------------


def test_tool_resources_helpers_and_thread_attachments(client):
    doc = upload(client, "zebra.md", FACTS["zebra.md"])
    assistant = client.beta.assistants.create(
        model="test",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [doc.id], "metadata": {"a": "b"}}]}},
    )
    (store_id,) = assistant.tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]
    made = wait_store(client, store_id)
    assert made.file_counts.completed == 1 and made.metadata == {"a": "b"}
    thread = client.beta.threads.create(tool_resources={"file_search": {"vector_store_ids": [store_id]}})
    assert thread.tool_resources.file_search.vector_store_ids == [store_id]  # type: ignore[union-attr]
    # Attachments with file_search go to the thread's own store, made on demand.
    bare = client.beta.threads.create()
    note = upload(client, "comet.txt", FACTS["comet.txt"])
    client.beta.threads.messages.create(
        bare.id, role="user", content="see", attachments=[{"file_id": note.id, "tools": [{"type": "file_search"}]}]
    )
    ids = client.beta.threads.retrieve(bare.id).tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]
    assert ids and len(ids) == 1
    own = wait_store(client, ids[0])
    assert own.expires_after is not None and own.expires_after.days == 7
    assert own.file_counts.completed == 1
    other = upload(client, "organ.md", FACTS["organ.md"])
    client.beta.threads.messages.create(
        bare.id, role="user", content="and", attachments=[{"file_id": other.id, "tools": [{"type": "file_search"}]}]
    )
    assert client.beta.threads.retrieve(bare.id).tool_resources.file_search.vector_store_ids == ids  # type: ignore[union-attr]
    assert wait_store(client, ids[0]).file_counts.total == 2
    # A code_interpreter-only attachment does not make a store.
    plain = client.beta.threads.create(
        messages=[{"role": "user", "content": "x", "attachments": [{"file_id": note.id, "tools": [{"type": "code_interpreter"}]}]}]
    )
    assert plain.tool_resources.file_search is None  # type: ignore[union-attr]
    with_store = client.beta.threads.create(
        messages=[{"role": "user", "content": "x", "attachments": [{"file_id": note.id, "tools": [{"type": "file_search"}]}]}]
    )
    assert with_store.tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]


def test_changing_the_embedding_model_reindexes(client):
    doc = upload(client, "comet.txt", FACTS["comet.txt"])
    store = client.vector_stores.create(file_ids=[doc.id])
    before = wait_store(client, store.id)
    assert before.file_counts.completed == 1
    model = "openai:text-embedding-3-small"
    changed = client.vector_stores.update(store.id, extra_body={"embedding_model": model})
    assert changed.model_extra is not None and changed.model_extra["embedding_model"].startswith("openai:")
    assert changed.status == "in_progress" and changed.file_counts.in_progress == 1
    after = wait_store(client, store.id)
    # Without a reachable embeddings endpoint the file fails, naming a server error.
    file = client.vector_stores.files.retrieve(doc.id, vector_store_id=store.id)
    assert after.file_counts.total == 1
    assert file.status == "completed" or (file.last_error and file.last_error.code == "server_error")


# -- the async client ---------------------------------------------------------------------


async def test_async_client_end_to_end(aclient):
    store = await aclient.vector_stores.create(name="async")
    batch = await aclient.vector_stores.file_batches.upload_and_poll(
        store.id, files=[("comet.txt", io.BytesIO(FACTS["comet.txt"].encode()))], poll_interval_ms=POLL
    )
    assert batch.status == "completed"
    doc = await aclient.files.create(file=("organ.md", FACTS["organ.md"].encode()), purpose="assistants")
    added = await aclient.vector_stores.files.create_and_poll(
        file_id=doc.id, vector_store_id=store.id, poll_interval_ms=POLL
    )
    assert added.status == "completed"
    page = await aclient.vector_stores.search(store.id, query="cathedral organ pipes")
    assert page.data[0].file_id == doc.id
    listed = [f.id async for f in aclient.vector_stores.files.list(store.id)]
    assert doc.id in listed
    content = [c.text async for c in aclient.vector_stores.files.content(doc.id, vector_store_id=store.id)]
    assert content
    stores = [s.id async for s in aclient.vector_stores.list()]
    assert store.id in stores
    updated, _ = await asyncio.gather(
        aclient.vector_stores.update(store.id, name="renamed"),
        aclient.vector_stores.files.update(doc.id, vector_store_id=store.id, attributes={"x": True}),
    )
    assert updated.name == "renamed"
    assert (await aclient.vector_stores.files.delete(doc.id, vector_store_id=store.id)).deleted
    assert (await aclient.vector_stores.delete(store.id)).deleted
