"""``RunView``: the anywidget that shows a run while it streams and after it ended.

The widget is a thin transport around :mod:`.view_state`. While a stream runs it keeps a live
view state in the kernel and sends only the *ops* between states, as custom messages::

    {"type": "patch", "ops": [...]}                 live ops, coalesced (see below)
    {"type": "image", "file_id": ...} + [bytes]     an image the run made, as a binary buffer
    {"type": "snapshot", "state": ... | None, "images": [file_id, ...]} + [bytes, ...]
                                                    the answer to the browser's "snapshot?"

and the browser sends ``{"type": "snapshot?"}`` and ``{"type": "retry"}`` (the Retry button of
a failed run, offered while ``retryable`` is true: see :meth:`RunView.offer_retry`).

Ops are queued and sent at most every ``interval`` seconds (20 messages a second), and at
once when a block ends (a message or step completes, the run pauses or ends), so that the
browser never shows a finished block late. Text is never synced as a growing trait: that
would send the whole text again on every delta. When a stream ends, :meth:`RunView.sync`
writes the finished state to the synced ``state`` trait and the image bytes to the ``images``
trait (binary buffers), so that saved widget state and re-opened notebooks render.

The browser keeps one live state per widget model (anywidget's ``initialize``), so every view
of the widget sees every patch. A model created while a stream is running (a reloaded page)
asks for a ``snapshot?``; until the kernel answers (it is busy running the cell), the patches
it receives for items it does not know are ignored and the next whole item heals the view.

Threads: the widget's state is guarded by a lock, because the stream's events arrive on
ipyassistant's event-loop thread while a ``snapshot?`` request arrives on the kernel's shell
thread. ipykernel's comm sends are safe from any thread (they hand the message to the IOPub
thread). Only :meth:`RunView.show` displays, and it must be called in the thread that runs
the cell (see :class:`~ipyassistant.jupyter.handler.WidgetHandler`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, cast

import traitlets
from IPython.display import DisplayHandle, display

from . import approval
from .failures import FAILED_STATUSES
from .live import MISSING_ESM, LiveWidget, error_event
from .module_loader import loader_esm
from .saved import provenance, saved_bundle
from .throttle import TimerLoop, running_loop
from .transcript import transcript_html
from .view_state import Op, ViewState, apply_ops, empty_state, file_ids

__all__ = ["RunView"]

logger = logging.getLogger(__name__)


class RunView(LiveWidget):
    """A live view of one run (or several, one after the other) in a notebook.

    Feed it stream events with :meth:`push` (a
    :class:`~ipyassistant.jupyter.handler.WidgetHandler` does), give it the bytes of the images
    the run made with :meth:`add_image`, and call :meth:`sync` when a stream ends.

    Args:
        state: The view state to start from (default: empty).
        images: Image bytes by file id to start from.
        interval: The shortest time between two live patch messages, in seconds.
        clock: The clock that ``interval`` is measured with (tests pass a fake one).
        timer_loop: Returns the loop to arm the interval's timer on (default: the running
            asyncio loop; tests pass a fake one whose timers fire when they move its clock).
    """

    # A loader, not the bundle: the saved widget state stays small (see module_loader).
    _esm = loader_esm("run_view", MISSING_ESM)

    #: The finished view state (see :mod:`ipyassistant.jupyter.view_state`), written when a
    #: stream ends; live changes travel as patch messages instead.
    state = traitlets.Dict().tag(sync=True)
    #: A quiet line of information above the run (e.g. which model was chosen by default).
    note = traitlets.Unicode("").tag(sync=True)
    #: Whether the view offers Retry (a failed run whose message can be said again).
    retryable = traitlets.Bool(False).tag(sync=True)

    def __init__(
        self,
        state: ViewState | None = None,
        *,
        images: Mapping[str, bytes] | None = None,
        interval: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        timer_loop: Callable[[], TimerLoop | None] = running_loop,
        **kwargs: Any,
    ) -> None:
        initial = copy.deepcopy(state) if state is not None else empty_state()
        super().__init__(images, interval, clock, timer_loop, state=initial, **kwargs)
        self._live: ViewState = copy.deepcopy(initial)
        self._handle: DisplayHandle | None = None
        #: File ids whose bytes were asked for (so a failed fetch is not retried per event).
        self.requested_images: set[str] = set()
        self._retry: Callable[[], Awaitable[Any]] | None = None
        self._retrying_task: asyncio.Task[None] | None = None
        self.on_msg(self._on_custom_message)

    # -- reading -------------------------------------------------------------------------

    @property
    def live_state(self) -> ViewState:
        """A copy of the current view state, including what is still streaming."""
        with self._lock:
            return copy.deepcopy(self._live)

    @property
    def live_images(self) -> dict[str, bytes]:
        """The image bytes received so far, by file id."""
        with self._lock:
            return dict(self._live_images)

    def missing_images(self) -> list[str]:
        """File ids the state shows whose bytes were neither received nor asked for yet."""
        with self._lock:
            return [
                file_id
                for file_id in file_ids(self._live)
                if file_id not in self._live_images and file_id not in self.requested_images
            ]

    # -- feeding -------------------------------------------------------------------------

    def push(self, event: Any) -> list[Op]:
        """Fold one stream event (SDK object or dict) into the view; returns its ops.

        The ops are sent at once when the event ends a block or ``interval`` has passed
        since the last message, else they wait (a timer on the running event loop, if any,
        sends them when the interval is over; so does the next push or :meth:`flush`).
        """
        with self._lock:
            return self._fold(self._live, event)

    def push_ops(self, ops: Iterable[Op], *, boundary: bool = False) -> None:
        """Apply ops made elsewhere (e.g. a message shown before the stream) and queue them."""
        with self._lock:
            ops = list(ops)
            apply_ops(self._live, ops, in_place=True)
            self._patches.add(ops, boundary=boundary)

    def add_image(self, file_id: str, data: bytes) -> None:
        """Give the view the bytes of an image file; sent at once as a binary buffer."""
        with self._lock:
            self.requested_images.add(file_id)
            if self._live_images.get(file_id) == data:
                return
            self._live_images[file_id] = data
            self.send({"type": "image", "file_id": file_id}, [data])

    def flush(self) -> None:
        """Send the queued ops now."""
        self._patches.flush()

    def sync(self) -> None:
        """Flush, then write the view state and images to the synced traits.

        Call it when a stream ends: what it writes is what a saved notebook keeps.
        """
        with self._lock:
            self._patches.flush()
            state = copy.deepcopy(self._live)  # the trait must not share what push mutates
            images = dict(self._live_images)
            with self.hold_sync():
                self.state = cast("dict[str, Any]", state)  # the trait holds plain JSON
                self.images = images

    def reset(self, state: ViewState | None = None) -> None:
        """Show ``state`` (default: nothing) from now on, dropping what is queued."""
        with self._lock:
            self._patches.clear()
            self._live = copy.deepcopy(state) if state is not None else empty_state()
            self.sync()
            # The trait may not have changed while the browser's state (patched live) did.
            self.send({"type": "snapshot", "state": copy.deepcopy(self._live), "images": []})

    # -- the browser's requests ------------------------------------------------------------

    @property
    def failed(self) -> bool:
        """Whether the view shows a run that failed, or a stream that broke."""
        with self._lock:
            run = self._live["run"]
            return self._live["error"] is not None or (
                run is not None and run["status"] in FAILED_STATUSES
            )

    def offer_retry(self, again: Callable[[], Awaitable[Any]] | None) -> None:
        """Offer Retry: pressing it empties the view and awaits ``again()`` on the kernel's loop.

        ``again`` says the same message again into this view (``%%assistant`` passes one when
        its run failed); None withdraws the offer.
        """
        self._retry = again
        self.retryable = again is not None

    def _start_retry(self) -> None:
        again, self._retry = self._retry, None
        self.retryable = False
        if again is None:
            return
        self.reset()
        try:
            loop = asyncio.get_running_loop()  # the kernel's: comm messages arrive on it
        except RuntimeError:
            self.push(error_event(RuntimeError("Retry needs the kernel's running event loop")))
            self.sync()
            return
        task = loop.create_task(self._retrying(again))
        self._retrying_task = task  # keep a reference: the loop holds tasks weakly

    async def _retrying(self, again: Callable[[], Awaitable[Any]]) -> None:
        try:
            await again()
        except Exception as exc:  # shown in the view: nobody else awaits this task
            logger.debug("ipyassistant: a retried run failed", exc_info=exc)
            self.push(error_event(exc))
            self.sync()

    def _on_custom_message(self, _widget: Any, content: Any, _buffers: list[Any]) -> None:
        if approval.receive(content):  # Approve or Deny on a card
            return
        if isinstance(content, Mapping) and content.get("type") == "retry":
            self._start_retry()
            return
        if not isinstance(content, Mapping) or content.get("type") != "snapshot?":
            return
        with self._lock:
            # Whatever is queued goes first: the snapshot includes it, and the browser replaces
            # its state with the snapshot, so no op is applied twice or lost.
            self._patches.flush()
            state = None if self._live == self.state else copy.deepcopy(self._live)
            missing, buffers = self._unsynced_images()
            self.send({"type": "snapshot", "state": state, "images": missing}, buffers)

    # -- display ---------------------------------------------------------------------------

    def show(self) -> DisplayHandle | None:
        """Display the view (in the calling thread, the one running the cell).

        The display has an id, so :meth:`update_transcript` can later replace it.
        Returns the display's handle (None outside IPython, where nothing is displayed).
        """
        handle = display(self, display_id=True)
        self._handle = handle if isinstance(handle, DisplayHandle) else None
        return self._handle

    @property
    def displayed(self) -> bool:
        """Whether :meth:`show` displayed the view (it is on screen, under a display id)."""
        return self._handle is not None

    def update_transcript(self) -> None:
        """Replace the display made by :meth:`show` with the finished view, then close.

        The display (same display id) becomes a bundle that renders without a kernel (see
        :mod:`.saved`), so a saved notebook reopened with a new kernel shows the run, and the
        widget is closed, so saved widget state does not carry it. Call it when the run is
        over; a view fed several runs one after the other passes ``update_transcript=False``
        to its handlers until the last. An ``update_display_data`` message is routed by its
        display id, not by the cell that is executing, so this is safe from the event loop's
        thread.
        """
        if self._handle is None:
            return
        self.sync()
        if self.failed:
            # A failed run stays a live widget, which offers Retry, beside its saved view.
            live = super()._repr_mimebundle_()
            widget = live[0] if live is not None else {}
            saved = self.saved_bundle(model_id=self.model_id)
            self._handle.update({**widget, **saved}, metadata=self.provenance(), raw=True)
            return
        self._handle.update(self.saved_bundle(), metadata=self.provenance(), raw=True)
        self.close()

    def provenance(self) -> dict[str, Any]:
        """The output metadata naming the run's assistant, thread, run and model."""
        with self._lock:
            return provenance([self._live])

    def saved_bundle(self, model_id: str | None = None) -> dict[str, Any]:
        """The view as a bundle that renders without a kernel (:func:`.saved.saved_bundle`);
        ``model_id`` names the live widget beside it, if it stays."""
        with self._lock:
            state, images = copy.deepcopy(self._live), dict(self._live_images)
        return saved_bundle("run", [state], images, "RunView", model_id=model_id)

    def transcript_html(self) -> str:
        """The current state as static, sanitised HTML."""
        with self._lock:
            return transcript_html(self._live, self._live_images)
