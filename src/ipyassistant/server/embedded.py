"""The server embedded in this process: a uvicorn thread on 127.0.0.1 with a random key.

``start()`` is idempotent and thread-safe; the server stops at interpreter exit (or on
``stop()``), ending its runs cleanly so that none is left active in the database.
"""

from __future__ import annotations

import asyncio
import atexit
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from .app import Server, create_app
from .config import ServerConfig

__all__ = ["DrainingServer", "EmbeddedServer", "ServerThread", "start", "stop"]


class DrainingServer(uvicorn.Server):
    """uvicorn, ending the app's runs before it waits for open connections to close.

    Without this, a client streaming a long run would hold the shutdown until the run ended.
    """

    def __init__(self, config: uvicorn.Config, app_server: Server):
        super().__init__(config)
        self.app_server = app_server

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.app_server.engine.stop_runs()
        await super().shutdown(sockets)


@dataclass(frozen=True)
class EmbeddedServer:
    base_url: str
    api_key: str
    config: ServerConfig


class ServerThread:
    """Serve an ASGI app with uvicorn in a daemon thread, on an ephemeral loopback port.

    ``app`` is the app from :func:`create_app`, possibly wrapped in middleware; ``server`` is
    that app's ``app.state.server`` (defaults to it when ``app`` is unwrapped).
    """

    def __init__(self, app: Any, server: Server | None = None):
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets created with it,
        # and without it every response waits ~40 ms for the client's delayed ACK.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = DrainingServer(
            uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False),
            server or app.state.server,
        )
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="ipyassistant-server", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve(sockets=[self.sock]))
        except BaseException as exc:  # reported by start()
            self.error = exc

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 30) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the embedded ipyassistant server did not start: {self.error!r}"
                )
            time.sleep(0.005)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


_lock = threading.Lock()
_current: tuple[ServerThread, EmbeddedServer] | None = None


def start(data_dir: str | Path | None = None, database_url: str | None = None) -> EmbeddedServer:
    """Start the embedded server once per process; later calls return the same server."""
    global _current
    with _lock:
        if _current is None:
            config = ServerConfig.from_env(
                data_dir=data_dir, database_url=database_url, api_key=secrets.token_urlsafe(24)
            )
            runner = ServerThread(create_app(config))
            runner.start()
            info = EmbeddedServer(runner.base_url, config.api_key or "", config)
            _current = (runner, info)
            atexit.register(stop)
        return _current[1]


def stop() -> None:
    """Stop the embedded server (a later ``start()`` starts a new one)."""
    global _current
    with _lock:
        if _current is not None:
            _current[0].stop()
            _current = None
