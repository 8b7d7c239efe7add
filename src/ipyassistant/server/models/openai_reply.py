"""Reading one streamed Chat Completions reply: chunk checks, tool-call deltas and the finish.

The SDK builds chunk objects without validating them, so a server that sends a wrong shape
(``choices`` that is not a list, numeric ``content``, …) would surface as an ``AttributeError``
deep inside the run. :class:`Reply` checks every field it reads and reports a malformed chunk
as a :class:`~.base.ModelError` naming the endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from openai.types.chat.chat_completion_chunk import (
    ChatCompletionChunk,
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.completion_usage import CompletionUsage

from .base import (
    Finish,
    ModelError,
    ModelEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    count_tokens,
    new_call_id,
)

__all__ = ["Reply"]


class Reply:
    """The state of one streamed reply; :meth:`read` turns each chunk into events.

    ``where`` names the model and endpoint in error messages. The reply is complete once its
    choice carried a ``finish_reason``: the usage chunk and ``[DONE]`` that follow are a trailer,
    and a stream cut after the finish keeps the reply (with estimated usage). A stream that ends
    before any finish reason was cut short and fails.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.chunks = 0
        self.reason: str | None = None
        self.usage: Usage | None = None
        self.text: list[str] = []
        self.calls = _ToolCalls()

    def read(self, chunk: object) -> list[ModelEvent]:
        """The events of one chunk (none for role-only, finish and usage chunks)."""
        self.chunks += 1
        if not isinstance(chunk, ChatCompletionChunk):
            self._malformed(f"a chunk that is not a JSON object: {chunk!r}")
        if chunk.usage is not None:
            # The usage chunk comes last with no choices (some servers send usage on every
            # chunk: the last one counts).
            self.usage = self._usage(chunk.usage)
        choices = _checked(self, chunk.choices, list, "choices") or []
        events: list[ModelEvent] = []
        for choice in choices:
            if not isinstance(choice, Choice):
                self._malformed(f"a choice that is not an object: {choice!r}")
            if _checked(self, choice.index, int, "choices[].index"):
                continue  # only one completion is requested (n=1)
            delta = _checked(self, choice.delta, ChoiceDelta, "choices[].delta")
            if delta is not None:
                events += self._delta(delta)
            reason = _checked(self, choice.finish_reason, str, "choices[].finish_reason")
            if reason:
                self.reason = reason
        return events

    def end(self, prompt_tokens: int) -> list[ModelEvent]:
        """The closing usage and finish, once the stream has ended without an error."""
        if self.chunks == 0:
            raise ModelError(
                f"{self.where} sent no completion chunks; is OPENAI_BASE_URL an "
                "OpenAI-compatible endpoint (usually ending in /v1)?"
            )
        if self.reason is None:
            raise ModelError(
                f"{self.where} ended the stream before the reply was finished "
                "(no finish_reason): the reply was cut short"
            )
        usage = self.usage or Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=count_tokens("".join(self.text)) + self.calls.token_estimate(),
        )
        return [usage, Finish(_finish_reason(self.reason, self.calls.seen))]

    def _delta(self, delta: ChoiceDelta) -> list[ModelEvent]:
        events: list[ModelEvent] = []
        content = _checked(self, delta.content, str, "delta.content")
        if content:
            self.text.append(content)
            events.append(TextDelta(content))
        for position, call in enumerate(_checked(self, delta.tool_calls, list, "tool_calls") or []):
            if not isinstance(call, ChoiceDeltaToolCall):
                self._malformed(f"a tool call that is not an object: {call!r}")
            _checked(self, call.index, int, "tool_calls[].index")
            _checked(self, call.id, str, "tool_calls[].id")
            function = _checked(self, call.function, ChoiceDeltaToolCallFunction, "function")
            if function is not None:
                _checked(self, function.name, str, "function.name")
                _checked(self, function.arguments, str, "function.arguments")
            event = self.calls.add(call, position)
            if event is not None:
                events.append(event)
        return events

    def _usage(self, usage: object) -> Usage:
        if not isinstance(usage, CompletionUsage):
            self._malformed(f"usage that is not an object: {usage!r}")
        prompt = _checked(self, usage.prompt_tokens, int, "usage.prompt_tokens")
        completion = _checked(self, usage.completion_tokens, int, "usage.completion_tokens")
        return Usage(prompt_tokens=prompt or 0, completion_tokens=completion or 0)

    def _malformed(self, what: str) -> NoReturn:
        raise ModelError(f"{self.where} sent a malformed chunk: {what}"[:1000])


def _checked(reply: Reply, value: Any, kind: type, field: str) -> Any:
    """``value`` if it is ``None`` or a ``kind`` (not a bool for ``int``); else the run fails."""
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    reply._malformed(f"{field} is {value!r}, not a {kind.__name__}")


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

    def add(self, delta: ChoiceDeltaToolCall, position: int) -> ToolCallDelta | None:
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
