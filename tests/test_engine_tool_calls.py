"""Tool calls as plain data: streamed deltas accumulated, finished calls and outputs checked."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ipyassistant.server.engine.tool_calls import (
    accumulate,
    apply_outputs,
    finish_call,
    partial_code,
    submitted_outputs,
)
from ipyassistant.server.errors import InvalidRequest
from ipyassistant.server.models.base import CODE_INTERPRETER_FUNCTION, ModelError, ToolCallDelta

TOOLS = [
    {"type": "function", "function": {"name": "lookup", "parameters": {}}},
    {"type": "code_interpreter"},
]


def stream(
    events: list[ToolCallDelta], *, code_interpreter: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any] | None]]:
    calls: list[dict[str, Any]] = []
    deltas = [accumulate(calls, e, code_interpreter=code_interpreter) for e in events]
    return calls, deltas


def test_function_calls_accumulate_by_index():
    calls, deltas = stream(
        [
            ToolCallDelta(0, '{"q"', id="call_a", name="lookup"),
            ToolCallDelta(1, "{}", id="call_b", name="lookup"),
            ToolCallDelta(0, ": 1}"),
        ]
    )
    assert calls == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": 1}', "output": None},
        },
        {
            "id": "call_b",
            "type": "function",
            "function": {"name": "lookup", "arguments": "{}", "output": None},
        },
    ]
    assert deltas == [
        {
            "index": 0,
            "type": "function",
            "function": {"arguments": '{"q"', "name": "lookup", "output": None},
            "id": "call_a",
        },
        {
            "index": 1,
            "type": "function",
            "function": {"arguments": "{}", "name": "lookup", "output": None},
            "id": "call_b",
        },
        {"index": 0, "type": "function", "function": {"arguments": ": 1}"}},
    ]
    for call in calls:
        finish_call(call, TOOLS)


def test_a_call_without_an_id_gets_one():
    calls, _ = stream([ToolCallDelta(0, "{}", name="lookup")])
    assert calls[0]["id"].startswith("call_")


def test_code_streams_as_it_decodes():
    code = 'print("a\\tb")\nx = 1'
    chunks = ['{"co', 'de": "', "print(", "\\", '"a', "\\\\tb", '\\")', "\\n", "x = 1", '"}']
    assert "".join(chunks) == json.dumps({"code": code})
    calls, deltas = stream(
        [ToolCallDelta(0, chunks[0], id="call_c", name=CODE_INTERPRETER_FUNCTION)]
        + [ToolCallDelta(0, c) for c in chunks[1:]]
    )
    (call,) = calls
    assert call["type"] == "code_interpreter"
    assert deltas[0] == {
        "index": 0,
        "type": "code_interpreter",
        "code_interpreter": {"input": "", "outputs": []},
        "id": "call_c",
    }
    # Chunks that decode to no new code (a lone backslash, the closing quote) stream nothing.
    assert [i for i, d in enumerate(deltas) if d is None] == [1, 3, 9]
    shown = "".join(d["code_interpreter"]["input"] for d in deltas if d is not None)
    assert shown == code
    finish_call(call, TOOLS)
    assert call == {
        "id": "call_c",
        "type": "code_interpreter",
        "code_interpreter": {"input": code, "outputs": []},
    }


def test_invalid_code_arguments_fail_the_call():
    calls, _ = stream([ToolCallDelta(0, '{"source": "1"}', id="c", name=CODE_INTERPRETER_FUNCTION)])
    with pytest.raises(ModelError, match="invalid arguments"):
        finish_call(calls[0], TOOLS)


def test_without_a_code_runner_the_code_function_is_unknown():
    calls, deltas = stream(
        [ToolCallDelta(0, '{"code": "1"}', id="c", name=CODE_INTERPRETER_FUNCTION)],
        code_interpreter=False,
    )
    assert calls[0]["type"] == "function"
    assert deltas[0] is not None and deltas[0]["type"] == "function"
    with pytest.raises(ModelError, match="unknown tool 'python'; the run's tools are: lookup"):
        finish_call(calls[0], TOOLS)


def test_unknown_function_lists_the_run_tools():
    calls, _ = stream([ToolCallDelta(0, "{}", id="c", name="delete_all")])
    with pytest.raises(ModelError, match="the run's tools are: none"):
        finish_call(calls[0], [])


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ("", ""),
        ('{"co', ""),
        ('{"code":', ""),
        ('{"code": "pri', "pri"),
        ('{"code": "a\\', "a"),  # a cut escape waits for its character
        ('{"code": "a\\n', "a\n"),
        ('{"code": "\\u00', ""),  # a cut \u escape waits for its digits
        ('{"code": "\\u00e9', "é"),
        ('{"code": "x = \\"y\\""}', 'x = "y"'),
    ],
)
def test_partial_code(arguments: str, code: str):
    assert partial_code(arguments) == code


def waiting_run(*call_ids: str) -> dict[str, Any]:
    return {
        "id": "run_1",
        "status": "requires_action",
        "required_action": {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {"id": c, "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
                    for c in call_ids
                ]
            },
        },
    }


def test_one_output_for_each_pending_call():
    run = waiting_run("call_1", "call_2")
    given = submitted_outputs(
        run, [{"tool_call_id": "call_2", "output": "two"}, {"tool_call_id": "call_1"}]
    )
    assert given == {"call_2": "two", "call_1": ""}


@pytest.mark.parametrize(
    ("outputs", "param", "message"),
    [
        ([{"tool_call_id": "call_x", "output": ""}], "tool_outputs[0].tool_call_id", "Unknown"),
        (
            [{"tool_call_id": "call_1"}, {"tool_call_id": "call_1"}],
            "tool_outputs[1].tool_call_id",
            "Two outputs",
        ),
        ([{"tool_call_id": "call_1"}], "tool_outputs", "Missing tool outputs for: call_2."),
    ],
)
def test_bad_outputs_are_rejected(outputs: list[dict[str, Any]], param: str, message: str):
    with pytest.raises(InvalidRequest, match=message) as info:
        submitted_outputs(waiting_run("call_1", "call_2"), outputs)
    assert info.value.param == param


def test_outputs_only_while_the_run_waits():
    run = {**waiting_run("call_1"), "status": "in_progress"}
    with pytest.raises(InvalidRequest, match="is 'in_progress'") as info:
        submitted_outputs(run, [{"tool_call_id": "call_1"}])
    assert info.value.param == "run_id"


def test_outputs_go_to_the_function_calls():
    step = {
        "step_details": {
            "type": "tool_calls",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"output": None}},
                {"id": "call_2", "type": "code_interpreter", "code_interpreter": {}},
            ],
        }
    }
    apply_outputs(step, {"call_1": "out"})
    assert step["step_details"]["tool_calls"][0]["function"]["output"] == "out"
    assert step["step_details"]["tool_calls"][1] == {
        "id": "call_2",
        "type": "code_interpreter",
        "code_interpreter": {},
    }
