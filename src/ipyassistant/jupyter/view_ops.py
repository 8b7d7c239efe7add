"""Applying view-state ops, and merging queued ones: what the browser does, in Python.

:func:`apply_ops` is the Python twin of ``applyOps`` in ``js/view_state.ts``: the reducer's
invariant ``apply_ops(old, ops) == new`` is what lets a widget send ops instead of states.
:func:`coalesce` merges the ops a widget queued between two patch messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from .view_types import Item, Op, ViewState

__all__ = ["apply_ops", "coalesce"]


def _copy_item(item: Item) -> Item:
    copied = item.copy()
    if copied["kind"] == "message":
        copied["blocks"] = [block.copy() for block in copied["blocks"]]
    elif copied["kind"] == "code":
        copied["images"] = list(copied["images"])
    elif copied["kind"] == "file_search":
        copied["results"] = [result.copy() for result in copied["results"]]
    return copied


def _fields(item: Item) -> dict[str, Any]:
    # ``set`` and ``append`` ops name their field at run time, as in js/view_state.ts.
    return cast("dict[str, Any]", item)


def apply_ops(state: ViewState, ops: Iterable[Op], *, in_place: bool = False) -> ViewState:
    """Apply ops to a view state; returns the result.

    By default ``state`` is left untouched (what is changed is copied first); with
    ``in_place=True`` it is updated and returned, which is what a widget folding thousands of
    deltas wants. Ops whose target item does not exist are ignored, as in the browser.
    """
    if not in_place:
        state = {**state, "items": list(state["items"])}
    items = state["items"]
    copied: set[int] = set()  # ids of the items this call copied already (copy on write)

    def target(item_id: str) -> Item | None:
        for position in range(len(items) - 1, -1, -1):
            item = items[position]
            if item["id"] == item_id:
                if not in_place and id(item) not in copied:
                    item = items[position] = _copy_item(item)
                    copied.add(id(item))
                return item
        return None

    for op in ops:
        if op["op"] == "text":
            item = target(op["id"])
            if item is not None and item["kind"] == "message" and op["index"] < len(item["blocks"]):
                block = item["blocks"][op["index"]]
                if block["type"] == "text" or block["type"] == "refusal":
                    block["text"] += op["text"]
        elif op["op"] == "append":
            item = target(op["id"])
            if item is not None:
                fields = _fields(item)
                fields[op["field"]] = (fields.get(op["field"]) or "") + op["text"]
        elif op["op"] == "item":
            new = _copy_item(op["item"])
            copied.add(id(new))
            for position in range(len(items) - 1, -1, -1):
                if items[position]["id"] == new["id"]:
                    items[position] = new
                    break
            else:
                items.append(new)
        elif op["op"] == "set":
            item = target(op["id"])
            if item is not None:
                fields = _fields(item)
                for key, value in op["fields"].items():
                    fields[key] = _copy_value(value)
        elif op["op"] == "block":
            item = target(op["id"])
            if item is not None and item["kind"] == "message":
                blocks = item["blocks"]
                while len(blocks) < op["index"]:  # a gap breaks the contract; keep indexes right
                    blocks.append({"type": "text", "text": ""})
                if op["index"] < len(blocks):
                    blocks[op["index"]] = op["block"].copy()
                else:
                    blocks.append(op["block"].copy())
        elif op["op"] == "run":
            state["run"] = op["run"].copy()
        elif op["op"] == "error":
            state["error"] = op["error"]
        else:
            raise ValueError(f"unknown view-state op {cast('Any', op)['op']!r}")
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
        if last is not None:
            if (
                last["op"] == "text"
                and op["op"] == "text"
                and last["id"] == op["id"]
                and last["index"] == op["index"]
            ) or (
                last["op"] == "append"
                and op["op"] == "append"
                and last["id"] == op["id"]
                and last["field"] == op["field"]
            ):
                joined = last.copy()
                joined["text"] = last["text"] + op["text"]
                merged[-1] = joined
                continue
            if last["op"] == "set" and op["op"] == "set" and last["id"] == op["id"]:
                merged[-1] = {**last, "fields": {**last["fields"], **op["fields"]}}
                continue
            if last["op"] == op["op"] and op["op"] in ("run", "error"):
                merged[-1] = op
                continue
        merged.append(op)
    return merged
