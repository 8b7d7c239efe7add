"""The client's one door into the notebook layer (:mod:`ipyassistant.jupyter`).

The notebook layer sits on top of the client: it imports the client, never the reverse, except
here. Four client features look different in a notebook, and ask this module:
``say()``'s default handler (a live ``RunView`` instead of ``PrintHandler``), how a finished
:class:`~ipyassistant.Run` or :class:`~ipyassistant.Thread` displays (``_repr_mimebundle_``),
and who approves tool calls (:mod:`ipyassistant.approval`).
Warming up a kernel (:mod:`ipyassistant._warmup`) asks it whether this is a notebook and loads
the live view ahead of time.

Each hook imports :mod:`ipyassistant.jupyter.display` (or, to warm up, ``jupyter.handler``)
when it is called, never at import time.
That module is cheap (it is asked on every ``say()``) and decides whether this process is a
notebook; the widget modules load only when it is. The contract in ``pyproject.toml``
(``[tool.importlinter]``) names this module as the only client module that imports the
notebook layer.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openai import AsyncAssistantEventHandler

    from .approval import Approver
    from .runs import Run
    from .threads import Thread

__all__ = [
    "MimeBundle",
    "in_notebook",
    "load_notebook_view",
    "notebook_approver",
    "notebook_handler",
    "run_mimebundle",
    "thread_mimebundle",
]

#: What ``_repr_mimebundle_`` returns: the data and metadata of a display.
MimeBundle = tuple[dict[str, Any], dict[str, Any]]


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel whose front end shows widgets."""
    if "ipykernel.zmqshell" not in sys.modules:  # no kernel: spare scripts the notebook layer
        return False
    from .jupyter import display

    return display.in_notebook()


def load_notebook_view() -> None:
    """Import what ``say()``'s live view needs, ahead of the first ``say()`` in a kernel."""
    from .jupyter import handler  # noqa: F401


def notebook_handler(
    handler_kwargs: Mapping[str, Any] | None,
) -> tuple[type[AsyncAssistantEventHandler], dict[str, Any]] | None:
    """``say()``'s handler in a notebook (a displayed live view), or None elsewhere.

    Call it in the thread that runs the cell: the view is displayed there.
    """
    from .jupyter import display

    return display.notebook_handler(handler_kwargs)


def notebook_approver() -> Approver | None:
    """Who answers approval requests in a kernel (the view's buttons, else a stdin prompt); None elsewhere."""
    if "ipykernel" not in sys.modules:
        return None
    from .jupyter import approval

    return approval.kernel_approver()


def run_mimebundle(run: Run, include: Any = None, exclude: Any = None) -> MimeBundle | None:
    """A run's display in a notebook; None elsewhere (IPython then shows its repr)."""
    from .jupyter import display

    return display.run_mimebundle(run, include, exclude)


def thread_mimebundle(
    thread: Thread, include: Any = None, exclude: Any = None
) -> MimeBundle | None:
    """A thread's display in a notebook (its transcript); None elsewhere."""
    from .jupyter import display

    return display.thread_mimebundle(thread, include, exclude)
