"""Fixtures of the Jupyter tests (their helpers are in jupyter_helpers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import comm
import pytest
from jupyter_helpers import Comms, RecordingComm


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Comms]:
    """Widgets created in the test talk to recording comms."""
    recorded = Comms()

    def create_comm(**kwargs: Any) -> RecordingComm:
        made = RecordingComm(**kwargs)
        recorded.opened.append(made)
        return made

    monkeypatch.setattr(comm, "create_comm", create_comm)
    yield recorded


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


@pytest.fixture
def ipython(client_env: None) -> Iterator[Any]:
    """IPython's global test shell (a real one) with ipyassistant's extension loaded afresh."""
    from IPython.testing import globalipapp

    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "ipyassistant")
    yield shell
    shell.run_line_magic("unload_ext", "ipyassistant")
    # %config also writes to the shell's config, which the next AssistantMagics would read.
    shell.config.pop("AssistantMagics", None)
