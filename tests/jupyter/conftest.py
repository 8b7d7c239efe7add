"""Fixtures of the Jupyter tests (their helpers are in jupyter_helpers.py)."""

from __future__ import annotations

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


@pytest.fixture
def shown_views(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """As in a notebook: cells stream into RunViews, each recorded here as it is made."""
    from ipyassistant.jupyter import display

    monkeypatch.setattr(display, "in_notebook", lambda: True)
    views: list[Any] = []
    real = display.notebook_handler

    def recording(kwargs: Any) -> Any:
        chosen = real(kwargs)
        views.append(chosen[1]["view"])
        return chosen

    monkeypatch.setattr(display, "notebook_handler", recording)
    return views
