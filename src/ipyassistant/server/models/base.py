"""The one interface every model provider implements.

A provider turns a :class:`ModelRequest` (chat messages, function tools, options) into an
async stream of :data:`ModelEvent` values: text deltas, tool-call deltas, usage and a finish
reason. The run engine does everything else (steps, messages, events, the database).
"""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CODE_INTERPRETER_FUNCTION",
    "FILE_SEARCH_FUNCTION",
    "ChatMessage",
    "Finish",
    "FunctionSpec",
    "ModelError",
    "ModelEvent",
    "ModelProvider",
    "ModelRequest",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "count_tokens",
    "new_call_id",
]

#: The name under which chat models see the code interpreter: a function ``python(code)``.
CODE_INTERPRETER_FUNCTION = "python"
#: The name under which chat models see file search: a function ``file_search(query)``.
FILE_SEARCH_FUNCTION = "file_search"


class ModelError(Exception):
    """A model call failed; the run ends ``failed`` with this code and message."""

    def __init__(
        self, message: str, code: Literal["server_error", "rate_limit_exceeded"] = "server_error"
    ):
        super().__init__(message)
        self.message = message
        self.code = code


def new_call_id() -> str:
    """A fresh tool-call id, shaped like OpenAI's (``call_`` and 24 hex digits)."""
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass
class ChatMessage:
    """One message of the conversation as chat models see it."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    #: Images for vision models, as data: or http(s) URLs.
    images: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    #: For ``tool`` messages: the name of the function that produced it.
    name: str | None = None


@dataclass
class FunctionSpec:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


@dataclass
class ModelRequest:
    model: str
    messages: list[ChatMessage]
    tools: list[FunctionSpec] = field(default_factory=list)
    #: ``"auto"``, ``"none"``, ``"required"`` or the name of the one function to call.
    tool_choice: str = "auto"
    parallel_tool_calls: bool = True
    #: ``None`` (text), ``{"type": "json_object"}`` or ``{"type": "json_schema", ...}``.
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None

    @property
    def instructions(self) -> str:
        return "\n\n".join(m.content for m in self.messages if m.role == "system")

    def tools_allowed(self) -> list[FunctionSpec]:
        """The tools ``tool_choice`` lets the model call."""
        if self.tool_choice == "none":
            return []
        if self.tool_choice in ("auto", "required"):
            return self.tools
        return [t for t in self.tools if t.name == self.tool_choice]


@dataclass
class TextDelta:
    text: str


@dataclass
class ToolCallDelta:
    """Part of a tool call; ``id`` and ``name`` come with the first delta of each ``index``."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Finish:
    reason: Literal["stop", "length", "tool_calls"]


ModelEvent = TextDelta | ToolCallDelta | Usage | Finish


class ModelProvider(ABC):
    """A source of chat completions."""

    #: The model string that resolved to this provider, e.g. ``"test"`` or ``"openai:gpt-4o"``.
    model: str

    @abstractmethod
    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Stream one completion. Raise :class:`ModelError` for failures the run should report."""

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        """An estimate of the prompt's size in tokens (providers with a tokenizer do better)."""
        return sum(count_tokens(m.content) + 4 for m in messages)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections or memory held by the provider."""


_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Words and punctuation marks: a deterministic stand-in for a tokenizer."""
    return len(_TOKEN.findall(text))
