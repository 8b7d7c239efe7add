"""Function tools: schemas from Python, validated calls, errors the model sees, where tools run."""

from __future__ import annotations

import asyncio
import enum
import functools
import threading
from dataclasses import dataclass
from typing import Annotated, Literal, Optional

import pytest
from pydantic import BaseModel, Field

from ipyassistant import Assistant, CodeInterpreter, FileSearch, Thread
from ipyassistant._portal import portal
from ipyassistant.exceptions import ToolDefinitionError
from ipyassistant.tools import (
    CodeInterpreterTool,
    FileSearchTool,
    FunctionTool,
    as_tool,
    as_tools,
    function_tool,
    output_text,
)


def text(message) -> str:
    return "".join(block.text.value for block in message.content if block.type == "text")


def outputs(run) -> dict[str, str]:
    return {
        call.function.name: call.function.output
        for step in run.steps
        if step.step_details.type == "tool_calls"
        for call in step.step_details.tool_calls
    }


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Point(BaseModel):
    x: int
    y: int = 0


def draw(
    shape: Literal["circle", "square"],
    at: Point,
    size: int = 1,
    color: Color = Color.RED,
    label: Optional[str] = None,  # noqa: UP045 - Optional is what many users write
    tags: list[str] | None = None,
    opacity: Annotated[float, Field(ge=0, le=1)] = 1.0,
) -> dict:
    """Draw a shape.

    Shapes are drawn on the canvas.

    Args:
        shape: Which shape.
        at: Where its centre goes.
        size: Its size in pixels.
    """
    return {"shape": shape, "at": at, "size": size, "color": color, "label": label, "tags": tags}


# -- schemas -------------------------------------------------------------------------------


def test_the_schema_comes_from_the_signature_type_hints_and_docstring():
    tool = function_tool(draw)
    assert tool.name == "draw"
    assert tool.description == "Draw a shape.\n\nShapes are drawn on the canvas."
    params = tool.parameters
    assert params["type"] == "object" and params["required"] == ["shape", "at"]
    props = params["properties"]
    assert props["shape"] == {
        "description": "Which shape.",
        "enum": ["circle", "square"],
        "type": "string",
    }
    assert props["at"] == {"$ref": "#/$defs/Point", "description": "Where its centre goes."}
    assert params["$defs"]["Point"]["required"] == ["x"]
    assert props["size"] == {"default": 1, "description": "Its size in pixels.", "type": "integer"}
    assert props["color"] == {"$ref": "#/$defs/Color", "default": "red"}
    assert params["$defs"]["Color"] == {"enum": ["red", "green"], "type": "string"}
    assert props["label"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert props["tags"]["anyOf"][0] == {"items": {"type": "string"}, "type": "array"}
    assert props["opacity"] == {"default": 1.0, "maximum": 1, "minimum": 0, "type": "number"}
    assert tool.spec() == {
        "type": "function",
        "function": {"name": "draw", "description": tool.description, "parameters": params},
    }


async def test_arguments_are_validated_and_converted_before_the_call():
    tool = function_tool(draw)
    output = await tool.invoke('{"shape": "circle", "at": {"x": 3}, "color": "green"}')
    assert output == (
        '{"shape":"circle","at":{"x":3,"y":0},"size":1,"color":"green","label":null,"tags":null}'
    )
    args, kwargs = tool.validate('{"shape": "square", "at": {"x": 1, "y": 2}}')
    assert args == [] and isinstance(kwargs["at"], Point) and kwargs["color"] is Color.RED


async def test_invalid_arguments_become_an_error_output():
    tool = function_tool(draw)
    output = await tool.invoke('{"shape": "triangle", "at": {"x": "left"}, "extra": 1}')
    assert output.startswith("Error: invalid arguments for draw:")
    assert "shape" in output and "at.x" in output and "extra" in output
    assert (await tool.invoke("not json")).startswith("Error: invalid arguments for draw")


def test_parameters_named_like_basemodel_attributes_and_positional_only_ones():
    def lookup(json: str, /, schema: int = 0, *, copy: bool = False) -> str:
        """Look something up."""
        return f"{json}-{schema}-{copy}"

    tool = function_tool(lookup)
    assert set(tool.parameters["properties"]) == {"json", "schema", "copy"}
    assert asyncio.run(tool.invoke('{"json": "a", "copy": true}')) == "a-0-True"


def test_every_problem_is_reported_at_once():
    def spread(*args: int) -> None:
        """Bad: variadic."""

    def opaque(handle: threading.Lock) -> None:  # type: ignore[valid-type]
        """Bad: a type without a JSON schema."""

    with pytest.raises(ToolDefinitionError) as caught:
        as_tools([lambda x: x, spread, opaque, draw, draw, 42])
    problems = caught.value.problems
    assert len(problems) == 5
    joined = "\n".join(problems)
    for expected in ("'<lambda>'", "*args", "opaque", "draw: 2 tools", "42"):
        assert expected in joined
    assert str(caught.value).count("\n- ") == 5


def test_tools_from_specs_sdk_objects_and_callables():
    assert as_tool(CodeInterpreter) is CodeInterpreter and isinstance(
        CodeInterpreter, CodeInterpreterTool
    )
    assert isinstance(FileSearch, FileSearchTool)
    assert CodeInterpreter.spec() == {"type": "code_interpreter"}
    assert FileSearch.spec() == {"type": "file_search"}
    assert FileSearchTool(max_num_results=3).spec()["file_search"] == {"max_num_results": 3}
    spec = {"type": "function", "function": {"name": "remote", "parameters": {"type": "object"}}}
    remote = as_tool(spec)
    assert isinstance(remote, FunctionTool) and remote.function is None and remote.spec() == spec
    from openai.types.beta import CodeInterpreterTool as SdkCodeInterpreter

    assert as_tool(SdkCodeInterpreter(type="code_interpreter")) is CodeInterpreter
    assert as_tool({"type": "code_interpreter"}) is CodeInterpreter


def test_callable_objects_and_partials_are_tools():
    @dataclass
    class Greeter:
        greeting: str

        def __call__(self, name: str) -> str:
            return f"{self.greeting}, {name}"

    greeter = as_tool(Greeter("hello"))
    assert isinstance(greeter, FunctionTool) and greeter.name == "Greeter"
    assert asyncio.run(greeter.invoke('{"name": "ada"}')) == "hello, ada"

    def power(base: int, exponent: int) -> int:
        """Raise to a power."""
        return base**exponent

    square = functools.partial(power, exponent=2)
    tool = as_tool(square)
    assert isinstance(tool, FunctionTool)
    assert asyncio.run(tool.invoke('{"base": 7}')) == "49"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        (None, ""),
        (42, "42"),
        ([1, 2], "[1,2]"),
        ({"a": Color.GREEN}, '{"a":"green"}'),
        (Point(x=1), '{"x":1,"y":0}'),
        (object, "\"<class 'object'>\""),  # not JSON: its str(), as a JSON string
    ],
)
def test_tool_results_become_text(value, expected):
    assert output_text(value) == expected


