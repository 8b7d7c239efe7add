"""Approval of tool calls in a Jupyter kernel: a card with Approve and Deny, else a prompt.

A run shown in a view (a ``%%assistant`` cell's :class:`~.widgets.RunView`, a
:class:`~.chat_panel.ChatPanel`) asks there: the kernel sends the view
``{"type": "approval?", "id", "name", "arguments", "expires_at"}``; the view shows the call (for
``run_in_notebook`` its code) with the buttons Approve and Deny and a countdown to the run's
expiry, and answers ``{"type": "approval", "id", "approved"}``; the kernel then sends
``{"type": "approval-done", "id"}`` so that every view of the widget drops the card. The view
that shows the current run is a context variable, set by its event handler (:func:`showing`):
the run's tool calls happen in the same task, or in tasks copied from it.

Where the answer arrives matters. A ChatPanel's runs are tasks on the kernel's loop, so its
comm messages are handled as usual. A ``%%assistant`` cell blocks the kernel's main thread
until its run ends, so the comm message of a click waits in the queue of the main shell.
ipykernel 7 receives every shell message on its shell-channel thread first, and asks the target
comm there which subshell a ``comm_msg`` goes to (``_reply_subshell_for``); the card's answer is
read at that moment, on that thread, which the cell does not block (:func:`_watch_shell_channel`).
(``jupyter-ui-poll``, the usual way to read widget messages in a busy cell, calls the
``do_one_iteration`` of ipykernel 6, which ipykernel 7 no longer has.) A kernel without that
thread asks a busy cell's questions over the stdin channel instead, as ``input()`` does.

With no view (``event_handler_class=None``, ``%%assistant -q``) a cell asks over stdin. A kernel
asked to execute without stdin (``allow_stdin`` false: nbclient, papermill) and no view that a
person answers denies such calls at once, saying why: nobody would answer.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from ..approval import ApprovalRequest, Approver, Decision, ask_by_input

__all__ = ["NO_CELL", "NO_STDIN", "kernel_approver", "receive", "showing"]

#: Why a call is denied in a kernel executing without stdin.
NO_STDIN = (
    "no one can answer: this kernel executes without stdin (as under nbclient or papermill), "
    "so it cannot ask (set approve='always' to let such calls run)"
)

#: Why a call is denied in a run that no executing cell started and no view shows.
NO_CELL = (
    "no one can answer: this run was not started by an executing cell and no view shows it, "
    "so there is nowhere to ask (ask in a %%assistant cell, or set approve='always')"
)


class ApprovalView(Protocol):
    """A widget that shows approval cards: it sends custom messages and has a comm."""

    comm: Any

    def send(self, content: dict[str, Any], buffers: Any = None) -> None: ...


class _Showing:
    """The view of the current run, and whether the kernel's loop stays free while it runs."""

    def __init__(self, view: ApprovalView, kernel_loop_free: bool) -> None:
        self.view = view
        self.kernel_loop_free = kernel_loop_free


_showing: contextvars.ContextVar[_Showing | None] = contextvars.ContextVar(
    "ipyassistant_approval_view", default=None
)

#: The questions waiting for a card's answer: id -> (the loop that waits, its future).
_pending: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]] = {}
_pending_lock = threading.Lock()


def showing(view: ApprovalView, *, kernel_loop_free: bool = False) -> None:
    """Say that ``view`` shows the current run (call it from the run's event handler).

    ``kernel_loop_free``: the run is a task beside the kernel's loop (a ChatPanel's), so the
    view's messages are handled while it runs and a card can be answered on any kernel.
    """
    current = _showing.get()
    if current is None or current.view is not view:
        _showing.set(_Showing(view, kernel_loop_free))


def receive(content: Any) -> bool:
    """Take a view's answer ``{"type": "approval", "id", "approved"}``; whether it was one.

    Safe from any thread; an answer to a question no longer waiting is ignored.
    """
    if not isinstance(content, Mapping) or content.get("type") != "approval":
        return False
    with _pending_lock:
        waiting = _pending.pop(str(content.get("id")), None)
    if waiting is not None:
        loop, future = waiting
        approved = content.get("approved") is True
        loop.call_soon_threadsafe(_settle, future, approved)
    return True


