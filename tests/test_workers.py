"""Several ``serve`` processes on one database, on SQLite and on PostgreSQL.

Any process answers any request; a cancel sent to one process ends a run executing in another
promptly (NOTIFY on PostgreSQL, polling on SQLite, and not the heartbeat, which the tests make
slow); the one-active-run-per-thread rule holds when two processes race; a process killed with
``kill -9`` is found out by its lease and its runs are failed by another; ``--workers 2`` serves
one port with two processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from _postgres import PostgresCluster
from _serve_process import KEY, ServeProcess
from _wait import wait_for_run

pytestmark = pytest.mark.slow

#: A heartbeat far slower than the promptness asked of cancels, so that only a wake-up
#: (NOTIFY, or the cancel poll) can explain a prompt cancel.
SLOW_HEARTBEAT = {"IPYASSISTANT_HEARTBEAT": "5", "IPYASSISTANT_WORKER_LEASE": "30"}
#: A quick heartbeat and a short lease, for the tests of a process that dies.
QUICK_LEASE = {"IPYASSISTANT_HEARTBEAT": "0.2", "IPYASSISTANT_WORKER_LEASE": "1"}
#: How soon a cancel sent to another process must end the run (seconds).
PROMPT = 1.5

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The database URL all of a test's processes share (None: SQLite in the shared data dir)."""
    if request.param == "sqlite":
        return None
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.new_database()


@pytest.fixture
def start(tmp_path: Path, database: str | None) -> Iterator[Callable[..., ServeProcess]]:
    """Start a ``serve`` process on the test's database and data directory."""
    started: list[ServeProcess] = []

    def make(env: dict[str, str] | None = None, workers: int = 1) -> ServeProcess:
        process = ServeProcess(tmp_path / "data", database_url=database, env=env, workers=workers)
        started.append(process)
        return process

    yield make
    for process in started:
        process.terminate()


