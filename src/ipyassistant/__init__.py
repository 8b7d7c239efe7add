"""ipyassistant: stateful LLM assistants for Jupyter, on their own Assistants API server."""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .assistants import Assistant
from .exceptions import EndRun
from .formatting import pprint_messages, pprint_run, pprint_steps
from .handlers import PrintHandler
from .runs import Run
from .threads import Thread
from .tools import ENDRUN_TOKEN, CodeInterpreter, FileSearch

__all__ = [
    "ENDRUN_TOKEN",
    "Assistant",
    "CodeInterpreter",
    "EndRun",
    "FileSearch",
    "PrintHandler",
    "Run",
    "Thread",
    "__version__",
    "pprint_messages",
    "pprint_run",
    "pprint_steps",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext ipyassistant``: register the ``%%assistant`` and ``%assistant`` magics."""
    from .jupyter.magics import load_ipython_extension as load  # IPython loads only here

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext ipyassistant``: remove the magics again."""
    from .jupyter.magics import unload_ipython_extension as unload

    unload(ipython)
