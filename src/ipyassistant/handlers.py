"""Event handlers: :class:`PrintHandler` shows a run in the terminal while it streams.

Any ``openai.AsyncAssistantEventHandler`` subclass can follow a run: ipyassistant constructs
one per stream (``event_handler_class(**event_handler_kwargs)``; a run that calls tools has one
stream per round trip) and the SDK calls its ``on_*`` hooks. Handlers run on ipyassistant's
event loop, so their hooks may await but must not block.
"""

from __future__ import annotations

import time

from openai import AsyncAssistantEventHandler
from openai.types.beta import AssistantStreamEvent
from openai.types.beta.threads import Message, MessageDelta
from openai.types.beta.threads.runs import RunStep, RunStepDelta
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from typing_extensions import override

from .formatting import (
    download_images_async,
    image_file_ids,
    message_panel,
    run_status_panel,
    step_panel,
)

__all__ = ["PrintHandler"]

#: Live panels redraw at most this often (a delta that ends a block always redraws).
_REDRAW_SECONDS = 0.08


class PrintHandler(AsyncAssistantEventHandler):
    """Print a run with rich: live panels of messages and tool calls as they stream.

    Finished messages and tool-call steps are printed as panels, with tool arguments and
    outputs, code-interpreter code and logs, and images downloaded to a temporary file and
    shown as a path. While the stream runs, what is still in progress is redrawn in place
    (on a terminal; elsewhere only finished panels are printed).

    The handler is inert until its stream starts: constructing one prints nothing and starts
    nothing.

    Args:
        print_messages: Print the assistant's messages.
        print_steps: Print the tool calls the assistant makes.
        console: The rich console to print to (default: a new one on standard output).
    """

    def __init__(
        self,
        print_messages: bool = True,
        print_steps: bool = True,
        console: Console | None = None,
    ) -> None:
        super().__init__()
        self.print_messages = print_messages
        self.print_steps = print_steps
        self._console = console
        self._live: Live | None = None
        self._last_redraw = 0.0
        #: What is still in progress, by id, in the order it started.
        self._open: dict[str, Message | RunStep] = {}

    @property
    def console(self) -> Console:
        """The console this handler prints to (created on first use)."""
        if self._console is None:
            # Plain text even in Jupyter: rich's Jupyter mode would display() from the
            # background loop's thread, where output can land in the wrong cell.
            self._console = Console(force_jupyter=False)
        return self._console

    # -- the live area -------------------------------------------------------------------

    def _start_live(self) -> None:
        if self._live is None and self.console.is_terminal and not self.console.is_dumb_terminal:
            self._live = Live(
                console=self.console, auto_refresh=False, transient=True, redirect_stdout=False
            )
            self._live.start()

    def _stop_live(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.update(Group(), refresh=True)
            live.stop()

    def _redraw(self, force: bool = False) -> None:
        if self._live is None:
            return
        now = time.monotonic()
        if not force and now - self._last_redraw < _REDRAW_SECONDS:
            return
        self._last_redraw = now
        panels: list[Panel] = []
        for item in self._open.values():
            panel = message_panel(item) if isinstance(item, Message) else step_panel(item)
            if panel is not None:
                panels.append(panel)
        self._live.update(Group(*panels), refresh=True)

    async def _print(self, item: Message | RunStep) -> None:
        panel: Panel | None
        if isinstance(item, Message):
            images = await download_images_async(image_file_ids(messages=[item]))
            panel = message_panel(item, images)
        else:
            panel = step_panel(item, await download_images_async(image_file_ids(steps=[item])))
        if panel is not None:
            self.console.print(panel)

    # -- SDK hooks -------------------------------------------------------------------------

    @override
    async def on_event(self, event: AssistantStreamEvent) -> None:
        self._start_live()
        if event.event in ("thread.run.failed", "thread.run.expired", "thread.run.incomplete"):
            panel = run_status_panel(event.data)
            if panel is not None:
                self.console.print(panel)

    # Messages and tool-call steps stream alike: opened, updated, printed when done.

    def _shows(self, item: Message | RunStep) -> bool:
        """Whether the handler shows ``item``: messages, and the steps that call tools."""
        if isinstance(item, Message):
            return self.print_messages
        return self.print_steps and item.step_details.type == "tool_calls"

    def _opened(self, item: Message | RunStep) -> None:
        if self._shows(item):
            self._open[item.id] = item
            self._redraw(force=True)

    async def _updated(
        self, delta: MessageDelta | RunStepDelta, snapshot: Message | RunStep
    ) -> None:
        if self._shows(snapshot) and snapshot.id in self._open:
            self._open[snapshot.id] = snapshot
            self._redraw()

    async def _done(self, item: Message | RunStep) -> None:
        if self._shows(item):
            self._open.pop(item.id, None)
            self._redraw(force=True)
            await self._print(item)

    @override
    async def on_message_created(self, message: Message) -> None:
        self._opened(message)

    @override
    async def on_run_step_created(self, run_step: RunStep) -> None:
        self._opened(run_step)

    # The SDK's two delta hooks take the same parameters.
    on_message_delta = on_run_step_delta = _updated

    @override
    async def on_message_done(self, message: Message) -> None:
        await self._done(message)

    @override
    async def on_run_step_done(self, run_step: RunStep) -> None:
        await self._done(run_step)

    @override
    async def on_end(self) -> None:
        self._stop_live()

    @override
    async def on_exception(self, exception: Exception) -> None:
        self._stop_live()

    @override
    async def close(self) -> None:
        self._stop_live()
        await super().close()

    def __repr__(self) -> str:
        return f"PrintHandler(print_messages={self.print_messages}, print_steps={self.print_steps})"