def sleeping_run(client: openai.OpenAI, assistant_id: str, seconds: int = 60) -> tuple[str, str]:
    """A run that sleeps in its model call; (thread id, run id) once it is in progress."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": f"/sleep {seconds}"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id)
    wait_for_run(client, thread.id, run.id, {"in_progress"})
    return thread.id, run.id


def test_any_process_answers_any_request(start):
    a, b = start(), start()
    assert a.worker() != b.worker()
    with a.client() as ca, b.client() as cb:
        assistant = ca.beta.assistants.create(model="test", tools=[TOOL])
        thread = cb.beta.threads.create(messages=[{"role": "user", "content": "/call f {}"}])
        run = ca.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        # Retrieve and list on the other process.
        waiting = wait_for_run(cb, thread.id, run.id, {"requires_action"})
        assert [r.id for r in cb.beta.threads.runs.list(thread.id)] == [run.id]
        # The outputs go to the other process, which continues the run and streams it.
        call = waiting.required_action.submit_tool_outputs.tool_calls[0]
        with cb.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "ok"}]
        ) as stream:
            events = [event.event for event in stream]
        assert events[-1] == "thread.run.completed"
        assert ca.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "completed"
        texts = [m.content[0].text.value for m in ca.beta.threads.messages.list(thread.id)]
        assert texts[0] == "Tool results:\n- f: ok"
        # A streamed run on one process, its thread's messages read from the other.
        cb.beta.threads.messages.create(thread.id, role="user", content="hello there")
        with ca.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id, tool_choice="none") as stream:
            events = [event.event for event in stream]
        assert events[-1] == "thread.run.completed"
        assert cb.beta.threads.messages.list(thread.id).data[0].content[0].text.value == "echo: hello there"


def test_cancel_reaches_the_executing_process_promptly(start):
    a, b = start(SLOW_HEARTBEAT), start(SLOW_HEARTBEAT)
    with a.client() as ca, b.client() as cb:
        assistant = ca.beta.assistants.create(model="test")
        for _ in range(3):
            thread_id, run_id = sleeping_run(ca, assistant.id)
            sent = time.monotonic()
            assert cb.beta.threads.runs.cancel(run_id, thread_id=thread_id).status == "cancelling"
            wait_for_run(cb, thread_id, run_id, {"cancelled"}, timeout=10)
            assert time.monotonic() - sent < PROMPT


def test_a_streamed_run_cancelled_elsewhere_ends_its_stream(start):
    a, b = start(SLOW_HEARTBEAT), start(SLOW_HEARTBEAT)
    with a.client() as ca, b.client() as cb:
        assistant = ca.beta.assistants.create(model="test")
        thread = ca.beta.threads.create(messages=[{"role": "user", "content": "/sleep 60"}])
        events: list[str] = []
        with ca.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            for event in stream:
                events.append(event.event)
                if event.event == "thread.run.in_progress":
                    sent = time.monotonic()
                    cb.beta.threads.runs.cancel(event.data.id, thread_id=thread.id)
        assert events[-1] == "thread.run.cancelled"
        assert time.monotonic() - sent < PROMPT


def test_cancel_is_prompt_after_the_listening_connection_is_lost(start, database):
    if database is None:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    a, b = start(SLOW_HEARTBEAT), start(SLOW_HEARTBEAT)
    terminate = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
    import asyncio

    import asyncpg

    async def end_listeners() -> int:
        host = database.split("host=")[1]
        name = database.split("/")[3].split("?")[0]
        connection = await asyncpg.connect(host=host, user="postgres", database=name)
        try:
            return len(await connection.fetch(terminate))
        finally:
            await connection.close()

    assert asyncio.run(end_listeners()) == 2
    time.sleep(1.5)  # the listeners come back after a second
    with a.client() as ca, b.client() as cb:
        assistant = ca.beta.assistants.create(model="test")
        thread_id, run_id = sleeping_run(ca, assistant.id)
        sent = time.monotonic()
        cb.beta.threads.runs.cancel(run_id, thread_id=thread_id)
        wait_for_run(cb, thread_id, run_id, {"cancelled"}, timeout=10)
        assert time.monotonic() - sent < PROMPT


def race(processes: list[ServeProcess], path: str, body: dict[str, Any], per_process: int) -> list[tuple[int, str]]:
    """POST ``body`` to ``path`` ``per_process`` times on each process, all let go at once."""
    barrier = threading.Barrier(len(processes) * per_process)
    results: list[tuple[int, str]] = []

    def post(process: ServeProcess) -> None:
        with httpx.Client(base_url=process.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http:
            http.get("/assistants", params={"limit": 1})  # connected before the race starts
            barrier.wait()
            response = http.post(path, json=body)
        results.append((response.status_code, response.text))

    racers = [threading.Thread(target=post, args=(p,)) for p in processes for _ in range(per_process)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)
    return results


def test_one_active_run_per_thread_when_two_processes_race(start):
    processes = [start(), start()]
    with processes[0].client() as client:
        assistant = client.beta.assistants.create(model="test")
        for _ in range(8):
            thread = client.beta.threads.create(messages=[{"role": "user", "content": "/sleep 30"}])
            results = race(processes, f"/threads/{thread.id}/runs", {"assistant_id": assistant.id}, per_process=3)
            created = [text for status, text in results if status == 200]
            refused = [text for status, text in results if status == 400]
            assert len(created) == 1, results
            assert len(refused) == 5 and all("thread_locked" in t for t in refused), results
            runs = client.beta.threads.runs.list(thread.id).data
            assert len(runs) == 1
            client.beta.threads.runs.cancel(runs[0].id, thread_id=thread.id)
            wait_for_run(client, thread.id, runs[0].id, {"cancelled"})


def test_a_killed_process_runs_are_failed_by_another(start):
    a, b = start(QUICK_LEASE), start(QUICK_LEASE)
    with a.client() as ca, b.client() as cb:
        assistant = ca.beta.assistants.create(model="test", tools=[TOOL])
        thread_id, run_id = sleeping_run(ca, assistant.id)
        waiting = ca.beta.threads.create(messages=[{"role": "user", "content": "/call f {}"}])
        waiting_run = ca.beta.threads.runs.create(thread_id=waiting.id, assistant_id=assistant.id)
        wait_for_run(ca, waiting.id, waiting_run.id, {"requires_action"})
        a.kill()
        killed = time.monotonic()
        run = wait_for_run(cb, thread_id, run_id, {"failed", "expired", "completed"}, timeout=15)
        assert run.status == "failed" and run.last_error.code == "server_error"
        assert "stopped" in run.last_error.message
        assert time.monotonic() - killed < 5  # the lease (1 s) and a beat or two
        # The thread is free again, and the run that waited for outputs goes on elsewhere.
        cb.beta.threads.messages.create(thread_id, role="user", content="after the crash")
        again = cb.beta.threads.runs.create_and_poll(thread_id=thread_id, assistant_id=assistant.id, tool_choice="none", poll_interval_ms=20)
        assert again.status == "completed"
        call = cb.beta.threads.runs.retrieve(waiting_run.id, thread_id=waiting.id).required_action.submit_tool_outputs.tool_calls[0]
        done = cb.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=waiting_run.id, thread_id=waiting.id, tool_outputs=[{"tool_call_id": call.id, "output": "ok"}], poll_interval_ms=20
        )
        assert done.status == "completed"


def test_workers_2_serve_one_port(start):
    server = start(SLOW_HEARTBEAT, workers=2)
    # New connections go to both processes.
    seen = {server.worker() for _ in range(40)}
    assert len(seen) == 2
    # Runs started on new connections land on both; cancels on other new connections reach
    # them wherever they execute.
    with server.client() as client:
        assistant = client.beta.assistants.create(model="test")
    started = []
    for _ in range(6):
        with server.client() as client:
            started.append(sleeping_run(client, assistant.id))
    sent = time.monotonic()
    for thread_id, run_id in started:
        with server.client() as client:
            client.beta.threads.runs.cancel(run_id, thread_id=thread_id)
    with server.client() as client:
        for thread_id, run_id in started:
            wait_for_run(client, thread_id, run_id, {"cancelled"}, timeout=10)
    assert time.monotonic() - sent < PROMPT + 1
    # Quick runs on many connections at once all complete.
    failures: list[str] = []

    def one_run() -> None:
        with server.client() as client:
            run = client.beta.threads.create_and_run_poll(
                assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}, poll_interval_ms=20
            )
            if run.status != "completed":
                failures.append(run.status)

    workers = [threading.Thread(target=one_run) for _ in range(16)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not failures
    # SIGTERM stops both processes cleanly.
    assert server.terminate() == 0
