"""``WidgetHandler``: an openai event handler that renders a run into a :class:`RunView`.

Where the view is displayed matters. ipyassistant runs every stream on its own event loop
thread, and output published from a thread other than the cell's lands in whichever cell
happens to be executing (or none). So the handler never calls ``display()`` from its event
callbacks; the view is displayed beforehand, in the thread that runs the cell::

    kwargs = WidgetHandler.prepare()          # in the cell: creates and displays a RunView
    run = Run(thread, assistant, event_handler_class=WidgetHandler,
              event_handler_kwargs=kwargs)    # every stream of the run renders into it
    run.execute()

or, driving the SDK directly on the kernel's own loop (``await`` in a cell)::

    handler = WidgetHandler()                 # inert: shows nothing yet
    async with client.beta.threads.runs.stream(..., event_handler=handler) as stream:
        await stream.until_done()             # the first event displays the view

A handler given no view creates one when its stream starts and displays it there only if
that is the kernel's main thread; elsewhere it warns and renders into an undisplayed view
(``handler.view``, which can be displayed later and catches up from its state).

Its callbacks only update the view and send comm messages, which ipykernel hands to its IOPub
thread whatever thread they come from.
"""

from __future__ import annotations

import inspect
import logging
import threading
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from openai import AsyncAssistantEventHandler
from openai.types.beta import AssistantStreamEvent
from openai.types.beta.threads import Message
from typing_extensions import override

from ..settings import take_model_note
from . import approval
from .live import error_event
from .view_state import item_from_message
from .widgets import RunView

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["FetchFile", "WidgetHandler", "files_fetcher"]

logger = logging.getLogger(__name__)

#: Returns the bytes of a Files API file, or an awaitable of them.
FetchFile = Callable[[str], "bytes | Awaitable[bytes]"]

#: Run events after which the run is over (the transcript of the display is refreshed).
_RUN_ENDED = frozenset(
    {
        "thread.run.completed",
        "thread.run.failed",
        "thread.run.cancelled",
        "thread.run.expired",
        "thread.run.incomplete",
    }
)


def files_fetcher(client: AsyncOpenAI) -> Callable[[str], Awaitable[bytes]]:
    """A ``fetch_file`` that downloads a file's content with an async openai client.

    Use it with the client whose loop runs the stream (the handler awaits it there).
    """

    async def fetch(file_id: str) -> bytes:
        response = await client.files.content(file_id)
        return response.content

    return fetch


class WidgetHandler(AsyncAssistantEventHandler):
    """Render a streamed run into a :class:`~ipyassistant.jupyter.widgets.RunView`.

    The handler is inert until its stream starts: constructing one displays nothing. A run
    that calls tools streams once per round trip, with a new handler each time; give each
    the same ``view`` (``event_handler_kwargs``, see :meth:`prepare`) to show the whole run
    in one place.

    Args:
        view: The view to render into (default: one created and displayed when the stream
            starts, if that happens on the kernel's main thread).
        fetch_file: Returns the bytes of an image file by id, or an awaitable of them; without
            it the view shows images as placeholders. See :func:`files_fetcher`.
        update_transcript: When the run ends, refresh the static HTML transcript of the
            view's display (what nbconvert and GitHub show).
    """

    def __init__(
        self,
        view: RunView | None = None,
        *,
        fetch_file: FetchFile | None = None,
        update_transcript: bool = True,
    ) -> None:
        super().__init__()
        self._view = view
        self.fetch_file = fetch_file
        self.update_transcript = update_transcript

    @classmethod
    def prepare(
        cls,
        view: RunView | None = None,
        *,
        fetch_file: FetchFile | None = None,
        update_transcript: bool = True,
    ) -> dict[str, Any]:
        """Create a view if none is given and display it, here, in the calling thread.

        Call it in the cell (not from an event loop thread); returns the keyword arguments
        for ``WidgetHandler(**kwargs)``, e.g. a run's ``event_handler_kwargs``.
        """
        if view is None:
            view = RunView()
        view.show()
        return {"view": view, "fetch_file": fetch_file, "update_transcript": update_transcript}

    @property
    def view(self) -> RunView:
        """The view this handler renders into (created on first use if none was given)."""
        if self._view is None:
            self._view = RunView()
            if threading.current_thread() is threading.main_thread():
                self._view.show()
            else:
                warnings.warn(
                    "WidgetHandler has no view and its stream runs outside the kernel's main "
                    "thread, where display() would put the view into whichever cell is "
                    "running; it renders into handler.view without displaying it. Pass "
                    "WidgetHandler.prepare() as the handler's keyword arguments instead.",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return self._view

    # -- the SDK's hooks --------------------------------------------------------------------

    @override
    async def on_event(self, event: AssistantStreamEvent) -> None:
        """Fold every event into the view; fetch the images it starts to show."""
        view = self.view
        approval.showing(view)  # the run's calls that need approval ask in this view
        note = take_model_note()  # the default model, chosen as this run started
        if note:
            view.note = note
        view.push(event)
        if self.fetch_file is not None:
            for file_id in view.missing_images():
                await self._fetch(view, file_id)
        if event.event in _RUN_ENDED:
            view.sync()
            if self.update_transcript:
                view.update_transcript()

    @override
    async def on_message_done(self, message: Message) -> None:
        """Show a message given before the stream (ipyassistant shows the user's this way)."""
        if self.current_event is not None:
            return  # the stream's own thread.message.completed, already folded in on_event
        item = item_from_message(message)
        self.view.push_ops([{"op": "item", "item": item}], boundary=True)

    @override
    async def on_exception(self, exception: Exception) -> None:
        """Show what broke the stream (a lost connection, a timeout) as the view's error."""
        self.view.push(error_event(exception))

    @override
    async def on_end(self) -> None:
        """The stream ended (done, paused for tool outputs, or broken): save the view."""
        if self._view is not None:  # a stream that never started has nothing to show
            self._view.sync()

    async def _fetch(self, view: RunView, file_id: str) -> None:
        assert self.fetch_file is not None
        view.requested_images.add(file_id)  # asked once, even if it fails
        try:
            data = self.fetch_file(file_id)
            if inspect.isawaitable(data):
                data = await data
        except Exception as exc:  # an image that cannot be shown must not end the stream
            logger.warning("ipyassistant: could not fetch image file %s: %s", file_id, exc)
            return
        view.add_image(file_id, bytes(data))
