"""Tool calls as plain data: streamed calls accumulated, finished calls and submitted outputs checked.

A ``tool_calls`` step holds its calls as the API shows them: ``function`` calls (handed to
the client), ``code_interpreter`` calls and ``file_search`` calls (run on the server), whose
``input`` (``query``) is decoded from the model's partial JSON arguments as they stream. Nothing here reads or writes the
database or emits events: :func:`accumulate` returns the step delta for the engine to stream.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidRequest
from ..models.base import (
    CODE_INTERPRETER_FUNCTION,
    FILE_SEARCH_FUNCTION,
    ModelError,
    ToolCallDelta,
)
from ..store import new_id
from .file_search import decode_query

__all__ = ["accumulate", "apply_outputs", "finish_call", "partial_code", "submitted_outputs"]


def accumulate(
    calls: list[dict[str, Any]],
    event: ToolCallDelta,
    *,
    code_interpreter: bool,
    file_search: bool = False,
) -> dict[str, Any] | None:
    """Add one streamed piece of a tool call to ``calls``; returns the step delta to stream.

    ``code_interpreter`` (``file_search``) says whether a call of the code-interpreter
    (file-search) function becomes a ``code_interpreter`` (``file_search``) call; else it is
    an ordinary ``function`` call, which :func:`finish_call` rejects as unknown. Returns
    ``None`` when there is nothing new to show (arguments that do not yet decode to more code
    or query).
    """
    while len(calls) <= event.index:
        calls.append(
            {
                "id": None,
                "type": "function",
                "function": {"name": "", "arguments": "", "output": None},
            }
        )
    call = calls[event.index]
    first = call["id"] is None
    if first:
        call["id"] = event.id or new_id("call")
        if event.name == CODE_INTERPRETER_FUNCTION and code_interpreter:
            call_id = call["id"]
            call.clear()
            # The raw JSON arguments stay in ``_arguments`` until finish_call decodes them.
            call.update(
                id=call_id,
                type="code_interpreter",
                code_interpreter={"input": "", "outputs": []},
                _arguments="",
            )
        elif event.name == FILE_SEARCH_FUNCTION and file_search:
            call_id = call["id"]
            call.clear()
            call.update(id=call_id, type="file_search", file_search={"query": ""}, _arguments="")
        else:
            call["function"]["name"] = event.name or ""
    if call["type"] == "file_search":
        before = call["file_search"]["query"]
        call["_arguments"] += event.arguments
        query = partial_code(call["_arguments"], "query")
        call["file_search"]["query"] = query
        piece = query[len(before) :] if query.startswith(before) else query
        if not first and not piece:
            return None
        found: dict[str, Any] = {"query": piece} if piece else {}
        search: dict[str, Any] = {"index": event.index, "type": "file_search", "file_search": found}
        if first:
            search["id"] = call["id"]
        return search
    if call["type"] == "code_interpreter":
        before = call["code_interpreter"]["input"]
        call["_arguments"] += event.arguments
        code = partial_code(call["_arguments"])
        call["code_interpreter"]["input"] = code
        piece = code[len(before) :] if code.startswith(before) else code
        delta: dict[str, Any] = {
            "index": event.index,
            "type": "code_interpreter",
            "code_interpreter": {"input": piece},
        }
        if first:
            delta["id"] = call["id"]
            delta["code_interpreter"]["outputs"] = []
        return delta if first or piece else None
    call["function"]["arguments"] += event.arguments
    delta = {
        "index": event.index,
        "type": "function",
        "function": {"arguments": event.arguments},
    }
    if first:
        delta["id"] = call["id"]
        delta["function"].update(name=call["function"]["name"], output=None)
    return delta


def finish_call(call: dict[str, Any], tools: list[dict[str, Any]]) -> None:
    """Check a completed tool call against the run's ``tools``; decode its code or query.

    Raises :class:`ModelError` (the run fails) for invalid code or search arguments or an
    unknown function.
    """
    if call["type"] == "file_search":
        call["file_search"]["query"] = decode_query(call.pop("_arguments"))
        return
    if call["type"] == "code_interpreter":
        arguments = call.pop("_arguments")
        try:
            call["code_interpreter"]["input"] = json.loads(arguments or "{}")["code"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ModelError(
                f"The model called the code interpreter with invalid arguments: {arguments[:200]!r}"
            ) from None
        return
    name = call["function"]["name"]
    allowed = {t["function"]["name"] for t in tools if t["type"] == "function"}
    if name not in allowed:
        raise ModelError(
            f"The model called the unknown tool {name!r}; the run's tools are: {', '.join(sorted(allowed)) or 'none'}."
        )


def partial_code(arguments: str, name: str = "code") -> str:
    """The ``code`` (or ``name``) string of partial JSON arguments ``{"code": "...`` so far."""
    key = arguments.find(f'"{name}"')
    if key < 0:
        return ""
    start = arguments.find('"', arguments.find(":", key) + 1)
    if start < 0:
        return ""
    body = arguments[start + 1 :]
    end = 0
    escaped = False
    for end, char in enumerate(body):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            body = body[:end]
            break
    else:
        if escaped:
            body = body[:-1]
    # A cut \uXXXX escape would not decode: drop it until the rest arrives.
    cut = body.rfind("\\u")
    if cut >= 0 and len(body) - cut < 6:
        body = body[:cut]
    try:
        return str(json.loads(f'"{body}"'))
    except json.JSONDecodeError:
        return ""


def submitted_outputs(run: dict[str, Any], outputs: list[dict[str, Any]]) -> dict[str, str]:
    """Check the client's tool outputs against the calls the run waits for.

    Returns each output by its call id; raises :class:`InvalidRequest` unless the run is
    ``requires_action`` and there is exactly one output for every pending call.
    """
    run_id = run["id"]
    if run["status"] != "requires_action" or not run["required_action"]:
        raise InvalidRequest(
            f"Run {run_id} is '{run['status']}'; tool outputs can only be submitted while it is 'requires_action'.",
            param="run_id",
        )
    pending = [c["id"] for c in run["required_action"]["submit_tool_outputs"]["tool_calls"]]
    given: dict[str, str] = {}
    for i, item in enumerate(outputs):
        call_id = item.get("tool_call_id") or ""
        if call_id not in pending:
            raise InvalidRequest(
                f"Unknown tool_call_id {call_id!r}; the run is waiting for: {', '.join(pending)}.",
                param=f"tool_outputs[{i}].tool_call_id",
            )
        if call_id in given:
            raise InvalidRequest(
                f"Two outputs for tool call {call_id}.",
                param=f"tool_outputs[{i}].tool_call_id",
            )
        given[call_id] = item.get("output") or ""
    missing = [c for c in pending if c not in given]
    if missing:
        raise InvalidRequest(
            f"Missing tool outputs for: {', '.join(missing)}. Submit one output for every pending tool call.",
            param="tool_outputs",
        )
    return given


def apply_outputs(step: dict[str, Any], given: dict[str, str]) -> None:
    """Record the outputs ``given`` (by call id) on the function calls of ``step``."""
    for call in step["step_details"]["tool_calls"]:
        if call["type"] == "function" and call["id"] in given:
            call["function"]["output"] = given[call["id"]]
