"""How a ``%%assistant`` cell ends once its run has: what it shows, and whether it raises.

A reply asked for as text is printed; an error or an interrupt that stopped the run before its
stream ended is shown in its view (which would otherwise still say starting…); a failed run
gets a Retry button in its view and, with ``raise_on_failure`` (or unattended), a one-line
``RunFailedError`` that stops "Run All".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..runs import TERMINAL_STATUSES, Run
from ..threads import Thread
from .cell_text import reply_text
from .failures import (
    FAILED_STATUSES,
    INTERRUPTED,
    RunFailedError,
    failure_hint,
    interactive_execution,
)

if TYPE_CHECKING:
    from .widgets import RunView

__all__ = ["end_failed_run", "show_error", "show_interrupted", "show_text"]


def show_error(view: RunView | None, exc: Exception) -> None:
    """Show in the view what stopped the run before its stream (it would say starting…)."""
    if view is not None:
        from .live import error_event

        view.push(error_event(exc))
        view.update_transcript()


def show_interrupted(view: RunView | None) -> None:
    """End a view whose run was interrupted before it showed an end (it would say starting…)."""
    if view is None or view.comm is None:  # no view, or one that its run's end closed
        return
    run = view.live_state["run"]
    if run is None or run["status"] not in TERMINAL_STATUSES:
        view.push({"event": "error", "data": {"code": "interrupted", "message": INTERRUPTED}})
    view.update_transcript()


def show_text(run: Run) -> None:
    """Print the reply (``-f text``), and how the run ended if it did not complete."""
    text = reply_text(run)
    if text:
        print(text)
    status = run.run.status if run.run is not None else None
    if status != "completed":
        error = run.run.last_error if run.run is not None else None
        detail = f": {error.message}" if error is not None else ""
        print(f"(the run ended {status}{detail})")
        if error is not None:
            print(failure_hint(error.code, error.message))


def end_failed_run(
    run: Run,
    view: RunView | None,
    message: str,
    thread: Thread,
    run_kwargs: Mapping[str, Any],
    raise_on_failure: bool | None,
    shell: Any,
) -> None:
    """After the run: offer Retry in the view of a failed one, and maybe end the cell.

    The cell ends with ``RunFailedError`` as ``raise_on_failure`` says; when it is None,
    unless a person runs the cell.
    """
    final = run.run
    if final is None or final.status not in FAILED_STATUSES:
        return
    if view is not None:
        view.offer_retry(_again(run, view, message, thread, run_kwargs))
    raises = (
        bool(raise_on_failure)
        if raise_on_failure is not None
        else not interactive_execution(shell)
    )
    if raises:
        error = final.last_error
        code = error.code if error is not None else final.status
        text = error.message if error is not None else f"the run {final.status}"
        raise RunFailedError(final.id, code, text)


def _again(
    run: Run,
    view: RunView,
    message: str,
    thread: Thread,
    run_kwargs: Mapping[str, Any],
) -> Callable[[], Any]:
    """What Retry does: say ``message`` again on ``thread``, into the same view."""
    from .handler import WidgetHandler

    assistant = run.assistant

    async def again() -> None:
        handler_kwargs = {**run.event_handler_kwargs, "view": view}
        retried = await assistant.say_async(
            message,
            thread=thread,
            event_handler_class=WidgetHandler,
            event_handler_kwargs=handler_kwargs,
            **run_kwargs,
        )
        if retried.run is not None and retried.run.status in FAILED_STATUSES:
            view.offer_retry(_again(retried, view, message, thread, run_kwargs))

    return again
