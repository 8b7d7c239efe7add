"""The ``openai:MODEL`` provider against a fake Chat Completions server on 127.0.0.1.

The fake server picks its behaviour from the request's ``model`` (``text``, ``tools``, ``429``,
…) and records every request it gets, so the tests check both what the provider sends and what
it makes of the answers.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from _serve_process import free_port
from _wait import wait_until
from ipyassistant.server.models.base import (
    ChatMessage,
    Finish,
    FunctionSpec,
    ModelError,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    count_tokens,
)
from ipyassistant.server.models.openai_compat import OpenAICompatModel

MakeProvider = Callable[[str], OpenAICompatModel]

# -- the fake server ----------------------------------------------------------------------------


@dataclass
class Recorded:
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeState:
    requests: list[Recorded] = field(default_factory=list)
    #: Set at teardown so that hanging handlers return and the server can stop.
    released: threading.Event = field(default_factory=threading.Event)


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }


def _usage_chunk(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


TOOL_CHUNKS = [
    _chunk({"role": "assistant", "content": None}),
    _chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "weather", "arguments": ""},
                }
            ]
        }
    ),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
    _chunk(
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "time", "arguments": '{"tz"'},
                }
            ]
        }
    ),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
    _chunk({"tool_calls": [{"index": 1, "function": {"arguments": ': "UTC"}'}}]}),
    _chunk(finish="tool_calls"),
    _usage_chunk(20, 12),
]

#: What the provider streams of TOOL_CHUNKS[:3] (the "tool-drop" mode) before the drop.
TOOL_EVENTS_BEFORE_DROP: list[ModelEvent] = [
    ToolCallDelta(0, arguments="", id="call_a", name="weather"),
    ToolCallDelta(0, arguments='{"city": '),
]

# Ollama-style: every call whole in one delta, no index, finish reason "stop".
WHOLE_TOOL_CHUNKS = [
    _chunk(
        {
            "tool_calls": [
                {"id": "call_x", "function": {"name": "f", "arguments": "{}"}},
                {"id": "call_y", "function": {"name": "g", "arguments": '{"a": 1}'}},
            ]
        }
    ),
    _chunk(finish="stop"),
]


#: Malformed second chunks, after a good first one (the run has streamed "ok").
MALFORMED: dict[str, Any] = {
    "not-json": "{oops",
    "array": [1, 2],
    "bad-choices": {"choices": "x"},
    "bad-choice": {"choices": [5]},
    "bad-delta": {"choices": [{"index": 0, "delta": "x"}]},
    "bad-content": {"choices": [{"index": 0, "delta": {"content": 5}}]},
    "bad-tool-calls": {"choices": [{"index": 0, "delta": {"tool_calls": {"a": 1}}}]},
    "bad-function": {
        "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": "f"}]}}]
    },
    "bad-arguments": {
        "choices": [
            {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 1}}]}}
        ]
    },
    "bad-finish": {"choices": [{"index": 0, "delta": {}, "finish_reason": 3}]},
    "bad-usage": {"choices": [], "usage": {"prompt_tokens": "many"}},
}


class DropConnection(Exception):
    """Raised inside a streaming response: uvicorn then closes the connection mid-body."""


async def _sse(
    chunks: list[Any], state: FakeState, then: str | None = None
) -> AsyncIterator[str]:
    for chunk in chunks:
        # A string is sent as it is (malformed data); anything else as JSON.
        yield f"data: {chunk if isinstance(chunk, str) else json.dumps(chunk)}\n\n"
    if then == "hang":
        await _hang(state)
    elif then == "drop":
        raise DropConnection
    elif then == "end":  # the body ends without [DONE]
        return
    yield "data: [DONE]\n\n"


async def _hang(state: FakeState) -> None:
    # Released from the test thread at teardown, so that the server can shut down at once.
    await asyncio.to_thread(state.released.wait, 10)


def _error(status: int, message: str, **headers: str) -> Response:
    body = {"error": {"message": message, "type": "fake_error", "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def _make_app(state: FakeState) -> Starlette:
    async def completions(request: Request) -> Response:
        body = await request.json()
        state.requests.append(Recorded(body, dict(request.headers)))
        # "MODE~TAG" behaves as MODE: a fresh name gets a fresh (uncached) provider on the server.
        mode = body["model"].split("~")[0]
        # Modes ending in "-once" fail their first request only (per model name).
        first = sum(r.body["model"] == body["model"] for r in state.requests) == 1

        def stream(chunks: list[Any], then: str | None = None) -> Response:
            return StreamingResponse(_sse(chunks, state, then), media_type="text/event-stream")

        if mode.endswith("-once") and not first:
            mode = "text"
        if mode in MALFORMED:
            return stream([_chunk({"content": "ok"}), MALFORMED[mode]])
        if mode == "text":
            words = ["Hel", "lo", " world"]
            chunks = [_chunk({"role": "assistant", "content": ""})]
            chunks += [_chunk({"content": w}) for w in words]
            chunks += [_chunk(finish="stop"), _usage_chunk(11, 3)]
            return stream(chunks)
        if mode == "no-usage":
            return stream([_chunk({"content": "two words"}), _chunk(finish="length")])
        if mode == "content-filter":
            return stream([_chunk({"content": "x"}), _chunk(finish="content_filter")])
        if mode == "tools":
            return stream(TOOL_CHUNKS)
        if mode == "whole-tools":
            return stream(WHOLE_TOOL_CHUNKS)
        if mode == "empty":
            return stream([])
        if mode == "429":
            return _error(429, "Slow down", **{"retry-after-ms": "1"})
        if mode == "429-once":
            return _error(429, "Slow down", **{"retry-after": "1"})
        if mode == "429-long":
            return _error(429, "Come back in an hour", **{"retry-after": "3600"})
        if mode == "503-once":
            return _error(503, "Warming up", **{"retry-after-ms": "1"})
        if mode == "drop-first-once":  # before any delta: a role-only chunk, then nothing
            return stream([_chunk({"role": "assistant", "content": ""})], then="drop")
        if mode == "tool-drop":
            return stream(TOOL_CHUNKS[:3], then="drop")
        if mode == "no-finish":
            return stream([_chunk({"content": "cut"})], then="end")
        if mode == "finish-no-done":
            return stream([_chunk({"content": "whole"}), _chunk(finish="stop")], then="end")
        if mode == "500":
            return _error(500, "The fake server broke", **{"retry-after-ms": "1"})
        if mode == "401":
            return _error(401, "Incorrect API key provided")
        if mode == "hang":
            await _hang(state)
            return stream([_chunk(finish="stop")])
        if mode == "hang-mid":
            return stream([_chunk({"content": "partial"})], then="hang")
        if mode == "drop-mid":
            return stream([_chunk({"content": "partial"})], then="drop")
        if mode == "error-mid":
            error = {"error": {"message": "Model overloaded", "type": "server_error"}}
            return stream([_chunk({"content": "partial"}), error])
        return _error(404, f"unknown fake mode {mode!r}")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


@dataclass
class FakeServer:
    state: FakeState
    url: str

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.state.requests]


@pytest.fixture(scope="module")
def fake_chat_server() -> Iterator[FakeServer]:
    state = FakeState()
    config = uvicorn.Config(
        _make_app(state),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "fake server did not start"
        return server.started

    wait_until(started, timeout=10, interval=0.01, message="the fake server to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield FakeServer(state, f"http://127.0.0.1:{port}/v1")
    finally:
        state.released.set()
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def fake(fake_chat_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    """The fake server, its records cleared, and the environment pointing at it."""
    fake_chat_server.state.requests.clear()
    monkeypatch.setenv("OPENAI_BASE_URL", fake_chat_server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("IPYASSISTANT_OPENAI_MAX_RETRIES", "0")
    monkeypatch.delenv("IPYASSISTANT_OPENAI_TIMEOUT", raising=False)
    return fake_chat_server


@pytest.fixture
async def make_provider() -> AsyncIterator[MakeProvider]:
    """Providers built now (from the environment as the test set it), closed afterwards."""
    providers: list[OpenAICompatModel] = []

    def make(name: str) -> OpenAICompatModel:
        providers.append(OpenAICompatModel(name))
        return providers[-1]

    yield make
    for provider in providers:
        await provider.aclose()


async def collect(provider: OpenAICompatModel, request: ModelRequest) -> list[ModelEvent]:
    return [event async for event in provider.stream(request)]


def simple_request(model: str, **kwargs: Any) -> ModelRequest:
    return ModelRequest(model=f"openai:{model}", messages=[ChatMessage("user", "hi")], **kwargs)


def text_of(events: list[ModelEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# -- streaming ----------------------------------------------------------------------------------


async def test_text_stream_with_usage(fake: FakeServer, make_provider: MakeProvider) -> None:
    provider = make_provider("text")
    assert provider.model == "openai:text"
    events = await collect(provider, simple_request("text"))
    assert events == [
        TextDelta("Hel"),
        TextDelta("lo"),
        TextDelta(" world"),
        Usage(prompt_tokens=11, completion_tokens=3),
        Finish("stop"),
    ]
    (body,) = fake.bodies
    assert body["model"] == "text"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    # Nothing that was not asked for.
    for key in ("tools", "tool_choice", "parallel_tool_calls", "response_format"):
        assert key not in body
    for key in ("temperature", "top_p", "max_tokens", "max_completion_tokens"):
        assert key not in body
    assert fake.state.requests[0].headers["authorization"] == "Bearer sk-test"


async def test_usage_estimated_when_the_server_sends_none(
    fake: FakeServer, make_provider: MakeProvider
) -> None:
    provider = make_provider("no-usage")
    request = simple_request("no-usage")
    events = await collect(provider, request)
    assert events == [
        TextDelta("two words"),
        Usage(prompt_tokens=provider.count_tokens(request.messages), completion_tokens=2),
        Finish("length"),
    ]
    assert count_tokens("two words") == 2


async def test_content_filter_finishes_as_stop(
    fake: FakeServer, make_provider: MakeProvider
) -> None:
    events = await collect(make_provider("content-filter"), simple_request("content-filter"))
    assert events[-1] == Finish("stop")


async def test_parallel_tool_calls_stream(fake: FakeServer, make_provider: MakeProvider) -> None:
    provider = make_provider("tools")
    tools = [
        FunctionSpec(
            "weather",
            "The weather in a city.",
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            strict=True,
        ),
        FunctionSpec("time"),
    ]
    events = await collect(provider, simple_request("tools", tools=tools))
    assert events == [
        ToolCallDelta(0, arguments="", id="call_a", name="weather"),
        ToolCallDelta(0, arguments='{"city": '),
        ToolCallDelta(1, arguments='{"tz"', id="call_b", name="time"),
        ToolCallDelta(0, arguments='"Paris"}'),
        ToolCallDelta(1, arguments=': "UTC"}'),
        Usage(prompt_tokens=20, completion_tokens=12),
        Finish("tool_calls"),
    ]
    (body,) = fake.bodies
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "The weather in a city.",
                "parameters": tools[0].parameters,
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "time", "parameters": tools[1].parameters}},
    ]
    assert body["tool_choice"] == "auto"
    assert body["parallel_tool_calls"] is True


async def test_whole_tool_calls_without_index(
    fake: FakeServer, make_provider: MakeProvider
) -> None:
    provider = make_provider("whole-tools")
    events = await collect(provider, simple_request("whole-tools", tools=[FunctionSpec("f")]))
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert calls == [
        ToolCallDelta(0, arguments="{}", id="call_x", name="f"),
        ToolCallDelta(1, arguments='{"a": 1}', id="call_y", name="g"),
    ]
    # The server said "stop", but there are tool calls to run; no usage: an estimate.
    assert events[-1] == Finish("tool_calls")
    usage = events[-2]
    assert isinstance(usage, Usage) and usage.completion_tokens > 0


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("weather", {"type": "function", "function": {"name": "weather"}}),
    ],
)
async def test_tool_choice(
    fake: FakeServer, make_provider: MakeProvider, choice: str, expected: object
) -> None:
    request = simple_request(
        "text", tools=[FunctionSpec("weather")], tool_choice=choice, parallel_tool_calls=False
    )
    await collect(make_provider("text"), request)
    (body,) = fake.bodies
    assert body["tool_choice"] == expected
    assert body["parallel_tool_calls"] is False


async def test_options_and_response_format(fake: FakeServer, make_provider: MakeProvider) -> None:
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }
    request = simple_request(
        "text", response_format=schema, temperature=0.2, top_p=0.9, max_tokens=50
    )
    await collect(make_provider("text"), request)
    await collect(
        make_provider("text"), simple_request("text", response_format={"type": "json_object"})
    )
    first, second = fake.bodies
    assert first["response_format"] == schema
    assert first["temperature"] == 0.2
    assert first["top_p"] == 0.9
    assert first["max_completion_tokens"] == 50
    assert "max_tokens" not in first
    assert second["response_format"] == {"type": "json_object"}


async def test_messages_mapping(fake: FakeServer, make_provider: MakeProvider) -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "What is this?", images=[png, "https://example.com/cat.jpg"]),
        ChatMessage(
            "assistant",
            "",
            tool_calls=[
                ToolCall("call_1", "python", '{"code": "plot()"}'),
                ToolCall("call_2", "weather", '{"city": "Oslo"}'),
            ],
        ),
        ChatMessage("tool", "<plot>", images=[png], tool_call_id="call_1", name="python"),
        ChatMessage("tool", "sunny", tool_call_id="call_2", name="weather"),
        ChatMessage("assistant", "A plot, and sunny."),
        ChatMessage("user", "Thanks"),
    ]
    request = ModelRequest(model="openai:text", messages=messages)
    await collect(make_provider("text"), request)
    (body,) = fake.bodies
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": png}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "python", "arguments": '{"code": "plot()"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "<plot>"},
        {"role": "tool", "tool_call_id": "call_2", "content": "sunny"},
        # Only user messages may carry images: the tool's plot follows the tool results.
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": png}}]},
        {"role": "assistant", "content": "A plot, and sunny."},
        {"role": "user", "content": "Thanks"},
    ]


# -- errors -------------------------------------------------------------------------------------


async def test_rate_limit_after_retries(
    fake: FakeServer, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPYASSISTANT_OPENAI_MAX_RETRIES", "1")
    with pytest.raises(ModelError) as info:
        await collect(make_provider("429"), simple_request("429"))
    assert info.value.code == "rate_limit_exceeded"
    assert "429" in info.value.message and "Slow down" in info.value.message
    assert len(fake.bodies) == 2  # one retry, as configured


async def test_server_error(fake: FakeServer, make_provider: MakeProvider) -> None:
    with pytest.raises(ModelError) as info:
        await collect(make_provider("500"), simple_request("500"))
    assert info.value.code == "server_error"
    assert "500" in info.value.message
    assert "The fake server broke" in info.value.message
    assert fake.url in info.value.message
    assert len(fake.bodies) == 1  # max_retries 0


async def test_unauthorized_hints_at_the_key(fake: FakeServer, make_provider: MakeProvider) -> None:
    with pytest.raises(ModelError) as info:
        await collect(make_provider("401"), simple_request("401"))
    assert info.value.code == "server_error"
    assert "401" in info.value.message and "OPENAI_API_KEY" in info.value.message
    assert "Incorrect API key provided" in info.value.message


async def test_timeout(
    fake: FakeServer, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPYASSISTANT_OPENAI_TIMEOUT", "0.5")
    started = time.monotonic()
    with pytest.raises(ModelError) as info:
        await collect(make_provider("hang"), simple_request("hang"))
    assert time.monotonic() - started < 3
    assert info.value.code == "server_error"
    assert "timed out after 0.5 s" in info.value.message


async def test_timeout_in_the_middle_of_the_stream(
    fake: FakeServer, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPYASSISTANT_OPENAI_TIMEOUT", "0.5")
    events: list[ModelEvent] = []
    with pytest.raises(ModelError) as info:
        async for event in make_provider("hang-mid").stream(simple_request("hang-mid")):
            events.append(event)
    assert events == [TextDelta("partial")]
    assert "timed out after 0.5 s" in info.value.message


async def test_error_event_in_the_middle_of_the_stream(
    fake: FakeServer, make_provider: MakeProvider
) -> None:
    events: list[ModelEvent] = []
    with pytest.raises(ModelError) as info:
        async for event in make_provider("error-mid").stream(simple_request("error-mid")):
            events.append(event)
    assert events == [TextDelta("partial")]
    assert info.value.code == "server_error"
    assert "Model overloaded" in info.value.message


async def test_connection_lost_in_the_middle_of_the_stream(
    fake: FakeServer, make_provider: MakeProvider
) -> None:
    events: list[ModelEvent] = []
    with pytest.raises(ModelError) as info:
        async for event in make_provider("drop-mid").stream(simple_request("drop-mid")):
            events.append(event)
    assert events == [TextDelta("partial")]
    assert info.value.code == "server_error"
    assert "dropped the connection" in info.value.message
    assert fake.url in info.value.message


async def test_empty_stream_is_an_error(fake: FakeServer, make_provider: MakeProvider) -> None:
    with pytest.raises(ModelError, match="no completion chunks"):
        await collect(make_provider("empty"), simple_request("empty"))


async def test_connection_refused(
    fake: FakeServer, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    with pytest.raises(ModelError) as info:
        await collect(make_provider("text"), simple_request("text"))
    assert info.value.code == "server_error"
    assert url in info.value.message


# -- faults: retried only before the first delta, each failure named ----------------------------


def requests_for(fake: FakeServer, model: str) -> int:
    return sum(body["model"] == model for body in fake.bodies)


@pytest.mark.parametrize("mode", ["503-once", "drop-first-once"])
async def test_failures_before_the_first_delta_are_retried(
    fake: FakeServer, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("IPYASSISTANT_OPENAI_MAX_RETRIES", "1")
    events = await collect(make_provider(mode), simple_request(mode))
    assert text_of(events) == "Hello world"
    assert events[-1] == Finish("stop")
    assert len(fake.bodies) == 2


@pytest.mark.parametrize(
    ("mode", "first"),
    [("drop-mid", [TextDelta("partial")]), ("tool-drop", TOOL_EVENTS_BEFORE_DROP)],
)
async def test_failures_after_a_delta_are_not_retried(
    fake: FakeServer,
    make_provider: MakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    first: list[ModelEvent],
) -> None:
    monkeypatch.setenv("IPYASSISTANT_OPENAI_MAX_RETRIES", "2")
    events: list[ModelEvent] = []
    with pytest.raises(ModelError) as info:
        async for event in make_provider(mode).stream(simple_request(mode)):
            events.append(event)
    assert events == first
    assert "dropped the connection" in info.value.message and fake.url in info.value.message
    assert len(fake.bodies) == 1  # the reply had begun: replaying it would repeat output


async def test_retry_after_is_honoured(
    fake: FakeServer, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPYASSISTANT_OPENAI_MAX_RETRIES", "1")
    started = time.monotonic()
    events = await collect(make_provider("429-once"), simple_request("429-once"))
    # ``Retry-After: 1``; the backoff alone would have waited at most 0.5 s.
    assert time.monotonic() - started >= 0.95
    assert text_of(events) == "Hello world"
    assert len(fake.bodies) == 2


async def test_retry_after_is_bounded_by_the_timeout(
    fake: FakeServer, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPYASSISTANT_OPENAI_MAX_RETRIES", "2")
    monkeypatch.setenv("IPYASSISTANT_OPENAI_TIMEOUT", "0.3")
    started = time.monotonic()
    with pytest.raises(ModelError) as info:
        await collect(make_provider("429-long"), simple_request("429-long"))
    assert time.monotonic() - started < 3  # not an hour: two waits of at most 0.3 s
    assert info.value.code == "rate_limit_exceeded"
    assert "Come back in an hour" in info.value.message
    assert len(fake.bodies) == 3


@pytest.mark.parametrize("mode", sorted(MALFORMED))
async def test_malformed_chunks_fail_naming_the_endpoint(
    fake: FakeServer, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("IPYASSISTANT_OPENAI_MAX_RETRIES", "2")
    events: list[ModelEvent] = []
    with pytest.raises(ModelError) as info:
        async for event in make_provider(mode).stream(simple_request(mode)):
            events.append(event)
    assert events == [TextDelta("ok")]
    assert info.value.code == "server_error"
    message = info.value.message
    assert fake.url in message and ("malformed chunk" in message or "not JSON" in message)
    assert len(fake.bodies) == 1


async def test_a_stream_cut_before_the_finish_fails(
    fake: FakeServer, make_provider: MakeProvider
) -> None:
    with pytest.raises(ModelError, match="no finish_reason") as info:
        await collect(make_provider("no-finish"), simple_request("no-finish"))
    assert fake.url in info.value.message


async def test_a_stream_cut_after_the_finish_keeps_the_reply(
    fake: FakeServer, make_provider: MakeProvider
) -> None:
    # The finish reason completes the reply; only the trailer (usage, [DONE]) is lost.
    events = await collect(make_provider("finish-no-done"), simple_request("finish-no-done"))
    assert text_of(events) == "whole"
    assert isinstance(events[-2], Usage) and events[-1] == Finish("stop")


# -- configuration ------------------------------------------------------------------------------


async def test_missing_api_key(
    make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    provider = make_provider("gpt-4o-mini")  # constructing needs no key
    with pytest.raises(ModelError, match="Set OPENAI_API_KEY") as info:
        await collect(provider, simple_request("gpt-4o-mini"))
    assert info.value.code == "server_error"


async def test_keyless_local_endpoint(
    fake: FakeServer, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    events = await collect(make_provider("text"), simple_request("text"))
    assert text_of(events) == "Hello world"
    assert fake.state.requests[0].headers["authorization"].startswith("Bearer ")


async def test_key_set_after_construction(
    fake: FakeServer, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    provider = make_provider("text")
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        await collect(provider, simple_request("text"))
    # A notebook user sets the key afterwards; the (cached) provider picks it up.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-later")
    provider.base_url = fake.url
    await collect(provider, simple_request("text"))
    assert fake.state.requests[0].headers["authorization"] == "Bearer sk-later"


@pytest.mark.parametrize(
    ("name", "value"),
    [("IPYASSISTANT_OPENAI_TIMEOUT", "soon"), ("IPYASSISTANT_OPENAI_MAX_RETRIES", "-1")],
)
async def test_bad_configuration(
    fake: FakeServer,
    make_provider: MakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ModelError, match=name):
        await collect(make_provider("text"), simple_request("text"))
    assert fake.bodies == []


async def test_one_lazy_client_closed_by_aclose(fake: FakeServer) -> None:
    provider = OpenAICompatModel("text")
    assert provider._client is None  # no client until a run streams
    await collect(provider, simple_request("text"))
    client = provider._client
    assert client is not None
    await collect(provider, simple_request("text"))
    assert provider._client is client
    await provider.aclose()
    assert provider._client is None
    assert client.is_closed()
    await provider.aclose()  # idempotent


async def test_consumer_stopping_early_closes_the_response(
    fake: FakeServer, make_provider: MakeProvider
) -> None:
    provider = make_provider("text")
    stream = provider.stream(simple_request("text"))
    assert isinstance(stream, AsyncGenerator)
    assert await stream.__anext__() == TextDelta("Hel")
    await stream.aclose()
    # The client still works for the next run.
    assert text_of(await collect(provider, simple_request("text"))) == "Hello world"


# -- through the whole server: runs on openai:MODEL end as the fake upstream dictates ---------


def _run(client: Any, model: str, text: str = "hi", **kwargs: Any) -> Any:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    return _run_on(client, thread.id, model, **kwargs)


def _run_on(client: Any, thread_id: str, model: str, **kwargs: Any) -> Any:
    assistant = client.beta.assistants.create(model=model, **kwargs)
    with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant.id) as stream:
        stream.until_done()
    return stream


def test_a_run_streams_an_upstream_reply(fake, client):
    stream = _run(client, "openai:text", instructions="Be kind.")
    assert stream.get_final_messages()[0].content[0].text.value == "Hello world"
    run = stream.get_final_run()
    assert run.status == "completed" and run.usage.prompt_tokens == 11
    sent = fake.bodies[-1]
    assert sent["messages"][0] == {"role": "system", "content": "Be kind."}
    assert sent["messages"][-1]["content"] == "hi"


WEATHER_AND_TIME = [
    {"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}}
    for n in ("weather", "time")
]


def test_upstream_tool_calls_become_required_actions(fake, client):
    stream = _run(client, "openai:tools", tools=WEATHER_AND_TIME)
    run = stream.current_run
    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_a", "weather", '{"city": "Paris"}'),
        ("call_b", "time", '{"tz": "UTC"}'),
    ]
    client.beta.threads.runs.cancel(run.id, thread_id=run.thread_id)


@pytest.mark.parametrize(
    ("mode", "code", "needle"),
    [
        ("429", "rate_limit_exceeded", "Slow down"),
        ("500", "server_error", "500"),
        ("error-mid", "server_error", "Model overloaded"),
    ],
)
def test_upstream_errors_fail_the_run(fake, client, mode, code, needle):
    stream = _run(client, f"openai:{mode}")
    run = stream.current_run
    assert run.status == "failed"
    assert run.last_error.code == code and needle in run.last_error.message


def test_upstream_timeout_and_refused_connection_fail_the_run(fake, client, monkeypatch):
    monkeypatch.setenv("IPYASSISTANT_OPENAI_TIMEOUT", "0.5")
    run = _run(client, "openai:hang").current_run
    assert run.status == "failed" and run.last_error.code == "server_error"
    port = free_port()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    run = _run(client, "openai:refused-e2e").current_run
    assert run.status == "failed" and f"127.0.0.1:{port}" in run.last_error.message


@pytest.mark.parametrize(
    ("mode", "code", "needle"),
    [
        ("drop-mid", "server_error", "dropped the connection"),
        ("tool-drop", "server_error", "dropped the connection"),
        ("not-json", "server_error", "not JSON"),
        ("bad-content", "server_error", "malformed chunk"),
        ("no-finish", "server_error", "no finish_reason"),
        ("429-long", "rate_limit_exceeded", "Come back in an hour"),
    ],
)
def test_upstream_faults_fail_the_run_and_free_the_thread(fake, client, monkeypatch, mode, code, needle):
    monkeypatch.setenv("IPYASSISTANT_OPENAI_MAX_RETRIES", "2")
    monkeypatch.setenv("IPYASSISTANT_OPENAI_TIMEOUT", "1")
    model = f"{mode}~e2e"  # a provider built now, with these settings
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = _run_on(client, thread.id, f"openai:{model}", tools=WEATHER_AND_TIME).current_run
    assert run.status == "failed"
    assert run.last_error.code == code and needle in run.last_error.message
    assert fake.url in run.last_error.message
    # Retried only while nothing had streamed: once for failures mid-reply, 1 + 2 for a 429.
    assert requests_for(fake, model) == (3 if mode == "429-long" else 1)
    # The thread is free: it takes a message and a run that completes.
    client.beta.threads.messages.create(thread.id, role="user", content="again")
    stream = _run_on(client, thread.id, "openai:text")
    assert stream.get_final_run().status == "completed"
    assert stream.get_final_messages()[0].content[0].text.value == "Hello world"


def test_a_run_retried_before_the_first_delta_completes_once(fake, client, monkeypatch):
    monkeypatch.setenv("IPYASSISTANT_OPENAI_MAX_RETRIES", "1")
    model = "drop-first-once~e2e"
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    stream = _run_on(client, thread.id, f"openai:{model}")
    assert stream.get_final_run().status == "completed"
    assert requests_for(fake, model) == 2
    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].content[0].text.value == "Hello world"
