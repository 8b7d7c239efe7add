"""The model request of a run's next turn, built from stored state: a pure function.

:func:`build_request` takes the run, the thread's messages, the run's own steps and the bytes
of the images users attached (all loaded by the engine) and returns the
:class:`~..models.base.ModelRequest`, or an :class:`Incomplete` when the run's token budgets
leave no room for it. It reads and writes nothing; the engine acts on the result.

The prompt is: the instructions (plus a note, e.g. the code interpreter's files), the
thread's other messages (truncated by the run's ``truncation_strategy``), then this run's own
earlier turns replayed from its steps: its messages, tool calls and tool outputs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..models.base import (
    CODE_INTERPRETER_FUNCTION,
    FILE_SEARCH_FUNCTION,
    ChatMessage,
    FunctionSpec,
    ModelRequest,
    ToolCall,
)
from ..models.registry import parse_model
from .file_search import describe_call

__all__ = [
    "Context",
    "Incomplete",
    "build_request",
    "chat_message",
    "data_url",
    "describe_outputs",
    "function_specs",
    "own_messages",
    "tool_choice_name",
    "user_image_files",
]


@dataclass
class Context:
    """What a prompt is built from: the thread's messages, this run's steps, a note."""

    messages: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    #: Told to the model after the instructions (e.g. the code interpreter's files).
    note: str
    #: Why a ``file_search`` call (by id) found less than it could: told with its results.
    search_notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Incomplete:
    """No request can be made: the run ends ``incomplete`` with this reason."""

    #: ``"max_prompt_tokens"`` or ``"max_completion_tokens"``.
    reason: str


def build_request(
    run: dict[str, Any],
    context: Context,
    *,
    count_tokens: Callable[[list[ChatMessage]], int],
    first_call: bool,
    code_interpreter: bool,
    images: Mapping[str, bytes],
    file_search: bool = False,
) -> ModelRequest | Incomplete:
    """The request for the run's next model call, or why the run cannot make one.

    ``count_tokens`` is the provider's estimate of a prompt's size; ``first_call`` says
    whether the run's ``tool_choice`` applies (only its first call is forced);
    ``code_interpreter`` whether the model may run code, ``file_search`` whether it may
    search files; ``images`` holds the bytes of the image files users attached (see
    :func:`user_image_files`), a missing one is left out.
    """
    messages, steps, note = context.messages, context.steps, context.note
    system = run["instructions"] or ""
    if note:
        system = f"{system}\n\n{note}" if system else note
    history = [chat_message(m, images) for m in messages if m["run_id"] != run["id"]]
    truncation = run["truncation_strategy"] or {}
    if truncation.get("type") == "last_messages" and truncation.get("last_messages"):
        history = history[-truncation["last_messages"] :]
    own = own_messages(steps, {m["id"]: m for m in messages}, context.search_notes)
    prompt = [ChatMessage("system", system)] if system else []
    limit = run["max_prompt_tokens"]
    while True:
        chat = [*prompt, *history, *own]
        if limit is None or count_tokens(chat) <= limit:
            break
        if truncation.get("type") == "auto" and len(history) > 1:
            history = history[1:]
            continue
        return Incomplete("max_prompt_tokens")

    max_tokens = None
    if run["max_completion_tokens"] is not None:
        used = (run.get("usage") or {"completion_tokens": 0})["completion_tokens"]
        max_tokens = run["max_completion_tokens"] - used
        if max_tokens <= 0:
            return Incomplete("max_completion_tokens")
    response_format = run["response_format"]
    return ModelRequest(
        model=parse_model(run["model"]).request_model,
        messages=chat,
        tools=function_specs(run, code_interpreter=code_interpreter, file_search=file_search),
        tool_choice=tool_choice_name(run["tool_choice"]) if first_call else "auto",
        parallel_tool_calls=run["parallel_tool_calls"],
        response_format=response_format
        if isinstance(response_format, dict) and response_format.get("type") != "text"
        else None,
        temperature=run["temperature"],
        top_p=run["top_p"],
        max_tokens=max_tokens,
    )


def tool_choice_name(choice: Any) -> str:
    """A run's ``tool_choice`` as a :class:`ModelRequest` wants it."""
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "function":
        return str(choice["function"]["name"])
    if choice.get("type") == "code_interpreter":
        return CODE_INTERPRETER_FUNCTION
    if choice.get("type") == "file_search":
        return FILE_SEARCH_FUNCTION
    return "auto"


