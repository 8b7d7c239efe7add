"""``ChatPanel``: a conversation with an assistant in a notebook output, that never blocks the kernel.

The panel shows a thread's history, then one *turn* per message sent from its input box: the
user's message and the run that answers it, rendered like a
:class:`~ipyassistant.jupyter.widgets.RunView`. A turn runs as an ``asyncio`` task on the
kernel's event loop (the loop that delivers comm messages), awaiting the client's async API,
whose coroutines execute on ipyassistant's portal loop (see :mod:`ipyassistant._portal`): the
kernel loop only waits on a future, so it keeps handling the Stop button, further messages and
other cells while a reply streams.

Messages (custom comm messages)::

    browser → kernel
      {"type": "send", "text": str, "files": [name, ...]} + one buffer per file
      {"type": "stop"}                                     cancel the running turn's run
      {"type": "snapshot?"}                                a new model wants the live turn
    kernel → browser
      {"type": "live", "turn": n, "state": ViewState | None}
                                  turn n starts (its first state); None: it ended, and its
                                  final state is now ``turns[n]``
      {"type": "patch", "ops": [...]}                      ops on the live turn (see below)
      {"type": "image", "file_id": ...} + [bytes]          an image the live turn shows
      {"type": "snapshot", "live": {"turn", "state"} | None, "images": [file_id, ...]}
                                  + [bytes, ...]           the answer to ``snapshot?``
      {"type": "unsent", "texts": [str, ...]}              Stop dropped these queued messages:
                                                           back into the input box

Synced traits: ``history`` (a view state of the thread's messages before the panel),
``turns`` (one finished view state per turn, appended when a turn ends), ``images`` (bytes by
file id), ``busy``, ``queued`` (messages waiting for the running turn) and ``attachments``
(whether files can be attached). So a reloaded page, or a notebook saved with its widget
state, shows the whole conversation. The panel is displayed under a display id, and each
finished turn rewrites that display's saved conversation (:mod:`.saved`): a notebook reopened
without its kernel, nbconvert and GitHub show the whole chat.

Streaming follows :class:`RunView`'s rules: the stream's events arrive on the portal thread,
are folded into the live turn (:mod:`.view_state`) under a lock, and their ops are sent as
patches coalesced to at most one per ``interval`` and at block boundaries. Synced traits are
written only on the kernel loop's thread, and nothing is ever ``display()``-ed from elsewhere.

Stop cancels the run on the server, so that its stream ends with ``thread.run.cancelled`` and
the turn shows it; a turn that has no run yet, or whose run waits for its function tools, is
cancelled as a task instead (the client then cancels the run), as is a run whose server does
not end it within :data:`STOP_GRACE_SECONDS`. Messages sent while a turn runs wait in
``queued``; Stop takes them off the queue and gives their words back to the input box.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import openai
import traitlets
from IPython.display import display, update_display

from ..runs import TERMINAL_STATUSES
from ..settings import note_model_in_views
from ..tools import CodeInterpreterTool, FileSearchTool
from . import approval
from .chat_client import cancel_run, load_history, retrieve_run, upload
from .chat_handler import PanelHandler
from .context import with_context
from .live import MISSING_ESM, LiveWidget, error_event
from .module_loader import loader_esm
from .saved import provenance, saved_bundle
from .throttle import TimerLoop, running_loop
from .transcript import transcript_html
from .view_state import Op, ViewState, empty_state, file_ids
from .view_types import Block, MessageItem

if TYPE_CHECKING:
    from ..assistants import Assistant
    from ..threads import Thread

__all__ = ["STOP_GRACE_SECONDS", "ChatPanel"]

logger = logging.getLogger(__name__)

#: How long Stop lets the server end a cancelled run before it cancels the turn's task.
STOP_GRACE_SECONDS = 10.0


@dataclass
class _Message:
    """A message from the input box, waiting for its turn."""

    text: str
    files: list[tuple[str, bytes]] = field(default_factory=list)


class ChatPanel(LiveWidget):
    """A chat with ``assistant`` on ``thread`` (default: the assistant's ``default_thread``).

    Display it (the last expression of a cell); type in its box and press Enter (Shift+Enter
    for a new line). Replies stream while the kernel stays free; Stop cancels the running
    reply. :meth:`submit` and :meth:`stop` do the same from code.

    Args:
        assistant: Who answers.
        thread: The conversation to show and continue; its last ``history_limit`` messages
            are loaded when the panel is made.
        attachments: Whether files can be attached to a message (uploaded with purpose
            ``assistants``, and attached for file search when the assistant has it, else for
            the code interpreter); default: whether the assistant has either tool.
        history_limit: How many of the thread's messages to show (1-100).
        context: Whether the assistant sees the kernel (the tools of ``jupyter.context``, and
            the notebook's variables in each run's instructions).
        interval: The shortest time between two live patch messages, in seconds.
        clock: The clock ``interval`` is measured with (tests pass a fake one).
        timer_loop: Returns the loop to arm the interval's timer on (default: the running
            asyncio loop; tests pass a fake one whose timers fire when they move its clock).
        run_kwargs: Passed to every run (:meth:`Assistant.say`'s ``run_kwargs``).
    """

    # A loader, not the bundle: the saved widget state stays small (see module_loader).
    _esm = loader_esm("chat_panel", MISSING_ESM)

    #: The thread's messages from before the panel, as a view state (``run`` is None).
    history = traitlets.Dict().tag(sync=True)
    #: The finished turns, one view state each (written when a turn ends).
    turns = traitlets.List(traitlets.Dict()).tag(sync=True)
    # ``images`` (LiveWidget's) holds the images of the history and the finished turns.
    #: Whether a turn is running (the Stop button works).
    busy = traitlets.Bool(False).tag(sync=True)
    #: The texts of messages waiting for the running turn to end.
    queued = traitlets.List(traitlets.Unicode()).tag(sync=True)
    #: Whether the input box offers to attach files.
    attachments = traitlets.Bool(False).tag(sync=True)
    #: What attached files are for (the attach button's tooltip).
    attach_title = traitlets.Unicode("").tag(sync=True)
    #: The input box's placeholder.
    placeholder = traitlets.Unicode("").tag(sync=True)
    #: A quiet line of information (e.g. which model was chosen by default).
    note = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        assistant: Assistant,
        thread: Thread | None = None,
        *,
        attachments: bool | None = None,
        history_limit: int = 50,
        context: bool = False,
        interval: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        timer_loop: Callable[[], TimerLoop | None] = running_loop,
        **run_kwargs: Any,
    ) -> None:
        self.assistant = assistant
        self.thread: Thread = assistant.default_thread if thread is None else thread
        self.run_kwargs = run_kwargs
        self.context = context
        note_model_in_views()  # the panel, not standard error, says which model runs
        history, images = load_history(self.thread, history_limit)
        searches = any(isinstance(t, FileSearchTool) for t in assistant.tools)
        runs_code = any(isinstance(t, CodeInterpreterTool) for t in assistant.tools)
        if attachments is None:
            attachments = searches or runs_code
        placeholder = f"Message {assistant.name}… (Enter sends, Shift+Enter: new line)"
        super().__init__(
            images,
            interval,
            clock,
            timer_loop,
            history=history,
            attachments=attachments,
            attach_title=_attach_title(searches, runs_code),
            placeholder=placeholder,
        )
        #: Whether attached files go to file search (else to the code interpreter only).
        self._search_attached = searches
        # The lock also guards the live turn, which the kernel loop's thread starts and ends.
        self._live: ViewState | None = None
        self._live_index = 0
        self._requested: set[str] = set(images)
        # Only touched on the kernel loop's thread:
        self._queue: list[_Message] = []
        self._worker: asyncio.Task[None] | None = None
        self._current: asyncio.Task[None] | None = None
        self._stopping = False
        self._dropped = False
        self._loop = _running_loop()
        self._display_id = f"ipa-chat-{uuid.uuid4().hex}"
        self._displayed = False
        self.on_msg(self._on_custom_message)

    # -- reading ----------------------------------------------------------------------------

    @property
    def live_state(self) -> ViewState | None:
        """A copy of the running turn's view state (None when no turn runs)."""
        with self._lock:
            return copy.deepcopy(self._live)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task working through the sent messages (None before the first)."""
        return self._worker

    def states(self) -> list[ViewState]:
        """The history, the finished turns and the running one, as view states."""
        with self._lock:
            live = [copy.deepcopy(self._live)] if self._live is not None else []
        # The traits hold the states as plain JSON dicts.
        return [cast(ViewState, self.history), *cast("list[ViewState]", self.turns), *live]

    def transcript_html(self) -> str:
        """The conversation as static, sanitised HTML."""
        with self._lock:
            images = dict(self._live_images)
        return "".join(transcript_html(state, images) for state in self.states())

    def saved_bundle(self) -> dict[str, Any]:
        """The conversation as a bundle that renders without a kernel (see :mod:`.saved`)."""
        with self._lock:
            images = dict(self._live_images)
        model_id = self.model_id if self.comm is not None else None
        return saved_bundle("chat", self.states(), images, "ChatPanel", model_id=model_id)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None or self.comm is None:
            return bundle
        data, metadata = bundle
        # The saved conversation beside the live widget: JupyterLab's extension draws the
        # widget while its model lives, and this once the kernel is gone.
        saved = {**data, **self.saved_bundle(), "text/plain": data["text/plain"]}
        return saved, {**metadata, **provenance(self.states())}

    def _ipython_display_(self) -> None:
        """Display the panel under its display id, so that finished turns update what is saved."""
        bundle = self._repr_mimebundle_()
        if bundle is not None:
            display(bundle[0], metadata=bundle[1], raw=True, display_id=self._display_id)
            self._displayed = True

    def _update_display(self) -> None:
        """Write the conversation so far into the panel's displays (what a saved notebook keeps)."""
        if not self._displayed or self.comm is None:
            return
        bundle = self._repr_mimebundle_()
        if bundle is not None:
            update_display(bundle[0], metadata=bundle[1], raw=True, display_id=self._display_id)

    # -- the conversation ---------------------------------------------------------------------

    def submit(self, text: str, files: Sequence[tuple[str, bytes]] = ()) -> None:
        """Send a message as if typed (``files``: ``(name, bytes)`` pairs to attach).

        Call it on the kernel's loop thread (a cell, a comm handler); the reply runs as a
        task on the running event loop. While a turn runs, the message waits in ``queued``.
        """
        idle = self._worker is None or self._worker.done()
        loop = _running_loop() or self._loop
        if idle and (loop is None or loop.is_closed()):
            raise RuntimeError("ChatPanel needs a running event loop (the kernel's)")
        message = _Message(text, list(files))
        if idle:
            assert loop is not None
            self.busy = True
            self._worker = loop.create_task(self._work(message))
        else:
            self._queue.append(message)
            self.queued = [m.text for m in self._queue]

    def stop(self) -> None:
        """Cancel the running turn's run; the queued messages go back to the input box."""
        if not hasattr(self, "_queue"):  # a panel whose construction failed
            return
        if self._queue:
            # Not sent, and not lost: the browser puts their words back in the box.
            self.send({"type": "unsent", "texts": [m.text for m in self._queue]})
            self._queue.clear()
            self.queued = []
        current = self._current
        if current is None and self._worker is not None and not self._worker.done():
            self._dropped = True  # its first message's turn has not started yet
        if current is None or current.done() or self._stopping:
            return
        self._stopping = True
        with self._lock:
            run: Mapping[str, Any] = (self._live or empty_state())["run"] or {}
        status = run.get("status")
        if run.get("id") and status not in TERMINAL_STATUSES and status != "requires_action":
            current.get_loop().create_task(self._cancel_on_server(current, run))
        else:
            # No run yet (uploading, adding the message), or the run waits for a function
            # tool: cancelling the task makes the client cancel the run, if there is one.
            current.cancel()

    async def _cancel_on_server(self, current: asyncio.Task[None], run: Mapping[str, Any]) -> None:
        try:
            await cancel_run(str(run["thread_id"]), str(run["id"]))
        except openai.APIError as exc:  # it ended meanwhile, or the server is gone
            logger.info("ipyassistant: cancelling run %s: %s", run["id"], exc)
        done, _ = await asyncio.wait([current], timeout=STOP_GRACE_SECONDS)
        if not done:
            current.cancel()

    async def _work(self, first: _Message) -> None:
        message: _Message | None = first
        try:
            while message is not None:
                if self._dropped:  # Stop came before this message's turn started
                    self._dropped = False
                else:
                    await self._turn(message)
                message = self._queue.pop(0) if self._queue else None
                self.queued = [m.text for m in self._queue]
        finally:
            self._dropped = False
            self.busy = False

    async def _turn(self, message: _Message) -> None:
        self._stopping = False
        self.busy = True
        self._start_live(message)
        current = asyncio.ensure_future(self._converse(message))
        self._current = current
        try:
            try:
                await asyncio.wait([current])
            except asyncio.CancelledError:  # the panel's task itself: take the turn along
                current.cancel()
                raise
            if current.cancelled() or (current.exception() is not None and self._stopping):
                await self._show_final_run()
            elif (exc := current.exception()) is not None:
                logger.debug("ipyassistant: a chat turn failed", exc_info=exc)
                self.push_event(error_event(exc))
        finally:
            self._current = None
            self._stopping = False
            self._end_live(busy=bool(self._queue))

    async def _converse(self, message: _Message) -> None:
        uploaded = [await upload(name, data) for name, data in message.files]
        run_kwargs = (
            with_context(self.assistant, self.run_kwargs) if self.context else self.run_kwargs
        )
        files = {"attachments" if self._search_attached else "code_interpreter_files": uploaded}
        await self.assistant.say_async(
            message.text,
            thread=self.thread,
            event_handler_class=PanelHandler,
            event_handler_kwargs={"panel": self},
            **files,
            **run_kwargs,
        )

    async def _show_final_run(self) -> None:
        """After a stopped turn: show how its run ended (its stream did not say)."""
        with self._lock:
            run = (self._live or empty_state())["run"]
        if not run or not run.get("id"):
            error = {"code": "stopped", "message": "Stopped before the run started."}
            self.push_event({"event": "error", "data": error})
            return
        try:
            final = await retrieve_run(str(run["thread_id"]), str(run["id"]))
        except openai.APIError as exc:
            logger.info("ipyassistant: reading run %s after Stop: %s", run["id"], exc)
            return
        self.push_event({"event": f"thread.run.{final.status}", "data": final})

    def close(self) -> None:
        """Stop the running turn, then close the widget."""
        self.stop()
        super().close()

    # -- the live turn ----------------------------------------------------------------------------

    def _start_live(self, message: _Message) -> None:
        blocks: list[Block] = [{"type": "text", "text": message.text}]
        if message.files:
            names = ", ".join(f"`{name}`" for name, _ in message.files)
            blocks.append({"type": "text", "text": f"Attached: {names}"})
        user: MessageItem = {
            "kind": "message",
            "id": f"input-{uuid.uuid4().hex[:12]}",
            "run_id": None,
            "role": "user",
            "status": "completed",
            "blocks": blocks,
        }
        with self._lock:
            self._patches.clear()
            self._live = {**empty_state(), "items": [user]}
            self._live_index = len(self.turns)
            self.send(
                {"type": "live", "turn": self._live_index, "state": copy.deepcopy(self._live)}
            )

    def _end_live(self, *, busy: bool) -> None:
        with self._lock:
            self._patches.flush()
            state = copy.deepcopy(self._live) if self._live is not None else None
            images = dict(self._live_images)
            index = self._live_index
            self._live = None
        with self.hold_sync():
            if state is not None:
                self.turns = [*self.turns, cast("dict[str, Any]", state)]
            self.images = images
            self.busy = busy
        self.send({"type": "live", "turn": index, "state": None})
        self._update_display()

    # -- for the turn's event handler (chat_handler.PanelHandler), on the portal's loop ----------

    def push_event(self, event: Any) -> list[Op]:
        """Internal: fold a stream event into the live turn; sends its ops as RunView does."""
        with self._lock:
            if self._live is None:
                return []
            return self._fold(self._live, event)

    def claim_images(self) -> list[str]:
        """Internal: file ids the live turn shows and nobody fetched yet; they count as asked for now
        (so that a failed fetch is not retried on every event)."""
        with self._lock:
            if self._live is None:
                return []
            missing = [
                fid
                for fid in file_ids(self._live)
                if fid not in self._live_images and fid not in self._requested
            ]
            self._requested.update(missing)
            return missing

    def add_image(self, file_id: str, data: bytes) -> None:
        """Internal: an image the live turn shows, sent to the front end."""
        with self._lock:
            self._live_images[file_id] = data
            self.send({"type": "image", "file_id": file_id}, [data])

    def show_note_soon(self, note: str) -> None:
        """Internal: show ``note`` (which model runs) from another thread's handler."""
        if self._loop is not None:  # traits are written on the kernel loop's thread
            self._loop.call_soon_threadsafe(setattr, self, "note", note)

    def flush(self) -> None:
        """Internal: send the live turn's queued patches now (a stream ended)."""
        self._patches.flush()

    # -- the browser's messages -------------------------------------------------------------------

    def _on_custom_message(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, Mapping) or approval.receive(content):
            return
        kind = content.get("type")
        if kind == "send":
            text = str(content.get("text") or "")
            names = [str(name) for name in content.get("files") or []]
            files = [(name, bytes(data)) for name, data in zip(names, buffers or [], strict=False)]
            if text.strip() or files:
                self.submit(text, files)
        elif kind == "stop":
            self.stop()
        elif kind == "snapshot?":
            self._send_snapshot()

    def _send_snapshot(self) -> None:
        with self._lock:
            # Whatever is queued goes first: the snapshot includes it, and the browser replaces
            # its live turn with the snapshot, so no op is applied twice or lost.
            self._patches.flush()
            live = (
                None
                if self._live is None
                else {"turn": self._live_index, "state": copy.deepcopy(self._live)}
            )
            missing, buffers = self._unsynced_images()
            self.send({"type": "snapshot", "live": live, "images": missing}, buffers)


def _attach_title(searches: bool, runs_code: bool) -> str:
    if searches and runs_code:
        return "Attach files to search and for the code interpreter"
    return "Attach files to search" if searches else "Attach files for the code interpreter"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
