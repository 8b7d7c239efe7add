"""Shared fixtures: a real server on loopback whose every response is checked against the spec.

The server's database is SQLite, and also PostgreSQL in the modules marked ``both_databases``:
their tests that use a server or a database run once on each (``[sqlite]``, ``[postgresql]``),
PostgreSQL being a throw-away cluster started once for the session (``_postgres.py``).
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from _postgres import PostgresCluster, postgres_bin_dir
from _servers import RunningServer, server_config

#: The databases a ``both_databases`` module runs on.
DATABASES = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_databases: the module's server tests run on SQLite and on PostgreSQL"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_databases"
    ):
        metafunc.parametrize("database_backend", DATABASES, indirect=True, scope="session")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Lines that tests left as ``("summary", line)`` user properties (``test_fuzz.py``'s counts),
    from this process or from pytest-xdist's workers, whose own output is not shown."""
    lines = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        for name, value in getattr(report, "user_properties", ())
        if name == "summary" and getattr(report, "when", None) == "teardown"
    ]
    if lines:
        terminalreporter.write_sep("-", "summary lines of the tests")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for the session (skips when PostgreSQL is not installed)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)")
    cluster = PostgresCluster(bin_dir)
    try:
        cluster.prepare_template()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def database_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``: SQLite unless the module is marked ``both_databases``."""
    return str(getattr(request, "param", "sqlite"))


def _new_database(request: pytest.FixtureRequest, backend: str) -> str | None:
    """A new, migrated database's URL on ``backend`` (None: SQLite in the data folder)."""
    if backend == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        return cluster.new_database()
    return None


@pytest.fixture
def database_url(request: pytest.FixtureRequest, database_backend: str, tmp_path: Path) -> str:
    """A new database of this test's backend (SQLite: a file in the test's folder)."""
    return _new_database(request, database_backend) or (
        f"sqlite+aiosqlite:///{tmp_path / 'database.sqlite3'}"
    )


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt, as in a terminal or a kernel, even when the tests run
    where SIGINT is ignored (a shell's background job inherits SIG_IGN, which Python keeps)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


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
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, database_backend: str
) -> Iterator[RunningServer]:
    url = _new_database(request, database_backend)
    running = RunningServer(server_config(tmp_path_factory.mktemp("server"), database_url=url))
    yield running
    running.stop()


@pytest.fixture
def make_server(
    tmp_path: Path, request: pytest.FixtureRequest, database_backend: str
) -> Iterator[Callable[..., RunningServer]]:
    """Start a server with its own data directory and configuration.

    Servers given the same ``data_dir`` share a database (one server restarted), as on SQLite.
    """
    started: list[RunningServer] = []
    databases: dict[Path, str | None] = {}

    def make(**overrides: Any) -> RunningServer:
        data_dir = overrides.pop("data_dir", tmp_path / f"server{len(started)}")
        if data_dir not in databases:
            databases[data_dir] = _new_database(request, database_backend)
        overrides.setdefault("database_url", databases[data_dir])
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
