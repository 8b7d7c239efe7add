"""Record the event sequences that the Jupyter tests replay (``tests/jupyter/fixtures/*.json``).

Each fixture is a real run on the embedded server with the ``test`` model, recorded through
the openai SDK exactly as a ``WidgetHandler`` receives it::

    {"name": ..., "description": ...,
     "messages": [the user's message, as the Thread shows it before the stream],
     "streams": [{"events": [{"event": ..., "data": ...}, ...],   # one per SSE stream
                  "times": [seconds since the stream started, one per event]}],
     "files": {file_id: base64 of the file's bytes}}

A run that calls function tools has one stream per round trip.

Next to each small recording, ``NAME.ops.json`` holds what the Python reducer makes of it:
``{"batches": [[op, ...] per event, the user's message first], "final": view state}``. The
TypeScript tests apply those ops and must reach ``final``; a Python test checks that the file
still matches the reducer. Regenerate with

    python tests/jupyter/record_fixtures.py [NAME ...]     # record (and derive the ops)
    python tests/jupyter/record_fixtures.py --ops          # only derive the ops again

The ids, timestamps and timings differ on every recording; the tests rely on neither.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
from openai.lib.streaming import AsyncAssistantStreamManager

from ipyassistant.jupyter.view_state import ViewState, empty_state, reduce
from ipyassistant.server import embedded

warnings.filterwarnings("ignore", category=DeprecationWarning)

FIXTURES = Path(__file__).parent / "fixtures"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a timezone.",
        "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string"}},
            "required": ["tz"],
        },
    },
}
#: Recordings small enough to derive an ops file from (the TypeScript tests replay them).
OPS_FIXTURES = ("text", "tool_round_trip", "code_interpreter", "failure", "cancel")

#: What the client answers for each function (the second one fails, as a tool's error would).
OUTPUTS = {"get_weather": "sunny, 21 °C", "get_time": "error: unknown timezone 'Mars/Olympus'"}

PLOT = """\
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
ax.plot([1, 3, 2])
plt.show()
print("plotted 3 points")
"""


class Recorder:
    """One run's recording: its streams, the user's message and the files it made."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self.client = client
        self.streams: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.files: dict[str, str] = {}

    async def stream(
        self,
        manager: AsyncAssistantStreamManager[openai.AsyncAssistantEventHandler],
        on_event: Callable[[Any], Awaitable[None]] | None = None,
    ) -> dict[str, Any] | None:
        """Record one stream; returns the last run object it carried (as a dict)."""
        events: list[dict[str, Any]] = []
        times: list[float] = []
        run: dict[str, Any] | None = None
        start = time.perf_counter()
        async with manager as stream:
            async for event in stream:
                times.append(round(time.perf_counter() - start, 5))
                dumped = event.model_dump(mode="json", exclude_unset=True)
                events.append(dumped)
                if event.event.startswith("thread.run.") and ".step." not in event.event:
                    run = dumped["data"]
                if on_event is not None:
                    await on_event(event)
        self.streams.append({"events": events, "times": times})
        for event in events:
            for file_id in _file_ids(event):
                if file_id not in self.files:
                    content = await self.client.files.content(file_id)
                    self.files[file_id] = base64.b64encode(content.content).decode()
        return run

    async def start(self, content: str, **assistant: Any) -> tuple[str, str]:
        """Create an assistant and a thread holding the user's message."""
        created = await self.client.beta.assistants.create(model="test", **assistant)
        thread = await self.client.beta.threads.create()
        message = await self.client.beta.threads.messages.create(
            thread.id, role="user", content=content
        )
        self.messages.append(message.model_dump(mode="json", exclude_unset=True))
        return created.id, thread.id

    def dump(self, name: str, description: str) -> None:
        path = FIXTURES / f"{name}.json"
        fixture = {
            "name": name,
            "description": description,
            "messages": self.messages,
            "streams": self.streams,
            "files": self.files,
        }
        path.write_text(json.dumps(fixture, ensure_ascii=False, separators=(",", ":")) + "\n")
        count = sum(len(s["events"]) for s in self.streams)
        print(f"{path.name}: {len(self.streams)} stream(s), {count} events")


