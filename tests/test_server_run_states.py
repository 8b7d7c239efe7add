"""Run states: cancel, the thread lock, failures, token limits, truncation, expiry, tool outputs."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import openai
import pytest

from _spec import parse_sse
from _wait import wait_until
from ipyassistant.server.engine import records

pytestmark = pytest.mark.both_databases  # SQLite and PostgreSQL (conftest.py)

TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}


def wait_status(client: openai.OpenAI, thread_id: str, run_id: str, statuses: set[str]) -> Any:
    def check() -> Any:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        return run if run.status in statuses else None

    return wait_until(check, timeout=20, message=f"run {run_id} to be one of {sorted(statuses)}")


@pytest.fixture
def assistant(client: openai.OpenAI) -> Any:
    return client.beta.assistants.create(model="test")


def start(client: openai.OpenAI, assistant: Any, text: str, **kwargs: Any) -> tuple[Any, Any]:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, **kwargs)
    return thread, run


def assert_thread_usable(client: openai.OpenAI, thread_id: str, assistant_id: str) -> None:
    client.beta.threads.messages.create(thread_id, role="user", content="still there?")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=20)
    assert run.status == "completed"
    last = client.beta.threads.messages.list(thread_id, limit=1).data[0]
    assert last.content[0].text.value == "echo: still there?"


def test_create_without_stream_returns_queued_at_once(client, assistant):
    thread, run = start(client, assistant, "/sleep 0.3\nhi")
    assert run.status == "queued"
    assert run.expires_at is not None and run.started_at is None
    done = wait_status(client, thread.id, run.id, TERMINAL)
    assert done.status == "completed" and done.expires_at is None and done.completed_at is not None


def test_cancel_a_running_run(client, assistant):
    thread, run = start(client, assistant, "/sleep 30")
    wait_status(client, thread.id, run.id, {"in_progress"})
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status in ("cancelling", "cancelled")
    final = wait_status(client, thread.id, run.id, TERMINAL)
    assert final.status == "cancelled" and final.cancelled_at is not None
    with pytest.raises(openai.BadRequestError, match="Cannot cancel"):
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert_thread_usable(client, thread.id, assistant.id)


def test_cancel_ends_the_stream_with_run_cancelled(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "/sleep 30"}])
    events: list[str] = []
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        for event in stream:
            events.append(event.event)
            if event.event == "thread.run.in_progress":
                threading.Thread(
                    target=client.beta.threads.runs.cancel, args=(event.data.id,), kwargs={"thread_id": thread.id}
                ).start()
    assert events[-1] == "thread.run.cancelled"


def test_a_cancel_that_comes_while_a_run_ends_waits_and_finds_it_ended(client, assistant, monkeypatch):
    """The transaction that ends a run holds the run's row: a cancel sent at that moment (from
    any process) cannot slip in between its read and its update, which left the run
    ``cancelling`` with no task to end it and its stream without a final event."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    outcome: dict[str, Any] = {}
    cancelling: list[threading.Thread] = []

    def cancel(run_id: str) -> None:
        try:
            outcome["run"] = client.beta.threads.runs.cancel(run_id, thread_id=thread.id)
        except openai.BadRequestError as exc:
            outcome["error"] = exc

    original = records.close_message

    async def with_a_cancel_meanwhile(*args: Any, **kwargs: Any) -> None:
        # Called by the transaction that ends the run, between its read of the run and its
        # update of it.
        if not cancelling:
            run_id = args[1].run["id"]
            cancelling.append(threading.Thread(target=cancel, args=(run_id,)))
            cancelling[0].start()
            await asyncio.sleep(0.5)  # long enough for a cancel that does not wait to be done
        await original(*args, **kwargs)

    monkeypatch.setattr(records, "close_message", with_a_cancel_meanwhile)
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        events = [event.event for event in stream]
    cancelling[0].join(timeout=20)
    assert events[-1] == "thread.run.completed", events[-3:]
    run = client.beta.threads.runs.list(thread.id).data[0]
    assert run.status == "completed"
    assert "run" not in outcome and "Cannot cancel" in str(outcome["error"])
    assert_thread_usable(client, thread.id, assistant.id)


def test_cancel_while_requires_action_cancels_the_tool_step(client):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    assistant = client.beta.assistants.create(model="test", tools=[tool])
    thread, run = start(client, assistant, "go")
    wait_status(client, thread.id, run.id, {"requires_action"})
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status == "cancelled" and cancelled.required_action is None
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    assert step.status == "cancelled" and step.cancelled_at is not None
    client.beta.threads.messages.create(thread.id, role="user", content="next")