def function_specs(
    run: dict[str, Any], *, code_interpreter: bool, file_search: bool = False
) -> list[FunctionSpec]:
    """The functions the model may call: the run's ``function`` tools, code, file search."""
    specs = []
    for tool in run["tools"]:
        if tool["type"] == "function":
            fn = tool["function"]
            specs.append(
                FunctionSpec(
                    name=fn["name"],
                    description=fn.get("description") or "",
                    parameters=fn.get("parameters") or {"type": "object", "properties": {}},
                    strict=fn.get("strict"),
                )
            )
    if code_interpreter:
        specs.append(
            FunctionSpec(
                name=CODE_INTERPRETER_FUNCTION,
                description=(
                    "Run Python code in a stateful Jupyter kernel and see its output. "
                    "Variables persist between calls. Use print() to see values; "
                    "plots shown with plt.show() are returned as images."
                ),
                parameters={
                    "type": "object",
                    "properties": {
                        "code": {"type": "string", "description": "The Python code to run."}
                    },
                    "required": ["code"],
                },
            )
        )
    if file_search:
        specs.append(
            FunctionSpec(
                name=FILE_SEARCH_FUNCTION,
                description=(
                    "Search the files the user gave you. Returns the passages that best match "
                    "the query, each with a marker to cite it by."
                ),
                parameters={
                    "type": "object",
                    "properties": {
                        "query": {
                            "type": "string",
                            "description": "What to look for, in words likely to be in the files.",
                        }
                    },
                    "required": ["query"],
                },
            )
        )
    return specs


def user_image_files(run: dict[str, Any], messages: list[dict[str, Any]]) -> list[str]:
    """The ids of the image files in the thread's user messages that the prompt shows.

    The engine reads their bytes for :func:`build_request` (it shows users' ``image_file``
    blocks as data URLs; the assistant's own images are not sent back).
    """
    return [
        block["image_file"]["file_id"]
        for m in messages
        if m["run_id"] != run["id"] and m["role"] == "user"
        for block in m["content"]
        if block["type"] == "image_file"
    ]


def chat_message(message: dict[str, Any], images: Mapping[str, bytes]) -> ChatMessage:
    """A thread message as the model sees it: its text, and its images as URLs."""
    texts, urls = [], []
    for block in message["content"]:
        if block["type"] == "text":
            texts.append(block["text"]["value"])
        elif block["type"] == "image_url":
            urls.append(block["image_url"]["url"])
        elif block["type"] == "image_file" and message["role"] == "user":
            urls.append(data_url(images.get(block["image_file"]["file_id"])))
    return ChatMessage(message["role"], "\n".join(texts), images=urls)


def data_url(data: bytes | None) -> str:
    """An image's bytes as a ``data:`` URL (JPEG, GIF, else PNG); ``""`` for no bytes."""
    if data is None:
        return ""
    mime = (
        "image/jpeg"
        if data[:2] == b"\xff\xd8"
        else "image/gif"
        if data[:3] == b"GIF"
        else "image/png"
    )
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def own_messages(
    steps: list[dict[str, Any]],
    messages: dict[str, dict[str, Any]],
    search_notes: Mapping[str, str] | None = None,
) -> list[ChatMessage]:
    """This run's earlier model turns: its messages, tool calls and tool outputs.

    Search results are numbered across the run's searches (see :func:`.file_search.sources`);
    ``search_notes`` adds to a search's results why it found less than it could.
    """
    chat: list[ChatMessage] = []
    numbered = 0
    for step in steps:
        details = step["step_details"]
        if details["type"] == "message_creation":
            message = messages.get(details["message_creation"]["message_id"])
            if message:
                text = "\n".join(
                    b["text"]["value"] for b in message["content"] if b["type"] == "text"
                )
                chat.append(ChatMessage("assistant", text))
            continue
        calls, outputs = [], []
        for call in details["tool_calls"]:
            if call["type"] == "function":
                fn = call["function"]
                calls.append(ToolCall(call["id"], fn["name"], fn["arguments"]))
                outputs.append(
                    ChatMessage(
                        "tool", fn["output"] or "", tool_call_id=call["id"], name=fn["name"]
                    )
                )
            elif call["type"] == "code_interpreter":
                ci = call["code_interpreter"]
                calls.append(
                    ToolCall(
                        call["id"], CODE_INTERPRETER_FUNCTION, json.dumps({"code": ci["input"]})
                    )
                )
                outputs.append(
                    ChatMessage(
                        "tool",
                        describe_outputs(ci["outputs"]),
                        tool_call_id=call["id"],
                        name=CODE_INTERPRETER_FUNCTION,
                    )
                )
            elif call["type"] == "file_search":
                found = call["file_search"]
                query = json.dumps({"query": found.get("query", "")})
                calls.append(ToolCall(call["id"], FILE_SEARCH_FUNCTION, query))
                note = (search_notes or {}).get(call["id"], "")
                outputs.append(
                    ChatMessage(
                        "tool",
                        describe_call(call, numbered, note),
                        tool_call_id=call["id"],
                        name=FILE_SEARCH_FUNCTION,
                    )
                )
                numbered += len(found.get("results") or [])
        chat.append(ChatMessage("assistant", "", tool_calls=calls))
        chat.extend(outputs)
    return chat


def describe_outputs(outputs: list[dict[str, Any]]) -> str:
    """A code-interpreter call's outputs as the model reads them: logs and image references."""
    parts = []
    for output in outputs:
        if output["type"] == "logs":
            parts.append(output["logs"])
        elif output["type"] == "image":
            parts.append(f"[image {output['image']['file_id']} shown to the user]")
    return "\n".join(parts) or "(no output)"
