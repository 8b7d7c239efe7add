"""Every example of Marvin's assistants documentation, on ipyassistant with the test model.

The same examples are runnable scripts in ``examples/``; the last test runs each of them.
"""

from __future__ import annotations

import random
import runpy
import urllib.request
from pathlib import Path

import pytest

from ipyassistant import (
    ENDRUN_TOKEN,
    Assistant,
    EndRun,
    PrintHandler,
    Thread,
    pprint_run,
)
from ipyassistant.assistants import Lifecycle
from ipyassistant.formatting import pprint_messages

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.py"))


def text(message) -> str:
    return "".join(block.text.value for block in message.content if block.type == "text")


def test_quickstart(capsys):
    ai = Assistant(name="Marvin", instructions="You the Paranoid Android.")
    ai.say("Hello, Marvin!")
    out = capsys.readouterr().out
    assert "Hello, Marvin!" in out and "echo: Hello, Marvin!" in out


def test_talking_to_an_assistant():
    ai = Assistant()
    ai.say("Hi!")
    ai.say("Bye!")
    assert [text(m) for m in ai.default_thread.get_messages()] == [
        "Hi!",
        "echo: Hi!",
        "Bye!",
        "echo: Bye!",
    ]


def test_talking_on_a_thread_loaded_by_id():
    ai = Assistant()
    earlier = Thread()
    ai.say("Remember the number 42.", thread=earlier)
    thread_id = earlier.id

    thread = Thread(id=thread_id)
    ai.say("hi", thread=thread)
    assert [text(m) for m in thread.get_messages()][-2:] == ["hi", "echo: hi"]
    assert len(thread.get_messages()) == 4


def test_event_handler_options(capsys):
    def roll_die() -> int:
        """Roll one die."""
        return 4

    ai = Assistant(tools=[roll_die])

    run = ai.say("Hello!", event_handler_class=None)
    assert capsys.readouterr().out == ""
    assert run.messages and run.steps

    ai.say("Hello!", event_handler_kwargs=dict(print_steps=False))
    out = capsys.readouterr().out
    assert "Tool results" in out and "Tool calls" not in out

    ai.say("Hello!", event_handler_kwargs=dict(print_messages=False))
    out = capsys.readouterr().out
    assert "Tool calls" in out and "Tool results" not in out

    thread = Thread()
    thread.add("Hello!")
    thread.run(ai)
    assert capsys.readouterr().out == ""
    thread.add("Hello again!")
    thread.run(ai, event_handler_class=PrintHandler)
    assert "Tool results" in capsys.readouterr().out

    run = ai.say("Hello!", event_handler_class=None)
    pprint_run(run)
    assert "roll_die" in capsys.readouterr().out


def test_instructions():
    ai = Assistant(instructions="Mention the word 'banana' as often as possible")
    run = ai.say("Hello!", event_handler_class=None)
    assert text(run.messages[0]) == "echo: Hello!"
    run = ai.say("/instructions", event_handler_class=None)
    assert text(run.messages[0]) == "Mention the word 'banana' as often as possible"


def test_custom_tools_visit_url():
    def visit_url(url: str) -> str:
        """Fetch the content of a URL."""
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()

    ai = Assistant(tools=[visit_url])
    run = ai.say('/call visit_url {"url": "data:text/plain,Top story"}', event_handler_class=None)
    assert text(run.messages[0]) == "Tool results:\n- visit_url: Top story"


@pytest.mark.parametrize("way", ["raise", "return", "token"])
def test_ending_a_run_early_three_ways(way):
    def my_tool():
        """Finish."""
        if way == "raise":
            raise EndRun(data="The final result")
        if way == "return":
            return EndRun(data="The final result")
        return ENDRUN_TOKEN

    ai = Assistant(tools=[my_tool])
    run = ai.say("finish", event_handler_class=None)
    assert run.run.status == "cancelled"
    assert run.data == (None if way == "token" else "The final result")


def test_lazy_lifecycle():
    ai = Assistant()
    ai.say("hello!", event_handler_class=None)
    assert ai.id is None and ai.lifecycle is Lifecycle.LAZY


def test_context_lifecycle():
    ai = Assistant()
    with ai:
        ai.say("hi", event_handler_class=None)
        created = ai.id
        ai.say("bye", event_handler_class=None)
        assert ai.id == created is not None
    assert ai.id is None


def test_manual_lifecycle():
    ai = Assistant()
    ai.create()
    ai.say("hi", event_handler_class=None)
    ai.delete()
    assert ai.id is None


def test_loading_from_the_api():
    def my_tool() -> str:
        """Be useful."""
        return "useful"

    ai = Assistant(tools=[my_tool])
    ai.create()
    try:
        ai_1 = Assistant(id=ai.id, tools=[my_tool])
        assert "my_tool: useful" in text(ai_1.say("hi", event_handler_class=None).messages[0])
        ai_2 = Assistant.load(id=ai.id, tools=[my_tool])
        assert "my_tool: useful" in text(ai_2.say("hi", event_handler_class=None).messages[0])
    finally:
        ai.delete()


def test_async_tools_from_the_sync_api():
    async def secret_message():
        return "The answer is 42"

    ai = Assistant(tools=[secret_message])
    run = ai.say("What's the secret message?", event_handler_class=None)
    assert text(run.messages[0]) == "Tool results:\n- secret_message: The answer is 42"


async def test_async_context_and_say_async():
    async with Assistant() as ai:
        run = await ai.say_async("hi", event_handler_class=None)
        assert text(run.messages[0]) == "echo: hi"
    assert ai.id is None


def test_full_example_with_threads(capsys):
    def roll_dice(n_dice: int) -> list[int]:
        return [random.randint(1, 6) for _ in range(n_dice)]

    ai = Assistant(tools=[roll_dice])
    thread = Thread()
    thread.add("Hello!")
    first = thread.run(ai)
    thread.add("Please roll two dice")
    thread.add('Actually--roll five dice\n/call roll_dice {"n_dice": 5}')
    second = thread.run(ai)

    messages = thread.get_messages()
    pprint_messages(messages)
    assert [m.role for m in messages] == ["user", "assistant", "user", "user", "assistant"]
    assert first.run.status == second.run.status == "completed"
    rolled = second.steps[0].step_details.tool_calls[0].function.output
    dice = [int(d) for d in rolled.strip("[]").split(",")]
    assert len(dice) == 5 and all(1 <= d <= 6 for d in dice)
    out = capsys.readouterr().out
    assert "Please roll two dice" in out and f"roll_dice: {rolled}" in out


def test_there_is_a_script_for_each_example():
    assert [p.name for p in EXAMPLES] == [
        "01_quickstart.py",
        "02_talking.py",
        "03_threads_by_id.py",
        "04_event_handlers.py",
        "05_instructions.py",
        "06_custom_tools.py",
        "07_end_run.py",
        "08_lifecycles.py",
        "09_async.py",
        "10_dice_thread.py",
    ]


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_the_example_scripts_run(script, capsys):
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "Assistant" in out or "cancelled" in out


def test_examples_use_only_the_public_api():
    for script in EXAMPLES:
        source = script.read_text()
        assert "ipyassistant._" not in source and "._portal" not in source, script.name
