"""PatchThrottle on a fake clock: coalescing, one message per interval, flushes at boundaries."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import pytest
from jupyter_helpers import FakeClock

from ipyassistant.jupyter.throttle import PatchThrottle, TimerLoop
from ipyassistant.jupyter.view_types import Op, TextOp


def text(piece: str) -> TextOp:
    return {"op": "text", "id": "msg_1", "index": 0, "text": piece}


@dataclass
class Outbox:
    """The patch messages a throttle sent, and the clock's time at each."""

    clock: FakeClock
    messages: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def send(self, message: dict[str, Any]) -> None:
        assert message["type"] == "patch"
        self.messages.append(message)
        self.times.append(self.clock.now)

    @property
    def ops(self) -> list[list[Op]]:
        return [message["ops"] for message in self.messages]


def throttle(clock: FakeClock, loop: TimerLoop | None = None) -> tuple[PatchThrottle, Outbox]:
    outbox = Outbox(clock)
    patches = PatchThrottle(
        outbox.send, threading.RLock(), interval=0.05, clock=clock, timer_loop=lambda: loop
    )
    return patches, outbox


def test_ops_within_an_interval_go_out_as_one_coalesced_message_when_it_ends() -> None:
    clock = FakeClock()
    patches, outbox = throttle(clock, clock)
    patches.add([text("a")])  # nothing was sent yet: at once
    assert outbox.ops == [[text("a")]]
    for piece in "bcd":
        clock.advance(0.01)
        patches.add([text(piece)])
    assert len(outbox.messages) == 1
    assert len(clock.pending()) == 1, "one timer for the whole interval"
    clock.advance_to(0.049)
    assert len(outbox.messages) == 1
    clock.advance_to(0.05)
    assert outbox.ops == [[text("a")], [text("bcd")]]
    assert outbox.times == pytest.approx([0.0, 0.05])
    assert clock.pending() == []


def test_at_most_one_message_per_interval() -> None:
    clock = FakeClock()
    patches, outbox = throttle(clock, clock)
    for _ in range(1000):  # a delta every millisecond for a second
        patches.add([text("x")])
        clock.advance(0.001)
    clock.advance(1.0)
    gaps = [later - earlier for earlier, later in pairwise(outbox.times)]
    assert min(gaps) >= 0.05 - 1e-9
    assert len(outbox.messages) <= 21
    # Coalesced, and nothing lost: one text op per message, all the text.
    assert all(len(ops) == 1 for ops in outbox.ops)
    assert "".join(op["text"] for ops in outbox.ops for op in ops if op["op"] == "text") == (
        "x" * 1000
    )


def test_a_boundary_sends_at_once_and_ops_after_it_wait_a_whole_interval() -> None:
    clock = FakeClock()
    patches, outbox = throttle(clock, clock)
    patches.add([text("a")])
    clock.advance(0.01)
    patches.add([text("b")])
    clock.advance(0.01)
    patches.add([text("c")], boundary=True)
    assert outbox.ops == [[text("a")], [text("bc")]]
    assert outbox.times == pytest.approx([0.0, 0.02])
    # The timer armed for "b" fires at 0.05 with "d" queued: it waits out the interval that
    # began with the boundary's message.
    patches.add([text("d")])
    clock.advance_to(0.05)
    assert len(outbox.messages) == 2
    clock.advance_to(0.07)
    assert outbox.ops[2:] == [[text("d")]]
    assert outbox.times[2:] == pytest.approx([0.07])


def test_flush_sends_now_and_clear_drops_what_is_queued() -> None:
    clock = FakeClock()
    patches, outbox = throttle(clock, clock)
    patches.add([text("a")])
    patches.add([text("b")])
    patches.flush()
    assert outbox.ops == [[text("a")], [text("b")]]
    patches.flush()  # nothing queued: nothing sent
    patches.add([text("c")])
    patches.clear()
    clock.advance(1.0)
    assert len(outbox.messages) == 2


def test_without_a_loop_the_next_ops_send_the_queue() -> None:
    clock = FakeClock()
    patches, outbox = throttle(clock, loop=None)
    patches.add([text("a")])
    patches.add([text("b")])  # queued, and no timer can be armed
    clock.advance(0.05)
    assert len(outbox.messages) == 1
    patches.add([text("c")])
    assert outbox.ops == [[text("a")], [text("bc")]]
