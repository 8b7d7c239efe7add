"""Live patches to a widget's front end: view-state ops, coalesced, at most one message per interval.

RunView and ChatPanel stream ops the same way. Ops are queued and sent as one
``{"type": "patch", "ops": [...]}`` message at once when an event ends a block or the
interval has passed since the last message; otherwise a timer on the running event loop
sends them when the interval is over (so do the next ops, or :meth:`PatchThrottle.flush`).
Both the clock and the loop the timer is armed on can be given, so that tests move time by
hand and fire the timer when they choose.
The owner's lock guards the queue, because stream events arrive on the portal's thread while
the kernel's thread answers snapshot requests and ends streams.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol

from .view_state import Op, coalesce

__all__ = ["PatchThrottle", "Timer", "TimerLoop", "running_loop"]

#: A timer that fires this close to the end of the interval flushes (asyncio fires timers up
#: to its clock resolution early).
_TIMER_SLACK = 0.002


class Timer(Protocol):
    """An armed timer (what ``asyncio.loop.call_later`` returns)."""

    def cancelled(self) -> bool: ...


class TimerLoop(Protocol):
    """Where the throttle arms its timer: an asyncio event loop, or a test's fake one."""

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer: ...


def running_loop() -> TimerLoop | None:
    """The asyncio loop running in this thread; None outside one (no timer can be armed)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass(eq=False)
class PatchThrottle:
    """Queues ops and sends them as coalesced patch messages through ``send``.

    ``lock`` is the owner's; ``clock`` measures the interval; ``timer_loop`` returns the loop
    to arm the interval's timer on, at the time the timer is needed (default: the running
    asyncio loop, if any).
    """

    send: Callable[[dict[str, Any]], None]
    lock: threading.RLock
    _: KW_ONLY
    #: The shortest time between two patch messages, in seconds.
    interval: float = 0.05
    clock: Callable[[], float] = time.monotonic
    timer_loop: Callable[[], TimerLoop | None] = running_loop
    _pending: list[Op] = field(default_factory=list, init=False)
    _last_send: float = field(default=-math.inf, init=False)
    _timer: Timer | None = field(default=None, init=False)
    _armed_on: TimerLoop | None = field(default=None, init=False)

    def add(self, ops: Iterable[Op], *, boundary: bool = False) -> None:
        """Queue ``ops``; send the queue now at a block ``boundary`` or once the interval passed."""
        with self.lock:
            self._pending.extend(ops)
            now = self.clock()
            if boundary or now - self._last_send >= self.interval:
                self._flush(now)
            elif self._pending:
                self._arm_timer(self.interval - (now - self._last_send))

    def flush(self) -> None:
        """Send what is queued now."""
        with self.lock:
            self._flush(self.clock())

    def clear(self) -> None:
        """Drop what is queued (the front end is about to get a whole new state)."""
        with self.lock:
            self._pending.clear()

    def _flush(self, now: float) -> None:
        if not self._pending:
            return
        ops = coalesce(self._pending)
        self._pending = []
        self._last_send = now
        self.send({"type": "patch", "ops": ops})

    def _arm_timer(self, delay: float) -> None:
        loop = self.timer_loop()
        if loop is None:  # no loop in this thread: the next ops or a flush send them
            return
        timer = self._timer
        # A timer armed on another loop (one that may have closed since) would never fire.
        if timer is not None and not timer.cancelled() and self._armed_on is loop:
            return
        self._armed_on = loop
        self._timer = loop.call_later(max(delay, 0.0), self._on_timer)

    def _on_timer(self) -> None:
        with self.lock:
            self._timer = None
            now = self.clock()
            # Ops may have been flushed since the timer was armed: wait out the new interval.
            wait = self.interval - (now - self._last_send)
            if self._pending and wait > _TIMER_SLACK:
                self._arm_timer(wait)
            else:
                self._flush(now)
