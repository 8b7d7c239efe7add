"""RunView as a transport: what it sends, how often, and what it keeps in its traits."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from ipywidgets.widgets.widget import _remove_buffers
from jupyter_helpers import SDK_EVENT, Comms, FakeClock, Sent, events, files, load, replay
from openai.types.beta.threads import Message

from ipyassistant.jupyter import RunView, WidgetHandler
from ipyassistant.jupyter.view_state import BOUNDARY_EVENTS, ViewState, apply_ops, empty_state


def browser_state(sent: list[Sent]) -> ViewState:
    """The state a browser reaches from the messages so far (as js/live.ts does)."""
    state = empty_state()
    for message in sent:
        content = message.custom
        if content and content["type"] == "patch":
            state = apply_ops(state, content["ops"])
        elif content and content["type"] == "snapshot" and content["state"] is not None:
            state = content["state"]
        elif message.msg_type == "comm_msg" and "state" in message.data.get("state", {}):
            state = message.data["state"]["state"]
    return state


def patches(sent: list[Sent]) -> list[Sent]:
    return [m for m in sent if m.custom and m.custom["type"] == "patch"]


async def feed(
    recording: dict[str, Any], view: RunView, clock: FakeClock, **handler: Any
) -> list[Sent]:
    """Replay a recording through one WidgetHandler per stream, at its recorded pace.

    Returns, per event, whether the browser was in step with the kernel right after it.
    """
    behind: list[Any] = []
    recorder = view.comm
    offset = 0.0
    for number, stream in enumerate(recording["streams"]):
        handler_ = WidgetHandler(view, **handler)
        if number == 0:
            for message in recording["messages"]:
                await handler_.on_message_done(Message.model_validate(message))
        for event, at in zip(stream["events"], stream["times"], strict=True):
            clock.advance_to(offset + at)  # fires the throttle's timers due on the way
            await handler_.on_event(SDK_EVENT.validate_python(event))
            if (
                event["event"] in BOUNDARY_EVENTS
                and browser_state(recorder.sent) != view.live_state
            ):
                behind.append(event["event"])
        await handler_.on_end()
        offset = clock.now + 1.0  # the client calls its tools between two streams
    return behind


async def test_a_long_stream_is_coalesced_to_twenty_messages_a_second(comms: Comms) -> None:
    clock = FakeClock()
    view = RunView(clock=clock, timer_loop=clock.loop)
    recorder = comms.of(view)
    recorder.clock = clock  # type: ignore[method-assign]
    recording = load("stream_2000")
    behind = await feed(recording, view, clock)

    sent = patches(recorder.sent)
    deltas = sum(e["event"] == "thread.message.delta" for e in events(recording))
    assert deltas == 2000
    per_second = Counter(int(m.at / 1.0) for m in sent)
    boundaries = sum(e["event"] in BOUNDARY_EVENTS for e in events(recording))
    assert max(per_second.values()) <= 20 + boundaries, per_second
    assert len(sent) < 60
    # Block boundaries are flushed at once: the browser is never behind right after one.
    assert behind == []
    # The finished state was written to the synced trait, equal to the reducer's result.
    assert view.state == replay(recording)[0] == view.live_state
    assert browser_state(recorder.sent) == view.state


async def test_no_growing_string_is_synced_while_streaming(comms: Comms) -> None:
    clock = FakeClock()
    view = RunView(clock=clock, timer_loop=clock.loop)
    recorder = comms.of(view)
    recording = load("stream_2000")
    await feed(recording, view, clock)
    updates = [
        m for m in recorder.sent if m.msg_type == "comm_msg" and m.data["method"] == "update"
    ]
    assert len(updates) == 1, "the state trait is written once, when the stream ends"
    reply = replay(recording)[0]["items"][-1]["blocks"][0]["text"]
    streamed = sum(m.size for m in patches(recorder.sent))
    assert streamed < 1.5 * len(reply.encode())


@pytest.mark.parametrize(
    "name", ["text", "tool_round_trip", "code_interpreter", "failure", "cancel"]
)
async def test_the_browser_ends_in_the_kernel_state(comms: Comms, name: str) -> None:
    clock = FakeClock()
    view = RunView(clock=clock, timer_loop=clock.loop)
    recording = load(name)
    stored = files(recording)
    behind = await feed(recording, view, clock, fetch_file=stored.__getitem__)
    assert behind == []
    assert view.state == replay(recording)[0]
    assert browser_state(comms.of(view).sent) == view.state
    assert view.images == stored


async def test_images_travel_as_binary_buffers(comms: Comms) -> None:
    recording = load("code_interpreter")
    ((file_id, data),) = files(recording).items()
    fetched: list[str] = []

    async def fetch(fid: str) -> bytes:
        fetched.append(fid)
        return data

    clock = FakeClock()
    view = RunView(clock=clock, timer_loop=clock.loop)
    await feed(recording, view, clock, fetch_file=fetch)
    assert fetched == [file_id], "fetched once, though shown twice"
    sent = comms.of(view).sent
    (image,) = [m for m in sent if m.custom and m.custom["type"] == "image"]
    assert image.custom == {"type": "image", "file_id": file_id}
    assert image.buffers == [data]
    # The synced trait too: ipywidgets takes bytes out of the JSON into buffers.
    (update,) = [m for m in sent if m.msg_type == "comm_msg" and m.data["method"] == "update"]
    assert update.data["buffer_paths"] == [["images", file_id]]
    assert update.buffers == [data]
    _, paths, buffers = _remove_buffers(view.get_state())
    assert paths == [["images", file_id]] and buffers == [data]


async def test_a_failed_image_fetch_does_not_end_the_stream(
    comms: Comms, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(file_id: str) -> bytes:
        raise OSError("gone")

    clock = FakeClock()
    view = RunView(clock=clock, timer_loop=clock.loop)
    await feed(load("code_interpreter"), view, clock, fetch_file=broken)
    assert view.state["run"]["status"] == "completed"
    assert view.images == {}
    assert "could not fetch image file" in caplog.text


def test_a_late_view_gets_a_snapshot(comms: Comms) -> None:
    clock = FakeClock()
    view = RunView(clock=clock, timer_loop=clock.loop, interval=10.0)
    recorder = comms.of(view)
    half = events(load("stream_2000"))[:500]
    for event in half:
        view.push(event)
    assert view.live_state != view.state
    recorder.receive({"type": "snapshot?"})
    snapshot = recorder.sent[-1].custom
    assert snapshot is not None and snapshot["type"] == "snapshot"
    assert snapshot["state"] == view.live_state
    # What was queued went out first (the snapshot includes it: nothing applies twice).
    assert recorder.sent[-2].custom["type"] == "patch"  # type: ignore[index]
    assert browser_state(recorder.sent) == view.live_state

    view.sync()
    recorder.receive({"type": "snapshot?"})
    assert recorder.sent[-1].custom == {"type": "snapshot", "state": None, "images": []}


def test_a_snapshot_brings_the_images_the_trait_lacks(comms: Comms) -> None:
    view = RunView()
    recorder = comms.of(view)
    view.add_image("file-1", b"\x89PNG...")
    recorder.receive({"type": "snapshot?"})
    last = recorder.sent[-1]
    assert last.custom == {"type": "snapshot", "state": None, "images": ["file-1"]}
    assert last.buffers == [b"\x89PNG..."]


def test_other_messages_from_the_browser_are_ignored(comms: Comms) -> None:
    view = RunView()
    recorder = comms.of(view)
    before = len(recorder.sent)
    recorder.receive({"type": "something else"})
    recorder.receive("not even a dict")  # type: ignore[arg-type]
    assert len(recorder.sent) == before


def test_queued_ops_go_out_on_a_timer(comms: Comms) -> None:
    clock = FakeClock()
    view = RunView(interval=0.05, clock=clock, timer_loop=clock.loop)
    recorder = comms.of(view)
    deltas = [e for e in events(load("text")) if e["event"] != "thread.message.completed"]
    for event in deltas[:9]:  # up to a few deltas, no boundary
        view.push(event)
    sent_before = len(patches(recorder.sent))
    assert clock.pending(), "the queued ops wait for a timer"
    clock.advance(0.05)
    assert len(patches(recorder.sent)) > sent_before
    assert browser_state(recorder.sent) == view.live_state


def test_the_mime_bundle_has_the_widget_and_a_transcript(comms: Comms) -> None:
    state, _ = replay(load("text"))
    view = RunView(state)
    data, _ = view._repr_mimebundle_()
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == view.model_id
    assert "echo: Hello there, <strong>assistant</strong>!" in data["text/html"]


def test_reset_shows_a_new_state(comms: Comms) -> None:
    view = RunView()
    for event in events(load("text")):
        view.push(event)  # streamed to the browser, never synced
    view.reset()
    assert view.state == view.live_state == empty_state()
    assert browser_state(comms.of(view).sent) == empty_state()
