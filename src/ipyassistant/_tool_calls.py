"""Calling the function tools a run asks for, with approval where a tool needs it.

When the server stops a run at ``requires_action``, :func:`call_tools` calls the tools the
model asked for, concurrently (sync tools in worker threads), asking for approval one call at a
time, and returns their outputs for the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from openai.types.beta.threads import Run as RunObject
from openai.types.beta.threads.run_submit_tool_outputs_params import ToolOutput

from . import approval
from ._portal import Interrupt
from .exceptions import EndRun
from .tools import FunctionTool, Tool

__all__ = ["call_tools"]


async def call_tools(
    run: RunObject, tools: Iterable[Tool], policy: approval.Policy, approver: approval.Approver
) -> list[ToolOutput]:
    """Call the tools ``run`` waits for and return their outputs, in the order of the calls.

    An unknown tool and a refused call answer the model with a message. Raises the first
    interrupt among the calls, else their first ``EndRun``, else their first other failure.
    """
    assert run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    by_name = {t.name: t for t in tools if isinstance(t, FunctionTool)}
    asking = asyncio.Lock()  # one question at a time, in the order of the calls

    async def call(call_id: str, name: str, arguments: str) -> str:
        tool = by_name.get(name)
        if tool is None:
            known = ", ".join(sorted(by_name)) or "none"
            return f"Error: this run has no tool named {name!r} (its tools: {known})."
        if tool.approve:
            async with asking:
                refusal = await approval.check(
                    tool, _approval_request(run, call_id, name, arguments), policy, approver
                )
            if refusal is not None:
                return refusal
        return await tool.invoke(arguments)

    results = await asyncio.gather(
        *(call(c.id, c.function.name, c.function.arguments) for c in calls),
        return_exceptions=True,
    )
    # An interrupt wins over EndRun, which wins over any other failure.
    for kind in (Interrupt, EndRun, BaseException):
        for result in results:
            if isinstance(result, kind):
                raise result
    return [
        ToolOutput(tool_call_id=c.id, output=str(result))
        for c, result in zip(calls, results, strict=True)
    ]


def _approval_request(
    run: RunObject, call_id: str, name: str, arguments: str
) -> approval.ApprovalRequest:
    return approval.ApprovalRequest(
        tool=name,
        arguments=arguments,
        call_id=call_id,
        run_id=run.id,
        expires_at=float(run.expires_at) if run.expires_at else None,
    )
