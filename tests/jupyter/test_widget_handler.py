"""WidgetHandler: where it displays, and real streams from the server rendered into a view."""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from IPython.display import DisplayHandle
from jupyter_helpers import SDK_EVENT, Comms, events, load

from ipyassistant.jupyter import RunView, WidgetHandler, files_fetcher
from ipyassistant.jupyter import widgets as widgets_module
from ipyassistant.jupyter.saved import VIEW_MIME
from ipyassistant.jupyter.view_state import item_from_message, items_from_step

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


class Displays:
    """Records display() calls made by the widgets module: what, from which thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, str]] = []
        self.updates: list[tuple[Any, str]] = []

    def display(self, obj: Any, display_id: bool = False) -> DisplayHandle:
        self.calls.append((obj, threading.current_thread().name))
        outer = self

        class Handle(DisplayHandle):
            def update(self, obj: Any, **kwargs: Any) -> None:
                outer.updates.append((obj, threading.current_thread().name))

        return Handle()


@pytest.fixture
def displays(monkeypatch: pytest.MonkeyPatch) -> Iterator[Displays]:
    recorded = Displays()
    monkeypatch.setattr(widgets_module, "display", recorded.display)
    yield recorded


def test_prepare_displays_in_the_calling_thread(comms: Comms, displays: Displays) -> None:
    kwargs = WidgetHandler.prepare()
    assert isinstance(kwargs["view"], RunView)
    assert displays.calls == [(kwargs["view"], threading.current_thread().name)]
    handler = WidgetHandler(**kwargs)
    assert handler.view is kwargs["view"]
    assert len(displays.calls) == 1


def test_a_handler_is_inert_until_its_stream_starts(comms: Comms, displays: Displays) -> None:
    opened = len(comms.opened)
    WidgetHandler()
    assert displays.calls == []
    assert len(comms.opened) == opened


async def test_without_a_view_the_first_event_displays_one_on_the_main_thread(
    comms: Comms, displays: Displays
) -> None:
    handler = WidgetHandler()
    await handler.on_event(SDK_EVENT.validate_python(events(load("text"))[0]))
    assert displays.calls == [(handler.view, "MainThread")]


def test_without_a_view_a_background_thread_never_displays(
    comms: Comms, displays: Displays
) -> None:
    """The client's streams run on the portal thread: display() there would pick a cell."""
    handler = WidgetHandler()
    caught: list[warnings.WarningMessage] = []

    def stream() -> None:
        with warnings.catch_warnings(record=True) as found:
            warnings.simplefilter("always")
            for event in events(load("text")):
                asyncio.run(handler.on_event(SDK_EVENT.validate_python(event)))
        caught.extend(found)

    thread = threading.Thread(target=stream, name="ipyassistant-portal")
    thread.start()
    thread.join()
    assert displays.calls == []
    assert next(str(w.message) for w in caught if w.category is RuntimeWarning).startswith(
        "WidgetHandler has no view"
    )
    assert handler.view.state["run"]["status"] == "completed"  # rendered all the same
    assert {m.thread for m in comms.of(handler.view).sent[1:]} == {"ipyassistant-portal"}


async def test_the_finished_run_replaces_its_live_view_and_closes_the_widget(
    comms: Comms, displays: Displays
) -> None:
    kwargs = WidgetHandler.prepare()
    handler = WidgetHandler(**kwargs)
    for event in events(load("text")):
        await handler.on_event(SDK_EVENT.validate_python(event))
    [(bundle, thread)] = displays.updates
    assert thread == "MainThread"
    # What the notebook keeps renders without a kernel: no widget view in it.
    assert set(bundle) == {VIEW_MIME, "text/html", "text/plain"}
    assert bundle[VIEW_MIME]["states"][0]["run"]["status"] == "completed"
    assert "echo: Hello there" in bundle["text/html"]
    view = kwargs["view"]
    assert view.comm is None  # closed: saved widget state does not carry it


# -- real streams ------------------------------------------------------------------------------


@pytest.fixture
async def api(server: Any) -> Any:
    async with server.async_client() as client:
        yield client


async def test_a_real_tool_round_trip_renders_into_one_view(
    api: openai.AsyncOpenAI, comms: Comms
) -> None:
    assistant = await api.beta.assistants.create(model="test", tools=[WEATHER])
    thread = await api.beta.threads.create(
        messages=[{"role": "user", "content": '/call get_weather {"city": "Oslo"}'}]
    )
    view = RunView()
    async with api.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=WidgetHandler(view)
    ) as stream:
        await stream.until_done()
        run = stream.current_run
    assert run is not None and run.status == "requires_action"
    assert view.state["run"]["status"] == "requires_action"
    (call,) = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    async with api.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "rainy"}],
        event_handler=WidgetHandler(view),
    ) as stream:
        await stream.until_done()
        messages = await stream.get_final_messages()
    steps = [
        s async for s in api.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc")
    ]
    expected = [item for s in steps for item in items_from_step(s)]
    expected += [item_from_message(m) for m in messages]
    shown = {item["id"]: item for item in view.state["items"]}
    assert [shown[item["id"]] for item in expected] == expected
    assert shown[call.id]["output"] == "rainy"
    assert view.state["run"]["status"] == "completed"


@pytest.mark.slow
async def test_a_real_code_interpreter_run_fetches_its_plot(
    api: openai.AsyncOpenAI, comms: Comms
) -> None:
    assistant = await api.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\nprint('ok')\n"
    thread = await api.beta.threads.create(
        messages=[{"role": "user", "content": f"```python\n{code}```"}]
    )
    view = RunView()
    handler = WidgetHandler(view, fetch_file=files_fetcher(api))
    async with api.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        await stream.until_done()
    (code_item,) = [item for item in view.state["items"] if item["kind"] == "code"]
    assert code_item["logs"] == "ok\n"
    (file_id,) = code_item["images"]
    assert view.images[file_id].startswith(b"\x89PNG")
    assert 'src="data:image/png;base64,' in view.transcript_html()
