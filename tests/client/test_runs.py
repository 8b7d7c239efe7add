"""Run: results, overrides, API parameters, failures, refresh() and cancel()."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from openai import AssistantEventHandler
from openai.types.beta.threads import Run as RunObject

from _wait import wait_until_async
from ipyassistant import Assistant, Run, Thread
from ipyassistant.exceptions import LifecycleError, UsageError


def text(message) -> str:
    return "".join(block.text.value for block in message.content if block.type == "text")


def roll_dice(n_dice: int) -> list[int]:
    """Roll dice (always sixes here)."""
    return [6] * n_dice


def flip_coin() -> str:
    """Flip a coin."""
    return "heads"


def tool_names(run: Run) -> list[str]:
    return [
        call.function.name
        for step in run.steps
        if step.step_details.type == "tool_calls"
        for call in step.step_details.tool_calls
    ]


def test_a_run_holds_the_sdk_run_its_messages_and_ordered_steps():
    thread = Thread()
    thread.add('/call roll_dice {"n_dice": 3}')
    run = thread.run(Assistant(tools=[roll_dice]))
    assert isinstance(run.run, RunObject) and run.run.status == "completed"
    assert [s.step_details.type for s in run.steps] == ["tool_calls", "message_creation"]
    assert all(s.status == "completed" for s in run.steps)
    call = run.steps[0].step_details.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("roll_dice", {"n_dice": 3})
    assert call.function.output == "[6,6,6]"
    assert [text(m) for m in run.messages] == ["Tool results:\n- roll_dice: [6,6,6]"]
    assert run.steps[1].step_details.message_creation.message_id == run.messages[0].id
    assert run.data is None
    assert run.run.id in repr(run) and "completed" in repr(run)


def test_parallel_tool_calls_are_answered_in_one_submission():
    thread = Thread()
    thread.add('/call roll_dice {"n_dice": 1}\n/call flip_coin {}')
    run = thread.run(Assistant(tools=[roll_dice, flip_coin]))
    assert text(run.messages[0]) == "Tool results:\n- roll_dice: [6]\n- flip_coin: heads"


def test_instructions_and_additional_instructions_override_the_assistants():
    ai = Assistant(instructions="base")
    thread = Thread()
    thread.add("/instructions")
    assert text(thread.run(ai).messages[0]) == "base"
    thread.add("/instructions")
    assert text(thread.run(ai, instructions="replaced").messages[0]) == "replaced"
    thread.add("/instructions")
    assert text(thread.run(ai, additional_instructions="more").messages[0]) == "base\n\nmore"


def test_model_override_goes_to_the_run():
    thread = Thread()
    thread.add("hi")
    run = thread.run(Assistant(), model="test")
    assert run.run.model == "test"
    thread.add("again")
    with pytest.raises(openai.BadRequestError, match="not available"):
        thread.run(Assistant(), model="no-such-model")
    thread.add("still usable")  # the refused run left the thread free


def test_tools_replace_and_additional_tools_append():
    ai = Assistant(tools=[roll_dice])
    thread = Thread()
    thread.add("go")
    assert tool_names(thread.run(ai)) == ["roll_dice"]
    thread.add("go")
    replaced = thread.run(ai, tools=[flip_coin])
    assert tool_names(replaced) == ["flip_coin"]
    assert [t.function.name for t in replaced.run.tools] == ["flip_coin"]
    thread.add("go")
    assert tool_names(thread.run(ai, additional_tools=[flip_coin])) == ["roll_dice", "flip_coin"]
    thread.add("no tools at all")
    run = thread.run(ai, tools=[])
    assert tool_names(run) == [] and text(run.messages[0]) == "echo: no tools at all"


@pytest.mark.parametrize(
    ("choice", "called"),
    [("none", []), ("auto", ["roll_dice", "flip_coin"]), (flip_coin, ["flip_coin"])],
    ids=["none", "auto", "function"],
)
def test_tool_choice(choice, called):
    thread = Thread()
    thread.add("go")
    run = thread.run(Assistant(tools=[roll_dice, flip_coin]), tool_choice=choice)
    assert tool_names(run) == called


def test_other_keyword_arguments_go_to_the_api():
    thread = Thread()
    thread.add("/stream 300")
    run = thread.run(Assistant(), temperature=0.5, max_completion_tokens=256)
    assert run.run.temperature == 0.5
    assert run.run.status == "incomplete"
    assert run.run.incomplete_details.reason == "max_completion_tokens"


def test_the_assistants_response_format_applies_to_its_runs():
    ai = Assistant(response_format={"type": "json_object"})
    run = ai.say("hello", event_handler_class=None)
    assert json.loads(text(run.messages[0])) == {"echo": "hello"}


def test_a_failed_run_is_returned_not_raised_and_the_thread_stays_usable():
    ai = Assistant()
    run = ai.say("/fail the provider broke", event_handler_class=None)
    assert run.run.status == "failed"
    assert run.run.last_error.message == "the provider broke"
    assert ai.say("hello", event_handler_class=None).run.status == "completed"


def test_refresh_reloads_the_run_steps_and_messages():
    thread = Thread()
    thread.add('/call roll_dice {"n_dice": 2}')
    run = thread.run(Assistant(tools=[roll_dice]))
    before = ([s.id for s in run.steps], [m.id for m in run.messages])
    assert run.refresh() is run
    assert ([s.id for s in run.steps], [m.id for m in run.messages]) == before
    assert run.steps[0].step_details.tool_calls[0].function.output == "[6,6]"


def test_a_run_executes_once_and_refresh_needs_a_started_run():
    run = Run(Thread(), Assistant())
    with pytest.raises(LifecycleError, match="not started"):
        run.refresh()
    with pytest.raises(LifecycleError, match="not started"):
        run.cancel()
    run.thread.add("hi")
    run.execute()
    with pytest.raises(LifecycleError, match="executed already"):
        run.execute()
    assert run.cancel().run.status == "completed"  # an ended run: nothing to cancel


async def test_cancel_stops_an_active_run_and_frees_the_thread():
    thread = Thread()
    await thread.add_async("/sleep 30\nslow")
    run = Run(thread, Assistant())
    task = asyncio.create_task(run.execute_async())
    await wait_until_async(
        lambda: run.run is not None and run.run.status == "in_progress",
        timeout=10,
        interval=0.01,
        message="the run to start",
    )
    assert run.run is not None and run.run.status == "in_progress"
    await run.cancel_async()
    assert run.run.status == "cancelled"
    assert (await asyncio.wait_for(task, 10)) is run
    assert run.run.status == "cancelled"
    await thread.add_async("free again")


def test_event_handler_class_must_be_an_async_handler():
    class Sync(AssistantEventHandler):
        pass

    with pytest.raises(UsageError, match="AsyncAssistantEventHandler"):
        Run(Thread(), Assistant(), event_handler_class=Sync)
    with pytest.raises(UsageError, match="AsyncAssistantEventHandler"):
        Assistant().say("hi", event_handler_class=print)  # type: ignore[arg-type]


def test_a_bad_tool_choice_is_a_usage_error():
    with pytest.raises(UsageError, match="tool_choice"):
        Thread().run(Assistant(), tool_choice=42)


def test_a_runs_images_come_as_bytes_that_display_in_ipython(tmp_path):
    from IPython.core.formatters import PNGFormatter

    from ipyassistant import CodeInterpreter

    code = (
        "import numpy as np\nimport matplotlib.pyplot as plt\n"
        "x = np.linspace(0, 6.3, 50)\nplt.plot(x, np.sin(x))\nplt.show()"
    )
    run = Assistant(tools=[CodeInterpreter]).say(
        f"Generate a plot of sin(x)\n```python\n{code}\n```", event_handler_class=None
    )
    assert run.run.status == "completed", run.run.last_error
    images = run.images()
    assert len(images) == 1
    image = images[0]
    assert image.mime_type == "image/png" and image.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert PNGFormatter()(image) == image.data  # IPython shows it as the picture
    assert image.save(tmp_path / "sin.png").read_bytes() == image.data
    assert Assistant().say("no pictures here", event_handler_class=None).images() == []
