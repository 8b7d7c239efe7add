"""Shared fixtures: a real server on loopback whose every response is checked against the spec."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from _servers import RunningServer, server_config


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> Iterator[None]:
    """No test reaches beyond this machine: connecting elsewhere fails loudly."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
            raise OSError(f"tests may not reach the network (tried {address!r})")
        return real_connect(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign]
    os.environ.pop("OPENAI_API_KEY", None)
    os.environ.pop("OPENAI_BASE_URL", None)
    # Deterministic by default, whatever models this machine has; tests that are about the
    # default model change it themselves.
    os.environ["IPYASSISTANT_MODEL"] = "test"
    yield
    socket.socket.connect = real_connect  # type: ignore[method-assign]


_CLIENT_ENV = ("IPYASSISTANT_BASE_URL", "IPYASSISTANT_API_KEY", "IPYASSISTANT_MODEL")


@pytest.fixture(scope="session")
def client_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The client uses the embedded server (data in a temporary folder) and the test model."""
    saved = {name: os.environ.get(name) for name in (*_CLIENT_ENV, "IPYASSISTANT_DATA_DIR")}
    for name in _CLIENT_ENV:
        os.environ.pop(name, None)
    os.environ["IPYASSISTANT_DATA_DIR"] = str(tmp_path_factory.mktemp("embedded-server"))
    os.environ["IPYASSISTANT_MODEL"] = "test"
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = RunningServer(server_config(tmp_path_factory.mktemp("server")))
    yield running
    running.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start a server with its own data directory and configuration."""
    started: list[RunningServer] = []

    def make(**overrides: Any) -> RunningServer:
        data_dir = overrides.pop("data_dir", tmp_path / f"server{len(started)}")
        running = RunningServer(server_config(data_dir, **overrides))
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()
        assert not running.recorder.problems, "\n".join(running.recorder.problems)


@pytest.fixture(autouse=True)
def _spec_conformance(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever the shared server sent during a test must match the spec."""
    if "server" not in request.fixturenames:
        yield
        return
    running: RunningServer = request.getfixturevalue("server")
    running.recorder.problems.clear()
    yield
    problems = list(running.recorder.problems)
    running.recorder.problems.clear()
    assert not problems, "responses that do not match the spec:\n" + "\n".join(problems[:20])


@pytest.fixture
def client(server: RunningServer) -> Iterator[openai.OpenAI]:
    with server.client() as c:
        yield c


@pytest.fixture
async def aclient(server: RunningServer) -> Any:
    async with server.async_client() as c:
        yield c
