"""Runs through the real openai SDK: streaming, polling, tool round trips, the event order."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai import AssistantEventHandler
from typing_extensions import override

from _spec import parse_sse

pytestmark = pytest.mark.both_databases  # SQLite and PostgreSQL (conftest.py)


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.text = ""

    @override
    def on_event(self, event: object) -> None:
        self.events.append(event.event)  # type: ignore[attr-defined]

    @override
    def on_text_delta(self, delta: object, snapshot: object) -> None:
        self.text += delta.value  # type: ignore[attr-defined]


@pytest.fixture
def assistant(client: openai.OpenAI):
    return client.beta.assistants.create(model="test", name="tester", instructions="Be brief.")


def test_text_reply_streams_the_documented_event_sequence(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello there"}])
    handler = Recorder()
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id, event_handler=handler) as stream:
        stream.until_done()
    assert handler.events[:4] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.step.created"]
    assert handler.events[4:8] == ["thread.run.step.in_progress", "thread.message.created", "thread.message.in_progress", "thread.message.delta"]
    assert handler.events[-3:] == ["thread.message.completed", "thread.run.step.completed", "thread.run.completed"]
    assert handler.events.count("thread.message.delta") == 3  # "echo:", " hello", " there"
    assert handler.text == "echo: hello there"
    final = stream.get_final_messages()
    assert final[0].content[0].text.value == "echo: hello there"
    run = stream.get_final_run()
    assert run.status == "completed" and run.usage.completion_tokens == 4
    # The SDK's step snapshots are built from step.created and the deltas only.
    steps = stream.get_final_run_steps()
    assert [s.type for s in steps] == ["message_creation"]
    assert steps[0].step_details.message_creation.message_id == final[0].id


def test_create_and_poll_returns_a_completed_run(client, assistant):
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread.id, role="user", content="hi")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "completed"
    messages = client.beta.threads.messages.list(thread.id, order="asc")
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages.data[1].run_id == run.id


def test_tool_round_trip_with_parallel_calls(client):
    tools = [
        {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}},
        {"type": "function", "function": {"name": "mul", "parameters": {"type": "object", "properties": {}}}},
    ]
    assistant = client.beta.assistants.create(model="test", tools=tools)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": '/call add {"a": 1}\n/call mul {}'}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        stream.until_done()
    run = stream.current_run
    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [("add", {"a": 1}), ("mul", {})]
    handler = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": calls[0].id, "output": "2"}, {"tool_call_id": calls[1].id, "output": "6"}],
        event_handler=handler,
    ) as stream:
        stream.until_done()
    assert handler.events[:3] == ["thread.run.step.completed", "thread.run.queued", "thread.run.in_progress"]
    assert handler.text == "Tool results:\n- add: 2\n- mul: 6"
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert [c.function.output for c in steps[0].step_details.tool_calls] == ["2", "6"]


def test_schema_generated_tool_call_without_directives(client):
    params = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 1}, "kind": {"enum": ["d6", "d20"]}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["n", "kind", "tags"],
    }
    assistant = client.beta.assistants.create(model="test", tools=[{"type": "function", "function": {"name": "roll", "parameters": params}}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "roll the dice"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    assert json.loads(call.function.arguments) == {"n": 1, "kind": "d6", "tags": ["a"]}
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "4"}], poll_interval_ms=20
    )
    assert run.status == "completed"


async def test_async_client_streams_too(aclient):
    assistant = await aclient.beta.assistants.create(model="test")
    thread = await aclient.beta.threads.create(messages=[{"role": "user", "content": "async hello"}])
    async with aclient.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        await stream.until_done()
    messages = await stream.get_final_messages()
    assert messages[0].content[0].text.value == "echo: async hello"


def test_create_thread_and_run_stream(client, assistant):
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "one shot"}]}
    ) as stream:
        stream.until_done()
    assert stream.get_final_messages()[0].content[0].text.value == "echo: one shot"


def test_create_thread_and_run_stream_starts_with_the_new_thread(client, assistant):
    handler = Recorder()
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "first"}]}, event_handler=handler
    ) as stream:
        stream.until_done()
    assert handler.events[:3] == ["thread.created", "thread.run.created", "thread.run.queued"]
    assert handler.events[-1] == "thread.run.completed"


def test_create_thread_and_run_sse_sends_the_thread_first(server, assistant):
    headers = {"Authorization": f"Bearer {server.api_key}"}
    body = {"assistant_id": assistant.id, "stream": True, "thread": {"messages": [{"role": "user", "content": "hi"}]}}
    with httpx.Client(base_url=server.base_url, headers=headers) as http:
        events = parse_sse(http.post("/threads/runs", json=body).content)
    (first, thread), (second, run) = events[0], events[1]
    assert (first, second) == ("thread.created", "thread.run.created")
    thread, run = json.loads(thread), json.loads(run)
    assert thread["object"] == "thread" and run["thread_id"] == thread["id"]
    # Plain create-run streams never announce a thread.
    with httpx.Client(base_url=server.base_url, headers=headers) as http:
        again = parse_sse(http.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant.id, "stream": True}).content)
    assert again[0][0] == "thread.run.created"
