"""The view state of a run, and the pure reducer that maps stream events onto it.

Stream events (the openai SDK's ``AssistantStreamEvent`` objects or their dict form
``{"event": ..., "data": ...}``) are folded into a view state by :func:`reduce`, which also
returns the ops that turn the old state into the new one. The shapes of both, and what each op
does, are in :mod:`.view_types`; applying and merging ops is :mod:`.view_ops`. This module is
the front door of all three: widgets import the names they need from here.

Events that carry whole objects (``*.created``, ``*.completed``, run status events, …) are
compared with the state and produce ``item``/``set`` ops only for what differs, so a completed
message that gained an ``image_file`` block only at the end still shows it, while a completed
message whose text was streamed costs a few bytes. Each event name the reducer folds has its
handler in one registry (:data:`HANDLED_EVENTS`); the SDK's other events are listed, with the
reason, in :data:`IGNORED_EVENTS`, and a test keeps the two covering the SDK's event union.

:func:`reduce` never mutates its input; ``apply_ops(old, ops) == new``. The widget, which folds
thousands of deltas, uses :func:`diff_event` and ``apply_ops(..., in_place=True)`` instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

from .view_ops import apply_ops, coalesce
from .view_types import (
    Block,
    Item,
    ItemFields,
    MessageItem,
    Op,
    RunInfo,
    ToolCallItem,
    ToolItem,
    ViewError,
    ViewState,
)

__all__ = [
    "BOUNDARY_EVENTS",
    "HANDLED_EVENTS",
    "IGNORED_EVENTS",
    "Op",
    "ViewState",
    "apply_ops",
    "coalesce",
    "diff_event",
    "empty_state",
    "file_ids",
    "item_from_message",
    "items_from_step",
    "reduce",
    "run_info",
]

#: Events after which a widget sends what it has at once: a block of the view is finished.
BOUNDARY_EVENTS: Final = frozenset(
    {
        "thread.message.completed",
        "thread.message.incomplete",
        "thread.run.step.completed",
        "thread.run.step.failed",
        "thread.run.step.cancelled",
        "thread.run.step.expired",
        "thread.run.requires_action",
        "thread.run.completed",
        "thread.run.failed",
        "thread.run.cancelled",
        "thread.run.expired",
        "thread.run.incomplete",
        "error",
    }
)

#: Run statuses after which nothing of the run is still in progress.
_RUN_ENDED: Final = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})
#: Item statuses that mean "not finished yet".
_OPEN: Final = frozenset({"in_progress", "requires_action"})
_STEP_EVENTS: Final = frozenset(
    {
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.completed",
        "thread.run.step.failed",
        "thread.run.step.cancelled",
        "thread.run.step.expired",
    }
)


def empty_state() -> ViewState:
    """The view state before any event."""
    return {"run": None, "items": [], "error": None}


# -- reading events, SDK objects or dicts alike ---------------------------------------------


def _get(obj: Any, key: str, default: Any = None) -> Any:
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


def _error(obj: Any) -> ViewError | None:
    if obj is None:
        return None
    return {"code": str(_get(obj, "code", "")), "message": str(_get(obj, "message", ""))}


# -- whole objects to view pieces -----------------------------------------------------------


def run_info(run: Any) -> RunInfo:
    """The ``RunInfo`` of a run object (SDK ``Run`` or dict)."""
    usage = _get(run, "usage")
    finished = (
        _get(run, "completed_at")
        or _get(run, "failed_at")
        or _get(run, "cancelled_at")
        or _get(run, "incomplete_at")
    )
    status = _get(run, "status", "queued")
    if finished is None and status == "expired":
        finished = _get(run, "expires_at")
    return {
        "id": _get(run, "id"),
        "thread_id": _get(run, "thread_id"),
        "assistant_id": _get(run, "assistant_id"),
        "model": _get(run, "model"),
        "status": status,
        "created_at": _get(run, "created_at"),
        "started_at": _get(run, "started_at"),
        "finished_at": finished,
        "usage": None
        if usage is None
        else {
            "prompt_tokens": _get(usage, "prompt_tokens", 0),
            "completion_tokens": _get(usage, "completion_tokens", 0),
            "total_tokens": _get(usage, "total_tokens", 0),
        },
        "error": _error(_get(run, "last_error")),
    }


def _block(content: Any) -> Block | None:
    """A message content part (whole or delta) as a block; None for an unknown type."""
    kind = _get(content, "type")
    if kind == "text":
        return {"type": "text", "text": _get(_get(content, "text"), "value", "")}
    if kind == "refusal":
        return {"type": "refusal", "text": _get(content, "refusal", "")}
    if kind == "image_file":
        return {"type": "image", "file_id": _get(_get(content, "image_file"), "file_id", "")}
    if kind == "image_url":
        return {"type": "image_url", "url": _get(_get(content, "image_url"), "url", "")}
    return None


def item_from_message(message: Any) -> MessageItem:
    """The ``message`` item of a message object (SDK ``Message`` or dict)."""
    blocks = [b for b in (_block(c) for c in _get(message, "content", [])) if b is not None]
    return {
        "kind": "message",
        "id": _get(message, "id"),
        "run_id": _get(message, "run_id"),
        "role": _get(message, "role", "assistant"),
        "status": _get(message, "status", "completed"),
        "blocks": blocks,
    }


def _tool_item(
    call: Any, *, step_id: str | None, index: int, run_id: str | None, status: str
) -> ToolItem:
    """The item of one whole tool call of a step."""
    kind = _get(call, "type", "function")
    call_id = _get(call, "id") or f"{step_id}:{index}"
    if kind == "code_interpreter":
        ci = _get(call, "code_interpreter", {})
        outputs = _get(ci, "outputs", [])
        return {
            "kind": "code",
            "id": call_id,
            "run_id": run_id,
            "step_id": step_id,
            "index": index,
            "code": _get(ci, "input", ""),
            "logs": "".join(_get(o, "logs", "") for o in outputs if _get(o, "type") == "logs"),
            "images": [
                _get(_get(o, "image"), "file_id", "") for o in outputs if _get(o, "type") == "image"
            ],
            "status": status,
            "error": None,
        }
    if kind == "file_search":
        found = _get(call, "file_search", {})
        options = _get(found, "ranking_options")
        results = _get(found, "results")
        name = "file_search"
        arguments = "" if options is None else _dumps(options)
        output = None if results is None else f"{len(results)} result(s)"
    else:
        function = _get(call, "function", {})
        name = _get(function, "name", "")
        arguments = _get(function, "arguments", "")
        output = _get(function, "output")
    return {
        "kind": "tool_call",
        "id": call_id,
        "run_id": run_id,
        "step_id": step_id,
        "index": index,
        "name": name,
        "arguments": arguments,
        "output": output,
        "status": status,
        "error": None,
    }


def _dumps(value: Any) -> str:
    if not isinstance(value, Mapping) and hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return json.dumps(value, ensure_ascii=False)


def items_from_step(step: Any) -> list[ToolItem]:
    """The items of a run step (SDK ``RunStep`` or dict): one per tool call, none for a
    ``message_creation`` step."""
    details = _get(step, "step_details", {})
    if _get(details, "type") != "tool_calls":
        return []
    status = _get(step, "status", "in_progress")
    error = _error(_get(step, "last_error"))
    items = []
    for index, call in enumerate(_get(details, "tool_calls", [])):
        item = _tool_item(
            call,
            step_id=_get(step, "id"),
            index=index,
            run_id=_get(step, "run_id"),
            status=status,
        )
        item["error"] = error
        items.append(item)
    return items


# -- finding things in a state ----------------------------------------------------------------


def _find(state: ViewState, item_id: str) -> Item | None:
    # Search from the end: the item an event targets is nearly always one of the last.
    for item in reversed(state["items"]):
        if item["id"] == item_id:
            return item
    return None


def _find_message(state: ViewState, message_id: str) -> MessageItem | None:
    item = _find(state, message_id)
    return item if item is not None and item["kind"] == "message" else None


def _find_call(state: ViewState, step_id: str | None, index: int) -> ToolItem | None:
    for item in reversed(state["items"]):
        if item["kind"] != "message" and item["step_id"] == step_id and item["index"] == index:
            return item
    return None


def _diff_item(old: Item | None, new: Item) -> list[Op]:
    """The ops that turn ``old`` (or nothing) into ``new``."""
    if old is None or old["kind"] != new["kind"]:
        return [{"op": "item", "item": new}]
    before: Mapping[str, object] = old
    fields = {key: value for key, value in new.items() if before.get(key) != value}
    return [{"op": "set", "id": new["id"], "fields": cast(ItemFields, fields)}] if fields else []


# -- the reducer -------------------------------------------------------------------------------


def _event_name(event: Any) -> str:
    return str(_get(event, "event", ""))


def diff_event(state: ViewState, event: Any) -> list[Op]:
    """The ops that one stream event makes on ``state`` (which is only read)."""
    reducer = _REDUCERS.get(_event_name(event))
    # IGNORED_EVENTS, and events of later API versions: nothing to show.
    return [] if reducer is None else reducer(state, _get(event, "data"))


def _message(state: ViewState, message: Any) -> list[Op]:
    return _diff_item(_find(state, _get(message, "id")), item_from_message(message))


def _message_delta(state: ViewState, data: Any) -> list[Op]:
    message_id = _get(data, "id")
    item = _find_message(state, message_id)
    ops: list[Op] = []
    if item is None:  # a delta before its message.created breaks the wire contract; show it
        item = {
            "kind": "message",
            "id": message_id,
            "run_id": _get(state.get("run") or {}, "id"),
            "role": "assistant",
            "status": "in_progress",
            "blocks": [],
        }
        ops.append({"op": "item", "item": item})
    blocks = list(item["blocks"])  # the blocks as the ops so far leave them
    for part in _get(_get(data, "delta"), "content", []):
        index = _get(part, "index", 0)
        block = _block(part)
        if block is None:
            continue
        current = blocks[index] if index < len(blocks) else None
        if (
            (block["type"] == "text" or block["type"] == "refusal")
            and current is not None
            and (current["type"] == "text" or current["type"] == "refusal")
            and current["type"] == block["type"]
        ):
            if block["text"]:
                ops.append({"op": "text", "id": message_id, "index": index, "text": block["text"]})
                grown = current.copy()
                grown["text"] = current["text"] + block["text"]
                blocks[index] = grown
            continue
        ops.append({"op": "block", "id": message_id, "index": index, "block": block})
        while len(blocks) < index:  # as apply_ops pads a gap
            blocks.append({"type": "text", "text": ""})
        if index < len(blocks):
            blocks[index] = block
        else:
            blocks.append(block)
    if ops and ops[0]["op"] == "item":
        # Fold the first delta into the new item: one op instead of several.
        return [{"op": "item", "item": {**item, "blocks": blocks}}]
    return ops


def _step_delta(state: ViewState, data: Any) -> list[Op]:
    step_id = _get(data, "id")
    details = _get(_get(data, "delta"), "step_details")
    if _get(details, "type") != "tool_calls":
        return []
    ops: list[Op] = []
    run_id = _get(state.get("run") or {}, "id")
    for call in _get(details, "tool_calls", []):
        index = _get(call, "index", 0)
        item = _find_call(state, step_id, index)
        if item is None and _get(call, "id"):
            found = _find(state, _get(call, "id"))
            item = found if found is not None and found["kind"] != "message" else None
        if item is None:
            new = _tool_item(
                call, step_id=step_id, index=index, run_id=run_id, status="in_progress"
            )
            ops.append({"op": "item", "item": new})
            continue
        if _get(call, "type") == "code_interpreter" or item["kind"] == "code":
            ops.extend(_code_delta(item, _get(call, "code_interpreter", {})))
            continue
        ops.extend(_function_delta(item, _get(call, "function")))
    return ops


def _code_delta(item: ToolItem, ci: Any) -> list[Op]:
    """The ops of one code-interpreter call's delta: code, logs, and new images."""
    item_id = item["id"]
    ops: list[Op] = []
    if _get(ci, "input"):
        ops.append({"op": "append", "id": item_id, "field": "code", "text": _get(ci, "input")})
    images = list(item["images"]) if item["kind"] == "code" else []
    for output in _get(ci, "outputs", []):
        if _get(output, "type") == "logs" and _get(output, "logs"):
            ops.append(
                {"op": "append", "id": item_id, "field": "logs", "text": _get(output, "logs")}
            )
        elif _get(output, "type") == "image":
            file_id = _get(_get(output, "image"), "file_id")
            if file_id and file_id not in images:
                images.append(file_id)
                ops.append({"op": "set", "id": item_id, "fields": {"images": list(images)}})
    return ops


