"""File search in runs: the search step, its events, ``include[]``, citations, the wait for indexing.

The runs go through the real server and SDK with the ``test`` model; the server's searcher is
replaced by one that returns chosen chunks (:class:`FakeSearcher`), so these tests pin what
the engine does with search results, not how they are ranked (tests/test_retrieval_search.py).
The vector stores are rows written straight into the server's database.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai
import pytest
import sqlalchemy as sa
from openai import AssistantEventHandler
from typing_extensions import override

from _servers import RunningServer
from _spec import check_body
from ipyassistant.server import db, objects
from ipyassistant.server.engine.citations import CitationStream
from ipyassistant.server.engine.file_search import INCLUDE_CONTENT, Query, search
from ipyassistant.server.engine.prompt import Context, build_request
from ipyassistant.server.models.base import FILE_SEARCH_FUNCTION, ModelRequest
from ipyassistant.server.models.search_results import CITING_NOTE, parse_results
from ipyassistant.server.retrieval.embedders import get_embedder
from ipyassistant.server.retrieval.index import add_chunks
from ipyassistant.server.retrieval.search import Hit
from ipyassistant.server.store import Store, new_id

pytestmark = pytest.mark.both_databases  # SQLite and PostgreSQL (conftest.py)

SKY = "The sky is blue. It is blue because of Rayleigh scattering.\nMore text."
GRASS = "Grass is green! Chlorophyll absorbs red light."


class FakeSearcher:
    """Returns ``hits`` for every query, and remembers what it was asked."""

    def __init__(self, hits: list[Hit]):
        self.hits = hits
        self.asked: list[dict[str, Any]] = []

    async def search(self, query: Query) -> list[Hit]:
        self.asked.append(
            {"stores": list(query.vector_store_ids), "query": query.text, "max": query.max_num_results, "ranker": query.ranker, "threshold": query.score_threshold}
        )
        return self.hits[: query.max_num_results]


def add_vector_store(running: RunningServer, files: dict[str, str] | None = None, embedder: str = "test") -> str:
    """A vector store row (with ``files``: file id -> status), written straight to the database."""
    store_id = new_id("vector_store")
    now = int(time.time())
    data = {
        "id": store_id,
        "object": "vector_store",
        "created_at": now,
        "name": "test store",
        "usage_bytes": 0,
        "file_counts": {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0},
        "status": "completed",
        "expires_at": None,
        "last_active_at": now,
        "metadata": {},
    }
    with running.db() as conn:
        conn.execute(sa.insert(db.vector_stores).values(id=store_id, created_at=now, data=data, embedder=embedder))
        for file_id, status in (files or {}).items():
            row = {"id": file_id, "object": "vector_store.file", "vector_store_id": store_id, "status": status}
            conn.execute(
                sa.insert(db.vector_store_files).values(vector_store_id=store_id, id=file_id, created_at=now, status=status, data=row)
            )
    return store_id


@pytest.fixture
def searching(make_server: Any) -> Any:
    """A server whose searcher is a :class:`FakeSearcher` (set ``.hits``), and a client."""
    running = make_server()
    searcher = FakeSearcher([])
    running.thread.server.app_server.engine.file_searcher = searcher
    with running.client() as client:
        yield running, client, searcher


def upload(client: openai.OpenAI, name: str, text: str) -> str:
    return client.files.create(file=(name, text.encode()), purpose="assistants").id


def two_files(running: RunningServer, client: openai.OpenAI, searcher: FakeSearcher) -> tuple[str, str, str]:
    """Two uploaded files (notes.md, grass.txt) in a store; the searcher finds notes.md first."""
    sky, grass = upload(client, "notes.md", SKY), upload(client, "grass.txt", GRASS)
    store_id = add_vector_store(running)
    searcher.hits = [Hit(store_id, sky, 0, SKY, 0.9, {}), Hit(store_id, grass, 0, GRASS, 0.4, {})]
    return store_id, sky, grass


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.calls: list[tuple[str, Any]] = []

    @override
    def on_event(self, event: Any) -> None:
        self.events.append(event.event)

    @override
    def on_tool_call_created(self, tool_call: Any) -> None:
        self.calls.append(("created", tool_call))

    @override
    def on_tool_call_done(self, tool_call: Any) -> None:
        self.calls.append(("done", tool_call))


def test_search_streams_its_step_then_a_reply_that_cites_the_quote(searching):
    running, client, searcher = searching
    store_id, sky, _ = two_files(running, client, searcher)
    assistant = client.beta.assistants.create(
        model="test", tools=[{"type": "file_search"}], tool_resources={"file_search": {"vector_store_ids": [store_id]}}
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "why is the sky blue?"}])
    handler = Recorder()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id, event_handler=handler) as stream:
        stream.until_done()
    assert handler.events == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        *["thread.run.step.delta"] * handler.events.count("thread.run.step.delta"),
        "thread.run.step.completed",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        *["thread.message.delta"] * handler.events.count("thread.message.delta"),
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
    ]
    assert searcher.asked == [{"stores": [store_id], "query": "why is the sky blue?", "max": 10, "ranker": "auto", "threshold": 0.0}]
    # The handler's snapshot (built from the deltas) has the query and the results, not the chunks.
    # (The SDK calls on_tool_call_done again when the run completes.)
    (created, first), (done, call) = handler.calls[:2]
    assert (created, done, first.type) == ("created", "done", "file_search")
    assert call.file_search.query == "why is the sky blue?"
    assert [(r.file_name, r.score) for r in call.file_search.results] == [("notes.md", 0.9), ("grass.txt", 0.4)]
    assert all(r.content is None for r in call.file_search.results)
    assert call.file_search.ranking_options.ranker == "auto"

    text = stream.get_final_messages()[0].content[0].text
    assert text.value == 'From notes.md: "The sky is blue."'
    [annotation] = text.annotations
    assert annotation.type == "file_citation" and annotation.file_citation.file_id == sky
    assert text.value[annotation.start_index : annotation.end_index] == annotation.text == "The sky is blue."
    stored = client.beta.threads.messages.list(thread.id, order="desc").data[0].content[0].text
    assert stored.value == text.value and stored.annotations == text.annotations


def test_results_content_only_when_included(searching):
    running, client, searcher = searching
    store_id, _, _ = two_files(running, client, searcher)
    tool = {"type": "file_search", "file_search": {"max_num_results": 1, "ranking_options": {"score_threshold": 0.25}}}
    assistant = client.beta.assistants.create(
        model="test", tools=[tool], tool_resources={"file_search": {"vector_store_ids": [store_id]}}
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "/search sky colour"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id, include=[INCLUDE_CONTENT]) as stream:
        stream.until_done()
    assert searcher.asked[0]["query"] == "sky colour" and searcher.asked[0]["max"] == 1
    [step, _] = stream.get_final_run_steps()
    [call] = step.step_details.tool_calls
    assert [r.content[0].text for r in call.file_search.results] == [SKY]
    run_id = stream.get_final_run().id

    steps = client.beta.threads.runs.steps
    bare = steps.list(run_id, thread_id=thread.id, order="asc").data[0]
    full = steps.list(run_id, thread_id=thread.id, order="asc", include=[INCLUDE_CONTENT]).data[0]
    one_bare = steps.retrieve(bare.id, thread_id=thread.id, run_id=run_id)
    one_full = steps.retrieve(bare.id, thread_id=thread.id, run_id=run_id, include=[INCLUDE_CONTENT])
    for found in (bare, one_bare):
        [result] = found.step_details.tool_calls[0].file_search.results
        assert (result.file_name, result.content) == ("notes.md", None)
    for found in (full, one_full):
        [result] = found.step_details.tool_calls[0].file_search.results
        assert result.content[0].model_dump() == {"type": "text", "text": SKY}
    ranking = one_full.step_details.tool_calls[0].file_search.ranking_options
    assert (ranking.ranker, ranking.score_threshold) == ("auto", 0.25)
    for found in (bare, full):
        assert check_body(found.model_dump(mode="json", exclude_unset=True)) == []
    with pytest.raises(openai.BadRequestError):
        steps.list(run_id, thread_id=thread.id, include=["step_details.something_else"])  # type: ignore[list-item]


def test_without_vector_stores_the_model_is_told_nothing_was_found(searching):
    _, client, searcher = searching
    assistant = client.beta.assistants.create(model="test", tools=[{"type": "file_search"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "what do my notes say?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "completed"
    assert searcher.asked == []
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert steps[0].step_details.tool_calls[0].file_search.results == []
    reply = client.beta.threads.messages.list(thread.id).data[0].content[0].text
    assert reply.value.startswith('Tool results:\n- file_search: file_search found nothing for "what do my notes say?".')
    assert "No vector stores" in reply.value
    assert reply.annotations == []


def test_thread_stores_and_a_forced_search(searching):
    running, client, searcher = searching
    store_id, _, grass = two_files(running, client, searcher)
    searcher.hits.reverse()
    assistant = client.beta.assistants.create(
        model="test",
        tools=[{"type": "file_search"}, {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}],
    )
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "grass"}], tool_resources={"file_search": {"vector_store_ids": [store_id]}}
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tool_choice={"type": "file_search"}, poll_interval_ms=20
    )
    assert run.status == "completed" and searcher.asked[0]["stores"] == [store_id]
    text = client.beta.threads.messages.list(thread.id).data[0].content[0].text
    assert text.value == 'From grass.txt: "Grass is green!"'
    assert [(a.text, a.file_citation.file_id) for a in text.annotations] == [("Grass is green!", grass)]
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.create(
            thread_id=thread.id, assistant_id=assistant.id, tools=[], tool_choice={"type": "file_search"}
        )


# -- the parts, without a server ------------------------------------------------------------

SOURCES = [("file-a", "notes.md"), ("file-b", "grass.txt")]


def cite(pieces: list[str]) -> tuple[str, list[dict[str, Any]]]:
    stream = CitationStream(SOURCES)
    shown, annotations = "", []
    for piece in pieces:
        text, found = stream.feed(piece)
        shown += text
        annotations += found
    return shown + stream.flush(), annotations


def test_markers_split_across_pieces_become_citations_of_the_sentence_before():
    text, annotations = cite(["Intro. The sky", " is blue.【", "0†notes", ".md】 And grass is green.【1", "†grass.txt】"])
    assert text == "Intro. The sky is blue. And grass is green."
    assert [(a["text"], a["file_citation"]["file_id"]) for a in annotations] == [
        ("The sky is blue.", "file-a"),
        ("And grass is green.", "file-b"),
    ]
    assert all(text[a["start_index"] : a["end_index"]] == a["text"] for a in annotations)


def test_markers_name_files_by_number_or_name_and_unknown_ones_stay():
    text, annotations = cite(['He wrote "quoted words" 【4:0†grass.txt】 then 【7†nothing】 and 【 not a marker.'])
    assert text == 'He wrote "quoted words"  then 【7†nothing】 and 【 not a marker.'
    assert [(a["text"], a["file_citation"]["file_id"]) for a in annotations] == [("quoted words", "file-b")]
    # A marker with no words before it is itself cited, as OpenAI's markers are.
    text, annotations = cite(["【0†notes.md】 starts it"])
    assert text == "【0†notes.md】 starts it" and annotations[0]["text"] == "【0†notes.md】"
    assert (annotations[0]["start_index"], annotations[0]["end_index"]) == (0, 12)
    # An unfinished marker at the end is text.
    assert cite(["Done.【0†no"]) == ("Done.【0†no", [])


def test_the_model_sees_a_search_function_and_numbered_results():
    run = objects.run_object(
        thread_id="thread_1",
        assistant={"id": "asst_1", "model": "test", "tools": [], "instructions": ""},
        options={},
        instructions="",
        tools=[{"type": "file_search"}],
        expires_at=0,
    )
    step = objects.step_object(run, {"type": "tool_calls", "tool_calls": []})
    results = [{"file_id": f, "file_name": n, "score": 0.5, "content": [{"type": "text", "text": f"about {n}"}]} for f, n in SOURCES]
    step["step_details"]["tool_calls"] = [
        {"id": "call_1", "type": "file_search", "file_search": {"query": "a", "results": results[:1]}},
        {"id": "call_2", "type": "file_search", "file_search": {"query": "b", "results": results[1:]}},
    ]
    request = build_request(
        run,
        Context([], [step], CITING_NOTE, {"call_2": "1 files were still being indexed."}),
        count_tokens=len,
        first_call=True,
        code_interpreter=False,
        images={},
        file_search=True,
    )
    assert isinstance(request, ModelRequest)
    assert [t.name for t in request.tools] == [FILE_SEARCH_FUNCTION]
    assert request.tools[0].parameters["required"] == ["query"]
    tools = [m for m in request.messages if m.role == "tool"]
    assert [(r.number, r.file_name, r.text) for m in tools for r in parse_results(m.content)] == [
        (0, "notes.md", "about notes.md"),
        (1, "grass.txt", "about grass.txt"),
    ]
    assert "(1 files were still being indexed.)" in tools[1].content


async def test_a_search_waits_for_the_threads_files_being_indexed_but_not_for_ever(database_url):
    store = Store.from_url(database_url)
    await store.migrate()
    now = int(time.time())
    assistant = objects.assistant_object({"model": "test", "tools": [{"type": "file_search"}]})
    thread = objects.thread_object(None, {"file_search": {"vector_store_ids": ["vs_thread"]}})
    async with store.tx() as tx:
        await tx.insert("assistant", assistant)
        await tx.insert("thread", thread)
        await tx.conn.exec_driver_sql(
            "INSERT INTO vector_store_files (vector_store_id, id, created_at, status, data) "
            f"VALUES ('vs_thread', 'file-x', {now}, 'in_progress', '{{}}')"
        )
    run = {"assistant_id": assistant["id"], "thread_id": thread["id"], "tools": assistant["tools"]}
    searcher = FakeSearcher([])

    def call() -> dict[str, Any]:
        return {"id": "call_1", "type": "file_search", "file_search": {"query": "q"}}

    started = time.monotonic()
    note = await search(store, searcher, run, call(), 0.4)
    assert 0.4 <= time.monotonic() - started < 2
    assert note == "1 files were still being indexed and could not be searched."
    assert searcher.asked[0]["stores"] == ["vs_thread"]  # searched anyway, what is indexed

    async def finish_indexing() -> None:
        await asyncio.sleep(0.3)
        async with store.tx() as tx:
            await tx.conn.exec_driver_sql("UPDATE vector_store_files SET status = 'completed'")

    started = time.monotonic()
    note, _ = await asyncio.gather(search(store, searcher, run, call(), 30), finish_indexing())
    assert note == "" and 0.3 <= time.monotonic() - started < 5
    await store.close()


def test_search_directive_needs_the_tool(client):
    assistant = client.beta.assistants.create(model="test")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "/search anything"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "failed"
    assert "/search needs the file_search tool" in run.last_error.message


def test_a_run_searches_the_index_for_real(make_server):
    """No fake: the server's own searcher finds the chunks written to the store's index."""
    running = make_server()
    with running.client() as client:
        sky, grass = upload(client, "notes.md", SKY), upload(client, "grass.txt", GRASS)
        embedder = get_embedder()
        store_id = add_vector_store(running, {sky: "completed", grass: "completed"}, embedder.name)

        async def index() -> None:
            store = Store.from_url(running.config.resolved_database_url)
            async with store.tx() as tx:
                for file_id, text in ((sky, SKY), (grass, GRASS)):
                    await add_chunks(tx.conn, store_id, file_id, [text], await embedder.embed([text]), None)
            await store.close()

        asyncio.run(index())
        assistant = client.beta.assistants.create(
            model="test", tools=[{"type": "file_search", "file_search": {"ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0}}}]
        )
        thread = client.beta.threads.create(
            messages=[{"role": "user", "content": "chlorophyll absorbs which light?"}],
            tool_resources={"file_search": {"vector_store_ids": [store_id]}},
        )
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
        assert run.status == "completed", run.last_error
        text = client.beta.threads.messages.list(thread.id).data[0].content[0].text
        assert text.value == 'From grass.txt: "Grass is green!"'
        assert text.annotations[0].file_citation.file_id == grass
        [step, _] = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
        results = step.step_details.tool_calls[0].file_search.results
        assert results[0].file_name == "grass.txt" and 0 <= results[-1].score <= results[0].score <= 1


def test_the_indexer_is_woken_by_requests_that_give_it_files_not_by_every_run(client, monkeypatch):
    """A run or thread without file-search attachments leaves it asleep: each wake-up costs a
    database round of its own, which most runs of a busy server would otherwise pay."""
    from ipyassistant.server.retrieval.indexer import Indexer

    wakes: list[None] = []
    original = Indexer.wake
    monkeypatch.setattr(Indexer, "wake", lambda self: (wakes.append(None), original(self))[1])
    assistant = client.beta.assistants.create(model="test")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    client.beta.threads.messages.create(thread.id, role="user", content="and more")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    client.beta.threads.create_and_run(assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]})
    assert run.status == "completed" and wakes == []

    doc = upload(client, "notes.md", SKY)
    attached = [{"role": "user", "content": "x", "attachments": [{"file_id": doc, "tools": [{"type": "file_search"}]}]}]
    client.beta.threads.create(messages=attached)
    client.beta.threads.messages.create(thread.id, **attached[0])
    client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, additional_messages=attached)
    client.beta.threads.create_and_run(assistant_id=assistant.id, thread={"messages": attached})
    assert len(wakes) == 4
