"""ipyassistant: stateful LLM assistants for Jupyter, on their own Assistants API server."""

from __future__ import annotations

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