def _file_ids(event: dict[str, Any]) -> list[str]:
    """Every file id an event mentions (image blocks and code-interpreter images)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            file_id = node.get("file_id")
            if isinstance(file_id, str):
                found.append(file_id)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(event.get("data"))
    return found


def fold(fixture: dict[str, Any]) -> tuple[list[list[dict[str, Any]]], ViewState]:
    """Replay a recording through the reducer: the ops of each event, and the final state.

    The user's message comes first, as ``thread.message.completed`` (a handler shows it so).
    """
    state = empty_state()
    batches = []
    events = [{"event": "thread.message.completed", "data": m} for m in fixture["messages"]]
    events += [event for stream in fixture["streams"] for event in stream["events"]]
    for event in events:
        state, ops = reduce(state, event)
        batches.append(ops)
    return batches, state


def derive_ops(name: str) -> None:
    fixture = json.loads((FIXTURES / f"{name}.json").read_text())
    batches, final = fold(fixture)
    path = FIXTURES / f"{name}.ops.json"
    path.write_text(json.dumps({"batches": batches, "final": final}, ensure_ascii=False) + "\n")
    print(f"{path.name}: {sum(map(len, batches))} ops")


# -- the recordings ----------------------------------------------------------------------


async def text(client: openai.AsyncOpenAI) -> None:
    rec = Recorder(client)
    assistant, thread = await rec.start("Hello there, **assistant**!")
    await rec.stream(client.beta.threads.runs.stream(thread_id=thread, assistant_id=assistant))
    rec.dump("text", "A plain text reply (the test model echoes the message word by word).")


async def stream_2000(client: openai.AsyncOpenAI) -> None:
    rec = Recorder(client)
    assistant, thread = await rec.start("/stream 2000")
    await rec.stream(client.beta.threads.runs.stream(thread_id=thread, assistant_id=assistant))
    rec.dump("stream_2000", "A reply streamed as 2000 one-token deltas, with their timings.")


async def tools(client: openai.AsyncOpenAI) -> None:
    rec = Recorder(client)
    assistant, thread = await rec.start(
        '/call get_weather {"city": "Paris"}\n/call get_time {"tz": "Mars/Olympus"}',
        tools=[WEATHER, CLOCK],
    )
    run = await rec.stream(
        client.beta.threads.runs.stream(thread_id=thread, assistant_id=assistant)
    )
    assert run is not None and run["status"] == "requires_action", run
    calls = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    outputs = [
        {"tool_call_id": call["id"], "output": OUTPUTS[call["function"]["name"]]} for call in calls
    ]
    run = await rec.stream(
        client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=thread, run_id=run["id"], tool_outputs=outputs
        )
    )
    assert run is not None and run["status"] == "completed", run
    rec.dump(
        "tool_round_trip",
        "Two parallel function calls: requires_action, the client's outputs (one an error), "
        "the reply quoting them.",
    )


async def code_interpreter(client: openai.AsyncOpenAI) -> None:
    rec = Recorder(client)
    assistant, thread = await rec.start(
        f"Plot three points.\n```python\n{PLOT}```", tools=[{"type": "code_interpreter"}]
    )
    run = await rec.stream(
        client.beta.threads.runs.stream(thread_id=thread, assistant_id=assistant)
    )
    assert run is not None and run["status"] == "completed", run
    assert rec.files, "the code interpreter made no image"
    rec.dump(
        "code_interpreter",
        "The code interpreter runs a matplotlib plot: code, logs, an image output, and the "
        "image again as an image_file block of the reply.",
    )


async def failure(client: openai.AsyncOpenAI) -> None:
    rec = Recorder(client)
    assistant, thread = await rec.start("/fail the model fell over")
    run = await rec.stream(
        client.beta.threads.runs.stream(thread_id=thread, assistant_id=assistant)
    )
    assert run is not None and run["status"] == "failed", run
    rec.dump("failure", "The provider fails: thread.run.failed with last_error.")


async def cancel(client: openai.AsyncOpenAI) -> None:
    rec = Recorder(client)
    assistant, thread = await rec.start("/sleep 30\nthis reply never comes")
    cancelled = False

    async def on_event(event: Any) -> None:
        nonlocal cancelled
        if event.event == "thread.run.in_progress" and not cancelled:
            cancelled = True
            await client.beta.threads.runs.cancel(event.data.id, thread_id=thread)

    run = await rec.stream(
        client.beta.threads.runs.stream(thread_id=thread, assistant_id=assistant), on_event
    )
    assert run is not None and run["status"] == "cancelled", run
    rec.dump("cancel", "A /sleep 30 run cancelled while in progress.")


RECORDINGS: dict[str, Callable[[openai.AsyncOpenAI], Awaitable[None]]] = {
    "text": text,
    "stream_2000": stream_2000,
    "tool_round_trip": tools,
    "code_interpreter": code_interpreter,
    "failure": failure,
    "cancel": cancel,
}


async def main(names: list[str]) -> None:
    FIXTURES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir:
        info = embedded.start(data_dir=data_dir)
        try:
            async with openai.AsyncOpenAI(
                base_url=info.base_url, api_key=info.api_key, max_retries=0
            ) as client:
                for name in names:
                    await RECORDINGS[name](client)
        finally:
            embedded.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(RECORDINGS)}")
    parser.add_argument("--ops", action="store_true", help="only derive the ops files again")
    args = parser.parse_args()
    names = args.names or list(RECORDINGS)
    unknown = sorted(set(names) - set(RECORDINGS))
    if unknown:
        parser.error(f"no recording named {', '.join(unknown)}")
    if not args.ops:
        asyncio.run(main(names))
    for name in names:
        if name in OPS_FIXTURES:
            derive_ops(name)
