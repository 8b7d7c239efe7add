"""Server-sent events: what a run emits, framed as the Assistants API streams them.

Each event is serialised when it is emitted (the engine goes on mutating its objects), as
``event: NAME\\ndata: JSON\\n\\n``; a stream ends with ``event: done\\ndata: [DONE]``.
A run started without ``stream`` emits into :data:`NO_EVENTS`, which costs nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["DONE", "NO_EVENTS", "EventSink", "EventStream", "frame"]

DONE = b"event: done\ndata: [DONE]\n\n"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def frame(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {_dumps(data)}\n\n".encode()


class EventSink:
    """Receives a run's events; the base class drops them."""

    def emit(self, event: str, data: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


NO_EVENTS = EventSink()


class EventStream(EventSink):
    """An SSE body fed by the run engine and read by one HTTP response.

    Reading drains every event already queued into one chunk, so a fast run is written to
    the socket in a few large writes rather than one write per delta.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def emit(self, event: str, data: dict[str, Any]) -> None:
        self._queue.put_nowait(frame(event, data))

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        queue = self._queue
        while True:
            item = await queue.get()
            chunks: list[bytes] = []
            while item is not None:
                chunks.append(item)
                if queue.empty():
                    break
                item = queue.get_nowait()
            if chunks:
                yield b"".join(chunks)
            if item is None:
                yield DONE
                return
