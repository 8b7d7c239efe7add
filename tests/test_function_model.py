"""The ``function:NAME`` model: replies scripted by a Python function, run through the real server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from ipyassistant.server.models import available_models
from ipyassistant.server.models.base import ModelError, ModelRequest
from ipyassistant.server.models.function import (
    Call,
    register_function,
    registered_function,
    unregister_function,
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_a_scripted_text_reply_streams_chunk_by_chunk(client: openai.OpenAI) -> None:
    seen: list[ModelRequest] = []

    def reply(request: ModelRequest) -> Iterator[str]:
        seen.append(request)
        yield "Hello"
        yield ", world."

    with registered_function("hello", reply) as model:
        assert model == "function:hello"
        assistant = client.beta.assistants.create(model=model, instructions="Be brief.")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi there"}])
        deltas: list[str] = []
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            for event in stream:
                if event.event == "thread.message.delta":
                    deltas += [part.text.value for part in event.data.delta.content]
        run = stream.get_final_run()
    assert run.status == "completed", run.last_error
    assert run.model == "function:hello"
    assert deltas == ["Hello", ", world."]
    assert client.beta.threads.messages.list(thread.id).data[0].content[0].text.value == "Hello, world."
    # Counted like the test model: words and punctuation marks.
    assert run.usage.completion_tokens == 4
    request = seen[0]
    assert request.model == "hello"
    assert [(m.role, m.content) for m in request.messages] == [("system", "Be brief."), ("user", "hi there")]


def test_a_scripted_tool_call_then_a_reply_that_reads_the_output(client: openai.OpenAI) -> None:
    async def weather(request: ModelRequest) -> AsyncIterator[str | Call]:
        last = request.messages[-1]
        if last.role == "tool":
            yield f"{last.name} says: {last.content}"
        else:
            assert [t.name for t in request.tools] == ["get_weather"]
            yield Call("get_weather", {"city": "Paris"})

    with registered_function("weather", weather) as model:
        assistant = client.beta.assistants.create(model=model, tools=[WEATHER])
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Paris?"}])
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
        assert run.status == "requires_action", run.last_error
        calls = run.required_action.submit_tool_outputs.tool_calls
        assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
        run = client.beta.threads.runs.submit_tool_outputs_and_poll(
            thread_id=thread.id,
            run_id=run.id,
            tool_outputs=[{"tool_call_id": calls[0].id, "output": "sunny, 21 degrees"}],
            poll_interval_ms=20,
        )
    assert run.status == "completed", run.last_error
    text = client.beta.threads.messages.list(thread.id).data[0].content[0].text.value
    assert text == "get_weather says: sunny, 21 degrees"


def test_an_exception_in_the_function_fails_the_run_cleanly(client: openai.OpenAI) -> None:
    def broken(request: ModelRequest) -> str:
        raise RuntimeError("the script broke")

    with registered_function("broken", broken) as model:
        assistant = client.beta.assistants.create(model=model)
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
        assert run.status == "failed"
        assert run.last_error.code == "server_error"
        assert run.last_error.message == "function:broken: RuntimeError: the script broke"
        # The thread is free again.
        client.beta.threads.messages.create(thread.id, role="user", content="still there?")


def test_a_model_error_keeps_its_code(client: openai.OpenAI) -> None:
    async def limited(request: ModelRequest) -> str:
        raise ModelError("slow down", code="rate_limit_exceeded")

    with registered_function("limited", limited) as model:
        assistant = client.beta.assistants.create(model=model)
        run = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}, poll_interval_ms=20
        )
    assert run.status == "failed"
    assert (run.last_error.code, run.last_error.message) == ("rate_limit_exceeded", "slow down")


def test_max_completion_tokens_cuts_a_scripted_reply(client: openai.OpenAI) -> None:
    with registered_function("long", lambda request: ["a b c "] * 100) as model:
        assistant = client.beta.assistants.create(model=model)
        run = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id,
            thread={"messages": [{"role": "user", "content": "hi"}]},
            max_completion_tokens=256,
            poll_interval_ms=20,
        )
    assert run.status == "incomplete"
    assert run.usage.completion_tokens == 255  # the chunk that would go past 256 is not sent
    text = client.beta.threads.messages.list(run.thread_id).data[0].content[0].text.value
    assert text == "a b c " * 85


def test_an_unregistered_name_is_a_clean_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.assistants.create(model="function:nobody")
    assert info.value.status_code == 400
    body = info.value.body
    assert isinstance(body, dict)
    assert body["code"] == "model_not_found" and body["param"] == "model"
    assert "The model 'function:nobody' is not available." in body["message"]


def test_registration_lists_the_name_and_unregistering_forgets_it() -> None:
    register_function("listed", lambda request: "ok")
    try:
        assert "function:listed" in available_models()
    finally:
        unregister_function("listed")
    assert "function:listed" not in available_models()
    with registered_function("nested", lambda request: "outer"):
        with registered_function("nested", lambda request: "inner"):
            pass
        assert "function:nested" in available_models()  # the outer registration is back
    assert "function:nested" not in available_models()
