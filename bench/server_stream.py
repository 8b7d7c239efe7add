"""Server streaming benchmarks: ratios against baselines measured in the same run.

1. Streaming overhead: a ``/stream N`` run consumed through the SDK's stream helper, against
   the floor: the same SDK parsing the identical SSE bytes served from memory.
2. Latency: a one-word reply end to end (create message + streamed run) against two bare
   HTTP round trips to the same server.
3. Load: 32 concurrent streaming runs on 32 threads (SQLite): errors, p50 and p99.

The server runs as a separate ``ipyassistant serve`` process (as a team would run it) and,
for (1), also embedded in this process (as a notebook runs it).

    python bench/server_stream.py [--deltas 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai

warnings.filterwarnings("ignore", category=DeprecationWarning)

KEY = "sk-bench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    def __init__(self, data_dir: Path):
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ipyassistant.cli", "serve", "--port", str(self.port), "--data-dir", str(data_dir), "--api-key", KEY, "--log-level", "warning"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def streaming_overhead(base_url: str, key: str, deltas: int, repeat: int, label: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    assistant = client.beta.assistants.create(model="test")
    http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120)

    def new_thread() -> str:
        return client.beta.threads.create(messages=[{"role": "user", "content": f"/stream {deltas}"}]).id

    # The exact bytes of one such stream, to replay from memory.
    captured = http.post(f"/threads/{new_thread()}/runs", json={"assistant_id": assistant.id, "stream": True}).content

    def through_server() -> None:
        thread_id = new_thread()
        with client.beta.threads.runs.stream(thread_id=thread_id, assistant_id=assistant.id) as stream:
            stream.until_done()
        assert stream.get_final_run().status == "completed"

    replay = openai.OpenAI(
        base_url=base_url,
        api_key=key,
        http_client=httpx.Client(
            transport=httpx.MockTransport(
                lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=captured)
            )
        ),
    )

    def from_memory() -> None:
        with replay.beta.threads.runs.stream(thread_id="thread_x", assistant_id=assistant.id) as stream:
            stream.until_done()
        assert stream.get_final_run().status == "completed"

    floor = best(from_memory, repeat)
    served = best(through_server, repeat)
    print(f"[1] streaming overhead ({label}, {deltas} deltas)")
    print(f"    SDK parsing bytes from memory : {floor:.3f} s ({deltas / floor:,.0f} delta events/s)")
    print(f"    SDK streaming from the server : {served:.3f} s ({deltas / served:,.0f} delta events/s)")
    print(f"    ratio (target <= 1.3)         : {served / floor:.2f}")
    client.close()
    replay.close()
    http.close()


def latency(base_url: str, repeat: int) -> None:
    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
    assistant = client.beta.assistants.create(model="test", tools=[])
    thread = client.beta.threads.create()
    http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {KEY}"})

    def reply() -> None:
        client.beta.threads.messages.create(thread.id, role="user", content="hi")
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            stream.until_done()

    def two_round_trips() -> None:
        http.get(f"/assistants/{assistant.id}").raise_for_status()
        http.get(f"/assistants/{assistant.id}").raise_for_status()

    for fn in (reply, two_round_trips):  # warm up connections and caches
        fn()
    samples = max(repeat * 10, 20)
    end_to_end = statistics.median(best(reply, 1) for _ in range(samples))
    bare = statistics.median(best(two_round_trips, 1) for _ in range(samples))
    print("[2] latency of a one-word reply")
    print(f"    create message + streamed run : {end_to_end * 1000:.1f} ms (median of {samples})")
    print(f"    two bare HTTP round trips     : {bare * 1000:.1f} ms")
    print(f"    ratio                         : {end_to_end / bare:.1f}")
    client.close()
    http.close()


def load(base_url: str, runs: int = 32) -> None:
    async def main() -> tuple[list[float], int]:
        async with openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
            assistant = await client.beta.assistants.create(model="test")
            errors = 0
            latencies: list[float] = []

            async def one(i: int) -> None:
                nonlocal errors
                thread = await client.beta.threads.create(messages=[{"role": "user", "content": f"hello number {i}"}])
                start = time.perf_counter()
                try:
                    async with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
                        await stream.until_done()
                    run = await stream.get_final_run()
                    if run.status != "completed":
                        errors += 1
                except openai.OpenAIError:
                    errors += 1
                latencies.append(time.perf_counter() - start)

            await asyncio.gather(*(one(i) for i in range(runs)))
            return latencies, errors

    latencies, errors = asyncio.run(main())
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(f"[3] load: {runs} concurrent streaming runs on {runs} threads (SQLite)")
    print(f"    errors: {errors}   p50: {statistics.median(latencies) * 1000:.0f} ms   p99: {p99 * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deltas", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServeProcess(Path(tmp) / "served")
        try:
            streaming_overhead(server.base_url, KEY, args.deltas, args.repeat, "separate server process")
            latency(server.base_url, args.repeat)
            load(server.base_url)
        finally:
            server.close()
        from ipyassistant.server import embedded

        info = embedded.start(data_dir=Path(tmp) / "embedded")
        streaming_overhead(info.base_url, info.api_key, args.deltas, args.repeat, "embedded in this process")
        embedded.stop()


if __name__ == "__main__":
    main()