def _function_delta(item: ToolCallItem, function: Any) -> list[Op]:
    """The ops of one function call's delta: its name, arguments and output as they come."""
    if function is None:
        return []
    item_id = item["id"]
    ops: list[Op] = []
    if _get(function, "name") and _get(function, "name") != item["name"]:
        ops.append({"op": "set", "id": item_id, "fields": {"name": _get(function, "name")}})
    if _get(function, "arguments"):
        ops.append(
            {
                "op": "append",
                "id": item_id,
                "field": "arguments",
                "text": _get(function, "arguments"),
            }
        )
    if _get(function, "output") is not None and _get(function, "output") != item["output"]:
        ops.append({"op": "set", "id": item_id, "fields": {"output": _get(function, "output")}})
    return ops


def _step(state: ViewState, step: Any) -> list[Op]:
    ops: list[Op] = []
    for new in items_from_step(step):
        old = _find(state, new["id"]) or _find_call(state, new["step_id"], new["index"])
        if (
            old is not None
            and old["status"] == "requires_action"
            and new["status"] == "in_progress"
        ):
            new["status"] = "requires_action"  # a step.in_progress replayed after the run paused
        if old is not None:
            # Keep the id the view knows: a call first seen without an id (which breaks the
            # wire contract) has a provisional one, "step_id:index".
            new["id"] = old["id"]
        ops.extend(_diff_item(old, new))
    return ops


