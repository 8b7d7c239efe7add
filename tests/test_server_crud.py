"""Create, read, update, delete and list every object through the real openai SDK (sync and async).

Run execution itself is covered elsewhere; here runs are only created to be listed, read and
updated. Every body the server sends is validated against the spec by the autouse fixture.
"""

from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.both_databases  # SQLite and PostgreSQL (conftest.py)


@pytest.fixture
def assistant(client: openai.OpenAI):
    return client.beta.assistants.create(model="test", name="crud")


@pytest.fixture
def uploaded(client: openai.OpenAI):
    return client.files.create(file=("notes.txt", b"some notes\n"), purpose="assistants")


def _text(message) -> str:
    return message.content[0].text.value


# -- assistants ---------------------------------------------------------------------------


def test_assistant_create_retrieve_update_delete(client):
    tools = [
        {"type": "code_interpreter"},
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add.",
                "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
            },
        },
    ]
    created = client.beta.assistants.create(
        model="test",
        name="Ada",
        description="helps",
        instructions="Be brief.",
        tools=tools,
        metadata={"team": "x"},
        temperature=0.5,
        top_p=0.9,
        response_format={"type": "json_object"},
    )
    assert created.id.startswith("asst_") and created.object == "assistant"
    assert (created.model, created.name, created.description, created.instructions) == (
        "test",
        "Ada",
        "helps",
        "Be brief.",
    )
    assert [t.type for t in created.tools] == ["code_interpreter", "function"]
    assert created.tools[1].function.name == "add"
    assert created.tools[1].function.parameters == tools[1]["function"]["parameters"]
    assert created.metadata == {"team": "x"}
    assert (created.temperature, created.top_p) == (0.5, 0.9)
    assert created.response_format.type == "json_object"

    fetched = client.beta.assistants.retrieve(created.id)
    assert fetched == created

    updated = client.beta.assistants.update(
        created.id, name="Grace", metadata={"team": "y"}, tools=[]
    )
    assert (updated.name, updated.metadata, updated.tools) == ("Grace", {"team": "y"}, [])
    # Fields not in the update keep their values.
    assert (updated.description, updated.instructions, updated.temperature) == (
        "helps",
        "Be brief.",
        0.5,
    )
    assert (updated.id, updated.created_at, updated.model) == (
        created.id,
        created.created_at,
        "test",
    )
    assert client.beta.assistants.retrieve(created.id) == updated

    deleted = client.beta.assistants.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "assistant.deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.delete(created.id)


def test_assistant_defaults(client):
    created = client.beta.assistants.create(model="test")
    assert (created.name, created.description, created.instructions) == (None, None, None)
    assert created.tools == [] and created.metadata == {}
    assert created.response_format == "auto"


def test_assistant_update_can_clear_a_field(client):
    created = client.beta.assistants.create(model="test", name="x", instructions="I")
    updated = client.beta.assistants.update(created.id, instructions="")
    assert updated.instructions == "" and updated.name == "x"


def test_assistants_list_pages_in_both_orders(client):
    # The shared server holds other tests' assistants too: start after a marker of our own.
    marker = client.beta.assistants.create(model="test", name="marker").id
    ids = [client.beta.assistants.create(model="test", name=f"list{i}").id for i in range(5)]
    asc = client.beta.assistants.list(limit=2, order="asc", after=marker)
    assert [a.id for a in asc] == ids  # three pages, auto-paginated
    assert asc.has_more is True and (asc.first_id, asc.last_id) == (ids[0], ids[1])
    desc = []
    for assistant in client.beta.assistants.list(limit=2):
        if assistant.id == marker:
            break
        desc.append(assistant.id)
    assert desc == ids[::-1]
    page = client.beta.assistants.list(limit=2, after=ids[-1])
    assert [a.id for a in page.data] == [ids[-2], ids[-3]]
    assert page.has_more is True
    page = client.beta.assistants.list(limit=2, order="asc", before=ids[2])
    assert [a.id for a in page.data] == ids[:2] and page.has_more is True
    page = client.beta.assistants.list(limit=10, order="asc", after=ids[2])
    assert [a.id for a in page.data] == ids[3:] and page.has_more is False


