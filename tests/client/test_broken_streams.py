"""Connection faults between the client and the server, through a cutting proxy on loopback.

The proxy forwards to the embedded server, records every request line, and can cut the
response to one request: right away (the server acted on it, the client never hears back) or
just after a given server-sent event. A run whose stream breaks is followed by polling; a
request that starts or continues a run is never sent twice.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import AsyncAssistantEventHandler
from openai.types.beta import AssistantStreamEvent
from openai.types.beta.threads import Message
from openai.types.beta.threads.runs import RunStep

from ipyassistant import Assistant, Thread

_REQUEST_LINE = re.compile(rb"(GET|POST|DELETE) (\S+) HTTP/1\.1\r\n")


class CuttingProxy:
    """A TCP proxy to ``target`` that can cut the response to one chosen request."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.requests: list[str] = []
        self._rule: tuple[str, str, bytes | None] | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def cut_next(self, path_suffix: str, after: bytes | None, method: str = "POST") -> None:
        """Cut the response to the next request whose path ends with ``path_suffix``: just
        after the event named ``after`` (or before any byte of it when ``None``)."""
        self._rule = (method, path_suffix, after)

    def count(self, path_suffix: str, method: str = "POST") -> int:
        return sum(r.startswith(f"{method} ") and r.endswith(path_suffix) for r in self.requests)

    def close(self) -> None:
        for sock in [self.listener, *self._sockets]:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [downstream, upstream]
            cut: dict[str, Any] = {}
            for pump, args in ((self._requests, (downstream, upstream)), (self._responses, (upstream, downstream))):
                threading.Thread(target=pump, args=(*args, cut), daemon=True).start()

    def _requests(self, source: socket.socket, sink: socket.socket, cut: dict[str, Any]) -> None:
        with _closing(source, sink):
            while data := source.recv(65536):
                for method, path in _REQUEST_LINE.findall(data):
                    line = f"{method.decode()} {path.decode().split('?')[0]}"
                    with self._lock:
                        self.requests.append(line)
                        rule = self._rule
                        if rule and line.startswith(f"{rule[0]} ") and line.endswith(rule[1]):
                            self._rule = None
                            cut.update(after=rule[2], seen=b"")
                sink.sendall(data)

    def _responses(self, source: socket.socket, sink: socket.socket, cut: dict[str, Any]) -> None:
        with _closing(source, sink):
            while data := source.recv(65536):
                if "after" in cut:
                    cut["seen"] += data
                    if cut["after"] is None:
                        return  # the server acted on the request; its answer is lost
                    event = cut["seen"].find(b"event: " + cut["after"])
                    end = cut["seen"].find(b"\n\n", event) if event >= 0 else -1
                    if end >= 0:
                        keep = end + 2 - (len(cut["seen"]) - len(data))
                        sink.sendall(data[: max(keep, 0)])
                        return
                sink.sendall(data)


class _closing:
    """Close both sockets of a pump when it ends (the other pump then ends too)."""

    def __init__(self, *sockets: socket.socket) -> None:
        self.sockets = sockets

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return isinstance(exc[1], OSError)  # a socket closed under a pump


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[CuttingProxy]:
    """The client talks to the embedded server through a cutting proxy."""
    from ipyassistant.server import embedded

    server = embedded.start()
    host, port = server.base_url.split("//")[1].split("/")[0].split(":")
    proxy = CuttingProxy((host, int(port)))
    monkeypatch.setenv("IPYASSISTANT_BASE_URL", proxy.base_url)
    monkeypatch.setenv("IPYASSISTANT_API_KEY", server.api_key)
    try:
        yield proxy
    finally:
        proxy.close()


class Recorder(AsyncAssistantEventHandler):
    """Records the final callbacks a handler gets."""

    log: list[str]

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def on_message_done(self, message: Message) -> None:
        self.log.append(f"message: {message.content[0].text.value}")  # type: ignore[union-attr]

    async def on_run_step_done(self, run_step: RunStep) -> None:
        self.log.append(f"step: {run_step.step_details.type} {run_step.status}")

    async def on_event(self, event: AssistantStreamEvent) -> None:
        if event.event in ("thread.run.completed", "thread.run.failed"):
            self.log.append(event.event)


def test_a_stream_broken_mid_reply_is_followed_to_the_end(proxy, api):
    proxy.cut_next("/runs", after=b"thread.message.delta")
    log: list[str] = []
    thread = Thread()
    thread.add("/stream 30")
    run = thread.run(Assistant(), event_handler_class=Recorder, event_handler_kwargs={"log": log})
    reply = "".join(f"{i} " for i in range(30))
    assert run.run.status == "completed"
    assert [m.content[0].text.value for m in run.messages] == [reply]
    assert [s.status for s in run.steps] == ["completed"]
    # The handler missed the message's end and the run's: it is told of both.
    assert log == [f"message: {reply}", "step: message_creation completed", "thread.run.completed"]
    assert proxy.count("/runs") == 1
    # The thread is free.
    thread.add("hello")
    assert thread.run(Assistant()).run.status == "completed"


def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: The first.
        b: The second.
    """
    add.calls += 1  # type: ignore[attr-defined]
    return a + b


@pytest.mark.parametrize(
    ("path", "after"),
    [
        ("/runs", b"thread.run.step.created"),  # before the server asks for the tool
        ("/submit_tool_outputs", b"thread.run.step.completed"),  # after the tool ran
    ],
)
def test_a_stream_broken_around_a_tool_call_goes_on(proxy, path, after):
    add.calls = 0  # type: ignore[attr-defined]
    proxy.cut_next(path, after=after)
    thread = Thread()
    thread.add('/call add {"a": 2, "b": 3}')
    run = thread.run(Assistant(tools=[add]))
    assert run.run.status == "completed"
    assert add.calls == 1  # type: ignore[attr-defined]
    assert run.messages[-1].content[0].text.value == "Tool results:\n- add: 5"
    assert [s.step_details.type for s in run.steps] == ["tool_calls", "message_creation"]
    assert proxy.count("/runs") == 1 and proxy.count("/submit_tool_outputs") == 1


def test_a_run_creation_that_lost_its_answer_is_not_retried(proxy, api):
    proxy.cut_next("/runs", after=None)
    thread = Thread()
    thread.add("/sleep 0.2\nhello")
    with pytest.raises(openai.APIConnectionError):
        thread.run(Assistant())
    assert proxy.count("/runs") == 1  # a retry could have started a second run
    # The run the server did start was cancelled: the thread takes another.
    runs = api.beta.threads.runs.list(thread.id).data
    assert [r.status for r in runs] == ["cancelled"]
    thread.add("again")
    assert thread.run(Assistant()).run.status == "completed"


def test_reads_are_retried(proxy):
    thread = Thread()
    thread.add("hello")
    run = thread.run(Assistant())
    path = f"/runs/{run.run.id}"
    proxy.cut_next(path, after=None, method="GET")
    run.refresh()
    assert run.run.status == "completed"
    assert proxy.count(path, method="GET") == 2  # the lost answer, then the retry
