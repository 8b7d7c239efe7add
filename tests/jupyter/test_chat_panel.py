"""ChatPanel: driven through its comm as the browser drives it, on a real event loop standing in
for the kernel's, against the embedded server with the ``test`` model."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from jupyter_helpers import Comms, RecordingComm

from _wait import wait_until_async
from ipyassistant import Assistant, CodeInterpreter, Thread
from ipyassistant.jupyter import ChatPanel
from ipyassistant.jupyter import chat_panel as chat_panel_module
from ipyassistant.jupyter.view_state import ViewState, apply_ops

#: The client talks to the embedded server (its data in a temporary folder), model ``test``.
pytestmark = pytest.mark.usefixtures("client_env")


def send(comm: RecordingComm, text: str, files: dict[str, bytes] | None = None) -> None:
    """What the browser sends when Enter is pressed: the text, the files as buffers."""
    files = files or {}
    content = {"type": "send", "text": text, "files": list(files)}
    data = {"method": "custom", "content": content}
    comm.handle_msg({"content": {"data": data}, "buffers": [memoryview(b) for b in files.values()]})


async def settle(panel: ChatPanel, timeout: float = 60) -> None:
    """Wait until the panel has answered every message sent so far."""
    assert panel.task is not None
    await asyncio.wait_for(asyncio.shield(panel.task), timeout)


async def run_status(panel: ChatPanel, status: str) -> None:
    """Wait until the panel's running turn shows its run in ``status``."""
    await wait_until_async(lambda: live_status(panel) == status, message=f"a run {status}")


def customs(comm: RecordingComm, kind: str) -> list[dict[str, Any]]:
    return [s.custom for s in comm.sent if s.custom is not None and s.custom["type"] == kind]


def texts(state: ViewState, role: str) -> list[str]:
    return [
        "".join(b["text"] for b in item["blocks"] if b["type"] == "text")
        for item in state["items"]
        if item["kind"] == "message" and item["role"] == role
    ]


def live_status(panel: ChatPanel) -> str | None:
    state = panel.live_state
    return None if state is None or state["run"] is None else state["run"]["status"]


async def test_a_sent_message_streams_its_reply_without_blocking_the_loop(comms: Comms) -> None:
    panel = ChatPanel(Assistant(), Thread(), interval=0)
    comm = comms.of(panel)
    seen: set[str | None] = set()

    async def tick() -> None:  # stands for the kernel's other work while the reply streams
        while True:
            seen.add(live_status(panel))
            await asyncio.sleep(0.01)

    ticker = asyncio.ensure_future(tick())
    send(comm, "/sleep 0.5\n/stream 5")
    assert panel.busy and panel.task is not None
    await settle(panel)
    ticker.cancel()
    assert "in_progress" in seen  # the loop kept running while the run slept and streamed

    assert not panel.busy
    (turn,) = panel.turns
    assert texts(turn, "user") == ["/sleep 0.5\n/stream 5"]
    assert texts(turn, "assistant") == ["0 1 2 3 4 "]
    assert turn["run"]["status"] == "completed"
    # The browser's live turn: its first state, then the patches, make the synced turn.
    (start, end) = customs(comm, "live")
    assert start["turn"] == 0 and end == {"type": "live", "turn": 0, "state": None}
    live = start["state"]
    for patch in customs(comm, "patch"):
        live = apply_ops(live, patch["ops"])
    assert live == turn
    # The stream was folded on the portal's thread, never on the loop's.
    patch_threads = {s.thread for s in comm.sent if s.custom and s.custom["type"] == "patch"}
    assert patch_threads == {"ipyassistant-portal"}
    bundle = panel._repr_mimebundle_()
    assert bundle is not None and "0 1 2 3 4" in bundle[0]["text/html"]
    # The saved conversation travels beside the live widget, naming it.
    saved = bundle[0]["application/vnd.ipyassistant.view+json"]
    assert saved["kind"] == "chat" and saved["model_id"] == panel.model_id
    assert [state["run"] for state in saved["states"]][1:] == [turn["run"]]
    assert "application/vnd.jupyter.widget-view+json" in bundle[0]


