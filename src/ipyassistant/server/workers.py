"""``ipyassistant serve --workers N``: N server processes on one port, one database.

The parent process is a small supervisor: it creates the database's tables once, then starts N
worker processes (``spawn``, so none inherits a half-used event loop or database pool) and
restarts one that dies. Each worker is a whole server, as ``serve`` without ``--workers`` runs
it: its own run engine, worker id and heartbeat (its lease), so the runs of a worker that dies
are failed by the others, and any worker answers any request (the database holds all state).

Each worker listens on its own socket bound to the same address with ``SO_REUSEPORT``: the
kernel spreads incoming connections evenly over the workers' sockets (by a hash of each
connection's addresses). A single socket shared by all workers would instead go to whichever
worker wakes first, and asyncio accepts every pending connection at once, so a burst of
connections could all land in one process. The supervisor holds one more socket on the address,
bound but never listening, so that the port stays reserved while a worker restarts and a port
already in use is reported before any worker starts.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import signal
import socket
import sys
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from . import schema
from .config import ServerConfig

__all__ = ["reuseport_socket", "run_worker", "supervise"]

log = logging.getLogger("ipyassistant.server")

#: A worker that dies this soon after it started counts as failing to start.
_EARLY_DEATH_SECONDS = 10.0
#: After this many early deaths in a row, the supervisor gives up (the configuration is wrong).
_EARLY_DEATHS_TO_GIVE_UP = 3
#: How long stopping workers may take to end their runs and close their connections.
_STOP_SECONDS = 30.0


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (not yet listening)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets created with it.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the supervisor dies, even by ``kill -9`` (no orphaned workers)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def run_worker(config: ServerConfig, host: str, port: int, log_level: str) -> None:
    """One worker process: a whole server on its own ``SO_REUSEPORT`` socket."""
    import uvicorn

    from .app import create_app
    from .embedded import DrainingServer

    _die_with_parent()
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    sock = reuseport_socket(host, port)
    app = create_app(config)
    server = DrainingServer(
        uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on"),
        app.state.server,
    )
    server.run(sockets=[sock])


class _Supervisor:
    """Starts the workers, restarts the ones that die, and stops them all on a signal."""

    def __init__(self, config: ServerConfig, host: str, port: int, log_level: str, count: int):
        self.args = (config, host, port, log_level)
        self.count = count
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, tuple[BaseProcess, float]] = {}
        self.stopping = False
        self.stopped_at = 0.0
        self.early_deaths = 0

    def start(self, slot: int) -> None:
        process = self.context.Process(
            target=run_worker, args=self.args, name=f"ipyassistant-worker-{slot}"
        )
        process.start()
        self.workers[slot] = (process, time.monotonic())

    def stop(self, signum: int, _frame: FrameType | None) -> None:
        """On SIGINT/SIGTERM: ask every worker to stop (a second signal kills them)."""
        if self.stopping:
            for process, _started in self.workers.values():
                process.kill()
            return
        self.stopping = True
        self.stopped_at = time.monotonic()
        log.info("stopping %d workers (%s)", len(self.workers), signal.Signals(signum).name)
        for process, _started in self.workers.values():
            if process.pid is not None and process.is_alive():
                process.terminate()

    def run(self) -> int:
        for slot in range(self.count):
            self.start(slot)
        while self.workers:
            wait([p.sentinel for p, _started in self.workers.values()], timeout=1.0)
            if self.stopping and time.monotonic() - self.stopped_at > _STOP_SECONDS:
                for process, _started in self.workers.values():
                    process.kill()
            for slot, (process, started) in list(self.workers.items()):
                if process.is_alive():
                    continue
                del self.workers[slot]
                process.join()
                if self.stopping:
                    continue
                early = time.monotonic() - started < _EARLY_DEATH_SECONDS
                self.early_deaths = self.early_deaths + 1 if early else 0
                if self.early_deaths >= _EARLY_DEATHS_TO_GIVE_UP:
                    print(
                        f"error: worker processes keep dying at start (the last one's exit "
                        f"code: {process.exitcode}); stopping",
                        file=sys.stderr,
                        flush=True,
                    )
                    self.stop(signal.SIGTERM, None)
                    continue
                log.warning(
                    "worker %d (pid %s) exited with code %s; starting another",
                    slot,
                    process.pid,
                    process.exitcode,
                )
                if early:
                    time.sleep(1.0)  # do not spin on a worker that cannot start
                self.start(slot)
        return 1 if self.early_deaths >= _EARLY_DEATHS_TO_GIVE_UP else 0


def supervise(config: ServerConfig, host: str, port: int, log_level: str, count: int) -> int:
    """Serve with ``count`` worker processes until SIGINT/SIGTERM; the exit status."""
    if not hasattr(socket, "SO_REUSEPORT"):
        print(
            "error: --workers needs SO_REUSEPORT, which this system lacks; run one serve "
            "process per port behind a load balancer instead",
            file=sys.stderr,
        )
        return 2
    try:
        reserved = reuseport_socket(host, port)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        if config.migrate:
            # Once, here, rather than by each worker as it starts (they would wait on each
            # other's upgrade lock; see schema.py).
            schema.upgrade(config.resolved_database_url)
        supervisor = _Supervisor(config, host, port, log_level, count)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, supervisor.stop)
        return supervisor.run()
    finally:
        reserved.close()
