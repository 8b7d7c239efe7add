"""Approval of tool calls in a Jupyter kernel: asking over the kernel's stdin channel.

A run that needs an approval runs while its cell executes (a ``%%assistant`` cell, ``say()``),
so the kernel is busy and cannot handle widget messages; it can still ask the front end for a
line of input, as ``input()`` does, over the stdin channel. The question shows the call (for
``run_in_notebook`` its code) and takes ``y`` or ``n``.

A kernel asked to execute without stdin (``allow_stdin`` false: nbclient, papermill, a
front end that cannot answer) denies such calls at once, saying why: nobody would answer; so
does a run that no executing cell started (a chat panel's).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..approval import ApprovalRequest, Approver, Decision, ask_by_input

__all__ = ["NO_CELL", "NO_STDIN", "kernel_approver"]

#: Why a call is denied in a kernel executing without stdin.
NO_STDIN = (
    "no one can answer: this kernel executes without stdin (as under nbclient or papermill), "
    "so it cannot ask (set approve='always' to let such calls run)"
)

#: Why a call is denied in a run that no executing cell started.
NO_CELL = (
    "no one can answer: this run was not started by an executing cell, so there is no prompt "
    "to ask in (ask in a %%assistant cell, or set approve='always' to let such calls run)"
)


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
        # The execute request now running says whether its front end answers input requests.
        if not getattr(kernel, "_allow_stdin", False):
            return Decision(False, NO_STDIN)
        # Only a cell that is executing can ask: a run started by a widget (a chat panel's
        # message) has no cell whose front end would show the question.
        parent = kernel.get_parent("shell") or {}
        if parent.get("header", {}).get("msg_type") != "execute_request":
            return Decision(False, NO_CELL)
        # raw_input finds the cell's request in the context copied into this task and its
        # worker thread; it blocks that thread (not the event loop) until the answer comes.
        return await asyncio.to_thread(ask_by_input, request, kernel.raw_input)

    return approve
