"""Approval of tool calls: which calls wait for the user, who answers, and what the model reads.

A function tool made with ``@tool(approve=True)`` (and the notebook's ``run_in_notebook``)
runs only once the user approves each call. The policy decides whether to ask:

- ``"ask"`` (the default): ask the user; where no one can answer (a script without a terminal,
  a kernel executing without stdin such as nbclient or papermill) the call is denied at once,
  with an output that says why, so that nothing ever hangs;
- ``"always"``: run such calls without asking;
- ``"never"``: deny them without asking.

It comes from ``Run(approve=…)``, else ``Assistant(approve=…)``, else ``IPYASSISTANT_APPROVE``
(the magics' ``%config AssistantMagics.approve`` passes it to their runs). The one who answers
is an :data:`Approver`: ``Run(approver=…)``, else the notebook's (Approve/Deny buttons on the
call's card in the RunView or ChatPanel showing the run, or a y/n prompt over the kernel's stdin
channel where no view shows it; :mod:`ipyassistant.jupyter.approval`), else a prompt in the
terminal. A call waiting for an answer
keeps the run in ``requires_action``; the wait ends at the run's expiry (an unanswered call is
denied). A denied call is not made: the model reads an output saying so, and the run goes on.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, cast

from . import _hooks
from .exceptions import UsageError
from .tools import FunctionTool

__all__ = [
    "POLICIES",
    "ApprovalRequest",
    "Approver",
    "Decision",
    "Policy",
    "check",
    "default_approver",
    "resolve_policy",
    "terminal_approver",
]

Policy = Literal["ask", "always", "never"]
#: The policies, the default first.
POLICIES: tuple[Policy, ...] = ("ask", "always", "never")
#: How long an answer may take when the run names no expiry.
DEFAULT_WAIT_SECONDS = 600.0


def check_policy(value: str, where: str = "approve") -> Policy:
    """``value`` as a policy (raises UsageError naming ``where`` if it is none)."""
    if value not in POLICIES:
        raise UsageError(f"{where} must be one of {', '.join(POLICIES)}, not {value!r}")
    return cast(Policy, value)


def resolve_policy(*choices: str | None) -> Policy:
    """The first policy given in ``choices``, else ``IPYASSISTANT_APPROVE``, else ``"ask"``."""
    for choice in choices:
        if choice is not None:
            return check_policy(choice)
    from_env = os.environ.get("IPYASSISTANT_APPROVE", "").strip().lower()
    return check_policy(from_env, "IPYASSISTANT_APPROVE") if from_env else "ask"


@dataclass(frozen=True)
class ApprovalRequest:
    """A call waiting for approval: the tool, its JSON arguments, and when the wait ends."""

    tool: str
    arguments: str
    call_id: str
    run_id: str
    #: When the run expires (seconds since the epoch), if the server said.
    expires_at: float | None = None

    def seconds_left(self) -> float:
        """How long an answer may still take."""
        if self.expires_at is None:
            return DEFAULT_WAIT_SECONDS
        return max(0.0, self.expires_at - time.time())

    def describe(self) -> str:
        """The call as a person reads it: the function and its arguments (code as code)."""
        try:
            arguments = json.loads(self.arguments or "{}")
        except ValueError:
            return f"{self.tool}({self.arguments})"
        code = arguments.get("code") if isinstance(arguments, dict) else None
        if isinstance(code, str):
            return f"{self.tool} wants to run this code:\n\n{code}\n"
        shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        return f"{self.tool}({shown})"


@dataclass(frozen=True)
class Decision:
    """The user's answer; ``reason`` says why a call was denied without asking them."""

    approved: bool
    reason: str = ""


#: Who answers: given the request, the decision (awaited; a long wait is bounded by the caller).
Approver = Callable[[ApprovalRequest], Awaitable[Decision]]


def default_approver() -> Approver:
    """The notebook's approver in a kernel, else :func:`terminal_approver`."""
    return _hooks.notebook_approver() or terminal_approver


async def terminal_approver(request: ApprovalRequest) -> Decision:
    """Ask in the terminal (``input()``); deny at once when stdin is not a terminal."""
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        return Decision(False, "no one can answer: the program has no terminal to ask in")
    return await asyncio.to_thread(ask_by_input, request, input)


def ask_by_input(request: ApprovalRequest, read: Callable[[str], str]) -> Decision:
    """Ask with ``read`` (``input`` or the kernel's ``raw_input``) until the answer is y or n."""
    prompt = f"{request.describe()}\nApprove this call? [y/n] "
    while True:
        answer = read(prompt).strip().lower()
        if answer in ("y", "yes"):
            return Decision(True)
        if answer in ("n", "no", ""):
            return Decision(False)
        prompt = "Please answer y (approve) or n (deny): "


async def check(
    tool: FunctionTool,
    request: ApprovalRequest,
    policy: Policy,
    approver: Approver,
) -> str | None:
    """``None`` if the call may go ahead, else the output the model reads instead of a result."""
    if not tool.approve or policy == "always":
        return None
    if policy == "never":
        return (
            f"Not run: {tool.name} needs the user's approval, and their policy (approve='never') "
            "denies every such call. Do not call it again; say what you would have done instead."
        )
    try:
        decision = await asyncio.wait_for(approver(request), timeout=request.seconds_left())
    except TimeoutError:
        decision = Decision(False, "no answer came before the run expired")
    if decision.approved:
        return None
    if decision.reason:
        return (
            f"Not run: {tool.name} needs the user's approval, and {decision.reason}. "
            "The call was denied; do not retry it. Say what you would have done, or ask the "
            "user to allow it (approve='always')."
        )
    return (
        f"Not run: the user declined this call of {tool.name}. Do not retry it; ask them what "
        "they want instead."
    )
