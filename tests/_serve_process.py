"""``ipyassistant serve`` as a real process on loopback, for the multi-process tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

__all__ = ["KEY", "ServeProcess", "free_port"]

KEY = "sk-serve-process"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """A ``serve`` process (``workers`` of them behind one port), started and healthy.

    ``env`` adds ``IPYASSISTANT_*`` settings (a quick heartbeat, a short lease, …);
    ``code_sandbox`` is ``serve``'s option (None: not given, so ``serve`` chooses as for a user;
    ``none`` keeps tests that run no code from probing bubblewrap).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        database_url: str | None = None,
        workers: int = 1,
        env: dict[str, str] | None = None,
        log_level: str = "warning",
        code_sandbox: str | None = "none",
    ):
        self.port = port or free_port()
        self.workers = workers
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        command = [sys.executable, "-m", "ipyassistant.cli", "serve", "--port", str(self.port)]
        command += ["--data-dir", str(data_dir), "--api-key", KEY]
        command += ["--log-level", log_level, "--workers", str(workers)]
        if code_sandbox is not None:
            command += ["--code-sandbox", code_sandbox]
        if database_url:
            command += ["--database-url", database_url]
        self.log = data_dir / f"serve-{self.port}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log.open("ab")
        self.proc = subprocess.Popen(
            command,
            env={"IPYASSISTANT_MODEL": "test", "IPYASSISTANT_CODE_WARM_KERNELS": "0", **os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self._log_file,
        )
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 60) -> None:
        """Wait until every worker process answers (each new connection goes to any of them)."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while len(seen) < self.workers:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.terminate()
                raise RuntimeError(f"the server did not start:\n{self.log.read_text()}")
            if self.healthy():
                seen.add(self.worker())
            else:
                time.sleep(0.05)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def worker(self) -> str:
        """The worker id of the process that answers a new connection."""
        return str(httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=5).json()["worker"])

    def client(self, **kwargs: object) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=KEY, max_retries=0, **kwargs)  # type: ignore[arg-type]

    def kill(self) -> None:
        """``kill -9``: no shutdown, no deregistration; only the lease tells."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log_file.close()

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then wait; the exit status (killed if it took longer than ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_file.close()
        return int(self.proc.returncode)
