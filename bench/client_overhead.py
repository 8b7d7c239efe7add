"""What the client adds to a one-word ``say()``, as ratios to the raw SDK doing the same work.

Same server, same process, same run of this script. Three ways of saying one word
and streaming the reply (no printing), interleaved round by round so that load on the machine
hits all of them alike:

- raw: the SDK alone (``openai.OpenAI``): create a message, stream a run, until done;
- context: ``with ai: ai.say("hi", event_handler_class=None)`` (the assistant exists already);
- lazy: ``ai.say("hi", event_handler_class=None)`` on an assistant without id (created and
  deleted around every call).

Targets: context <= 1.2x raw, lazy <= 2.0x raw. Run: ``python bench/client_overhead.py``
(the embedded server), or against any server, e.g. ``ipyassistant serve``::

    IPYASSISTANT_BASE_URL=http://127.0.0.1:8000/v1 IPYASSISTANT_API_KEY=… \
        python bench/client_overhead.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable

import openai

os.environ.setdefault("IPYASSISTANT_DATA_DIR", tempfile.mkdtemp(prefix="ipyassistant-bench-"))
os.environ.setdefault("IPYASSISTANT_MODEL", "test")

from ipyassistant import Assistant, Thread
from ipyassistant.settings import Settings

# The SDK marks the Assistants API deprecated; this benchmark uses it on purpose.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=__name__)

TARGETS = {"context": 1.2, "lazy": 2.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="calls per way (default 40)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per way first")
    args = parser.parse_args()

    settings = Settings.from_env()
    if settings.base_url is None:
        from ipyassistant.server import embedded

        server = embedded.start()
        base_url, api_key, where = server.base_url, server.api_key, "the embedded server"
    else:
        base_url, api_key = settings.base_url, settings.api_key or "unset"
        where = base_url
    sdk = openai.OpenAI(base_url=base_url, api_key=api_key)
    raw_assistant = sdk.beta.assistants.create(model="test", name="raw")
    raw_thread = sdk.beta.threads.create()

    def raw() -> None:
        sdk.beta.threads.messages.create(raw_thread.id, role="user", content="hi")
        with sdk.beta.threads.runs.stream(
            thread_id=raw_thread.id, assistant_id=raw_assistant.id
        ) as stream:
            stream.until_done()

    context_ai = Assistant(name="context")
    context_thread = Thread()
    lazy_ai = Assistant(name="lazy")
    lazy_thread = Thread()

    def context() -> None:
        context_ai.say("hi", thread=context_thread, event_handler_class=None)

    def lazy() -> None:
        lazy_ai.say("hi", thread=lazy_thread, event_handler_class=None)

    ways: dict[str, Callable[[], None]] = {"raw": raw, "context": context, "lazy": lazy}
    times: dict[str, list[float]] = {name: [] for name in ways}
    with context_ai:
        for _ in range(args.warmup):
            for way in ways.values():
                way()
        for _ in range(args.rounds):
            for name, way in ways.items():
                start = time.perf_counter()
                way()
                times[name].append(time.perf_counter() - start)

    sdk.beta.assistants.delete(raw_assistant.id)
    sdk.close()

    raw_median = statistics.median(times["raw"])
    print(f"one-word say(), median of {args.rounds} calls each, on {where}")
    print(f"  raw SDK   {raw_median * 1000:7.1f} ms")
    for name in ("context", "lazy"):
        median = statistics.median(times[name])
        ratio = median / raw_median
        ok = ratio <= TARGETS[name]
        print(
            f"  {name:<9} {median * 1000:7.1f} ms   {ratio:4.2f}x raw   "
            f"(target <= {TARGETS[name]}x: {'met' if ok else 'MISSED'})"
        )
    return 0  # a benchmark reports; it does not pass or fail


if __name__ == "__main__":
    raise SystemExit(main())
