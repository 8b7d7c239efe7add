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
