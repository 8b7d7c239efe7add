"""SDK objects (or their dict form) as view-state items: the reducer's reading side.

Stream events carry the openai SDK's models, and snapshots fetched later carry the same
objects; :func:`field` reads either (or plain dicts, as recorded fixtures hold them), and the
functions here turn a run, a message or a run step into the plain items of :mod:`.view_types`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .view_types import (
    Block,
    Citation,
    FileSearchItem,
    ItemFields,
    MessageItem,
    RunInfo,
    SearchResult,
    TextBlock,
    ToolItem,
    ViewError,
)

__all__ = [
    "block_of",
    "citations_of",
    "error_of",
    "field",
    "item_from_message",
    "items_from_step",
    "run_info",
    "search_fields",
    "tool_item",
]


def field(obj: Any, key: str, default: Any = None) -> Any:
    """``obj[key]`` for dicts, ``obj.key`` for the SDK's models; ``default`` when absent.

    The reducer reads events field by field instead of dumping the SDK's models to dicts:
    a dump per delta would cost more than everything else the widget does with it. (Plain
    ``type`` checks first: an ``isinstance`` against an ABC costs more than the lookup.)
    """
    if type(obj) is dict:
        value = obj.get(key)
    else:
        value = getattr(obj, key, None)
        if value is None and isinstance(obj, Mapping):
            value = obj.get(key)
    return default if value is None else value


def error_of(obj: Any) -> ViewError | None:
    if obj is None:
        return None
    return {"code": str(field(obj, "code", "")), "message": str(field(obj, "message", ""))}


# -- whole objects to view pieces -----------------------------------------------------------


def run_info(run: Any) -> RunInfo:
    """The ``RunInfo`` of a run object (SDK ``Run`` or dict).

    A usage of zero tokens (a run that failed before the model answered) is no usage: the
    view would show "0 tokens" beside the error.
    """
    usage = field(run, "usage")
    if usage is not None and not field(usage, "total_tokens", 0):
        usage = None
    finished = (
        field(run, "completed_at")
        or field(run, "failed_at")
        or field(run, "cancelled_at")
        or field(run, "incomplete_at")
    )
    status = field(run, "status", "queued")
    if finished is None and status == "expired":
        finished = field(run, "expires_at")
    return {
        "id": field(run, "id"),
        "thread_id": field(run, "thread_id"),
        "assistant_id": field(run, "assistant_id"),
        "model": field(run, "model"),
        "status": status,
        "created_at": field(run, "created_at"),
        "started_at": field(run, "started_at"),
        "finished_at": finished,
        "usage": None
        if usage is None
        else {
            "prompt_tokens": field(usage, "prompt_tokens", 0),
            "completion_tokens": field(usage, "completion_tokens", 0),
            "total_tokens": field(usage, "total_tokens", 0),
        },
        "error": error_of(field(run, "last_error")),
    }


def block_of(content: Any) -> Block | None:
    """A message content part (whole or delta) as a block; None for an unknown type."""
    kind = field(content, "type")
    if kind == "text":
        text = field(content, "text")
        block: TextBlock = {"type": "text", "text": field(text, "value", "")}
        citations = citations_of(field(text, "annotations", []))
        if citations:
            block["citations"] = citations
        return block
    if kind == "refusal":
        return {"type": "refusal", "text": field(content, "refusal", "")}
    if kind == "image_file":
        return {"type": "image", "file_id": field(field(content, "image_file"), "file_id", "")}
    if kind == "image_url":
        return {"type": "image_url", "url": field(field(content, "image_url"), "url", "")}
    return None


def citations_of(annotations: Any) -> list[Citation]:
    """The ``file_citation`` annotations of a text part (whole or delta) as citations.

    Other annotations (``file_path``: a file the code interpreter saved) are not citations.
    A delta's annotation may lack its offsets; one without a file id cites nothing.
    """
    citations: list[Citation] = []
    for annotation in annotations or ():
        if field(annotation, "type") != "file_citation":
            continue
        file_id = field(field(annotation, "file_citation"), "file_id")
        if not file_id:
            continue
        start = int(field(annotation, "start_index", 0))
        citations.append(
            {
                "text": str(field(annotation, "text", "")),
                "start": start,
                "end": int(field(annotation, "end_index", start)),
                "file_id": str(file_id),
            }
        )
    return citations


def item_from_message(message: Any) -> MessageItem:
    """The ``message`` item of a message object (SDK ``Message`` or dict)."""
    blocks = [b for b in (block_of(c) for c in field(message, "content", [])) if b is not None]
    return {
        "kind": "message",
        "id": field(message, "id"),
        "run_id": field(message, "run_id"),
        "role": field(message, "role", "assistant"),
        "status": field(message, "status", "completed"),
        "blocks": blocks,
    }


def tool_item(
    call: Any, *, step_id: str | None, index: int, run_id: str | None, status: str
) -> ToolItem:
    """The item of one whole tool call of a step."""
    kind = field(call, "type", "function")
    call_id = field(call, "id") or f"{step_id}:{index}"
    if kind == "code_interpreter":
        ci = field(call, "code_interpreter", {})
        outputs = field(ci, "outputs", [])
        return {
            "kind": "code",
            "id": call_id,
            "run_id": run_id,
            "step_id": step_id,
            "index": index,
            "code": field(ci, "input", ""),
            "logs": "".join(field(o, "logs", "") for o in outputs if field(o, "type") == "logs"),
            "images": [
                field(field(o, "image"), "file_id", "") for o in outputs if field(o, "type") == "image"
            ],
            "status": status,
            "error": None,
        }
    if kind == "file_search":
        search: FileSearchItem = {
            "kind": "file_search",
            "id": call_id,
            "run_id": run_id,
            "step_id": step_id,
            "index": index,
            "query": None,
            "ranker": None,
            "score_threshold": None,
            "results": [],
            "status": status,
            "error": None,
        }
        search.update(search_fields(field(call, "file_search", {})))
        return search
    function = field(call, "function", {})
    return {
        "kind": "tool_call",
        "id": call_id,
        "run_id": run_id,
        "step_id": step_id,
        "index": index,
        "name": field(function, "name", ""),
        "arguments": field(function, "arguments", ""),
        "output": field(function, "output"),
        "status": status,
        "error": None,
    }


def search_fields(found: Any) -> ItemFields:
    """The fields of a ``file_search`` item that a call's ``file_search`` (whole or delta) says.

    ``query`` is not in the API's step object: a server that adds it (as ipyassistant's does)
    has it shown. ``content`` is a result's text parts, joined.
    """
    fields: ItemFields = {}
    query = field(found, "query")
    if query is not None:
        fields["query"] = str(query)
    options = field(found, "ranking_options")
    if options is not None:
        fields["ranker"] = field(options, "ranker")
        threshold = field(options, "score_threshold")
        fields["score_threshold"] = None if threshold is None else float(threshold)
    results = field(found, "results")
    if results is not None:
        fields["results"] = [_result(result) for result in results]
    return fields


def _result(result: Any) -> SearchResult:
    parts = field(result, "content")
    content = None
    if parts is not None:
        content = "\n".join(
            str(field(part, "text", "")) for part in parts if field(part, "type", "text") == "text"
        )
    return {
        "file_id": str(field(result, "file_id", "")),
        "file_name": str(field(result, "file_name", "")),
        "score": float(field(result, "score", 0.0)),
        "content": content,
    }


def items_from_step(step: Any) -> list[ToolItem]:
    """The items of a run step (SDK ``RunStep`` or dict): one per tool call, none for a
    ``message_creation`` step."""
    details = field(step, "step_details", {})
    if field(details, "type") != "tool_calls":
        return []
    status = field(step, "status", "in_progress")
    error = error_of(field(step, "last_error"))
    items = []
    for index, call in enumerate(field(details, "tool_calls", [])):
        item = tool_item(
            call,
            step_id=field(step, "id"),
            index=index,
            run_id=field(step, "run_id"),
            status=status,
        )
        item["error"] = error
        items.append(item)
    return items