def test_one_active_run_per_thread(client, assistant):
    thread, run = start(client, assistant, "/sleep 30")
    with pytest.raises(openai.BadRequestError) as busy:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert run.id in busy.value.message
    with pytest.raises(openai.BadRequestError) as busy:
        client.beta.threads.messages.create(thread.id, role="user", content="hello?")
    assert run.id in busy.value.message and busy.value.status_code == 400
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    wait_status(client, thread.id, run.id, TERMINAL)
    assert_thread_usable(client, thread.id, assistant.id)


def test_concurrent_run_creation_admits_exactly_one(server, client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "/sleep 30"}])
    results: list[Any] = []

    def create() -> None:
        with server.client() as own:
            try:
                results.append(own.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id))
            except openai.BadRequestError as exc:
                results.append(exc)

    workers = [threading.Thread(target=create) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    runs = [r for r in results if not isinstance(r, Exception)]
    assert len(runs) == 1 and len(results) == 6
    client.beta.threads.runs.cancel(runs[0].id, thread_id=thread.id)
    wait_status(client, thread.id, runs[0].id, TERMINAL)


@pytest.mark.parametrize(
    ("directive", "code", "message"),
    [("/fail the model broke", "server_error", "the model broke"), ("/fail rate_limit slow down", "rate_limit_exceeded", "slow down")],
)
def test_model_errors_fail_the_run_and_free_the_thread(client, assistant, directive, code, message):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": directive}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        events = [e.event for e in stream]
    assert events[-1] == "thread.run.failed"
    run = stream.current_run
    assert run.status == "failed" and run.failed_at is not None
    assert run.last_error.code == code and run.last_error.message == message
    assert_thread_usable(client, thread.id, assistant.id)


def test_max_completion_tokens_makes_the_run_incomplete(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "/stream 300"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=256, poll_interval_ms=20
    )
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage.completion_tokens == 256
    message = client.beta.threads.messages.list(thread.id, limit=1).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "max_tokens"
    assert message.content[0].text.value == "".join(f"{i} " for i in range(256))
    assert_thread_usable(client, thread.id, assistant.id)


def test_max_prompt_tokens_makes_the_run_incomplete(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "word " * 400}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=256, poll_interval_ms=20
    )
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_prompt_tokens"


def test_auto_truncation_drops_old_messages_to_fit(client, assistant):
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "old " * 200}, {"role": "user", "content": "new question"}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=256, poll_interval_ms=20
    )
    assert run.status == "completed" and run.usage.prompt_tokens <= 256


def test_truncation_last_messages_is_honoured(client, assistant):
    messages = [{"role": "user", "content": f"message number {i}"} for i in range(6)]
    full = client.beta.threads.create(messages=messages)
    cut = client.beta.threads.create(messages=messages)
    run_full = client.beta.threads.runs.create_and_poll(thread_id=full.id, assistant_id=assistant.id, poll_interval_ms=20)
    run_cut = client.beta.threads.runs.create_and_poll(
        thread_id=cut.id,
        assistant_id=assistant.id,
        truncation_strategy={"type": "last_messages", "last_messages": 2},
        poll_interval_ms=20,
    )
    assert run_cut.truncation_strategy.type == "last_messages"
    per_message = run_full.usage.prompt_tokens // 6
    assert run_cut.usage.prompt_tokens == 2 * per_message


def test_instructions_and_additional_instructions_reach_the_model(client):
    assistant = client.beta.assistants.create(model="test", instructions="You are terse.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "/instructions"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, additional_instructions="Answer in French.", poll_interval_ms=20
    )
    assert run.instructions == "You are terse.\n\nAnswer in French."
    reply = client.beta.threads.messages.list(thread.id, limit=1).data[0].content[0].text.value
    assert reply == "You are terse.\n\nAnswer in French."


def test_additional_messages_join_the_thread(client, assistant):
    thread = client.beta.threads.create()
    client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        additional_messages=[{"role": "user", "content": "added with the run"}],
        poll_interval_ms=20,
    )
    texts = [m.content[0].text.value for m in client.beta.threads.messages.list(thread.id, order="asc")]
    assert texts == ["added with the run", "echo: added with the run"]


def test_response_format_json_schema(client, assistant):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "integer"}}, "required": ["city", "n"]}
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "where?"}])
    client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}},
        poll_interval_ms=20,
    )
    reply = client.beta.threads.messages.list(thread.id, limit=1).data[0].content[0].text.value
    assert json.loads(reply) == {"city": "a", "n": 0}


