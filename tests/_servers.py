"""A real server on loopback for the tests, every response checked against the spec.

Kept apart from ``conftest.py`` so that test modules can import it by a name of its own
(``conftest`` names a different module in each test folder).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import sqlalchemy as sa

from _spec import SpecRecorder
from ipyassistant.server import ServerConfig, create_app
from ipyassistant.server.embedded import ServerThread

API_KEY = "sk-test-key"


class RunningServer:
    """A server thread plus what tests need to talk to it."""

    def __init__(self, config: ServerConfig):
        self.config = config
        app = create_app(config)
        self.recorder = SpecRecorder(app)
        self.thread = ServerThread(self.recorder, app.state.server)
        self.thread.start()
        self.base_url = self.thread.base_url
        self.api_key = config.api_key or ""

    def client(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0, **kwargs)

    def async_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0, **kwargs)

    @property
    def dialect(self) -> str:
        """The database's kind: ``sqlite`` or ``postgresql``."""
        return sa.engine.make_url(self.config.resolved_database_url).get_backend_name()

    @contextmanager
    def db(self) -> Iterator[sa.Connection]:
        """A transaction on the server's database, from the test's thread (a sync driver)."""
        engine = sa.create_engine(sync_url(self.config.resolved_database_url))
        try:
            with engine.begin() as connection:
                yield connection
        finally:
            engine.dispose()

    def stop(self) -> None:
        self.thread.stop()


def sync_url(url: str) -> str:
    """The same database through a sync driver (pysqlite, psycopg)."""
    parsed = sa.engine.make_url(url)
    driver = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}[parsed.get_backend_name()]
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def server_config(data_dir: Path, **overrides: Any) -> ServerConfig:
    """A test server's configuration: a data folder, the tests' key, a quick heartbeat."""
    return ServerConfig(**{"data_dir": data_dir, "api_key": API_KEY, "heartbeat_seconds": 0.5, **overrides})