def _run(state: ViewState, run: Any) -> list[Op]:
    info = run_info(run)
    ops: list[Op] = []
    if info != state.get("run"):
        ops.append({"op": "run", "run": info})
    status = info["status"]
    if status == "requires_action":
        action = _get(_get(run, "required_action"), "submit_tool_outputs")
        for index, call in enumerate(_get(action, "tool_calls", [])):
            item = _find(state, _get(call, "id"))
            if item is None:  # the calls were never streamed as a step: show them anyway
                new = _tool_item(
                    call, step_id=None, index=index, run_id=info["id"], status="requires_action"
                )
                ops.append({"op": "item", "item": new})
            elif item["status"] == "in_progress":
                ops.append({"op": "set", "id": item["id"], "fields": {"status": "requires_action"}})
    elif status in _RUN_ENDED:
        # A run that ends leaves nothing in progress: stop the spinners of whatever the server
        # did not close itself (a cancelled run's open message or tool call).
        final = "incomplete" if status == "completed" else status
        for item in state["items"]:
            if item["run_id"] == info["id"] and item["status"] in _OPEN:
                end = "incomplete" if item["kind"] == "message" else final
                ops.append({"op": "set", "id": item["id"], "fields": {"status": end}})
    return ops


def _stream_error(state: ViewState, data: Any) -> list[Op]:
    error = _error(data)
    return [] if error == state.get("error") else [{"op": "error", "error": error}]