def test_tool_choice_forces_and_forbids_calls(client):
    tools = [
        {"type": "function", "function": {"name": "a", "parameters": {"type": "object", "properties": {}}}},
        {"type": "function", "function": {"name": "b", "parameters": {"type": "object", "properties": {}}}},
    ]
    assistant = client.beta.assistants.create(model="test", tools=tools)
    thread, run = start(client, assistant, "hi", tool_choice={"type": "function", "function": {"name": "b"}})
    run = wait_status(client, thread.id, run.id, {"requires_action"})
    assert [c.function.name for c in run.required_action.submit_tool_outputs.tool_calls] == ["b"]
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    thread, run = start(client, assistant, "hi", tool_choice="none")
    assert wait_status(client, thread.id, run.id, TERMINAL).status == "completed"
    thread, run = start(client, assistant, "hi", parallel_tool_calls=False)
    run = wait_status(client, thread.id, run.id, {"requires_action"})
    assert len(run.required_action.submit_tool_outputs.tool_calls) == 1
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.threads.runs.create(
            thread_id=thread.id, assistant_id=assistant.id, tool_choice={"type": "function", "function": {"name": "zzz"}}
        )
    assert bad.value.body["param"] == "tool_choice"


def test_submit_tool_outputs_requires_exactly_one_output_per_call(client):
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    assistant = client.beta.assistants.create(model="test", tools=[tool])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "/call f {}\n/call f {}"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    first, second = (c.id for c in run.required_action.submit_tool_outputs.tool_calls)
    submit = client.beta.threads.runs.submit_tool_outputs
    with pytest.raises(openai.BadRequestError, match="Missing tool outputs"):
        submit(run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": first, "output": "1"}])
    with pytest.raises(openai.BadRequestError, match="Unknown tool_call_id"):
        submit(run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_nope", "output": "1"}])
    with pytest.raises(openai.BadRequestError, match="Two outputs"):
        submit(run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": first, "output": "1"}, {"tool_call_id": first, "output": "2"}])
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "requires_action"
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": first, "output": "1"}, {"tool_call_id": second, "output": "2"}],
        poll_interval_ms=20,
    )
    assert run.status == "completed"
    with pytest.raises(openai.BadRequestError, match="requires_action"):
        submit(run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": first, "output": "1"}])


def test_a_run_waiting_for_tool_outputs_expires(make_server):
    running = make_server(run_expiry_seconds=1, heartbeat_seconds=0.2)
    with running.client() as client:
        tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
        assistant = client.beta.assistants.create(model="test", tools=[tool])
        thread, run = start(client, assistant, "go")
        run = wait_status(client, thread.id, run.id, {"expired"})
        assert run.required_action is None
        step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
        assert step.status == "expired" and step.expired_at is not None
        client.beta.threads.messages.create(thread.id, role="user", content="the thread is free again")


def test_stream_flag_not_accept_header_decides_streaming(server, assistant):
    headers = {"Authorization": f"Bearer {server.api_key}", "Accept": "text/event-stream"}
    with httpx.Client(base_url=server.base_url, headers=headers) as http:
        thread = http.post("/threads", json={"messages": [{"role": "user", "content": "hey"}]}).json()
        plain = http.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant.id})
        assert plain.headers["content-type"].startswith("application/json")
        assert plain.json()["status"] == "queued"


def test_sse_framing_and_event_invariants(server, client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "/stream 5"}])
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers) as http:
        response = http.post(f"/threads/{thread.id}/runs", json={"assistant_id": assistant.id, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    body = response.content.decode()
    assert body.endswith("event: done\ndata: [DONE]\n\n")
    for block in body.strip().split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: ")
    events = parse_sse(response.content)
    names = [e for e, _ in events]
    assert names.index("thread.message.created") < names.index("thread.message.delta")
    assert names.index("thread.run.step.created") < names.index("thread.message.created")
    deltas = [json.loads(d) for e, d in events if e == "thread.message.delta"]
    assert len(deltas) == 5 and all(d["delta"]["content"][0]["index"] == 0 for d in deltas)
    assert names[-2] == "thread.run.completed"


async def test_32_concurrent_streaming_runs(server):
    async with server.async_client() as aclient:
        assistant = await aclient.beta.assistants.create(model="test")

        async def one(i: int) -> str:
            thread = await aclient.beta.threads.create(messages=[{"role": "user", "content": f"hello {i}"}])
            async with aclient.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
                await stream.until_done()
            run = await stream.get_final_run()
            assert run.status == "completed"
            return (await stream.get_final_messages())[0].content[0].text.value

        replies = await asyncio.gather(*(one(i) for i in range(32)))
    assert replies == [f"echo: hello {i}" for i in range(32)]