def _settle(future: asyncio.Future[bool], approved: bool) -> None:
    if not future.done():
        future.set_result(approved)


def _watch_shell_channel(comm: Any) -> bool:
    """Read the view's answers on ipykernel's shell-channel thread; whether this kernel can.

    The kernel asks the target comm of each ``comm_msg`` which subshell handles it, on that
    thread, before the main shell (busy running the cell) sees the message: the answer is taken
    there, and the message then goes its usual way (where it is ignored: already answered).
    """
    route = getattr(comm, "_reply_subshell_for", None)
    if route is None or not callable(route):
        return False
    if getattr(route, "_ipyassistant_watch", False):
        return True

    def watch(data: Any, default: Any) -> Any:
        if isinstance(data, Mapping) and data.get("method") == "custom":
            receive(data.get("content"))
        return route(data, default)

    watch._ipyassistant_watch = True  # type: ignore[attr-defined]
    comm._reply_subshell_for = watch
    return True


def _shell_channel_thread(kernel: Any) -> bool:
    """Whether the kernel receives shell messages on a thread of their own (ipykernel 7)."""
    return getattr(kernel, "shell_channel_thread", None) is not None


async def ask_in_view(view: ApprovalView, request: ApprovalRequest) -> Decision:
    """Show ``request`` as a card in ``view`` and wait for Approve or Deny.

    The wait is bounded by the caller (the run's expiry); cancelling it (Stop, an interrupt)
    or its end withdraws the card.
    """
    question_id = uuid.uuid4().hex
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bool] = loop.create_future()
    with _pending_lock:
        _pending[question_id] = (loop, future)
    try:
        view.send(
            {
                "type": "approval?",
                "id": question_id,
                "name": request.tool,
                "arguments": _arguments(request.arguments),
                "expires_at": request.expires_at,
            }
        )
        return Decision(await future)
    finally:
        with _pending_lock:
            _pending.pop(question_id, None)
        view.send({"type": "approval-done", "id": question_id})


def _arguments(text: str) -> Any:
    """The call's arguments as JSON (the text itself if it does not parse)."""
    try:
        return json.loads(text or "{}")
    except ValueError:
        return text


def _kernel() -> Any:
    """The running ipykernel kernel, or None (a terminal IPython, a plain script)."""
    from IPython import get_ipython

    shell = get_ipython()
    return getattr(shell, "kernel", None)


def kernel_approver() -> Approver | None:
    """The approver of this kernel, or None when this process is no ipykernel kernel."""
    kernel = _kernel()
    if kernel is None:
        return None

    async def approve(request: ApprovalRequest) -> Decision:
        current = _showing.get()
        parent = kernel.get_parent("shell") or {}
        started_by = parent.get("header", {}).get("msg_type")
        # The execute request last received says whether its front end answers input requests;
        # one that does not (nbclient, papermill) has no person to click a card either.
        allow_stdin = bool(getattr(kernel, "_allow_stdin", False))
        if current is not None and getattr(current.view, "comm", None) is not None:
            if current.kernel_loop_free and (started_by == "comm_msg" or allow_stdin):
                return await ask_in_view(current.view, request)  # a person's panel
            if (
                allow_stdin
                and _shell_channel_thread(kernel)
                and _watch_shell_channel(current.view.comm)
            ):
                return await ask_in_view(current.view, request)  # a busy cell's view
        if not allow_stdin:
            return Decision(False, NO_STDIN)
        # Only a cell that is executing can ask over stdin.
        if started_by != "execute_request":
            return Decision(False, NO_CELL)
        # raw_input finds the cell's request in the context copied into this task and its
        # worker thread; it blocks that thread (not the event loop) until the answer comes.
        return await asyncio.to_thread(ask_by_input, request, kernel.raw_input)

    return approve
