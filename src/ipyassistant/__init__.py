"""ipyassistant: stateful LLM assistants for Jupyter, on their own Assistants API server.

The public names load on first use (PEP 562 ``__getattr__``), so ``import ipyassistant`` stays
cheap: the client's modules, the SDK's Assistants types, rich and jinja2 load when a name is
first looked up, the server and the notebook layer only when they are used. In a Jupyter
kernel, importing the package also starts the embedded server and loads the client in the
background (:mod:`ipyassistant._warmup`), so that the first reply does not wait for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import _warmup
from ._version import __version__

if TYPE_CHECKING:
    from .assistants import Assistant
    from .exceptions import EndRun
    from .formatting import pprint_messages, pprint_run, pprint_steps
    from .handlers import PrintHandler
    from .runs import Run
    from .threads import Thread
    from .tools import ENDRUN_TOKEN, CodeInterpreter, FileSearch, tool

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
    "tool",
]

#: Each lazily exported name and the module that defines it.
_LAZY = {
    "ENDRUN_TOKEN": "tools",
    "Assistant": "assistants",
    "CodeInterpreter": "tools",
    "EndRun": "exceptions",
    "FileSearch": "tools",
    "PrintHandler": "handlers",
    "Run": "runs",
    "Thread": "threads",
    "pprint_messages": "formatting",
    "pprint_run": "formatting",
    "pprint_steps": "formatting",
    "tool": "tools",
}


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first lookup and kept as a global after."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext ipyassistant``: register the ``%%assistant`` and ``%assistant`` magics."""
    from .jupyter.magics import load_ipython_extension as load  # IPython loads only here

    load(ipython)
    _warmup.start_in_kernel()


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext ipyassistant``: remove the magics again."""
    from .jupyter.magics import unload_ipython_extension as unload

    unload(ipython)


_warmup.start_in_kernel()
