"""Scripted replies: text chunks and tool calls turned into a provider's stream of events.

The ``test`` and ``function`` models both decide a reply as a sequence of text chunks and
:class:`Call` values; :func:`reply_events` streams it the way a chat model would (each chunk a
:class:`~.base.TextDelta`, each call's arguments in pieces) and counts tokens as words and
punctuation marks, ending with ``length`` where ``max_tokens`` runs out.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .base import (
    CODE_INTERPRETER_FUNCTION,
    Finish,
    ModelEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    count_tokens,
    new_call_id,
)

__all__ = ["Call", "ReplyItem", "as_async", "reply_events"]


@dataclass(frozen=True)
class Call:
    """A tool call in a scripted reply: a function's name and its arguments.

    ``arguments`` is a JSON object as a dict, or JSON text as it is (which lets a test send
    arguments that do not parse).
    """

    name: str
    arguments: dict[str, Any] | str = "{}"

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON text a model writes."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


#: One part of a scripted reply.
ReplyItem = str | Call


async def as_async(items: Iterable[ReplyItem] | AsyncIterable[ReplyItem]) -> AsyncIterator[ReplyItem]:
    """``items`` as an async iterator, whether they come from a list or a (sync/async) generator."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def reply_events(
    items: AsyncIterable[ReplyItem], prompt_tokens: int, max_tokens: int | None
) -> AsyncIterator[ModelEvent]:
    """The events of a reply made of ``items``, then its usage and finish reason.

    A text chunk that would go past ``max_tokens`` ends the reply with ``length`` (and what
    follows it is not sent); a reply with calls ends with ``tool_calls``.
    """
    used = 0
    calls = 0
    finish: Literal["stop", "length", "tool_calls"] = "stop"
    async for item in items:
        if isinstance(item, Call):
            arguments = item.arguments_json
            yield ToolCallDelta(calls, id=new_call_id(), name=item.name)
            for piece in _pieces(arguments, item.name):
                yield ToolCallDelta(calls, arguments=piece)
            used += count_tokens(arguments)
            calls += 1
            continue
        cost = count_tokens(item)
        if max_tokens is not None and used + cost > max_tokens:
            finish = "length"
            break
        used += cost
        yield TextDelta(item)
    if finish == "stop" and calls:
        finish = "tool_calls"
    yield Usage(prompt_tokens=prompt_tokens, completion_tokens=used)
    yield Finish(finish)


def _pieces(arguments: str, name: str) -> list[str]:
    """Arguments as a model streams them: code line by line, JSON in two halves."""
    if name == CODE_INTERPRETER_FUNCTION:
        return re.findall(r".*?(?:\\n|$)", arguments)[:-1] or [arguments]
    half = len(arguments) // 2
    return [p for p in (arguments[:half], arguments[half:]) if p]
