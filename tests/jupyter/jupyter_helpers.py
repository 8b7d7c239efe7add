"""Helpers of the Jupyter tests: recorded runs, a comm that records what a widget sends, and
a clock that tests move by hand. (A module of its own: `conftest` is a name other test folders
use too.)"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comm.base_comm import BaseComm
from jupyter_client.session import json_packer
from openai.types.beta import AssistantStreamEvent
from pydantic import TypeAdapter

import ipyassistant
from ipyassistant.jupyter.view_state import ViewState, empty_state, reduce

FIXTURES = Path(__file__).parent / "fixtures"
#: Turns an event's dict form into the SDK's event object.
SDK_EVENT: TypeAdapter[Any] = TypeAdapter(AssistantStreamEvent)


def kernel_env(data_dir: Path, model: str = "test") -> dict[str, str]:
    """The environment of a real kernel for a test: this checkout's ipyassistant, ``model``, a
    data folder of its own, and no way to reach a real provider."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("IPYASSISTANT_", "OPENAI_"))
    }
    source = str(Path(ipyassistant.__file__).resolve().parents[1])
    env.update(
        IPYASSISTANT_MODEL=model,
        IPYASSISTANT_DATA_DIR=str(data_dir),
        PYTHONPATH=os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p),
        # Nothing may reach a real provider: an openai: model would fail on a closed port.
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
    )
    return env


def load(name: str) -> dict[str, Any]:
    """A recording of tests/jupyter/fixtures (see record_fixtures.py for its shape)."""
    return json.loads((FIXTURES / f"{name}.json").read_text())  # type: ignore[no-any-return]


def events(recording: dict[str, Any]) -> list[dict[str, Any]]:
    """All the events of a recording, its streams one after the other."""
    return [event for stream in recording["streams"] for event in stream["events"]]


def files(recording: dict[str, Any]) -> dict[str, bytes]:
    return {fid: base64.b64decode(b64) for fid, b64 in recording["files"].items()}


@dataclass
class FakeTimer:
    """A timer armed on a :class:`FakeClock`."""

    when: float
    callback: Callable[[], object]
    fired: bool = False
    _cancelled: bool = False

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        return self._cancelled


@dataclass
class FakeClock:
    """A monotonic clock that only moves when told to, and the loop of the timers armed on it.

    Pass it as a widget's ``clock`` and ``timer_loop=clock.loop``: its timers fire only in
    :meth:`advance`, at their time, so throttling is checked without waiting for real time.
    """

    now: float = 0.0
    timers: list[FakeTimer] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def loop(self) -> FakeClock:
        """The ``timer_loop`` of a widget on this clock: this clock, always."""
        return self

    def call_later(self, delay: float, callback: Callable[[], object]) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[FakeTimer]:
        """The timers that have not fired and are not cancelled."""
        return [t for t in self.timers if not t.fired and not t.cancelled()]

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds``, firing every timer due by then, in time order."""
        self.advance_to(self.now + seconds)

    def advance_to(self, when: float) -> None:
        """Move the clock on to ``when`` (never back), firing the timers due by then."""
        while True:
            due = [t for t in self.pending() if t.when <= when]
            if not due:
                break
            timer = min(due, key=lambda t: t.when)
            timer.fired = True
            self.now = max(self.now, timer.when)
            timer.callback()
        self.now = max(self.now, when)


@dataclass
class Sent:
    """One comm message: its type, data, buffers, size on the wire and the clock's time."""

    msg_type: str
    data: dict[str, Any]
    buffers: list[bytes]
    size: int
    at: float
    thread: str

    @property
    def custom(self) -> dict[str, Any] | None:
        """The content of a custom message (``widget.send``), else None."""
        if self.msg_type == "comm_msg" and self.data.get("method") == "custom":
            return self.data["content"]  # type: ignore[no-any-return]
        return None


class RecordingComm(BaseComm):
    """A comm that keeps what it would publish (there is no kernel in the tests)."""

    clock: Callable[[], float] = staticmethod(lambda: 0.0)  # type: ignore[assignment]

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[Sent] = []
        super().__init__(**kwargs)

    def publish_msg(
        self,
        msg_type: str,
        data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        buffers: list[Any] | None = None,
        **keys: Any,
    ) -> None:
        data = data or {}
        raw = [bytes(b) for b in buffers or []]
        # What a kernel would put on the wire for it: the JSON content plus the buffers.
        size = len(json_packer(data)) + sum(map(len, raw))
        self.sent.append(
            Sent(msg_type, data, raw, size, self.clock(), threading.current_thread().name)
        )

    def receive(self, content: dict[str, Any]) -> None:
        """Deliver a custom message from the browser to the widget."""
        self.handle_msg(
            {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
        )


@dataclass
class Comms:
    """Every comm widgets opened during a test."""

    opened: list[RecordingComm] = field(default_factory=list)

    def of(self, widget: Any) -> RecordingComm:
        found = widget.comm
        assert isinstance(found, RecordingComm), found
        return found


def replay(recording: dict[str, Any], *, as_sdk: bool = False) -> tuple[ViewState, list[Any]]:
    """Fold a recording (the user's message first); returns the state and every op."""
    state = empty_state()
    every: list[Any] = []
    for message in recording["messages"]:
        state, ops = reduce(state, {"event": "thread.message.completed", "data": message})
        every.extend(ops)
    for event in events(recording):
        state, ops = reduce(state, SDK_EVENT.validate_python(event) if as_sdk else event)
        every.extend(ops)
    return state, every
