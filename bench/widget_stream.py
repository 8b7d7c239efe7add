"""Widget streaming benchmark: a long reply rendered through WidgetHandler into a RunView.

A ``/stream N`` run of the test model on the embedded server is consumed twice through the
openai SDK's stream helper, on an event loop in this thread:

- baseline: a plain ``AsyncAssistantEventHandler`` (the SDK's own work, nothing shown);
- widget: a ``WidgetHandler`` rendering into a ``RunView`` whose comm records every message
  it would publish (its JSON content as the kernel packs it, plus binary buffers).

Reported, best of ``--repeat``:

- comm messages sent, and messages per second while streaming (target <= 25; the widget
  coalesces to ~20 a second plus block boundaries);
- bytes sent over the bytes of the reply's text: live patches alone (target <= 1.5), and all
  messages including the one write of the finished state to the synced trait at the end (what
  a saved notebook keeps; it is the text once more by design);
- CPU time of this thread (the "kernel" side: SDK parsing, handler, widget) per 1000 deltas,
  widget against baseline. The embedded server runs in other threads and is not counted.

    python bench/widget_stream.py [--deltas 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import comm
import openai
from comm.base_comm import BaseComm
from jupyter_client.session import json_packer

from ipyassistant.jupyter import RunView, WidgetHandler
from ipyassistant.server import embedded

warnings.filterwarnings("ignore", category=DeprecationWarning)


@dataclass
class Published:
    kind: str  # "open", "patch", "image", "update", ...
    size: int
    at: float


class RecordingComm(BaseComm):
    """Keeps the size and time of every message instead of publishing it."""

    def __init__(self, **kwargs: Any) -> None:
        self.published: list[Published] = []
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
        size = len(json_packer(data)) + sum(len(bytes(b)) for b in buffers or [])
        if msg_type == "comm_open":
            kind = "open"
        elif data.get("method") == "custom":
            kind = str(data["content"].get("type"))
        else:
            kind = str(data.get("method", msg_type))
        self.published.append(Published(kind, size, time.monotonic()))


@dataclass
class Result:
    seconds: float
    cpu: float
    deltas: int
    text_bytes: int
    published: list[Published] = field(default_factory=list)


async def stream_once(
    client: openai.AsyncOpenAI,
    assistant_id: str,
    deltas: int,
    make_handler: Callable[[], openai.AsyncAssistantEventHandler],
) -> Result:
    thread = await client.beta.threads.create(
        messages=[{"role": "user", "content": f"/stream {deltas}"}]
    )
    handler = make_handler()
    count = 0
    text: list[str] = []
    cpu = time.thread_time()
    start = time.perf_counter()
    async with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant_id, event_handler=handler
    ) as stream:
        async for event in stream:
            if event.event == "thread.message.delta":
                count += 1
                for part in event.data.delta.content or []:
                    if part.type == "text" and part.text and part.text.value:
                        text.append(part.text.value)
    seconds = time.perf_counter() - start
    cpu = time.thread_time() - cpu
    return Result(seconds, cpu, count, len("".join(text).encode()))


async def run(deltas: int, repeat: int) -> None:
    comm.create_comm = RecordingComm  # every widget made from here on records, not publishes
    with tempfile.TemporaryDirectory() as data_dir:
        info = embedded.start(data_dir=data_dir)
        try:
            async with openai.AsyncOpenAI(
                base_url=info.base_url, api_key=info.api_key, max_retries=0, timeout=600
            ) as client:
                assistant = await client.beta.assistants.create(model="test")
                # Warm up connections, the server and the SDK's code paths.
                await stream_once(client, assistant.id, 200, openai.AsyncAssistantEventHandler)

                baselines: list[Result] = []
                widgets: list[Result] = []
                for _ in range(repeat):
                    baselines.append(
                        await stream_once(
                            client, assistant.id, deltas, openai.AsyncAssistantEventHandler
                        )
                    )
                    view = RunView()
                    result = await stream_once(
                        client, assistant.id, deltas, lambda view=view: WidgetHandler(view)
                    )
                    result.published = view.comm.published
                    widgets.append(result)
                    view.close()
        finally:
            embedded.stop()
    report(deltas, baselines, widgets)


def report(deltas: int, baselines: list[Result], widgets: list[Result]) -> None:
    base = min(baselines, key=lambda r: r.cpu)
    best = min(widgets, key=lambda r: r.cpu)
    sent = [p for p in best.published if p.kind != "open"]
    patches = [p for p in sent if p.kind == "patch"]
    opened = sum(p.size for p in best.published if p.kind == "open")
    windows: dict[int, int] = {}
    first = min(p.at for p in sent)
    for p in sent:
        windows[int(p.at - first)] = windows.get(int(p.at - first), 0) + 1
    print(f"/stream {deltas}: {best.deltas} deltas, {best.text_bytes} bytes of text")
    print(f"  stream time        baseline {base.seconds:.2f} s, widget {best.seconds:.2f} s")
    print(
        f"  comm messages      {len(sent)} ({len(patches)} patches), "
        f"{len(sent) / best.seconds:.1f}/s on average, at most {max(windows.values())} in any "
        "second (target <= 25)"
    )
    live = sum(p.size for p in patches)
    total = sum(p.size for p in sent)
    print(
        f"  bytes / text bytes live patches {live / best.text_bytes:.2f} (target <= 1.5); "
        f"all messages {total / best.text_bytes:.2f} (with the finished state written once "
        "to the synced trait)"
    )
    print(f"  widget comm_open   {opened} bytes (the ES module and CSS; once per widget)")
    per_k = 1000 / best.deltas
    print(
        f"  CPU per 1000 deltas (this thread) baseline {base.cpu * 1000 * per_k:.1f} ms, "
        f"widget {best.cpu * 1000 * per_k:.1f} ms: x{best.cpu / base.cpu:.2f}, "
        f"+{(best.cpu - base.cpu) * 1000 * per_k:.1f} ms"
    )
    if len(widgets) > 1:
        ratios = [w.cpu / b.cpu for w, b in zip(widgets, baselines, strict=True)]
        print(
            f"  CPU ratio per repeat {', '.join(f'{r:.2f}' for r in ratios)} "
            f"(median {statistics.median(ratios):.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.deltas, args.repeat))


if __name__ == "__main__":
    main()
