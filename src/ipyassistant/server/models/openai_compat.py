"""The ``openai:MODEL`` provider: any OpenAI-compatible Chat Completions endpoint.

OpenAI itself, Ollama, vLLM, llama.cpp's server, LM Studio and the like all speak the same
streaming Chat Completions protocol, so one provider built on the official ``openai`` SDK serves
them all. It is configured from the environment when it is constructed:

- ``OPENAI_BASE_URL``: the endpoint (default: the SDK's, i.e. OpenAI's ``/v1``).
- ``OPENAI_API_KEY``: the key. A key-less local endpoint works when ``OPENAI_BASE_URL`` is set.
- ``IPYASSISTANT_OPENAI_TIMEOUT``: seconds to wait for a connection or the next chunk (60).
- ``IPYASSISTANT_OPENAI_MAX_RETRIES``: retries of 429, 5xx and connection failures (2).

Every failure the run should report (HTTP errors, timeouts, refused connections, errors inside
the stream, a missing key) becomes a :class:`~.base.ModelError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import openai

from .base import (
    ChatMessage,
    Finish,
    FunctionSpec,
    ModelError,
    ModelEvent,
    ModelProvider,
    ModelRequest,
    TextDelta,
    ToolCallDelta,
    Usage,
    count_tokens,
    new_call_id,
)
from .env import env_number
from .registry import ModelRef, ProviderFactory

__all__ = ["FACTORY", "OpenAICompatModel"]

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
#: Sent as the key to endpoints that need none: the SDK always sends an Authorization header,
#: and local servers (Ollama, llama.cpp, vLLM) ignore it.
PLACEHOLDER_API_KEY = "ipyassistant-no-key"


class OpenAICompatModel(ModelProvider):
    """Chat Completions (streamed) on an OpenAI-compatible endpoint, for ``openai:NAME``."""

    def __init__(self, name: str):
        self.name = name
        self.model = f"openai:{name}"
        # Read the configuration now, but report problems only when a run streams: the provider
        # is built while resolving a model string, where an exception would not fail a run.
        self._config_error: str | None = None
        self.base_url = os.environ.get("OPENAI_BASE_URL") or None
        self.api_key = os.environ.get("OPENAI_API_KEY") or None
        self.timeout = DEFAULT_TIMEOUT
        self.max_retries = DEFAULT_MAX_RETRIES
        try:
            self.timeout = env_number("IPYASSISTANT_OPENAI_TIMEOUT", DEFAULT_TIMEOUT, float)
            self.max_retries = env_number(
                "IPYASSISTANT_OPENAI_MAX_RETRIES", DEFAULT_MAX_RETRIES, int, zero=True
            )
        except ModelError as exc:
            self._config_error = exc.message
        self._client: openai.AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # -- the client ----------------------------------------------------------------------------

    def _get_client(self) -> openai.AsyncOpenAI:
        """The provider's one client, created on first use (no network until a run needs it)."""
        if self._config_error:
            raise ModelError(f"{self.model}: {self._config_error}")
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is not loop:
            # Providers are cached per process, but an httpx client's pooled connections belong
            # to the event loop that opened them: a server restarted on a new loop needs a new
            # client. Close the old one on its own loop if that loop still runs.
            self._discard_client()
        if self._client is None:
            api_key = self.api_key or os.environ.get("OPENAI_API_KEY") or None
            if api_key is None:
                # Looked up again here because a notebook user may set the key after the
                # provider was first resolved (the embedded server lives as long as the kernel).
                if self.base_url is None:
                    raise ModelError(
                        f"{self.model}: no API key. Set OPENAI_API_KEY (or set OPENAI_BASE_URL "
                        "to a local OpenAI-compatible endpoint that needs no key)."
                    )
                api_key = PLACEHOLDER_API_KEY
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=api_key,
                max_retries=self.max_retries,
                timeout=self.timeout,
            )
            self._client_loop = loop
        return self._client

    def _discard_client(self) -> None:
        client, loop = self._client, self._client_loop
        self._client = self._client_loop = None
        if client is not None and loop is not None and loop.is_running():
            with contextlib.suppress(RuntimeError):  # the loop stopped in the meantime
                asyncio.run_coroutine_threadsafe(client.close(), loop)

    async def aclose(self) -> None:
        """Close the HTTP client (a later stream creates a new one)."""
        client, loop = self._client, self._client_loop
        if client is None:
            return
        if loop is not asyncio.get_running_loop():
            self._discard_client()
            return
        self._client = self._client_loop = None
        await client.close()

    @property
    def endpoint(self) -> str:
        """The base URL in use, for error messages."""
        if self._client is not None:
            return str(self._client.base_url).rstrip("/")
        return (self.base_url or "https://api.openai.com/v1").rstrip("/")

    # -- streaming -----------------------------------------------------------------------------

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        client = self._get_client()
        body = self.request_body(request)

        # Errors are translated around each SDK call only, never around a ``yield``: an exception
        # thrown into this generator by its consumer must pass through unchanged.
        with self._upstream_errors():
            response = await client.chat.completions.create(**body)
        try:
            text: list[str] = []
            calls = _ToolCalls()
            usage: Usage | None = None
            reason: str | None = None
            chunks = 0
            iterator = response.__aiter__()
            while True:
                with self._upstream_errors(streaming=True):
                    try:
                        chunk = await iterator.__anext__()
                    except StopAsyncIteration:
                        break
                chunks += 1
                if chunk.usage is not None:
                    # The usage chunk comes last with no choices (some servers send usage on
                    # every chunk: the last one counts).
                    usage = Usage(
                        prompt_tokens=chunk.usage.prompt_tokens or 0,
                        completion_tokens=chunk.usage.completion_tokens or 0,
                    )
                for choice in chunk.choices or []:
                    if choice.index:  # only one completion is requested (n=1)
                        continue
                    delta = choice.delta
                    if delta is not None and delta.content:
                        text.append(delta.content)
                        yield TextDelta(delta.content)
                    if delta is not None and delta.tool_calls:
                        for position, tool_call in enumerate(delta.tool_calls):
                            event = calls.add(tool_call, position)
                            if event is not None:
                                yield event
                    if choice.finish_reason:
                        reason = choice.finish_reason
        finally:
            # Also when the consumer stops early: release the connection (the SDK closes it
            # itself after the last chunk or an error, so failures here are of no interest).
            with contextlib.suppress(Exception):
                await response.close()

        if chunks == 0:
            raise ModelError(
                f"{self.model}: the model endpoint {self.endpoint} sent no completion chunks; "
                "is OPENAI_BASE_URL an OpenAI-compatible endpoint (usually ending in /v1)?"
            )
        if usage is None:
            usage = Usage(
                prompt_tokens=self.count_tokens(request.messages),
                completion_tokens=count_tokens("".join(text)) + calls.token_estimate(),
            )
        yield usage
        yield Finish(_finish_reason(reason, calls.seen))

    def request_body(self, request: ModelRequest) -> dict[str, Any]:
        """The Chat Completions request for ``request`` (keyword arguments of ``create``)."""
        body: dict[str, Any] = {
            "model": self.name,
            "messages": chat_messages(request.messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            # ``tool_choice`` and ``parallel_tool_calls`` without ``tools`` are a 400 at OpenAI.
            body["tools"] = [_tool(spec) for spec in request.tools]
            body["tool_choice"] = _tool_choice(request.tool_choice)
            body["parallel_tool_calls"] = request.parallel_tool_calls
        if request.response_format is not None:
            body["response_format"] = request.response_format
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_tokens is not None:
            # ``max_tokens`` is deprecated upstream and rejected by reasoning models.
            body["max_completion_tokens"] = request.max_tokens
        return body

    @contextlib.contextmanager
    def _upstream_errors(self, streaming: bool = False) -> Iterator[None]:
        """Turn the SDK's exceptions into :class:`ModelError` with a message a user can act on."""
        where = f"{self.model}: the model endpoint {self.endpoint}"
        try:
            yield
        except openai.RateLimitError as exc:
            raise ModelError(
                f"{where} answered 429 (rate limit): {_upstream_message(exc)}",
                code="rate_limit_exceeded",
            ) from exc
        except openai.APIStatusError as exc:
            hint = ""
            if exc.status_code == 401:
                hint = " (check OPENAI_API_KEY)"
            elif exc.status_code == 404:
                hint = f" (check the model name {self.name!r} and OPENAI_BASE_URL)"
            raise ModelError(
                f"{where} answered {exc.status_code}{hint}: {_upstream_message(exc)}"
            ) from exc
        except openai.APITimeoutError as exc:  # before APIConnectionError, its base class
            raise ModelError(
                f"{where} timed out after {self.timeout:g} s (IPYASSISTANT_OPENAI_TIMEOUT)"
            ) from exc
        except openai.APIConnectionError as exc:
            cause = f": {exc.__cause__}" if exc.__cause__ and str(exc.__cause__) else ""
            failure = "dropped the connection" if streaming else "could not be reached"
            raise ModelError(f"{where} {failure}{cause}") from exc
        except openai.APIError as exc:
            # E.g. an ``{"error": ...}`` event in the middle of the stream.
            raise ModelError(f"{where} reported an error: {_upstream_message(exc)}") from exc
        except openai.OpenAIError as exc:
            raise ModelError(f"{self.model}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise ModelError(f"{where} sent a chunk that is not JSON: {exc}") from exc


# -- the request --------------------------------------------------------------------------------


def chat_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """``ChatMessage`` values as Chat Completions messages.

    Only user messages may carry images in Chat Completions, so images on other messages (e.g.
    plots in a tool result) are sent in a user message of their own, placed after the run of
    tool messages that must directly follow an assistant's tool calls.
    """
    out: list[dict[str, Any]] = []
    pending: list[str] = []
    for message in messages:
        if pending and message.role != "tool":
            out.append(_images_message(pending))
            pending = []
        if message.role == "user":
            if message.images:
                parts: list[dict[str, Any]] = []
                if message.content:
                    parts.append({"type": "text", "text": message.content})
                parts += [_image_part(url) for url in message.images]
                out.append({"role": "user", "content": parts})
            else:
                out.append({"role": "user", "content": message.content})
            continue
        pending += message.images
        if message.role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": message.content}
            if message.tool_calls:
                # ``null`` rather than ``""`` next to tool calls: some servers reject empty text.
                item["content"] = message.content or None
                item["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in message.tool_calls
                ]
            out.append(item)
        elif message.role == "tool":
            out.append(
                {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
            )
        else:
            out.append({"role": message.role, "content": message.content})
    if pending:
        out.append(_images_message(pending))
    return out


def _image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def _images_message(urls: list[str]) -> dict[str, Any]:
    return {"role": "user", "content": [_image_part(url) for url in urls]}


def _tool(spec: FunctionSpec) -> dict[str, Any]:
    function: dict[str, Any] = {"name": spec.name, "parameters": spec.parameters}
    if spec.description:
        function["description"] = spec.description
    if spec.strict is not None:
        function["strict"] = spec.strict
    return {"type": "function", "function": function}


def _tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


# -- the response -------------------------------------------------------------------------------


@dataclass
class _Slot:
    index: int
    id: str
    name: str | None


class _ToolCalls:
    """Tool-call deltas renumbered from 0, with ``id`` and ``name`` on each call's first delta.

    Servers differ: some omit ``index`` (every call arrives whole), some put every call at
    index 0 with a fresh id, some repeat the id on every delta. A new id at a known index is
    therefore a new call, and a call without an id gets one.
    """

    def __init__(self) -> None:
        self._slots: dict[int, _Slot] = {}
        self._arguments: list[str] = []
        self.names: list[str] = []

    @property
    def seen(self) -> bool:
        return bool(self.names) or bool(self._slots)

    def add(self, delta: Any, position: int) -> ToolCallDelta | None:
        key = delta.index if isinstance(delta.index, int) else position
        function = delta.function
        name = function.name if function is not None else None
        arguments = (function.arguments if function is not None else None) or ""
        slot = self._slots.get(key)
        if slot is None or (delta.id and delta.id != slot.id):
            slot = _Slot(len(self._arguments), delta.id or new_call_id(), name)
            self._slots[key] = slot
            self._arguments.append(arguments)
            if name:
                self.names.append(name)
            return ToolCallDelta(slot.index, arguments=arguments, id=slot.id, name=name)
        self._arguments[slot.index] += arguments
        if name and slot.name is None:  # the name came after the id
            slot.name = name
            self.names.append(name)
            return ToolCallDelta(slot.index, arguments=arguments, name=name)
        return ToolCallDelta(slot.index, arguments=arguments) if arguments else None

    def token_estimate(self) -> int:
        return sum(count_tokens(name) for name in self.names) + sum(
            count_tokens(arguments) for arguments in self._arguments
        )


def _finish_reason(reason: str | None, tool_calls: bool) -> Literal["stop", "length", "tool_calls"]:
    """The finish reason the engine acts on.

    Whether there are tool calls decides between ``tool_calls`` and ``stop``, not the upstream
    word: some servers say ``stop`` after tool calls, legacy ones ``function_call``, and a
    ``tool_calls`` without any call would leave the run waiting for nothing. ``content_filter``
    and unknown reasons end the reply like ``stop``.
    """
    if reason == "length":
        return "length"
    return "tool_calls" if tool_calls else "stop"


def _upstream_message(exc: openai.APIError) -> str:
    """The upstream error's own message (the SDK keeps the ``error`` object as ``body``)."""
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("error")
        if isinstance(message, dict):
            message = message.get("message")
        if isinstance(message, str) and message:
            return message
    if isinstance(body, str) and body:
        return body
    return exc.message


class _OpenAIFactory(ProviderFactory):
    """The ``openai`` prefix: ``openai:NAME`` for any model name the endpoint serves."""

    def examples(self) -> list[str]:
        return ["openai:<model> (e.g. openai:gpt-4o-mini)"]

    def accepts(self, ref: ModelRef) -> bool:
        return bool(ref.name)

    def create(self, ref: ModelRef) -> ModelProvider:
        return OpenAICompatModel(ref.name)


#: How the registry makes ``openai:NAME`` models.
FACTORY = _OpenAIFactory()
