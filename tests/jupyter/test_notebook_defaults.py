"""In a notebook: say() shows a live view, runs and threads display as views, early ends show."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from ipykernel.zmqshell import ZMQInteractiveShell
from openai import AsyncAssistantEventHandler

import ipyassistant.jupyter.display as notebook
from ipyassistant import Assistant, CodeInterpreter, EndRun, PrintHandler, Thread
from ipyassistant.assistants import DEFAULT_HANDLER, choose_handler
from ipyassistant.jupyter import RunView, WidgetHandler

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
VIEW_MIME = "application/vnd.ipyassistant.view+json"


def roll_dice(n_dice: int = 2) -> list[int]:
    """Roll dice (sixes)."""
    return [6] * n_dice


@pytest.fixture
def in_a_notebook(ipython: Any, comms: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """As if the shell were a Jupyter kernel's (widgets talk to recording comms)."""
    monkeypatch.setattr(notebook, "in_notebook", lambda: True)
    return ipython


def text_of(html: str, *parts: str) -> list[int]:
    """Where each part first appears in ``html`` (asserting that it does)."""
    found = [html.find(part) for part in parts]
    assert -1 not in found, dict(zip(parts, found, strict=True))
    return found


# -- telling a notebook --------------------------------------------------------------------


def test_a_terminal_shell_or_plain_python_is_no_notebook(ipython: Any) -> None:
    assert not notebook.in_notebook()


def test_a_kernel_shell_with_a_kernel_is_a_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython

    shell = ZMQInteractiveShell.__new__(ZMQInteractiveShell)
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    assert not notebook.in_notebook()  # no kernel attached
    shell.kernel = object()
    assert notebook.in_notebook()

    class SpyderShell(ZMQInteractiveShell):
        __module__ = "spyder_kernels.shell"

    other = SpyderShell.__new__(SpyderShell)
    other.kernel = object()
    monkeypatch.setattr(IPython, "get_ipython", lambda: other)
    assert not notebook.in_notebook()  # a kernel whose front end shows no widgets


# -- say()'s default handler ---------------------------------------------------------------


