"""Server memory with large messages: the resident size of an ``ipyassistant serve`` process.

Posts six 10 MB text messages to a thread, lists them (one page holds all six), deletes the
thread, and prints the process's resident set size (RSS) after each step and its peak
(``VmHWM``). Linux only (it reads ``/proc``). Compare two versions of the code by pointing
``PYTHONPATH`` at each one's ``src``:

    python bench/server_memory.py [--messages 6] [--mb 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

KEY = "sk-bench"


def _memory(pid: int) -> dict[str, float]:
    """RSS and peak RSS of ``pid`` in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=6)
    parser.add_argument("--mb", type=int, default=10)
    args = parser.parse_args()
    port = _free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ipyassistant.cli", "serve", "--port", str(port),
             "--data-dir", data_dir, "--api-key", KEY, "--log-level", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            http = httpx.Client(
                base_url=f"http://127.0.0.1:{port}/v1",
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=300,
            )
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)

            def report(step: str) -> None:
                m = _memory(proc.pid)
                print(f"{step:<34} RSS {m['VmRSS']:7.1f} MB   peak {m['VmHWM']:7.1f} MB")

            report("started")
            thread = http.post("/threads", json={}).json()["id"]
            text = "x" * (args.mb << 20)
            for i in range(args.messages):
                response = http.post(
                    f"/threads/{thread}/messages", json={"role": "user", "content": text}
                )
                response.raise_for_status()
                # A small confirmation, not the 10 MB echo, is all the client keeps.
                del response
                _ = i
            report(f"after {args.messages} x {args.mb} MB messages")
            listed = http.get(f"/threads/{thread}/messages", params={"limit": 100})
            listed.raise_for_status()
            size = len(listed.content)
            del listed
            report(f"after listing them ({size / (1 << 20):.0f} MB)")
            http.delete(f"/threads/{thread}").raise_for_status()
            report("after deleting the thread")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
