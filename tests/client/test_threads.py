"""Thread: lazy registration, resuming by id, lifecycle, messages, files, the run lock."""

from __future__ import annotations

import asyncio

import openai
import pytest

from _wait import wait_until_async
from ipyassistant import Assistant, Thread
from ipyassistant.exceptions import LifecycleError, ThreadBusyError

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def text(message) -> str:
    return "".join(block.text.value for block in message.content if block.type == "text")


def test_a_thread_is_registered_lazily(api):
    thread = Thread()
    assert thread.id is None
    assert thread.get_messages() == [] and thread.id is None  # reading creates nothing
    thread.add("hello")
    assert thread.id.startswith("thread_")
    assert api.beta.threads.retrieve(thread.id).id == thread.id


def test_a_thread_by_id_resumes_the_conversation():
    ai = Assistant()
    first = Thread()
    ai.say("remember 42", thread=first, event_handler_class=None)
    resumed = Thread(id=first.id)
    ai.say("what was it?", thread=resumed, event_handler_class=None)
    assert [text(m) for m in resumed.get_messages()] == [
        "remember 42",
        "echo: remember 42",
        "what was it?",
        "echo: what was it?",
    ]


def test_create_and_delete_and_their_errors(api):
    thread = Thread(metadata={"purpose": "test"})
    assert thread.create() is thread
    assert api.beta.threads.retrieve(thread.id).metadata == {"purpose": "test"}
    with pytest.raises(LifecycleError, match="exists already"):
        thread.create()
    created = thread.id
    thread.delete()
    assert thread.id is None
    with pytest.raises(openai.NotFoundError):
        api.beta.threads.retrieve(created)
    with pytest.raises(LifecycleError, match="not been created"):
        thread.delete()


def test_a_thread_as_context_manager_is_created_and_deleted(api):
    with Thread() as thread:
        created = thread.id
        thread.add("inside")
        with thread:  # nested: still the same thread
            assert thread.id == created
        assert thread.id == created
    assert thread.id is None
    with pytest.raises(openai.NotFoundError):
        api.beta.threads.retrieve(created)


def test_an_existing_thread_survives_a_with_block(api):
    thread = Thread().create()
    with Thread(id=thread.id) as same:
        same.add("hi")
    assert api.beta.threads.retrieve(thread.id).id == thread.id


async def test_async_thread_lifecycle(api):
    async with Thread() as thread:
        created = thread.id
        await thread.add_async("hi")
        assert [text(m) for m in await thread.get_messages_async()] == ["hi"]
    with pytest.raises(openai.NotFoundError):
        api.beta.threads.retrieve(created)
    other = await Thread().create_async()
    await other.delete_async()
    assert other.id is None


def test_several_messages_before_a_run():
    thread = Thread()
    thread.add("Hello there!")
    thread.add("How are you?")
    assert [text(m) for m in thread.get_messages()] == ["Hello there!", "How are you?"]
    run = thread.run(Assistant())
    assert [text(m) for m in run.messages] == ["echo: How are you?"]


def test_get_messages_is_ascending_with_limit_and_cursors():
    thread = Thread()
    ids = [thread.add(f"m{i}").id for i in range(6)]
    assert [m.id for m in thread.get_messages()] == ids
    assert [m.id for m in thread.get_messages(limit=2)] == ids[4:]
    assert [m.id for m in thread.get_messages(limit=2, before_message=ids[3])] == ids[1:3]
    assert [m.id for m in thread.get_messages(limit=2, after_message=ids[2])] == ids[3:5]
    assert [m.id for m in thread.get_messages(after_message=ids[1], before_message=ids[4])] == ids[
        2:4
    ]


def test_adding_while_a_run_is_active_raises_an_error_naming_the_run():
    thread = Thread()
    errors: list[ThreadBusyError] = []

    def intrude() -> str:
        """Try to add to the thread in the middle of the run."""
        try:
            thread.add("sneaky")
        except ThreadBusyError as exc:
            errors.append(exc)
            return "refused"
        return "added"

    run = Assistant(tools=[intrude]).say("go", thread=thread, event_handler_class=None)
    assert [str(e.run_id) for e in errors] == [run.run.id]
    assert errors[0].thread_id == thread.id
    assert run.run.id in str(errors[0]) and "active" in str(errors[0])
    assert "sneaky" not in [text(m) for m in thread.get_messages()]


async def test_running_while_a_run_is_active_raises_an_error_naming_the_run(api):
    ai = Assistant()
    thread = Thread()
    await thread.add_async("/sleep 30\nslow")
    first = asyncio.create_task(thread.run_async(ai))

    def running_id() -> str | None:
        runs = api.beta.threads.runs.list(thread.id, limit=1) if thread.id else None
        return runs.data[0].id if runs and runs.data and runs.data[0].status == "in_progress" else None

    active = await wait_until_async(running_id, timeout=10, message="the first run to be in progress")
    with pytest.raises(ThreadBusyError, match=active) as caught:
        await thread.run_async(ai)
    assert caught.value.run_id == active
    with pytest.raises(ThreadBusyError, match=active):
        await thread.add_async("not now")
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert api.beta.threads.runs.retrieve(active, thread_id=thread.id).status == "cancelled"


def test_files_are_uploaded_attached_and_shown(api, tmp_path):
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    table = tmp_path / "people.csv"
    table.write_text("name,role\nada,engineer\n")
    thread = Thread()
    message = thread.add("look at these", code_interpreter_files=[table], image_files=[image])
    assert [block.type for block in message.content] == ["text", "image_file"]
    image_id = message.content[1].image_file.file_id
    assert api.files.content(image_id).content == PNG
    (attachment,) = message.attachments
    assert [t.type for t in attachment.tools] == ["code_interpreter"]
    assert api.files.retrieve(attachment.file_id).filename == "people.csv"
    # A file uploaded already is attached as it is.
    uploaded = api.files.create(file=("again.csv", b"a,b\n"), purpose="assistants")
    again = thread.add("and this", code_interpreter_files=[uploaded])
    assert again.attachments[0].file_id == uploaded.id


def test_say_uploads_files_too(tmp_path):
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    ai = Assistant()
    run = ai.say("what is this?", image_files=[image], event_handler_class=None)
    user = ai.default_thread.get_messages()[0]
    assert [block.type for block in user.content] == ["text", "image_file"]
    assert run.run.status == "completed"