async def test_each_finished_turn_rewrites_the_displayed_conversation(
    comms: Comms, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        chat_panel_module,
        "display",
        lambda data, **kw: shown.append(("display", data)) or None,
    )
    monkeypatch.setattr(
        chat_panel_module,
        "update_display",
        lambda data, **kw: shown.append((kw["display_id"], data)),
    )
    panel = ChatPanel(Assistant(), Thread())
    panel._ipython_display_()
    send(comms.of(panel), "first words")
    await settle(panel)
    assert [kind for kind, _ in shown] == ["display", panel._display_id]
    assert "echo: first words" in shown[-1][1]["text/html"]


async def test_stop_cancels_the_run_and_the_next_message_works(comms: Comms) -> None:
    panel = ChatPanel(Assistant(), Thread())
    comm = comms.of(panel)
    send(comm, "/sleep 30\nnever said")
    await run_status(panel, "in_progress")
    comm.receive({"type": "stop"})
    await settle(panel, timeout=8)  # stopped: not the run's 30 s sleep
    (turn,) = panel.turns
    assert turn["run"]["status"] == "cancelled"
    assert texts(turn, "assistant") == []
    assert not panel.busy

    send(comm, "hello again")
    await settle(panel)
    assert texts(panel.turns[1], "assistant") == ["echo: hello again"]


async def test_stop_before_the_run_started_leaves_the_thread_usable(comms: Comms) -> None:
    panel = ChatPanel(Assistant(), Thread())
    comm = comms.of(panel)
    send(comm, "/sleep 30")
    comm.receive({"type": "stop"})  # before the panel's task even started: dropped
    await settle(panel)
    assert panel.turns == [] and not panel.busy

    send(comm, "/sleep 30")
    # The turn has started, and nothing of it reached the server yet.
    await wait_until_async(lambda: panel.live_state is not None, interval=0, message="a turn")
    comm.receive({"type": "stop"})
    await settle(panel, timeout=40)
    (turn,) = panel.turns
    stopped = turn["error"] is not None or turn["run"]["status"] == "cancelled"
    assert stopped, turn
    send(comm, "still there?")
    await settle(panel)
    assert texts(panel.turns[1], "assistant") == ["echo: still there?"]


async def test_stop_while_a_function_tool_runs_cancels_the_run(comms: Comms) -> None:
    release = threading.Event()

    def hold() -> str:
        """Wait until the test lets go."""
        release.wait(30)
        return "released"

    panel = ChatPanel(Assistant(tools=[hold]), Thread())
    comm = comms.of(panel)
    try:
        send(comm, "/call hold {}")
        await run_status(panel, "requires_action")
        comm.receive({"type": "stop"})
        await settle(panel, timeout=30)
    finally:
        release.set()
    (turn,) = panel.turns
    assert turn["run"]["status"] == "cancelled"
    (call,) = [item for item in turn["items"] if item["kind"] == "tool_call"]
    assert call["name"] == "hold" and call["status"] == "cancelled"
    send(comm, "/stream 2")
    await settle(panel)
    assert texts(panel.turns[1], "assistant") == ["0 1 "]


async def test_a_message_sent_right_after_an_early_stop_is_answered(comms: Comms) -> None:
    panel = ChatPanel(Assistant(), Thread())
    comm = comms.of(panel)
    send(comm, "dropped")
    comm.receive({"type": "stop"})
    send(comm, "kept")
    await settle(panel)
    assert [texts(t, "user") for t in panel.turns] == [["kept"]]


