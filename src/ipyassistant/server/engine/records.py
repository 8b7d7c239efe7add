"""The run's records: its messages and steps, opened and closed with their events; its end.

Every write here is one transaction, and every change to the run itself is conditional on the
status the engine last saw (:func:`save`, :func:`finish`): when another request changed it
(a ``cancelling``), nothing is written and the caller stops.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .. import objects
from ..events import EventSink
from ..store import ACTIVE_RUN_STATUSES, Store, Tx, now
from .citations import CitationStream, cite_saved_files, flush_text
from .segment import Segment
from .stopping import Stopped

__all__ = [
    "add_usage",
    "close_message",
    "complete_step",
    "end",
    "finish",
    "message_content",
    "open_message",
    "open_tool_step",
    "require_action",
    "save",
    "usage",
]

#: The event of a step that ends with the run's final status.
_STEP_EVENT = {
    "cancelled": "cancelled",
    "failed": "failed",
    "expired": "expired",
    "completed": "completed",
}
#: The ``incomplete_details.reason`` of a message left open when the run ends with a status.
_MESSAGE_REASON = {
    "cancelled": "run_cancelled",
    "failed": "run_failed",
    "expired": "run_expired",
    "incomplete": "max_tokens",
}


def usage(prompt: int = 0, completion: int = 0) -> dict[str, int]:
    """A ``usage`` object as runs and steps hold it."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def add_usage(total: dict[str, int] | None, extra: dict[str, int]) -> dict[str, int]:
    """``total`` (or nothing yet) plus ``extra``."""
    total = total or usage()
    return usage(
        total["prompt_tokens"] + extra["prompt_tokens"],
        total["completion_tokens"] + extra["completion_tokens"],
    )


# -- messages and steps -------------------------------------------------------------------


async def open_message(store: Store, seg: Segment) -> None:
    """Start an assistant message and its ``message_creation`` step; the text streams next."""
    run = seg.run
    message = objects.message_object(
        run["thread_id"],
        "assistant",
        [],
        status="in_progress",
        assistant_id=run["assistant_id"],
        run_id=run["id"],
    )
    step = objects.step_object(
        run, {"type": "message_creation", "message_creation": {"message_id": message["id"]}}
    )
    async with store.tx() as tx:
        await tx.insert("run_step", step)
        await tx.insert("message", message)
    seg.message, seg.message_step, seg.text = message, step, []
    seg.citations = CitationStream(seg.sources) if seg.sources else None
    seg.sink.emit("thread.run.step.created", step)
    seg.sink.emit("thread.run.step.in_progress", step)
    seg.sink.emit("thread.message.created", message)
    seg.sink.emit("thread.message.in_progress", message)


def message_content(seg: Segment) -> list[dict[str, Any]]:
    """The open message's content blocks: its text (with citations), then its images."""
    content = [objects.text_part("".join(seg.text))] if seg.text else []
    if content and seg.annotations:
        content[0]["text"]["annotations"] = seg.annotations
    content += [
        {"type": "image_file", "image_file": {"file_id": f, "detail": "auto"}} for f in seg.images
    ]
    return content


async def close_message(
    store: Store,
    seg: Segment,
    status: str,
    step_usage: dict[str, int] | None,
    tx: Tx | None = None,
) -> None:
    """Finish the open message and its step (in ``tx``, or a transaction of its own)."""
    message, step = seg.message, seg.message_step
    assert message is not None and step is not None
    flush_text(seg)
    cite_saved_files(seg)
    t = now()
    message["content"] = message_content(seg)
    message["status"] = status
    if status == "completed":
        message["completed_at"] = t
    else:
        message["incomplete_at"] = t
        message["incomplete_details"] = {"reason": "max_tokens"}
    step.update(status="completed", completed_at=t, usage=step_usage or usage())
    async with contextlib.AsyncExitStack() as stack:
        if tx is None:
            tx = await stack.enter_async_context(store.tx())
        await tx.update("message", message)
        await tx.update("run_step", step)
    seg.message = seg.message_step = seg.citations = None
    seg.images, seg.annotations = [], []
    seg.sink.emit(f"thread.message.{status}", message)
    seg.sink.emit("thread.run.step.completed", step)


async def open_tool_step(store: Store, seg: Segment) -> dict[str, Any]:
    """Start a ``tool_calls`` step; its calls stream into it next."""
    step = objects.step_object(seg.run, {"type": "tool_calls", "tool_calls": []})
    async with store.tx() as tx:
        await tx.insert("run_step", step)
    seg.sink.emit("thread.run.step.created", step)
    seg.sink.emit("thread.run.step.in_progress", step)
    return step


