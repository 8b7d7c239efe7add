"""The view state of a run, and the pure reducer that maps stream events onto it.

Stream events (the openai SDK's ``AssistantStreamEvent`` objects or their dict form
``{"event": ..., "data": ...}``) are folded into a view state by :func:`reduce`, which also
returns the ops that turn the old state into the new one. The shapes of both, and what each op
does, are in :mod:`.view_types`; applying and merging ops is :mod:`.view_ops`; reading SDK
objects into items is :mod:`.view_items`. This module is the front door of all four: widgets
import the names they need from here.

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

from collections.abc import Callable, Mapping
from typing import Any, Final, cast

from .view_items import (
    block_of,
    error_of,
    field,
    item_from_message,
    items_from_step,
    run_info,
    search_fields,
    tool_item,
)
from .view_ops import apply_ops, coalesce
from .view_types import (
    Citation,
    FileSearchItem,
    Item,
    ItemFields,
    MessageItem,
    Op,
    TextBlock,
    ToolCallItem,
    ToolItem,
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
    return str(field(event, "event", ""))


def diff_event(state: ViewState, event: Any) -> list[Op]:
    """The ops that one stream event makes on ``state`` (which is only read)."""
    reducer = _REDUCERS.get(_event_name(event))
    # IGNORED_EVENTS, and events of later API versions: nothing to show.
    return [] if reducer is None else reducer(state, field(event, "data"))


def _message(state: ViewState, message: Any) -> list[Op]:
    return _diff_item(_find(state, field(message, "id")), item_from_message(message))


def _message_delta(state: ViewState, data: Any) -> list[Op]:
    message_id = field(data, "id")
    item = _find_message(state, message_id)
    ops: list[Op] = []
    if item is None:  # a delta before its message.created breaks the wire contract; show it
        item = {
            "kind": "message",
            "id": message_id,
            "run_id": field(state.get("run") or {}, "id"),
            "role": "assistant",
            "status": "in_progress",
            "blocks": [],
        }
        ops.append({"op": "item", "item": item})
    blocks = list(item["blocks"])  # the blocks as the ops so far leave them
    for part in field(field(data, "delta"), "content", []):
        index = field(part, "index", 0)
        block = block_of(part)
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
            if block["type"] == "text" and block.get("citations"):
                cited = _cite(cast(TextBlock, blocks[index]), block.get("citations", []))
                if cited is not None:  # annotations come as deltas too (when the text is done)
                    ops.append({"op": "block", "id": message_id, "index": index, "block": cited})
                    blocks[index] = cited
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


def _cite(block: TextBlock, citations: list[Citation]) -> TextBlock | None:
    """``block`` with the ``citations`` it does not have yet added; None when it has them all."""
    known = block.get("citations", [])
    new = [citation for citation in citations if citation not in known]
    return {**block, "citations": [*known, *new]} if new else None


def _step_delta(state: ViewState, data: Any) -> list[Op]:
    step_id = field(data, "id")
    details = field(field(data, "delta"), "step_details")
    if field(details, "type") != "tool_calls":
        return []
    ops: list[Op] = []
    run_id = field(state.get("run") or {}, "id")
    for call in field(details, "tool_calls", []):
        index = field(call, "index", 0)
        item = _find_call(state, step_id, index)
        if item is None and field(call, "id"):
            found = _find(state, field(call, "id"))
            item = found if found is not None and found["kind"] != "message" else None
        if item is None:
            new = tool_item(
                call, step_id=step_id, index=index, run_id=run_id, status="in_progress"
            )
            ops.append({"op": "item", "item": new})
            continue
        if item["kind"] == "file_search":
            ops.extend(_search_delta(item, field(call, "file_search")))
        elif field(call, "type") == "code_interpreter" or item["kind"] == "code":
            ops.extend(_code_delta(item, field(call, "code_interpreter", {})))
        else:
            ops.extend(_function_delta(item, field(call, "function")))
    return ops


def _search_delta(item: FileSearchItem, found: Any) -> list[Op]:
    """The ops of one file search call's delta: the fields it says that changed."""
    if found is None:
        return []
    before: Mapping[str, object] = item
    fields = {key: value for key, value in search_fields(found).items() if before.get(key) != value}
    return [{"op": "set", "id": item["id"], "fields": cast(ItemFields, fields)}] if fields else []


def _code_delta(item: ToolItem, ci: Any) -> list[Op]:
    """The ops of one code-interpreter call's delta: code, logs, and new images."""
    item_id = item["id"]
    ops: list[Op] = []
    if field(ci, "input"):
        ops.append({"op": "append", "id": item_id, "field": "code", "text": field(ci, "input")})
    images = list(item["images"]) if item["kind"] == "code" else []
    for output in field(ci, "outputs", []):
        if field(output, "type") == "logs" and field(output, "logs"):
            ops.append(
                {"op": "append", "id": item_id, "field": "logs", "text": field(output, "logs")}
            )
        elif field(output, "type") == "image":
            file_id = field(field(output, "image"), "file_id")
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
    if field(function, "name") and field(function, "name") != item["name"]:
        ops.append({"op": "set", "id": item_id, "fields": {"name": field(function, "name")}})
    if field(function, "arguments"):
        ops.append(
            {
                "op": "append",
                "id": item_id,
                "field": "arguments",
                "text": field(function, "arguments"),
            }
        )
    if field(function, "output") is not None and field(function, "output") != item["output"]:
        ops.append({"op": "set", "id": item_id, "fields": {"output": field(function, "output")}})
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
        action = field(field(run, "required_action"), "submit_tool_outputs")
        for index, call in enumerate(field(action, "tool_calls", [])):
            item = _find(state, field(call, "id"))
            if item is None:  # the calls were never streamed as a step: show them anyway
                new = tool_item(
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
    error = error_of(data)
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