#: The reducer of each event name it folds: whole messages and their deltas, steps and their
#: deltas, the run's status events (a run object each) and the stream's ``error``.
_REDUCERS: Final[dict[str, Callable[[ViewState, Any], list[Op]]]] = {
    "thread.message.created": _message,
    "thread.message.in_progress": _message,
    "thread.message.delta": _message_delta,
    "thread.message.completed": _message,
    "thread.message.incomplete": _message,
    **dict.fromkeys(_STEP_EVENTS, _step),
    "thread.run.step.delta": _step_delta,
    "thread.run.created": _run,
    "thread.run.queued": _run,
    "thread.run.in_progress": _run,
    "thread.run.requires_action": _run,
    "thread.run.completed": _run,
    "thread.run.incomplete": _run,
    "thread.run.failed": _run,
    "thread.run.cancelling": _run,
    "thread.run.cancelled": _run,
    "thread.run.expired": _run,
    "error": _stream_error,
}

#: Every event name the reducer folds into the view.
HANDLED_EVENTS: Final = frozenset(_REDUCERS)

#: The SDK's stream events that the reducer leaves out on purpose, each with its reason.
#: (A test fails when the SDK's ``AssistantStreamEvent`` has an event in neither set.)
IGNORED_EVENTS: Final = frozenset(
    {
        # A new thread has nothing to show: its messages and runs arrive as their own events.
        "thread.created",
    }
)


def reduce(state: ViewState, event: Any) -> tuple[ViewState, list[Op]]:
    """Fold one stream event into ``state``: returns the new state and the ops between them.

    ``state`` is not modified (the new state shares the unchanged parts with it), and
    ``apply_ops(state, ops)`` equals the new state. ``event`` is an ``AssistantStreamEvent``
    of the openai SDK or its dict form ``{"event": name, "data": {...}}``.
    """
    ops = diff_event(state, event)
    return (apply_ops(state, ops) if ops else state), ops


def file_ids(state: ViewState) -> list[str]:
    """Every file id the state shows as an image, in order of appearance."""
    found: list[str] = []
    for item in state["items"]:
        if item["kind"] == "message":
            found.extend(b["file_id"] for b in item["blocks"] if b["type"] == "image")
        elif item["kind"] == "code":
            found.extend(item["images"])
    return list(dict.fromkeys(found))
