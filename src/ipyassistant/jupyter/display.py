"""What is different in a notebook: the check, ``say()``'s default handler, views of objects.

In a notebook (an IPython kernel whose front end shows widgets) ipyassistant shows runs as live
:class:`~ipyassistant.jupyter.widgets.RunView` widgets; elsewhere (a terminal, a script) it
prints them with :class:`~ipyassistant.PrintHandler`. This module decides which, and builds
the views that finished :class:`~ipyassistant.Run` and :class:`~ipyassistant.Thread` objects
display as (``_repr_mimebundle_``): a run as its messages and tool calls, a thread as its
transcript, each as a bundle that renders without a kernel (:mod:`.saved`).

Importing this module is cheap (it is asked on every ``say()``): the widget modules load only
in a notebook.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .view_state import (
    ViewState,
    empty_state,
    file_ids,
    item_from_message,
    items_from_step,
    run_info,
)
from .view_types import Item

if TYPE_CHECKING:
    from openai import AsyncAssistantEventHandler

    from ..runs import Run
    from ..threads import Thread

__all__ = [
    "WIDGET_HANDLER_OPTIONS",
    "fetch_file",
    "in_notebook",
    "notebook_handler",
    "run_mimebundle",
    "run_state",
    "thread_mimebundle",
    "thread_state",
]

logger = logging.getLogger(__name__)

#: The keyword arguments ``WidgetHandler`` takes (``event_handler_kwargs`` with other keys,
#: such as ``print_steps``, are PrintHandler's: ``say()`` then prints, as it does elsewhere).
WIDGET_HANDLER_OPTIONS = frozenset({"view", "fetch_file", "update_transcript"})

#: Shells that derive from ipykernel's but whose front ends show no widgets.
_NO_WIDGETS = ("spyder_kernels.",)

MimeBundle = tuple[dict[str, Any], dict[str, Any]]


def in_notebook() -> bool:
    """Whether this process is an IPython kernel behind a front end that shows widgets.

    True in Jupyter kernels (JupyterLab, Notebook, VS Code, Colab, nbclient): the running
    shell is ipykernel's ``ZMQInteractiveShell`` with a kernel attached. False in terminal
    IPython, plain Python, and kernels known not to show widgets (Spyder's). Nothing is
    imported to find out: a process that never imported ipykernel is no kernel.
    """
    zmqshell = sys.modules.get("ipykernel.zmqshell")
    ipython = sys.modules.get("IPython")
    if zmqshell is None or ipython is None:
        return False
    shell = ipython.get_ipython()
    if not isinstance(shell, zmqshell.ZMQInteractiveShell):
        return False
    if type(shell).__module__.startswith(_NO_WIDGETS):
        return False
    return getattr(shell, "kernel", None) is not None


def _showing_here() -> bool:
    """In a notebook, and in the thread that runs the cell (where ``display()`` is safe)."""
    return threading.current_thread() is threading.main_thread() and in_notebook()


async def fetch_file(file_id: str) -> bytes:
    """The bytes of a Files API file, downloaded with the portal's client.

    The ``fetch_file`` of the default ``WidgetHandler``: the handler awaits it on the
    portal's loop, where the client lives.
    """
    from .._portal import client
    from .handler import files_fetcher

    return await files_fetcher(await client())(file_id)


def notebook_handler(
    handler_kwargs: Mapping[str, Any] | None,
) -> tuple[type[AsyncAssistantEventHandler], dict[str, Any]] | None:
    """``say()``'s default handler in a notebook: ``WidgetHandler``, prepared here and now.

    Returns the handler class and its keyword arguments, with a new :class:`RunView`
    displayed in the calling cell (so call it in the thread that runs the cell) and images
    fetched with the portal's client. Returns None outside a notebook, off the cell's thread,
    or when ``handler_kwargs`` hold options that only ``PrintHandler`` takes.
    """
    kwargs = dict(handler_kwargs or {})
    if not set(kwargs) <= WIDGET_HANDLER_OPTIONS or not _showing_here():
        return None
    from ..settings import note_model_in_views
    from .handler import WidgetHandler

    note_model_in_views()  # the view, not standard error, says which model runs
    kwargs.setdefault("fetch_file", fetch_file)
    return WidgetHandler, WidgetHandler.prepare(**kwargs)


# -- views of finished objects ----------------------------------------------------------------


def run_state(run: Run) -> ViewState:
    """The view state of a run from its run object, steps and messages (in step order)."""
    state = empty_state()
    if run.run is not None:
        state["run"] = run_info(run.run)
    state["items"] = _items(run.steps, run.messages)
    return state


def _items(steps: Iterable[Any], messages: Iterable[Any]) -> list[Item]:
    """Items in the order of the steps: a message where its message_creation step is."""
    pending = {message.id: message for message in messages}
    items: list[Item] = []
    for step in steps:
        details = step.step_details
        if details.type == "message_creation":
            message = pending.pop(details.message_creation.message_id, None)
            if message is not None:
                items.append(item_from_message(message))
        else:
            items.extend(items_from_step(step))
    items.extend(item_from_message(message) for message in pending.values())
    return items


async def _thread_items(thread_id: str) -> list[Item]:
    """A thread's transcript: its messages, each run's tool calls where the run happened."""
    from .._portal import client
    from ..runs import SEARCH_RESULTS_CONTENT

    api = await client()
    messages = [m async for m in api.beta.threads.messages.list(thread_id, order="asc", limit=100)]
    runs = [r async for r in api.beta.threads.runs.list(thread_id, order="asc", limit=100)]
    steps: dict[str, list[Any]] = {}
    for run in runs:
        listed = api.beta.threads.runs.steps.list(
            run.id,
            thread_id=thread_id,
            order="asc",
            limit=100,
            include=[SEARCH_RESULTS_CONTENT],  # the chunks a file search found, to quote them
        )
        steps[run.id] = [step async for step in listed]
    by_run: dict[str, list[Any]] = {}
    for message in messages:
        if message.run_id is not None:
            by_run.setdefault(message.run_id, []).append(message)
    items: list[Item] = []
    shown: set[str] = set()

    def show_run(run_id: str) -> None:
        shown.add(run_id)
        items.extend(_items(steps.get(run_id, []), by_run.get(run_id, [])))

    # A run without a message of its own (cancelled, ended by a tool) goes before the first
    # message written after it started (times are in seconds: a message of the same second
    # comes first).
    silent = [run for run in runs if run.id not in by_run]
    for message in messages:
        while silent and silent[0].created_at < message.created_at:
            show_run(silent.pop(0).id)
        if message.run_id is None:
            items.append(item_from_message(message))
        elif message.run_id not in shown:
            show_run(message.run_id)
    for run in silent:
        show_run(run.id)
    return items


def thread_state(thread: Thread) -> ViewState:
    """The view state of a thread's whole transcript, read from the server (a sync call)."""
    from .._portal import portal

    state = empty_state()
    if thread.id is not None:
        state["items"] = portal().call(_thread_items(thread.id))
    return state


def _images(state: ViewState) -> dict[str, bytes]:
    """The bytes of the images a state shows; those that cannot be fetched are left out."""
    from .._portal import portal

    wanted = file_ids(state)
    if not wanted:
        return {}

    async def download() -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for file_id in wanted:
            try:
                found[file_id] = await fetch_file(file_id)
            except Exception as exc:  # a missing image must not hide the rest
                logger.warning("ipyassistant: could not fetch image file %s: %s", file_id, exc)
        return found

    return portal().call(download())


def _viewable() -> bool:
    from .._portal import portal

    # A sync call from the portal's own loop would wait for itself.
    return _showing_here() and not portal().in_loop()


def run_mimebundle(run: Run, include: Any = None, exclude: Any = None) -> MimeBundle | None:
    """A run's display in a notebook: its messages and tool calls, as a finished view.

    A finished object needs no live widget: the bundle (see :mod:`.saved`) renders without a
    kernel, so it survives reopening the notebook. A run that ``say()`` already showed live displays as its ``repr`` only (it is on screen
    above). None outside a notebook, or before the run started: IPython then shows the repr.
    """
    if run.run is None or not _viewable():
        return None
    from .saved import provenance, saved_bundle
    from .widgets import RunView

    live = run.event_handler_kwargs.get("view")
    if isinstance(live, RunView) and live.displayed:
        return {"text/plain": repr(run)}, {}
    state = run_state(run)
    return saved_bundle("run", [state], _images(state), repr(run)), provenance([state])


def thread_mimebundle(
    thread: Thread, include: Any = None, exclude: Any = None
) -> MimeBundle | None:
    """A thread's display in a notebook: its transcript, saved as a finished view (see
    :mod:`.saved`; None elsewhere)."""
    if not _viewable():
        return None
    from .saved import provenance, saved_bundle

    try:
        state = thread_state(thread)
    except Exception as exc:  # e.g. deleted elsewhere: show the repr, not a traceback
        logger.warning("ipyassistant: could not read thread %s: %s", thread.id, exc)
        return None
    return saved_bundle("run", [state], _images(state), repr(thread)), provenance([state])
