"""Benchmark the code interpreter through the API: kernel start-up, the warm pool, latency.

Prints figures and ratios measured in this one run (a benchmark, not a pass/fail test):

- cold start: a new thread's first execution with no warm pool (it starts a kernel);
- warm pool: a new thread's first execution when a warm kernel is ready;
  target: at most 0.2x the cold start;
- repeated ``print(1)`` on one thread's warm kernel: p50 and p99 of the execution as the
  stream shows it (from the tool call's last input delta to its outputs delta) and of the
  whole run (create to ``thread.run.completed``); target: execution p50 <= 50 ms on 2 cores.
  The baseline is a text-only run on the same thread (no code, one model call fewer).

Every execution goes through the openai SDK against a real server on loopback, with the
deterministic ``test`` model. Run: ``python bench/code_interpreter.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import openai
from openai import AssistantEventHandler
from typing_extensions import override

from ipyassistant.server import ServerConfig, create_app
from ipyassistant.server.embedded import ServerThread

warnings.filterwarnings("ignore", category=DeprecationWarning)
API_KEY = "sk-bench"
CODE = "```python\nprint(1)\n```"


class Timing(AssistantEventHandler):
    """Timestamps of the code-interpreter deltas of one run."""

    def __init__(self) -> None:
        super().__init__()
        self.last_input = 0.0
        self.outputs = 0.0

    @override
    def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
        if delta.type != "code_interpreter" or delta.code_interpreter is None:
            return
        if delta.code_interpreter.outputs:
            self.outputs = time.perf_counter()
        elif delta.code_interpreter.input:
            self.last_input = time.perf_counter()


class Bench:
    def __init__(self, data_dir: Path, **config: Any):
        self.config = ServerConfig(data_dir=data_dir, api_key=API_KEY, **config)
        app = create_app(self.config)
        self.pool = app.state.server.code_interpreter.pool
        self.thread = ServerThread(app)
        self.thread.start()
        self.client = openai.OpenAI(base_url=self.thread.base_url, api_key=API_KEY, max_retries=0)
        self.assistant = self.client.beta.assistants.create(
            model="test", tools=[{"type": "code_interpreter"}]
        )

    def run(self, thread_id: str, content: str = CODE) -> tuple[float, float]:
        """One run executing print(1): (whole run, execution) in seconds."""
        timing = Timing()
        start = time.perf_counter()
        with self.client.beta.threads.runs.stream(
            thread_id=thread_id,
            assistant_id=self.assistant.id,
            additional_messages=[{"role": "user", "content": content}],
            event_handler=timing,
        ) as stream:
            stream.until_done()
        total = time.perf_counter() - start
        run = stream.get_final_run()
        if run.status != "completed" or (content == CODE and not timing.outputs):
            raise RuntimeError(f"the run did not execute the code: {run.status} {run.last_error}")
        return total, timing.outputs - timing.last_input

    def new_thread(self) -> str:
        return self.client.beta.threads.create().id

    def wait_warm(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.pool.warm_count() < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the warm pool did not fill")
            time.sleep(0.01)

    def stop(self) -> None:
        self.client.close()
        self.thread.stop()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=5, help="new threads per start-up case")
    parser.add_argument("--repeat", type=int, default=200, help="executions on a warm kernel")
    args = parser.parse_args()
    print(f"code interpreter benchmark ({os.cpu_count()} CPUs)")

    with tempfile.TemporaryDirectory() as tmp:
        cold = Bench(Path(tmp, "cold"), code_warm_kernels=0, code_max_kernels=args.threads + 1)
        try:
            cold.run(cold.new_thread())  # warm the imports and the database, not measured
            cold_runs = [cold.run(cold.new_thread())[0] for _ in range(args.threads)]
        finally:
            cold.stop()

        warm = Bench(Path(tmp, "warm"), code_warm_kernels=1, code_max_kernels=args.threads + 2)
        try:
            warm.wait_warm()
            warm.run(warm.new_thread())
            pooled = []
            for _ in range(args.threads):
                warm.wait_warm()  # steady state: the replacement has started meanwhile
                pooled.append(warm.run(warm.new_thread())[0])
            thread_id = warm.new_thread()
            for _ in range(10):
                warm.run(thread_id)
            repeated = [warm.run(thread_id) for _ in range(args.repeat)]
            # Baseline: the same run without code (the test model echoes the message).
            texts = [warm.run(thread_id, "print one")[0] for _ in range(args.repeat)]
        finally:
            warm.stop()

    cold_start = statistics.median(cold_runs)
    first = statistics.median(pooled)
    runs = [r for r, _ in repeated]
    executions = [e for _, e in repeated]
    print(f"cold start: first execution, no pool  median {_ms(cold_start)}  (n={len(cold_runs)})")
    print(f"first execution with the warm pool    median {_ms(first)}  (n={len(pooled)})")
    print(f"  ratio warm pool / cold start        {first / cold_start:8.3f}   (target <= 0.2)")
    print(f"repeated print(1) on a warm kernel (n={len(repeated)}):")
    print(
        f"  execution (input -> outputs)        p50 {_ms(_percentile(executions, 0.5))}"
        f"  p99 {_ms(_percentile(executions, 0.99))}   (target p50 <= 50 ms)"
    )
    print(
        f"  whole run (create -> completed)     p50 {_ms(_percentile(runs, 0.5))}"
        f"  p99 {_ms(_percentile(runs, 0.99))}"
    )
    print(
        f"  baseline: a text-only run           p50 {_ms(_percentile(texts, 0.5))}"
        f"  p99 {_ms(_percentile(texts, 0.99))}"
    )
    print(
        f"  ratio run with code / text-only run {_percentile(runs, 0.5) / _percentile(texts, 0.5):8.3f}"
    )


if __name__ == "__main__":
    main()