def test_say_streams_into_a_live_view_in_a_notebook(
    in_a_notebook: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Assistant(tools=[roll_dice]).say("go")
    assert run.event_handler_class is WidgetHandler
    view = run.event_handler_kwargs["view"]
    assert isinstance(view, RunView) and view.displayed  # displayed by the cell
    assert run.event_handler_kwargs["fetch_file"] is notebook.fetch_file
    kinds = [(item["kind"], item.get("role")) for item in view.state["items"]]
    assert kinds == [("message", "user"), ("tool_call", None), ("message", "assistant")]
    assert view.state["run"]["status"] == "completed"
    assert "╭" not in capsys.readouterr().out  # nothing printed by PrintHandler


async def test_say_async_chooses_in_the_awaiting_thread(in_a_notebook: Any) -> None:
    run = await Assistant().say_async("hi")
    assert run.event_handler_class is WidgetHandler
    assert run.event_handler_kwargs["view"].state["run"]["status"] == "completed"


def test_print_handler_options_or_another_thread_choose_print_handler(in_a_notebook: Any) -> None:
    assert choose_handler(DEFAULT_HANDLER, {"print_steps": False}) == (
        PrintHandler,
        {"print_steps": False},
    )
    chosen: list[Any] = []
    worker = threading.Thread(target=lambda: chosen.append(choose_handler(DEFAULT_HANDLER, None)))
    worker.start()
    worker.join()
    assert chosen == [(PrintHandler, None)]  # display() off the cell's thread lands elsewhere
    assert choose_handler(None, None) == (None, None)
    cls, kwargs = choose_handler(DEFAULT_HANDLER, {"update_transcript": False})
    assert cls is WidgetHandler and kwargs is not None and kwargs["update_transcript"] is False


def test_outside_a_notebook_say_prints(ipython: Any) -> None:
    assert choose_handler(DEFAULT_HANDLER, None) == (PrintHandler, None)
    assert repr(DEFAULT_HANDLER) == "DEFAULT_HANDLER"


# -- the final run of a stream closed early -------------------------------------------------


def test_endrun_shows_the_cancelled_run_in_the_view(in_a_notebook: Any) -> None:
    def finish() -> None:
        """End the run."""
        raise EndRun("done")

    run = Assistant(tools=[finish]).say("go")
    view = run.event_handler_kwargs["view"]
    assert run.run.status == "cancelled" and run.data == "done"
    assert view.state["run"]["status"] == "cancelled"
    (call,) = [item for item in view.state["items"] if item["kind"] == "tool_call"]
    assert call["status"] == "cancelled"  # no spinner left


def test_any_handler_hears_how_a_run_it_could_not_follow_ended(ipython: Any) -> None:
    heard: list[str] = []

    class Recorder(AsyncAssistantEventHandler):
        async def on_event(self, event: Any) -> None:
            heard.append(event.event)

        async def on_end(self) -> None:
            heard.append("end")

    def finish() -> None:
        """End the run."""
        raise EndRun

    Assistant(tools=[finish]).say("go", event_handler_class=Recorder)
    assert heard[-4:] == ["thread.run.requires_action", "end", "thread.run.cancelled", "end"]
    heard.clear()
    Assistant().say("no early end", event_handler_class=Recorder)
    assert heard.count("thread.run.completed") == 1 and "thread.run.cancelled" not in heard


# -- runs and threads as views --------------------------------------------------------------


def test_a_run_displays_as_a_view_of_its_messages_and_tool_calls(in_a_notebook: Any) -> None:
    run = Assistant(tools=[roll_dice]).say(
        '/call roll_dice {"n_dice": 3}', event_handler_class=None
    )
    data, _ = in_a_notebook.display_formatter.format(run)
    # A finished run needs no live widget: its bundle renders without a kernel.
    assert VIEW_MIME in data and WIDGET_VIEW not in data and data["text/plain"] == repr(run)
    assert data[VIEW_MIME]["states"][0]["run"]["status"] == "completed"
    html = data["text/html"]
    text_of(html, "roll_dice", "[6,6,6]", "Tool results:", "run completed")
    assert html.index("roll_dice") < html.index("Tool results:")
    state = notebook.run_state(run)
    assert [item["kind"] for item in state["items"]] == ["tool_call", "message"]


def test_a_run_already_shown_live_displays_as_its_repr(in_a_notebook: Any) -> None:
    run = Assistant().say("live")
    assert run._repr_mimebundle_() == ({"text/plain": repr(run)}, {})


def test_outside_a_notebook_runs_and_threads_display_as_their_repr(ipython: Any) -> None:
    run = Assistant().say("plain", event_handler_class=None)
    assert run._repr_mimebundle_() is None and run.thread._repr_mimebundle_() is None
    data, _ = ipython.display_formatter.format(run)
    assert data == {"text/plain": repr(run)}


def test_a_thread_displays_as_its_transcript_with_tool_calls_where_they_happened(
    in_a_notebook: Any,
) -> None:
    def finish() -> None:
        """End the run."""
        raise EndRun

    thread = Thread()
    assert VIEW_MIME in thread._repr_mimebundle_()[0]  # not created yet: an empty view
    thread.add("a note first")
    ai = Assistant(tools=[roll_dice])
    ai.say("first question", thread=thread, event_handler_class=None)
    # A run that wrote no message (ended by its tool) still shows, after what came before it.
    Assistant(tools=[finish]).say("second question", thread=thread, event_handler_class=None)

    data, _ = in_a_notebook.display_formatter.format(thread)
    assert data["text/plain"] == repr(thread)
    order = text_of(
        data["text/html"],
        "a note first",
        "first question",
        "Tool call <code>roll_dice</code> (completed)",
        "Tool results:",
        "second question",
        "Tool call <code>finish</code> (cancelled)",
    )
    assert order == sorted(order)
    items = notebook.thread_state(thread)["items"]
    assert [(item["kind"], item.get("role")) for item in items] == [
        ("message", "user"),
        ("message", "user"),
        ("tool_call", None),
        ("message", "assistant"),
        ("message", "user"),
        ("tool_call", None),
    ]


@pytest.mark.slow
def test_a_code_interpreter_run_displays_its_plot(in_a_notebook: Any) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\n"
    analyst = Assistant(tools=[CodeInterpreter])
    run = analyst.say(f"```python\n{code}```", event_handler_class=None)
    data, _ = in_a_notebook.display_formatter.format(run)
    assert '<img alt="file-' in data["text/html"]
    assert 'src="data:image/png;base64,' in data["text/html"]


def test_a_thread_that_cannot_be_read_displays_as_its_repr(
    in_a_notebook: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gone = Thread(id="thread_deleted_elsewhere")
    assert gone._repr_mimebundle_() is None
    assert "could not read thread thread_deleted_elsewhere" in caplog.text