# -- threads ------------------------------------------------------------------------------


def test_thread_create_with_messages_metadata_and_tool_resources(client, uploaded):
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "first"},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "third"}],
                "metadata": {"k": "v"},
            },
            {
                "role": "user",
                "content": "with a file",
                "attachments": [{"file_id": uploaded.id, "tools": [{"type": "code_interpreter"}]}],
            },
        ],
        metadata={"project": "demo"},
        tool_resources={"code_interpreter": {"file_ids": [uploaded.id]}},
    )
    assert thread.id.startswith("thread_") and thread.object == "thread"
    assert thread.metadata == {"project": "demo"}
    assert thread.tool_resources.code_interpreter.file_ids == [uploaded.id]

    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    assert _text(messages[0]) == "first"
    assert [c.text.value for c in messages[1].content] == ["second", "third"]
    assert messages[1].metadata == {"k": "v"}
    assert messages[2].attachments[0].file_id == uploaded.id
    assert messages[2].attachments[0].tools[0].type == "code_interpreter"
    for m in messages:
        assert (m.thread_id, m.status, m.run_id, m.assistant_id) == (
            thread.id,
            "completed",
            None,
            None,
        )

    assert client.beta.threads.retrieve(thread.id) == thread


def test_thread_create_empty(client):
    thread = client.beta.threads.create()
    assert thread.metadata == {}
    assert client.beta.threads.messages.list(thread.id).data == []


def test_thread_update_and_delete(client, uploaded):
    thread = client.beta.threads.create(metadata={"a": "1"})
    updated = client.beta.threads.update(thread.id, metadata={"b": "2"})
    assert updated.metadata == {"b": "2"} and updated.id == thread.id
    updated = client.beta.threads.update(
        thread.id, tool_resources={"code_interpreter": {"file_ids": [uploaded.id]}}
    )
    assert updated.tool_resources.code_interpreter.file_ids == [uploaded.id]
    assert updated.metadata == {"b": "2"}  # untouched by an update that does not name it
    assert client.beta.threads.retrieve(thread.id) == updated

    client.beta.threads.messages.create(thread.id, role="user", content="bye")
    deleted = client.beta.threads.delete(thread.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (thread.id, "thread.deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.delete(thread.id)


# -- messages -----------------------------------------------------------------------------


def test_message_create_with_a_string(client):
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(
        thread.id, role="user", content="hello", metadata={"n": "1"}
    )
    assert message.id.startswith("msg_") and message.object == "thread.message"
    assert (message.thread_id, message.role, message.status) == (thread.id, "user", "completed")
    assert message.content[0].type == "text"
    assert _text(message) == "hello" and message.content[0].text.annotations == []
    assert message.metadata == {"n": "1"} and message.attachments == []
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread.id) == message


def test_message_create_with_content_parts_and_attachments(client, uploaded):
    image = client.files.create(file=("dot.png", b"\x89PNG\r\n\x1a\n"), purpose="vision")
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=[
            {"type": "text", "text": "look"},
            {"type": "image_file", "image_file": {"file_id": image.id, "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
        attachments=[{"file_id": uploaded.id, "tools": [{"type": "code_interpreter"}]}],
    )
    assert [c.type for c in message.content] == ["text", "image_file", "image_url"]
    assert message.content[0].text.value == "look"
    assert (message.content[1].image_file.file_id, message.content[1].image_file.detail) == (
        image.id,
        "low",
    )
    assert message.content[2].image_url.url == "https://example.com/cat.png"
    assert [(a.file_id, [t.type for t in a.tools]) for a in message.attachments] == [
        (uploaded.id, ["code_interpreter"])
    ]
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread.id) == message


def test_message_update_and_delete(client):
    thread = client.beta.threads.create()
    keep = client.beta.threads.messages.create(thread.id, role="user", content="keep")
    message = client.beta.threads.messages.create(
        thread.id, role="user", content="x", metadata={"a": "1"}
    )
    updated = client.beta.threads.messages.update(
        message.id, thread_id=thread.id, metadata={"b": "2"}
    )
    assert updated.metadata == {"b": "2"} and _text(updated) == "x"
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread.id).metadata == {
        "b": "2"
    }

    deleted = client.beta.threads.messages.delete(message.id, thread_id=thread.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        message.id,
        "thread.message.deleted",
        True,
    )
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)
    assert [m.id for m in client.beta.threads.messages.list(thread.id)] == [keep.id]


