"""Approval of tool calls: ``@tool(approve=True)``, the policy, and who answers."""

from __future__ import annotations

import sys

import pytest

from ipyassistant import Assistant, tool
from ipyassistant.approval import ApprovalRequest, Decision, resolve_policy
from ipyassistant.exceptions import ToolDefinitionError, UsageError
from ipyassistant.tools import as_tool

CALLS: list[str] = []


@tool(approve=True)
def delete_files(pattern: str) -> str:
    """Delete the files matching a pattern."""
    CALLS.append(pattern)
    return f"deleted {pattern}"


def outputs(run) -> list[str]:
    return [
        call.function.output
        for step in run.steps
        if step.step_details.type == "tool_calls"
        for call in step.step_details.tool_calls
    ]


def say(ai: Assistant, **kwargs) -> list[str]:
    CALLS.clear()
    run = ai.say('/call delete_files {"pattern": "*.tmp"}', event_handler_class=None, **kwargs)
    assert run.run.status == "completed"
    return outputs(run)


def test_the_decorator_renames_describes_and_keeps_the_function_callable() -> None:
    @tool(name="search_web", description="Search.", approve=True)
    def search(query: str) -> str:
        """Look it up."""
        return query

    made = as_tool(search)
    assert (made.name, made.description, made.approve) == ("search_web", "Search.", True)
    assert search("x") == "x"
    assert as_tool(tool(lambda_free)).approve is False
    with pytest.raises(ToolDefinitionError, match="tool name"):
        as_tool(tool(name="no spaces")(lambda_free))


def lambda_free() -> None:
    """Nothing."""


def test_always_runs_the_call_without_asking() -> None:
    assert say(Assistant(tools=[delete_files], approve="always")) == ["deleted *.tmp"]
    assert CALLS == ["*.tmp"]


def test_never_denies_the_call_and_the_model_reads_why() -> None:
    [output] = say(Assistant(tools=[delete_files], approve="never"))
    assert CALLS == []
    assert "approve='never'" in output and output.startswith("Not run")


def test_ask_uses_the_approver_and_a_denial_says_the_user_declined() -> None:
    asked: list[ApprovalRequest] = []

    async def deny(request: ApprovalRequest) -> Decision:
        asked.append(request)
        return Decision(False)

    [output] = say(Assistant(tools=[delete_files]), approver=deny)
    assert CALLS == [] and "the user declined" in output
    assert asked[0].tool == "delete_files" and '"*.tmp"' in asked[0].arguments
    assert asked[0].seconds_left() > 0  # bounded by the run's expiry

    async def allow(request: ApprovalRequest) -> Decision:
        return Decision(True)

    assert say(Assistant(tools=[delete_files]), approver=allow) == ["deleted *.tmp"]


def test_without_a_terminal_ask_denies_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoTty:
        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(sys, "stdin", NoTty())
    [output] = say(Assistant(tools=[delete_files]))
    assert CALLS == [] and "no one can answer" in output


def test_the_terminal_prompt_asks_until_it_gets_yes_or_no(monkeypatch: pytest.MonkeyPatch) -> None:
    from ipyassistant.approval import ask_by_input

    answers = iter(["maybe", "y"])
    prompts: list[str] = []

    def read(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    request = ApprovalRequest("run_in_notebook", '{"code": "x = 1"}', "call_1", "run_1")
    assert ask_by_input(request, read) == Decision(True)
    assert "x = 1" in prompts[0] and "[y/n]" in prompts[0] and "y (approve)" in prompts[1]


def test_the_policy_comes_from_the_run_the_assistant_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IPYASSISTANT_APPROVE", raising=False)
    assert resolve_policy(None, None) == "ask"
    monkeypatch.setenv("IPYASSISTANT_APPROVE", "Never")
    assert resolve_policy(None, None) == "never"
    assert resolve_policy(None, "always") == "always"
    assert resolve_policy("ask", "always") == "ask"
    monkeypatch.setenv("IPYASSISTANT_APPROVE", "sometimes")
    with pytest.raises(UsageError, match="IPYASSISTANT_APPROVE"):
        resolve_policy(None, None)
