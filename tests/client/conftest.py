"""Client tests run against the embedded server with the ``test`` model.

The embedded server starts on first use; its data lives in a per-session temporary folder
(``IPYASSISTANT_DATA_DIR`` is set before anything starts it), and no test may name a model
that would reach a real provider.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import openai
import pytest
from rich.console import Console


@pytest.fixture(autouse=True, scope="session")
def _client_environment(client_env: None) -> None:
    """Every client test runs in the client environment of the root conftest."""


@pytest.fixture(scope="session")
def api(_client_environment: None) -> Iterator[openai.OpenAI]:
    """A plain SDK client on the embedded server, to look behind the client's back."""
    from ipyassistant.server import embedded

    server = embedded.start()
    with openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def console() -> Console:
    """A wide, colourless console writing to a buffer: ``console.file.getvalue()``."""
    return Console(file=io.StringIO(), width=100, color_system=None, force_terminal=False)