async def test_messages_sent_during_a_reply_wait_their_turn_and_stop_gives_them_back(
    comms: Comms,
) -> None:
    panel = ChatPanel(Assistant(), Thread())
    comm = comms.of(panel)
    send(comm, "/sleep 0.3\nfirst")
    send(comm, "second")
    assert panel.queued == ["second"]
    await settle(panel)
    assert [texts(t, "assistant") for t in panel.turns] == [["echo: first"], ["echo: second"]]
    assert panel.queued == []

    send(comm, "/sleep 30")
    send(comm, "not sent\nbut kept")
    await run_status(panel, "in_progress")
    comm.receive({"type": "stop"})
    await settle(panel, timeout=20)
    assert len(panel.turns) == 3 and panel.queued == []
    assert panel.turns[2]["run"]["status"] == "cancelled"
    # Not sent, and not lost: its words go back to the browser's input box.
    assert customs(comm, "unsent") == [{"type": "unsent", "texts": ["not sent\nbut kept"]}]


async def test_an_error_shows_in_the_turn_and_the_panel_goes_on(comms: Comms) -> None:
    panel = ChatPanel(Assistant(), Thread())
    comm = comms.of(panel)
    send(comm, "/fail broken on purpose")
    await settle(panel)
    assert panel.turns[0]["run"]["status"] == "failed"
    assert "broken on purpose" in panel.turns[0]["run"]["error"]["message"]
    send(comm, "ok?")
    await settle(panel)
    assert texts(panel.turns[1], "assistant") == ["echo: ok?"]


async def test_history_is_loaded_from_an_existing_thread(comms: Comms) -> None:
    ai = Assistant()
    thread = Thread()
    await ai.say_async("hello there", thread=thread, event_handler_class=None)
    panel = ChatPanel(ai, thread)
    assert texts(panel.history, "user") == ["hello there"]
    assert texts(panel.history, "assistant") == ["echo: hello there"]
    assert panel.turns == [] and not panel.attachments
    assert "echo: hello there" in panel.transcript_html()
    # The conversation goes on in the same thread.
    send(comms.of(panel), "and again")
    await settle(panel)
    messages = await thread.get_messages_async()
    assert [m.content[0].text.value for m in messages][-1] == "echo: and again"  # type: ignore[union-attr]


async def test_a_new_browser_model_gets_the_live_turn(comms: Comms) -> None:
    panel = ChatPanel(Assistant(), Thread())
    comm = comms.of(panel)
    send(comm, "/sleep 30")
    await run_status(panel, "in_progress")
    comm.receive({"type": "snapshot?"})
    (snapshot,) = customs(comm, "snapshot")
    assert snapshot["live"]["turn"] == 0
    assert snapshot["live"]["state"]["run"]["status"] == "in_progress"
    assert texts(snapshot["live"]["state"], "user") == ["/sleep 30"]
    panel.stop()
    await settle(panel, timeout=20)
    comm.receive({"type": "snapshot?"})
    assert customs(comm, "snapshot")[-1]["live"] is None


@pytest.mark.slow
async def test_an_attached_file_is_readable_by_the_code_interpreter(comms: Comms) -> None:
    panel = ChatPanel(Assistant(tools=[CodeInterpreter]), Thread())
    assert panel.attachments
    comm = comms.of(panel)
    code = "```python\nprint(open('notes.txt').read())\n```"
    send(comm, code, {"notes.txt": b"written in the browser"})
    await settle(panel, timeout=120)
    (turn,) = panel.turns
    assert turn["run"]["status"] == "completed", turn
    (call,) = [item for item in turn["items"] if item["kind"] == "code"]
    assert call["logs"] == "written in the browser\n"
    assert texts(turn, "user") == [code + "Attached: `notes.txt`"]


def test_outside_a_running_loop_submit_needs_one(comms: Comms) -> None:
    panel = ChatPanel(Assistant(), Thread())
    with pytest.raises(RuntimeError, match="running event loop"):
        panel.submit("hi")
    assert panel.queued == [] and not panel.busy
