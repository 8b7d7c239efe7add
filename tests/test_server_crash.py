"""`ipyassistant serve` as a real process: killed with SIGKILL mid-run, restarted, nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from _serve_process import KEY, ServeProcess, free_port
from _wait import wait_for_run

pytestmark = pytest.mark.both_databases  # SQLite and PostgreSQL (conftest.py)

#: A server's runs are failed by the next one a second after it stops heartbeating.
QUICK_LEASE = {"IPYASSISTANT_WORKER_LEASE": "1", "IPYASSISTANT_HEARTBEAT": "0.2"}


def serve(data_dir: Path, port: int, database_url: str | None = None) -> ServeProcess:
    """A ``serve`` process as users start it (its own sandbox choice), with a quick lease."""
    return ServeProcess(data_dir, port=port, database_url=database_url, env=QUICK_LEASE, code_sandbox=None)


@pytest.fixture
def processes() -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for p in started:
        p.terminate()


@pytest.mark.slow
def test_kill_9_during_runs_then_restart(tmp_path, processes, database_url):
    port = free_port()
    first = serve(tmp_path, port, database_url)
    processes.append(first)
    with first.client() as client:
        tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
        assistant = client.beta.assistants.create(model="test", tools=[tool])
        busy = client.beta.threads.create(messages=[{"role": "user", "content": "/sleep 60"}])
        busy_run = client.beta.threads.runs.create(thread_id=busy.id, assistant_id=assistant.id, tool_choice="none")
        waiting = client.beta.threads.create(messages=[{"role": "user", "content": "/call f {}"}])
        waiting_run = client.beta.threads.runs.create(thread_id=waiting.id, assistant_id=assistant.id)
        wait_for_run(client, busy.id, busy_run.id, {"in_progress"}, interval=0.05)
        wait_for_run(client, waiting.id, waiting_run.id, {"requires_action"}, interval=0.05)
        before = [m.id for m in client.beta.threads.messages.list(busy.id)]
    first.kill()

    second = serve(tmp_path, port, database_url)
    processes.append(second)
    with second.client() as client:
        run = wait_for_run(client, busy.id, busy_run.id, {"failed", "expired"}, interval=0.05)
        assert run.status == "failed"
        assert run.last_error.code == "server_error" and "stopped" in run.last_error.message
        assert [m.id for m in client.beta.threads.messages.list(busy.id)] == before
        # The thread accepts messages and runs again.
        client.beta.threads.messages.create(busy.id, role="user", content="after the crash")
        again = client.beta.threads.runs.create_and_poll(
            thread_id=busy.id, assistant_id=assistant.id, tool_choice="none", poll_interval_ms=20
        )
        assert again.status == "completed"
        # A run that was waiting for tool outputs survives the crash and can go on.
        pending = client.beta.threads.runs.retrieve(waiting_run.id, thread_id=waiting.id)
        assert pending.status == "requires_action"
        call = pending.required_action.submit_tool_outputs.tool_calls[0]
        done = client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=pending.id, thread_id=waiting.id, tool_outputs=[{"tool_call_id": call.id, "output": "ok"}], poll_interval_ms=20
        )
        assert done.status == "completed"


def test_serve_refuses_a_public_address_without_a_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "IPYASSISTANT_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "ipyassistant.cli", "serve", "--host", "0.0.0.0", "--port", "1", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "without an API key" in result.stderr


def test_serve_requires_the_key(tmp_path, processes):
    server = serve(tmp_path, free_port())
    processes.append(server)
    base = f"http://127.0.0.1:{server.port}/v1"
    assert httpx.get(f"{base}/assistants").status_code == 401
    assert httpx.get(f"{base}/assistants", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{base}/assistants", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_stopping_the_server_ends_streaming_runs_cleanly(make_server):
    running = make_server()
    with running.client() as client:
        assistant = client.beta.assistants.create(model="test")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "/sleep 60"}])
        events: list[str] = []
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            for event in stream:
                events.append(event.event)
                if event.event == "thread.run.in_progress":
                    started = time.monotonic()
                    threading.Thread(target=running.stop).start()
        assert events[-1] == "thread.run.failed"
        assert time.monotonic() - started < 10
        assert stream.current_run.last_error.message == "The server shut down during the run."
