"""The ``openai:MODEL`` provider: any OpenAI-compatible Chat Completions endpoint.

OpenAI itself, Ollama, vLLM, llama.cpp's server, LM Studio and the like all speak the same
streaming Chat Completions protocol, so one provider built on the official ``openai`` SDK serves
them all. It is configured from the environment when it is constructed:

- ``OPENAI_BASE_URL``: the endpoint (default: the SDK's, i.e. OpenAI's ``/v1``).
- ``OPENAI_API_KEY``: the key. A key-less local endpoint works when ``OPENAI_BASE_URL`` is set.
- ``IPYASSISTANT_OPENAI_TIMEOUT``: seconds to wait for a connection or the next chunk (60).
- ``IPYASSISTANT_OPENAI_MAX_RETRIES``: retries of 429, 5xx and connection failures (2), made
  only before the reply's first text or tool-call delta (never replaying output), after the
  answer's ``Retry-After`` (at most the timeout) or an exponential backoff.

Every failure the run should report (HTTP errors, timeouts, refused connections, errors inside
the stream, malformed chunks, a stream cut before its finish reason, a missing key) becomes a
:class:`~.base.ModelError` naming the endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import os
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import openai
from openai import AsyncStream
from openai.types.chat import ChatCompletionChunk

from .base import (
    ChatMessage,
    FunctionSpec,
    ModelError,
    ModelEvent,
    ModelProvider,
    ModelRequest,
)
from .env import env_number
from .openai_reply import Reply
from .registry import ModelRef, ProviderFactory

__all__ = ["FACTORY", "OpenAICompatModel"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
#: The first retry's backoff in seconds (doubled for each further one, up to the maximum).
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
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
                # Retried here instead (``_open``): only until the reply's first delta, and
                # with ``Retry-After`` bounded by the timeout.
                max_retries=0,
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

    @property
    def where(self) -> str:
        """The model and endpoint, as error messages name them."""
        return f"{self.model}: the model endpoint {self.endpoint}"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        client = self._get_client()
        response, reply, first = await self._open(client, self.request_body(request))
        # Errors are translated around each SDK call only, never around a ``yield``: an exception
        # thrown into this generator by its consumer must pass through unchanged.
        try:
            for event in first:
                yield event
            while (chunk := await self._next_chunk(response)) is not None:
                for event in reply.read(chunk):
                    yield event
        finally:
            # Also when the consumer stops early: release the connection.
            await _close(response)
        for event in reply.end(self.count_tokens(request.messages)):
            yield event

    async def _open(
        self, client: openai.AsyncOpenAI, body: dict[str, Any]
    ) -> tuple[AsyncStream[ChatCompletionChunk], Reply, list[ModelEvent]]:
        """Send the request and read up to the reply's first events, retrying failures until then.

        Nothing has reached the run before the first text or tool-call delta, so a retry cannot
        repeat output; after it, a failure ends the run (see :meth:`stream`).
        """
        attempt = 0
        while True:
            reply = Reply(self.where)
            response: AsyncStream[ChatCompletionChunk] | None = None
            try:
                with self._upstream_errors():
                    response = await client.chat.completions.create(**body)
                while (chunk := await self._next_chunk(response)) is not None:
                    events = reply.read(chunk)
                    if events:
                        return response, reply, events
                return response, reply, []
            except BaseException as exc:  # cancellation included: release the connection
                if response is not None:
                    await _close(response)
                if not isinstance(exc, ModelError):
                    raise
                delay = self._retry_delay(exc.__cause__, attempt)
                if delay is None:
                    raise
                log.info("%s; retrying in %.2f s", exc.message, delay)
                await asyncio.sleep(delay)
                attempt += 1

    async def _next_chunk(
        self, response: AsyncStream[ChatCompletionChunk]
    ) -> ChatCompletionChunk | None:
        """The next chunk, or ``None`` at the end of the stream."""
        with self._upstream_errors(streaming=True):
            try:
                return await response.__anext__()
            except StopAsyncIteration:
                return None

    def _retry_delay(self, cause: BaseException | None, attempt: int) -> float | None:
        """Seconds to wait before retrying after ``cause``, or ``None`` not to retry.

        429, 408, 409 and 5xx answers and connection failures (timeouts included) are retried
        ``max_retries`` times. The wait is the answer's ``Retry-After`` if it has one, else an
        exponential backoff with jitter; never more than the timeout, so that a server asking
        for minutes fails the run instead of holding it.
        """
        if attempt >= self.max_retries:
            return None
        if isinstance(cause, openai.APIStatusError):
            status = cause.status_code
            if status not in (408, 409, 429) and status < 500:
                return None
            delay = _retry_after(cause.response.headers)
        elif isinstance(cause, openai.APIConnectionError):
            delay = None
        else:
            return None
        if delay is None:
            delay = min(INITIAL_RETRY_DELAY * 2**attempt, MAX_RETRY_DELAY)
            delay *= 1 - 0.25 * random.random()
        return min(max(delay, 0.0), self.timeout)

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
        where = self.where
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


async def _close(response: AsyncStream[ChatCompletionChunk]) -> None:
    """Release the connection (the SDK closes it itself after the last chunk or an error)."""
    with contextlib.suppress(Exception):
        await response.close()


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The seconds a 429 or 5xx answer asks to wait (``retry-after-ms`` or ``Retry-After``)."""
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        with contextlib.suppress(ValueError):
            seconds = float(value) * scale
            if math.isfinite(seconds):
                return seconds
    date = headers.get("retry-after")
    if date:
        with contextlib.suppress(TypeError, ValueError):
            return email.utils.parsedate_to_datetime(date).timestamp() - time.time()
    return None


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