# -- calls in a run ------------------------------------------------------------------------------


def test_the_model_sees_invalid_arguments_as_an_error_and_the_run_goes_on():
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    run = Assistant(tools=[add]).say('/call add {"a": "one"}', event_handler_class=None)
    assert run.run.status == "completed"
    output = outputs(run)["add"]
    assert output.startswith("Error: invalid arguments for add:") and "b: Field required" in output
    assert text(run.messages[0]) == f"Tool results:\n- add: {output}"


def test_an_exception_in_a_tool_becomes_an_error_output():
    def explode() -> str:
        """Fail."""
        raise RuntimeError("kaboom")

    run = Assistant(tools=[explode]).say("go", event_handler_class=None)
    assert run.run.status == "completed"
    assert outputs(run)["explode"] == "Error: explode raised RuntimeError: kaboom"


def test_async_tools_work_from_the_sync_api():
    async def secret_message() -> str:
        """Tell the secret."""
        await asyncio.sleep(0)
        return "The answer is 42"

    run = Assistant(tools=[secret_message]).say("What's the secret?", event_handler_class=None)
    assert text(run.messages[0]) == "Tool results:\n- secret_message: The answer is 42"


async def test_async_tools_run_in_the_loop_of_the_async_caller():
    here = asyncio.get_running_loop()
    seen: list[asyncio.AbstractEventLoop] = []

    async def where() -> str:
        """Report the loop."""
        seen.append(asyncio.get_running_loop())
        return "ok"

    await Assistant(tools=[where]).say_async("go", event_handler_class=None)
    assert seen == [here]
    Assistant(tools=[where]).say("go", event_handler_class=None)  # the sync API: the portal's
    assert seen[1] is portal().loop


def test_sync_tools_run_in_worker_threads_and_never_block_the_loop():
    ready = threading.Event()
    threads: list[threading.Thread] = []

    def wait_for_ping() -> str:
        """Wait until ping has run (it can only run if the loop is free)."""
        threads.append(threading.current_thread())
        return "pinged" if ready.wait(timeout=10) else "timed out"

    async def ping() -> str:
        """Wake the other tool."""
        ready.set()
        return "pong"

    run = Assistant(tools=[wait_for_ping, ping]).say(
        "/call wait_for_ping {}\n/call ping {}", event_handler_class=None
    )
    assert outputs(run) == {"wait_for_ping": "pinged", "ping": "pong"}
    assert threads[0] is not threading.main_thread()
    assert threads[0].name != "ipyassistant-portal"


def test_sync_tools_called_together_run_concurrently():
    barrier = threading.Barrier(2, timeout=10)

    def left() -> str:
        """Meet the other one."""
        barrier.wait()
        return "met"

    def right() -> str:
        """Meet the other one."""
        barrier.wait()
        return "met"

    run = Assistant(tools=[left, right]).say("go", event_handler_class=None)
    assert outputs(run) == {"left": "met", "right": "met"}


def test_a_sync_tool_may_use_the_sync_api():
    thread = Thread()
    thread.add("first")

    def count_messages() -> int:
        """Count the thread's messages."""
        return len(thread.get_messages())

    run = Assistant(tools=[count_messages]).say("go", thread=thread, event_handler_class=None)
    assert outputs(run) == {"count_messages": "2"}


def test_a_tool_calling_sys_exit_does_not_stop_the_event_loop():
    import sys

    def leave() -> str:
        """Try to end the process."""
        sys.exit(3)

    run = Assistant(tools=[leave]).say("go", event_handler_class=None)
    assert outputs(run) == {"leave": "Error: leave raised SystemExit: 3"}
    assert portal().loop.is_running()
