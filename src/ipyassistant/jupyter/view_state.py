"""The view state of a run, and the pure reducer that maps stream events onto it.

A widget shows a run as a *view state*: plain JSON, small enough to sync and to save in a
notebook. Stream events (the openai SDK's ``AssistantStreamEvent`` objects or their dict form
``{"event": ..., "data": ...}``) are folded into it by :func:`reduce`, which also returns the
*ops* that turn the old state into the new one; the widget sends those ops to the browser
instead of the state, so streaming text costs bytes in proportion to the text, not its square.
``js/run_view.ts`` mirrors these shapes as TypeScript interfaces and applies the same ops.

State::

    {"run": RunInfo | None,       # the latest run shown (None before the first run event)
     "items": [Item, ...],        # in the order they appeared
     "error": Error | None}       # a stream-level ``error`` event (not a failed run)

    RunInfo  = {"id", "thread_id", "assistant_id", "model", "status",
                "created_at", "started_at", "finished_at",      # unix seconds or None
                "usage": {"prompt_tokens", "completion_tokens", "total_tokens"} | None,
                "error": Error | None}                          # the run's last_error
    Error    = {"code": str, "message": str}

    Item is one of
      message:   {"kind": "message", "id", "run_id", "role", "status", "blocks": [Block, ...]}
      tool_call: {"kind": "tool_call", "id", "run_id", "step_id", "index", "name",
                  "arguments", "output": str | None, "status", "error": Error | None}
      code:      {"kind": "code", "id", "run_id", "step_id", "index", "code", "logs",
                  "images": [file_id, ...], "status", "error": Error | None}
    Block is one of {"type": "text", "text"}, {"type": "refusal", "text"},
      {"type": "image", "file_id"}, {"type": "image_url", "url"}

    message status: "in_progress" | "completed" | "incomplete"
    tool_call / code status: "in_progress" | "requires_action" (the run waits for the
      client's output) | "completed" | "failed" | "cancelled" | "expired" | "incomplete"

A ``file_search`` call is a ``tool_call`` item named ``file_search``. The run's
``message_creation`` steps make no item: the message they create is the item.

Ops (each names its target; an op for an unknown item is ignored by the browser, so a view
that missed the start of a stream heals at the next whole item or snapshot)::

    {"op": "run", "run": RunInfo}                        replace the run
    {"op": "error", "error": Error | None}               set the stream error
    {"op": "item", "item": Item}                         replace the item with this id, else append
    {"op": "set", "id", "fields": {...}}                 update some fields of an item
    {"op": "block", "id", "index", "block": Block}       set a message block (append at the end)
    {"op": "text", "id", "index", "text"}                append to a text or refusal block
    {"op": "append", "id", "field", "text"}              append to a string field of an item:
                                                         "arguments", "code" or "logs"

Events that carry whole objects (``*.created``, ``*.completed``, run status events, …) are
compared with the state and produce ``item``/``set`` ops only for what differs, so a completed
message that gained an ``image_file`` block only at the end still shows it, while a completed
message whose text was streamed costs a few bytes.

:func:`reduce` never mutates its input; ``apply_ops(old, ops) == new``. The widget, which folds
thousands of deltas, uses :func:`diff_event` and ``apply_ops(..., in_place=True)`` instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "BOUNDARY_EVENTS",
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

#: A view state (see the module docstring); plain JSON.
ViewState = dict[str, Any]
#: One patch op (see the module docstring); plain JSON.
Op = dict[str, Any]

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


def _error(obj: Any) -> dict[str, Any] | None:
    if obj is None:
        return None
    return {"code": str(_get(obj, "code", "")), "message": str(_get(obj, "message", ""))}


# -- whole objects to view pieces -----------------------------------------------------------


def run_info(run: Any) -> dict[str, Any]:
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


def _block(content: Any) -> dict[str, Any] | None:
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


def item_from_message(message: Any) -> dict[str, Any]:
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
) -> dict[str, Any]:
    """The item of one whole tool call of a step."""
    kind = _get(call, "type", "function")
    call_id = _get(call, "id") or f"{step_id}:{index}"
    base = {"id": call_id, "run_id": run_id, "step_id": step_id, "index": index}
    if kind == "code_interpreter":
        ci = _get(call, "code_interpreter", {})
        outputs = _get(ci, "outputs", [])
        return {
            "kind": "code",
            **base,
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
        return {
            "kind": "tool_call",
            **base,
            "name": "file_search",
            "arguments": "" if options is None else _dumps(options),
            "output": None if results is None else f"{len(results)} result(s)",
            "status": status,
            "error": None,
        }
    function = _get(call, "function", {})
    output = _get(function, "output")
    return {
        "kind": "tool_call",
        **base,
        "name": _get(function, "name", ""),
        "arguments": _get(function, "arguments", ""),
        "output": output,
        "status": status,
        "error": None,
    }


def _dumps(value: Any) -> str:
    if not isinstance(value, Mapping) and hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    return json.dumps(value, ensure_ascii=False)


def items_from_step(step: Any) -> list[dict[str, Any]]:
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


def _find(state: ViewState, item_id: str) -> dict[str, Any] | None:
    # Search from the end: the item an event targets is nearly always one of the last.
    for item in reversed(state["items"]):
        if item["id"] == item_id:
            return item
    return None


def _find_call(state: ViewState, step_id: str, index: int) -> dict[str, Any] | None:
    for item in reversed(state["items"]):
        if item.get("step_id") == step_id and item.get("index") == index:
            return item
    return None


def _diff_item(old: dict[str, Any] | None, new: dict[str, Any]) -> list[Op]:
    """The ops that turn ``old`` (or nothing) into ``new``."""
    if old is None:
        return [{"op": "item", "item": new}]
    if old.get("kind") != new.get("kind"):
        return [{"op": "item", "item": new}]
    fields = {key: value for key, value in new.items() if old.get(key) != value}
    return [{"op": "set", "id": new["id"], "fields": fields}] if fields else []


# -- the reducer -------------------------------------------------------------------------------


def _event_name(event: Any) -> str:
    return str(_get(event, "event", ""))


def diff_event(state: ViewState, event: Any) -> list[Op]:
    """The ops that one stream event makes on ``state`` (which is only read)."""
    name = _event_name(event)
    data = _get(event, "data")
    if name == "thread.message.delta":
        return _message_delta(state, data)
    if name == "thread.run.step.delta":
        return _step_delta(state, data)
    if name.startswith("thread.message."):
        return _diff_item(_find(state, _get(data, "id")), item_from_message(data))
    if name in _STEP_EVENTS:
        return _step(state, data)
    if name.startswith("thread.run."):
        return _run(state, data)
    if name == "error":
        error = _error(data)
        return [] if error == state.get("error") else [{"op": "error", "error": error}]
    return []  # thread.created and events of later API versions: nothing to show


def _message_delta(state: ViewState, data: Any) -> list[Op]:
    message_id = _get(data, "id")
    item = _find(state, message_id)
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
        if current is not None and "text" in block and current.get("type") == block["type"]:
            if block["text"]:
                ops.append({"op": "text", "id": message_id, "index": index, "text": block["text"]})
                blocks[index] = {**current, "text": current["text"] + block["text"]}
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
        first = {**ops[0]["item"], "blocks": blocks}
        return [{"op": "item", "item": first}]
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
            item = _find(state, _get(call, "id"))
        if item is None:
            new = _tool_item(
                call, step_id=step_id, index=index, run_id=run_id, status="in_progress"
            )
            ops.append({"op": "item", "item": new})
            continue
        item_id = item["id"]
        if _get(call, "type") == "code_interpreter" or item["kind"] == "code":
            ci = _get(call, "code_interpreter", {})
            if _get(ci, "input"):
                ops.append(
                    {"op": "append", "id": item_id, "field": "code", "text": _get(ci, "input")}
                )
            images = list(item.get("images", []))
            for output in _get(ci, "outputs", []):
                if _get(output, "type") == "logs" and _get(output, "logs"):
                    ops.append(
                        {
                            "op": "append",
                            "id": item_id,
                            "field": "logs",
                            "text": _get(output, "logs"),
                        }
                    )
                elif _get(output, "type") == "image":
                    file_id = _get(_get(output, "image"), "file_id")
                    if file_id and file_id not in images:
                        images.append(file_id)
                        ops.append({"op": "set", "id": item_id, "fields": {"images": list(images)}})
            continue
        function = _get(call, "function")
        if function is None:
            continue
        if _get(function, "name") and _get(function, "name") != item.get("name"):
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
        if _get(function, "output") is not None and _get(function, "output") != item.get("output"):
            ops.append({"op": "set", "id": item_id, "fields": {"output": _get(function, "output")}})
    return ops


def _step(state: ViewState, step: Any) -> list[Op]:
    ops: list[Op] = []
    for new in items_from_step(step):
        old = _find(state, new["id"]) or _find_call(state, new["step_id"], new["index"])
        if (
            old is not None
            and old.get("status") == "requires_action"
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
            elif item.get("status") == "in_progress":
                ops.append({"op": "set", "id": item["id"], "fields": {"status": "requires_action"}})
    elif status in _RUN_ENDED:
        # A run that ends leaves nothing in progress: stop the spinners of whatever the server
        # did not close itself (a cancelled run's open message or tool call).
        final = "incomplete" if status == "completed" else status
        for item in state["items"]:
            if item.get("run_id") == info["id"] and item.get("status") in _OPEN:
                end = "incomplete" if item["kind"] == "message" else final
                ops.append({"op": "set", "id": item["id"], "fields": {"status": end}})
    return ops


def reduce(state: ViewState, event: Any) -> tuple[ViewState, list[Op]]:
    """Fold one stream event into ``state``: returns the new state and the ops between them.

    ``state`` is not modified (the new state shares the unchanged parts with it), and
    ``apply_ops(state, ops)`` equals the new state. ``event`` is an ``AssistantStreamEvent``
    of the openai SDK or its dict form ``{"event": name, "data": {...}}``.
    """
    ops = diff_event(state, event)
    return (apply_ops(state, ops) if ops else state), ops


# -- applying and merging ops ----------------------------------------------------------------


def _copy_item(item: dict[str, Any]) -> dict[str, Any]:
    copied = dict(item)
    if "blocks" in copied:
        copied["blocks"] = [dict(block) for block in copied["blocks"]]
    if "images" in copied:
        copied["images"] = list(copied["images"])
    return copied


def apply_ops(state: ViewState, ops: Iterable[Op], *, in_place: bool = False) -> ViewState:
    """Apply ops to a view state; returns the result.

    By default ``state`` is left untouched (what is changed is copied first); with
    ``in_place=True`` it is updated and returned, which is what a widget folding thousands of
    deltas wants. Ops whose target item does not exist are ignored, as in the browser.
    """
    if not in_place:
        state = {**state, "items": list(state["items"])}
    items: list[dict[str, Any]] = state["items"]
    copied: set[int] = set()  # ids of the items this call copied already (copy on write)

    def target(item_id: str) -> dict[str, Any] | None:
        for position in range(len(items) - 1, -1, -1):
            item = items[position]
            if item["id"] == item_id:
                if not in_place and id(item) not in copied:
                    item = items[position] = _copy_item(item)
                    copied.add(id(item))
                return item
        return None

    for op in ops:
        kind = op["op"]
        if kind == "text":
            item = target(op["id"])
            if item is not None and op["index"] < len(item["blocks"]):
                block = item["blocks"][op["index"]]
                if "text" in block:
                    block["text"] += op["text"]
        elif kind == "append":
            item = target(op["id"])
            if item is not None:
                item[op["field"]] = (item.get(op["field"]) or "") + op["text"]
        elif kind == "item":
            new = _copy_item(op["item"])
            copied.add(id(new))
            for position in range(len(items) - 1, -1, -1):
                if items[position]["id"] == new["id"]:
                    items[position] = new
                    break
            else:
                items.append(new)
        elif kind == "set":
            item = target(op["id"])
            if item is not None:
                for key, value in op["fields"].items():
                    item[key] = _copy_value(value)
        elif kind == "block":
            item = target(op["id"])
            if item is not None:
                blocks = item["blocks"]
                while len(blocks) < op["index"]:  # a gap breaks the contract; keep indexes right
                    blocks.append({"type": "text", "text": ""})
                if op["index"] < len(blocks):
                    blocks[op["index"]] = dict(op["block"])
                else:
                    blocks.append(dict(op["block"]))
        elif kind == "run":
            state["run"] = dict(op["run"])
        elif kind == "error":
            state["error"] = op["error"]
        else:
            raise ValueError(f"unknown view-state op {kind!r}")
    return state


def _copy_value(value: Any) -> Any:
    # Field values are shared with the op otherwise; ops are kept (queued, recorded) by callers.
    if isinstance(value, list):
        return [dict(v) if isinstance(v, dict) else v for v in value]
    if isinstance(value, dict):
        return dict(value)
    return value


def coalesce(ops: Iterable[Op]) -> list[Op]:
    """Merge adjacent ops that can be merged; applying the result equals applying ``ops``.

    Appends to the same text merge into one; ``set`` ops on the same item merge; a ``run`` op
    replaces an earlier queued ``run`` op when nothing else came between them.
    """
    merged: list[Op] = []
    for op in ops:
        last = merged[-1] if merged else None
        if last is not None and last["op"] == op["op"]:
            kind = op["op"]
            if kind == "text" and last["id"] == op["id"] and last["index"] == op["index"]:
                merged[-1] = {**last, "text": last["text"] + op["text"]}
                continue
            if kind == "append" and last["id"] == op["id"] and last["field"] == op["field"]:
                merged[-1] = {**last, "text": last["text"] + op["text"]}
                continue
            if kind == "set" and last["id"] == op["id"]:
                merged[-1] = {**last, "fields": {**last["fields"], **op["fields"]}}
                continue
            if kind in ("run", "error"):
                merged[-1] = op
                continue
        merged.append(op)
    return merged


def file_ids(state: ViewState) -> list[str]:
    """Every file id the state shows as an image, in order of appearance."""
    found: list[str] = []
    for item in state["items"]:
        if item["kind"] == "message":
            found.extend(b["file_id"] for b in item["blocks"] if b.get("type") == "image")
        elif item["kind"] == "code":
            found.extend(item["images"])
    return list(dict.fromkeys(found))