def test_a_message_is_only_found_in_its_own_thread(client):
    one, two = client.beta.threads.create(), client.beta.threads.create()
    message = client.beta.threads.messages.create(one.id, role="user", content="x")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(message.id, thread_id=two.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.update(message.id, thread_id=two.id, metadata={})
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.delete(message.id, thread_id=two.id)
    assert client.beta.threads.messages.retrieve(message.id, thread_id=one.id).id == message.id


# -- pagination ---------------------------------------------------------------------------


def _thread_with(client, n: int) -> tuple[str, list[str]]:
    """A thread with ``n`` messages written in one request (so they share ``created_at``)."""
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": f"m{i}"} for i in range(n)]
    )
    messages = client.beta.threads.messages.list(thread.id, limit=100, order="asc").data
    assert [_text(m) for m in messages] == [f"m{i}" for i in range(n)]
    return thread.id, [m.id for m in messages]


def test_messages_auto_pagination_in_both_orders(client):
    thread_id = client.beta.threads.create().id
    ids = [
        client.beta.threads.messages.create(thread_id, role="user", content=f"m{i}").id
        for i in range(25)
    ]
    listed = client.beta.threads.messages.list(thread_id, limit=10, order="asc")
    assert [m.id for m in listed] == ids
    listed = client.beta.threads.messages.list(thread_id, limit=10)  # desc by default
    assert [m.id for m in listed] == ids[::-1]
    # Many of these messages share a created_at second: the order must still be exact.
    created = [m.created_at for m in client.beta.threads.messages.list(thread_id, limit=100)]
    assert len(set(created)) < len(created)


def test_messages_pages_report_has_more_first_and_last_ids(client):
    thread_id, ids = _thread_with(client, 25)
    pages = []
    page = client.beta.threads.messages.list(thread_id, limit=10, order="asc")
    while True:
        pages.append(page)
        if not page.has_next_page():
            break
        page = page.get_next_page()
    assert [len(p.data) for p in pages] == [10, 10, 5]
    assert [p.has_more for p in pages] == [True, True, False]
    for p, chunk in zip(pages, (ids[:10], ids[10:20], ids[20:]), strict=True):
        assert [m.id for m in p.data] == chunk
        assert (p.first_id, p.last_id) == (chunk[0], chunk[-1])


def test_a_page_that_ends_the_list_exactly_has_no_more(client):
    thread_id, ids = _thread_with(client, 4)
    page = client.beta.threads.messages.list(thread_id, limit=4)
    assert [m.id for m in page.data] == ids[::-1] and page.has_more is False
    page = client.beta.threads.messages.list(thread_id, limit=3)
    assert page.has_more is True
    page = client.beta.threads.messages.list(thread_id, limit=3, after=page.last_id)
    assert [m.id for m in page.data] == [ids[0]] and page.has_more is False
    page = client.beta.threads.messages.list(thread_id, after=ids[0])
    assert page.data == [] and page.has_more is False
    assert not page.first_id and not page.last_id