async def complete_step(store: Store, seg: Segment, step: dict[str, Any]) -> None:
    """Mark a tool-calls step whose calls all ran here as completed."""
    step.update(status="completed", completed_at=now())
    async with store.tx() as tx:
        await tx.update("run_step", step)
    seg.sink.emit("thread.run.step.completed", step)


# -- the run ------------------------------------------------------------------------------


async def save(store: Store, seg: Segment, **changes: Any) -> None:
    """Write changes to the run, unless someone else changed its status meanwhile.

    Raises :class:`Stopped` in that case: the other writer was a cancel.
    """
    run = seg.run
    expected = run["status"]
    async with store.tx() as tx:
        if not await tx.update_run({**run, **changes}, expected):
            raise Stopped
    run.update(changes)


async def require_action(
    store: Store,
    seg: Segment,
    step: dict[str, Any],
    functions: list[dict[str, Any]],
    expiry_seconds: float,
) -> None:
    """Hand the function calls of ``step`` to the client: the run waits in ``requires_action``.

    It expires ``expiry_seconds`` from now unless the outputs are submitted.
    """
    required = {
        "type": "submit_tool_outputs",
        "submit_tool_outputs": {
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {
                        "name": c["function"]["name"],
                        "arguments": c["function"]["arguments"],
                    },
                }
                for c in functions
            ]
        },
    }
    async with store.tx() as tx:
        await tx.update("run_step", step)
    await save(
        store,
        seg,
        status="requires_action",
        required_action=required,
        expires_at=now() + int(expiry_seconds),
    )
    seg.sink.emit("thread.run.requires_action", seg.run)


async def finish(
    tx: Tx,
    run: dict[str, Any],
    status: str,
    sink: EventSink,
    *,
    error: tuple[str, str] | None = None,
    reason: str | None = None,
) -> bool:
    """Move ``run`` to a final status with its open steps and messages; release the lock.

    Returns False (changing nothing) when the run's status changed underneath.
    """
    expected = run["status"]
    t = now()
    step_status = "completed" if status in ("completed", "incomplete") else status
    # The run first: when its status changed underneath, nothing else is written or emitted.
    ended = {**run, "status": status, "required_action": None}
    if status == "completed":
        ended.update(completed_at=t, expires_at=None)
    elif status == "cancelled":
        ended.update(cancelled_at=t, expires_at=None)
    elif status == "failed":
        ended.update(
            failed_at=t,
            expires_at=None,
            last_error={"code": error[0], "message": error[1]} if error else None,
        )
    elif status == "incomplete":
        ended.update(incomplete_details={"reason": reason}, expires_at=None)
    if ended["usage"] is None:
        ended["usage"] = usage()
    if not await tx.update_run(ended, expected):
        return False
    run.update(ended)
    open_steps, open_messages = await tx.open_records(run["id"])
    for step in open_steps:
        step["status"] = step_status
        step[f"{step_status}_at" if step_status != "expired" else "expired_at"] = t
        if error:
            step["last_error"] = {"code": error[0], "message": error[1]}
        if step["usage"] is None:
            step["usage"] = usage()
        await tx.update("run_step", step)
        sink.emit(f"thread.run.step.{_STEP_EVENT[step_status]}", step)
    for message in open_messages:
        message.update(
            status="incomplete",
            incomplete_at=t,
            incomplete_details={"reason": _MESSAGE_REASON.get(status, "run_failed")},
        )
        await tx.update("message", message)
        sink.emit("thread.message.incomplete", message)
    await tx.unlock_thread(run["thread_id"], run["id"])
    sink.emit(f"thread.run.{status}", run)
    return True


async def end(
    store: Store,
    seg: Segment,
    status: str,
    *,
    error: tuple[str, str] | None = None,
    reason: str | None = None,
    message: tuple[str, dict[str, int]] | None = None,
    run_usage: dict[str, int] | None = None,
) -> None:
    """End the segment's run with ``status``, from whatever state the database holds now.

    ``message`` (status, step usage) finishes the open message first, in the same
    transaction; otherwise an open message keeps its text and ends ``incomplete``.
    ``run_usage`` is the run's usage, if it changed.
    """
    async with store.tx() as tx:
        # Locked until this transaction ends: a cancel that comes meanwhile waits, then finds
        # the run ended, instead of changing it between this read and the update in finish.
        run = await tx.get("run", seg.run["id"], lock=True)
        if run["status"] not in ACTIVE_RUN_STATUSES:
            return
        if run_usage is not None:
            run["usage"] = run_usage
        if seg.message is not None and message is not None:
            await close_message(store, seg, *message, tx=tx)
        elif seg.message is not None:
            flush_text(seg)
            seg.message["content"] = message_content(seg)
            await tx.update("message", seg.message)
        if not await finish(tx, run, status, seg.sink, error=error, reason=reason):
            return
    seg.run = run
