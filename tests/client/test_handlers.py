"""Event handlers: PrintHandler by default for say(), none for Thread.run, any async handler."""

from __future__ import annotations

import io
import threading

from openai import AsyncAssistantEventHandler
from rich.console import Console

from ipyassistant import Assistant, PrintHandler, Thread


def roll_dice(n_dice: int = 2) -> list[int]:
    """Roll dice (sixes)."""
    return [6] * n_dice


def test_say_prints_the_exchange_with_print_handler_by_default(capsys):
    Assistant(tools=[roll_dice]).say('/call roll_dice {"n_dice": 3}')
    out = capsys.readouterr().out
    for expected in ("User", "/call roll_dice", "Tool calls", "roll_dice", '"n_dice": 3'):
        assert expected in out
    assert "→ [6,6,6]" in out and "Assistant" in out and "Tool results:" in out
    # the tool call is printed once, when it is complete (with its output)
    assert out.count("Tool calls") == 1
    assert out.index("User") < out.index("Tool calls") < out.index("Tool results:")


def test_print_handler_options_print_only_messages_or_only_steps(console):
    ai = Assistant(tools=[roll_dice])
    ai.say("go", event_handler_kwargs=dict(console=console, print_steps=False))
    only_messages = console.file.getvalue()
    assert "Tool calls" not in only_messages and "Tool results:" in only_messages

    quiet = Console(file=io.StringIO(), width=100, color_system=None)
    ai.say("go", event_handler_kwargs=dict(console=quiet, print_messages=False))
    only_steps = quiet.file.getvalue()
    assert "Tool calls" in only_steps and "Tool results:" not in only_steps
    assert "User" not in only_steps


def test_no_handler_prints_nothing(capsys):
    run = Assistant(tools=[roll_dice]).say("go", event_handler_class=None)
    assert capsys.readouterr().out == ""
    assert run.messages and run.steps  # the results are there all the same


def test_thread_run_prints_nothing_unless_given_print_handler(capsys):
    ai = Assistant()
    thread = Thread()
    thread.add("quiet")
    thread.run(ai)
    assert capsys.readouterr().out == ""
    thread.add("loud")
    thread.run(ai, event_handler_class=PrintHandler)
    out = capsys.readouterr().out
    assert "echo: loud" in out and "User" not in out  # Thread.run shows what the run makes


def test_any_async_event_handler_class_follows_the_run_with_its_kwargs():
    instances: list[Recorder] = []

    class Recorder(AsyncAssistantEventHandler):
        def __init__(self, tag: str) -> None:
            super().__init__()
            self.tag = tag
            self.text = ""
            self.tools: list[str] = []
            self.done: list[str] = []
            instances.append(self)

        async def on_text_delta(self, delta, snapshot) -> None:
            self.text += delta.value or ""

        async def on_tool_call_created(self, tool_call) -> None:
            self.tools.append(tool_call.function.name)

        async def on_message_done(self, message) -> None:
            self.done.append(message.role)

    Assistant(tools=[roll_dice]).say(
        "go", event_handler_class=Recorder, event_handler_kwargs={"tag": "mine"}
    )
    # one handler per stream: the first stops at requires_action, the second finishes
    assert [h.tag for h in instances] == ["mine", "mine"]
    assert instances[0].tools == ["roll_dice"]
    assert instances[0].done == ["user"]  # say() shows the user's message first
    assert instances[1].text == "Tool results:\n- roll_dice: [6,6]"
    assert instances[1].done == ["assistant"]


def test_handlers_are_inert_until_their_stream_starts(capsys):
    from rich.live import _RefreshThread

    handler = PrintHandler()  # outside any event loop, with no stream
    assert capsys.readouterr().out == ""
    assert handler._live is None and handler._console is None
    assert not any(isinstance(t, _RefreshThread) for t in threading.enumerate())
    assert repr(handler) == "PrintHandler(print_messages=True, print_steps=True)"


def test_live_panels_on_a_terminal_end_with_the_finished_panels():
    terminal = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    Assistant().say("/stream 40", event_handler_kwargs={"console": terminal})
    out = terminal.file.getvalue()
    assert "\x1b[?25l" in out and out.endswith("\x1b[?25h\r")  # a live area came and went
    final = out[out.rindex("Assistant") :]
    assert "0 1 2 3" in final and "39" in final


def test_a_failed_run_is_shown(console):
    Assistant().say("/fail out of cheese", event_handler_kwargs={"console": console})
    out = console.file.getvalue()
    assert "Run failed" in out and "out of cheese" in out


def test_code_interpreter_code_logs_and_images_are_printed(console):
    from ipyassistant import CodeInterpreter

    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\nprint(6 * 7)"
    run = Assistant(tools=[CodeInterpreter]).say(
        f"```python\n{code}\n```", event_handler_kwargs={"console": console}
    )
    assert run.run.status == "completed", run.run.last_error
    out = console.file.getvalue()
    assert "code interpreter" in out and "print(6 * 7)" in out and "42" in out
    images = [line for line in out.splitlines() if "🖼" in line]
    assert images and all(".png" in line for line in images)