def test_messages_after_and_before_cursors(client):
    thread_id, ids = _thread_with(client, 12)
    # after: the items that follow the cursor, in the list's order.
    page = client.beta.threads.messages.list(thread_id, limit=3, order="asc", after=ids[4])
    assert [m.id for m in page.data] == ids[5:8] and page.has_more is True
    page = client.beta.threads.messages.list(thread_id, limit=3, order="desc", after=ids[4])
    assert [m.id for m in page.data] == ids[3:0:-1] and page.has_more is True
    # before: the items nearest the cursor on the other side, still in the list's order.
    page = client.beta.threads.messages.list(thread_id, limit=3, order="asc", before=ids[4])
    assert [m.id for m in page.data] == ids[1:4] and page.has_more is True
    page = client.beta.threads.messages.list(thread_id, limit=3, order="desc", before=ids[4])
    assert [m.id for m in page.data] == ids[7:4:-1] and page.has_more is True
    page = client.beta.threads.messages.list(thread_id, limit=10, order="asc", before=ids[2])
    assert [m.id for m in page.data] == ids[:2] and page.has_more is False
    # after and before together: the items between the two cursors.
    page = client.beta.threads.messages.list(
        thread_id, limit=20, order="asc", after=ids[2], before=ids[6]
    )
    assert [m.id for m in page.data] == ids[3:6]


def test_paging_backwards_with_before_visits_everything_once(client):
    thread_id, ids = _thread_with(client, 25)
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        # Start from the end of the list, then walk back one page at a time.
        page = client.beta.threads.messages.list(thread_id, limit=100, order=order)
        seen = [page.data[-1].id]
        cursor = page.data[-1].id
        while True:
            page = client.beta.threads.messages.list(
                thread_id, limit=10, order=order, before=cursor
            )
            seen = [m.id for m in page.data] + seen
            assert (page.first_id, page.last_id) == (page.data[0].id, page.data[-1].id)
            if not page.has_more:
                break
            cursor = page.first_id
        assert seen == expected


def test_messages_limit_defaults_to_20(client):
    thread_id, ids = _thread_with(client, 21)
    page = client.beta.threads.messages.list(thread_id)
    assert [m.id for m in page.data] == ids[:0:-1] and page.has_more is True


# -- runs and steps -----------------------------------------------------------------------


def test_runs_and_steps_list_retrieve_update(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    first = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, metadata={"n": "1"}, poll_interval_ms=20
    )
    client.beta.threads.messages.create(thread.id, role="user", content="again")
    second = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert first.status == second.status == "completed"
    assert first.metadata == {"n": "1"}

    runs = client.beta.threads.runs.list(thread.id)
    assert [r.id for r in runs.data] == [second.id, first.id]
    assert (runs.first_id, runs.last_id, runs.has_more) == (second.id, first.id, False)
    assert [r.id for r in client.beta.threads.runs.list(thread.id, order="asc", limit=1)] == [
        first.id,
        second.id,
    ]

    fetched = client.beta.threads.runs.retrieve(first.id, thread_id=thread.id)
    assert (fetched.id, fetched.thread_id, fetched.assistant_id, fetched.status) == (
        first.id,
        thread.id,
        assistant.id,
        "completed",
    )

    updated = client.beta.threads.runs.update(
        first.id, thread_id=thread.id, metadata={"n": "2", "m": "x"}
    )
    assert updated.metadata == {"n": "2", "m": "x"} and updated.status == "completed"
    again = client.beta.threads.runs.retrieve(first.id, thread_id=thread.id)
    assert again.metadata == {"n": "2", "m": "x"}
    assert again.model_dump(exclude={"metadata"}) == fetched.model_dump(exclude={"metadata"})

    steps = client.beta.threads.runs.steps.list(first.id, thread_id=thread.id)
    assert len(steps.data) == 1 and steps.has_more is False
    step = steps.data[0]
    assert (step.run_id, step.thread_id, step.type, step.status) == (
        first.id,
        thread.id,
        "message_creation",
        "completed",
    )
    assert (
        client.beta.threads.runs.steps.retrieve(step.id, thread_id=thread.id, run_id=first.id)
        == step
    )

    # The run_id filter finds exactly the message the run wrote, and that message names the step.
    written = client.beta.threads.messages.list(thread.id, run_id=first.id).data
    assert [m.id for m in written] == [step.step_details.message_creation.message_id]
    assert (written[0].role, written[0].run_id, written[0].assistant_id) == (
        "assistant",
        first.id,
        assistant.id,
    )
    assert [m.role for m in client.beta.threads.messages.list(thread.id, order="asc")] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]


def test_runs_and_steps_are_only_found_under_their_own_thread_and_run(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    other_thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    other = client.beta.threads.runs.create_and_poll(
        thread_id=other_thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve(run.id, thread_id=other_thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.update(run.id, thread_id=other_thread.id, metadata={})
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.steps.list(run.id, thread_id=other_thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.steps.retrieve(step.id, thread_id=other_thread.id, run_id=other.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.steps.retrieve(step.id, thread_id=thread.id, run_id=other.id)
    assert client.beta.threads.runs.list(other_thread.id).data[0].id == other.id


def test_deleting_a_thread_deletes_its_runs(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    client.beta.threads.delete(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.list(thread.id)


# -- async --------------------------------------------------------------------------------


async def test_async_assistant_crud(aclient):
    created = await aclient.beta.assistants.create(model="test", name="async", metadata={"a": "1"})
    assert (await aclient.beta.assistants.retrieve(created.id)) == created
    updated = await aclient.beta.assistants.update(created.id, name="renamed")
    assert updated.name == "renamed" and updated.metadata == {"a": "1"}
    listed = [a.id async for a in aclient.beta.assistants.list(limit=100)]
    assert created.id in listed
    deleted = await aclient.beta.assistants.delete(created.id)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        await aclient.beta.assistants.retrieve(created.id)


async def test_async_threads_and_messages(aclient):
    thread = await aclient.beta.threads.create(
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        metadata={"x": "y"},
    )
    assert (await aclient.beta.threads.retrieve(thread.id)) == thread
    assert (await aclient.beta.threads.update(thread.id, metadata={"x": "z"})).metadata == {
        "x": "z"
    }
    message = await aclient.beta.threads.messages.create(
        thread.id, role="user", content="there", metadata={"k": "v"}
    )
    assert (
        await aclient.beta.threads.messages.retrieve(message.id, thread_id=thread.id)
    ) == message
    updated = await aclient.beta.threads.messages.update(
        message.id, thread_id=thread.id, metadata={"k": "w"}
    )
    assert updated.metadata == {"k": "w"}
    texts = [_text(m) async for m in aclient.beta.threads.messages.list(thread.id, order="asc")]
    assert texts == ["hi", "there"]
    assert (
        await aclient.beta.threads.messages.delete(message.id, thread_id=thread.id)
    ).deleted is True
    assert (await aclient.beta.threads.delete(thread.id)).deleted is True
    with pytest.raises(openai.NotFoundError):
        await aclient.beta.threads.retrieve(thread.id)


async def test_async_auto_pagination_in_both_orders(aclient):
    thread = await aclient.beta.threads.create()
    ids = [
        (await aclient.beta.threads.messages.create(thread.id, role="user", content=str(i))).id
        for i in range(25)
    ]
    asc = [m.id async for m in aclient.beta.threads.messages.list(thread.id, limit=10, order="asc")]
    desc = [
        m.id async for m in aclient.beta.threads.messages.list(thread.id, limit=10, order="desc")
    ]
    assert asc == ids and desc == ids[::-1]
    first = await aclient.beta.threads.messages.list(thread.id, limit=10, order="asc")
    assert first.has_more is True and (first.first_id, first.last_id) == (ids[0], ids[9])


async def test_async_runs_and_steps(aclient):
    assistant = await aclient.beta.assistants.create(model="test")
    thread = await aclient.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = await aclient.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "completed"
    assert [r.id async for r in aclient.beta.threads.runs.list(thread.id)] == [run.id]
    updated = await aclient.beta.threads.runs.update(
        run.id, thread_id=thread.id, metadata={"k": "v"}
    )
    assert updated.metadata == {"k": "v"}
    assert (await aclient.beta.threads.runs.retrieve(run.id, thread_id=thread.id)).metadata == {
        "k": "v"
    }
    steps = [s async for s in aclient.beta.threads.runs.steps.list(run.id, thread_id=thread.id)]
    assert [s.type for s in steps] == ["message_creation"]
    step = await aclient.beta.threads.runs.steps.retrieve(
        steps[0].id, thread_id=thread.id, run_id=run.id
    )
    assert step == steps[0]
