"""A :class:`Run`: one execution of an assistant on a thread, streamed, with its tool calls.

A run streams through the SDK. When the server stops it at ``requires_action``, the run calls
the function tools the model asked for (concurrently; sync tools in worker threads), submits
their outputs and streams on, until the run ends. A tool that ends the run (``EndRun``) gets it
cancelled on the server; so does cancelling the coroutine or interrupting a sync call, after
which the run waits until the server has released the thread. A stream whose connection breaks
is followed by polling the run instead; the requests that start or continue a run are never
retried, so that a lost answer cannot start a run twice.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import openai
from openai import AssistantEventHandler, AsyncAssistantEventHandler
from openai.lib.streaming import AsyncAssistantStreamManager
from openai.types.beta import AssistantStreamEvent
from openai.types.beta.assistant_stream_event import (
    ThreadRunCancelled,
    ThreadRunCompleted,
    ThreadRunExpired,
    ThreadRunFailed,
    ThreadRunIncomplete,
)
from openai.types.beta.threads import Message
from openai.types.beta.threads import Run as RunObject
from openai.types.beta.threads.runs import RunStep

from . import _hooks, approval
from ._portal import client, on_portal, sync_twin
from ._recovery import (
    TERMINAL_STATUSES,
    connection_lost,
    find_started_run,
    poll,
    replay_completions,
)
from ._tool_calls import call_tools
from .exceptions import EndRun, IpyassistantError, LifecycleError, ThreadBusyError, UsageError
from .formatting import image_file_ids
from .images import Image
from .instructions import render_instructions
from .settings import unretried
from .tools import (
    CodeInterpreterTool,
    FileSearchTool,
    FunctionTool,
    Tool,
    as_tools,
    function_tool,
)

if TYPE_CHECKING:
    from .assistants import Assistant
    from .threads import Thread

# TERMINAL_STATUSES is defined with the polling that waits for them, and belongs to this API.
__all__ = ["SEARCH_RESULTS_CONTENT", "TERMINAL_STATUSES", "Run"]

#: What a run with file search asks to ``include``: the text of the chunks its searches found.
SEARCH_RESULTS_CONTENT: Final = "step_details.tool_calls[*].file_search.results[*].content"

#: How long a cancelled run may take to reach ``cancelled`` before we stop waiting.
CANCEL_DEADLINE_SECONDS = 30.0
#: The stream event of each terminal status (given to a handler whose stream closed early).
_RUN_ENDED: dict[str, Any] = {
    "completed": ThreadRunCompleted,
    "failed": ThreadRunFailed,
    "cancelled": ThreadRunCancelled,
    "expired": ThreadRunExpired,
    "incomplete": ThreadRunIncomplete,
}


class Run:
    """One execution of ``assistant`` on ``thread``; :meth:`execute` performs it.

    ``Thread.run`` and ``Assistant.say`` create and execute runs; create one yourself to
    execute it later. The keyword arguments override the assistant for this run only:
    ``model``, ``instructions`` (replace), ``additional_instructions`` (append), ``tools``
    (replace), ``additional_tools`` (append) and ``tool_choice`` (``"auto"``, ``"none"``,
    ``"required"``, a tool, a function, or the API's dict). Any other keyword argument
    (``temperature``, ``max_completion_tokens``, ``response_format``, …) goes to the API as
    it is. ``approve`` (``"ask"``, ``"always"``, ``"never"``) and ``approver`` decide the calls
    of tools that need approval (see :mod:`ipyassistant.approval`).

    ``event_handler_class`` follows the stream: any ``openai.AsyncAssistantEventHandler``
    subclass, constructed with ``event_handler_kwargs`` once per stream; ``None`` (the default
    here) shows nothing. When the client ends a run early (an interrupt, ``EndRun``), its stream
    is closed before the server's final run event: the last handler then gets the final run
    through ``on_event`` (e.g. ``thread.run.cancelled``), followed by ``on_end``.

    In a notebook a run displays as a view of its messages and tool calls.

    After execution: ``run`` is the SDK's run object, ``messages`` and ``steps`` what the run
    created (in order), and ``data`` what a tool passed to :class:`~ipyassistant.EndRun`.
    """

    def __init__(
        self,
        thread: Thread,
        assistant: Assistant,
        *,
        model: str | None = None,
        instructions: str | None = None,
        additional_instructions: str | None = None,
        tools: Iterable[Any] | None = None,
        additional_tools: Iterable[Any] | None = None,
        tool_choice: Any = None,
        event_handler_class: type[AsyncAssistantEventHandler] | None = None,
        event_handler_kwargs: Mapping[str, Any] | None = None,
        approve: approval.Policy | None = None,
        approver: approval.Approver | None = None,
        **api_kwargs: Any,
    ) -> None:
        self.thread = thread
        self.assistant = assistant
        self.model = model
        self.instructions = instructions
        self.additional_instructions = additional_instructions
        self.tools: list[Tool] | None = None if tools is None else as_tools(tools)
        self.additional_tools: list[Tool] = as_tools(additional_tools or [])
        self.tool_choice = tool_choice
        self.event_handler_class = _check_handler_class(event_handler_class)
        self.event_handler_kwargs: dict[str, Any] = dict(event_handler_kwargs or {})
        self.api_kwargs = api_kwargs
        self.approve = None if approve is None else approval.check_policy(approve)
        self.approver = approver
        #: The SDK's run object (``None`` until the server created the run).
        self.run: RunObject | None = None
        #: The data of the ``EndRun`` that ended the run, if a tool ended it.
        self.data: Any = None
        self._messages: dict[str, Message] = {}
        self._steps: dict[str, RunStep] = {}
        #: Messages shown to the first handler before the stream (``say`` shows the user's).
        self._preamble: list[Message] = []
        #: The handler of the latest stream (it is told how the run ended, see above).
        self._handler: AsyncAssistantEventHandler | None = None

    def __repr__(self) -> str:
        run_id = self.run.id if self.run else None
        status = self.run.status if self.run else "not started"
        return f"Run(id={run_id!r}, status={status!r}, thread_id={self.thread.id!r})"

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> _hooks.MimeBundle | None:
        return _hooks.run_mimebundle(self, include, exclude)  # None outside a notebook: the repr

    @property
    def messages(self) -> list[Message]:
        """The messages the run created, oldest first."""
        return sorted(self._messages.values(), key=lambda m: m.created_at)

    @property
    def steps(self) -> list[RunStep]:
        """The run's steps (message creation and tool calls), oldest first."""
        return sorted(self._steps.values(), key=lambda s: s.created_at)

    def add_preamble(self, message: Message) -> None:
        """Internal: show ``message`` to the first handler, before the run's stream starts.

        :meth:`Assistant.say <ipyassistant.Assistant.say>` shows the user's message this way.
        """
        self._preamble.append(message)

    # -- what the run sends ----------------------------------------------------------------

    def effective_tools(self) -> list[Tool]:
        """The tools of this run: its ``tools`` (else the assistant's) and additional ones."""
        base = self.tools if self.tools is not None else self.assistant.tools
        return [*base, *self.additional_tools]

    def request(self) -> dict[str, Any]:
        """The run's parameters for the API; renders the instructions (errors come here)."""
        request: dict[str, Any] = dict(self.api_kwargs)
        if self.instructions is not None:
            request["instructions"] = self.instructions
        elif self.assistant.instructions is not None:
            request["instructions"] = render_instructions(
                self.assistant.instructions, self.assistant
            )
        if self.additional_instructions is not None:
            request["additional_instructions"] = self.additional_instructions
        model = self.model or self.assistant.model
        if model is not None:
            request["model"] = model
        tools = self.effective_tools()
        if tools or self.tools is not None:
            request["tools"] = [tool.spec() for tool in tools]
        if any(isinstance(tool, FileSearchTool) for tool in tools):
            # The chunks found, so that the views can show them and quote them as sources.
            request.setdefault("include", [SEARCH_RESULTS_CONTENT])
        if self.tool_choice is not None:
            request["tool_choice"] = _tool_choice(self.tool_choice)
        if self.assistant.response_format is not None and "response_format" not in request:
            request["response_format"] = self.assistant.response_format
        return request

    # -- executing -------------------------------------------------------------------------

    @on_portal
    async def execute_async(self) -> Run:
        """Execute the run: stream it, call its tools whenever it asks, until it ends.

        Returns the run itself. A tool's ``EndRun`` cancels the run on the server and returns
        normally with ``data`` set. Cancelling (or interrupting the sync call) cancels the run
        on the server, waits until the thread is free again, and propagates.
        """
        if self.run is not None:
            raise LifecycleError(f"run {self.run.id} was executed already; create a new Run")
        request = self.request()  # every local error before the first request
        api = await client()
        thread_id = await self.thread.ensure_created()
        async with self.assistant.in_use() as assistant_id:
            try:
                handler = self._new_handler()
                for message in self._preamble:
                    await handler.on_message_done(message)
                await self._stream(
                    unretried(api).beta.threads.runs.stream(
                        thread_id=thread_id,
                        assistant_id=assistant_id,
                        event_handler=handler,
                        **request,
                    )
                )
                await self._drive(api, thread_id)
            except EndRun as end:
                self.data = end.data
                await self._abort()
                await self._show_end()
            except openai.BadRequestError as exc:
                if self.run is not None:
                    with contextlib.suppress(Exception):
                        await self._abort()
                        await self._show_end()
                    raise
                # Refused before it started (nothing to cancel); e.g. the thread is busy.
                busy = ThreadBusyError.from_api_error(exc, thread_id, "run")
                if busy is None:
                    raise
                raise busy from exc
            except BaseException as exc:
                if self.run is not None or not isinstance(exc, openai.APIStatusError):
                    with contextlib.suppress(Exception):
                        await self._abort()
                        await self._show_end()
                raise
        return self

    execute = sync_twin(execute_async)

    async def _drive(self, api: openai.AsyncOpenAI, thread_id: str) -> None:
        """Submit tool outputs (streaming on) until the run ends."""
        while True:
            if self.run is None:
                raise IpyassistantError("the server's stream ended before it created the run")
            status = self.run.status
            if status in TERMINAL_STATUSES:
                return
            if status == "requires_action":
                outputs = await call_tools(
                    self.run,
                    self.effective_tools(),
                    approval.resolve_policy(self.approve, self.assistant.approve),
                    self.approver or approval.default_approver(),
                )
                await self._stream(
                    unretried(api).beta.threads.runs.submit_tool_outputs_stream(
                        thread_id=thread_id,
                        run_id=self.run.id,
                        tool_outputs=outputs,
                        event_handler=self._new_handler(),
                    )
                )
            else:  # the stream ended before the run did: follow it by polling
                await poll(self, until=TERMINAL_STATUSES | {"requires_action"})

    def _new_handler(self) -> AsyncAssistantEventHandler:
        if self.event_handler_class is None:
            handler = AsyncAssistantEventHandler()
        else:
            handler = self.event_handler_class(**self.event_handler_kwargs)
        self._handler = handler
        return handler

    async def _show_end(self) -> None:
        """Tell the latest handler how the run ended: its stream closed before the end."""
        handler, run = self._handler, self.run
        if handler is None or run is None or run.status not in TERMINAL_STATUSES:
            return
        last = handler.current_run
        if last is not None and last.id == run.id and last.status in TERMINAL_STATUSES:
            return  # the stream did deliver it
        event = _RUN_ENDED[run.status](event=f"thread.run.{run.status}", data=run)
        with contextlib.suppress(Exception):  # a handler's failure must not hide the run's end
            await handler.on_event(event)
            await handler.on_end()

    async def _stream(
        self, manager: AsyncAssistantStreamManager[AsyncAssistantEventHandler]
    ) -> None:
        """Follow one stream of the run; if its connection breaks, follow the run by polling."""
        broken = False
        async with manager as handler:
            try:
                async for event in handler:
                    self._record(event)
            except Exception as exc:
                if self.run is None or not connection_lost(exc):
                    raise  # with no run yet there is nothing to follow: it may not even exist
                broken = True
            finally:
                # A step still open (waiting for tool outputs) is best known from the
                # handler, which accumulated its deltas.
                open_step = handler.current_run_step_snapshot
                if open_step is not None and open_step.id in self._steps:
                    self._steps[open_step.id] = open_step
                await handler.close()
        if broken:
            await self._resume()

    async def _resume(self) -> None:
        """After a broken stream: poll the run until it ends or waits for tool outputs, then
        load its steps and messages and give the handler the completions it missed.

        The handler was told of the break (``on_exception``, ``on_end``); a run that has ended
        is then announced to it as if its stream had closed early (see :meth:`_show_end`).
        """
        run = self._require_run()
        api = await client()
        # Retrieved at least once: the status last streamed may be the one the run just left.
        self.run = await api.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
        await poll(self, until=TERMINAL_STATUSES | {"requires_action"})
        streamed: dict[str, Message | RunStep] = {**self._steps, **self._messages}
        await self._load_records()
        if self._handler is None:
            return
        await replay_completions(self._handler, streamed, self.messages, self.steps)
        await self._show_end()

    def _record(self, event: AssistantStreamEvent) -> None:
        data = event.data  # deltas are other types: the snapshots come with the final events
        if isinstance(data, RunObject):
            self.run = data
        elif isinstance(data, RunStep):
            self._steps[data.id] = data
        elif isinstance(data, Message):
            self._messages[data.id] = data

    async def _abort(self) -> None:
        """Cancel the run on the server and wait until it has ended (the thread is free)."""
        if self.run is None:
            self.run = await find_started_run(self.thread.id, self.assistant.id)
            if self.run is None:
                return
        if self.run.status not in TERMINAL_STATUSES:
            api = await client()
            with contextlib.suppress(openai.BadRequestError):  # it ended meanwhile
                self.run = await api.beta.threads.runs.cancel(
                    self.run.id, thread_id=self.run.thread_id
                )
            await poll(self, TERMINAL_STATUSES, time.monotonic() + CANCEL_DEADLINE_SECONDS)
        await self.refresh_async()

    # -- after the fact --------------------------------------------------------------------

    def _require_run(self) -> RunObject:
        if self.run is None:
            raise LifecycleError("the run has not started; execute it first")
        return self.run

    @on_portal
    async def refresh_async(self) -> Run:
        """Reload the run object, its steps and its messages from the server."""
        run = self._require_run()
        api = await client()
        self.run = await api.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
        await self._load_records()
        return self

    refresh = sync_twin(refresh_async)

    async def _load_records(self) -> None:
        """Load the run's steps and messages from the server (replacing the streamed ones)."""
        run = self._require_run()
        api = await client()
        steps = api.beta.threads.runs.steps.list(
            run.id, thread_id=run.thread_id, order="asc", limit=100
        )
        self._steps = {step.id: step async for step in steps}
        messages = api.beta.threads.messages.list(
            run.thread_id, run_id=run.id, order="asc", limit=100
        )
        self._messages = {message.id: message async for message in messages}

    @on_portal
    async def images_async(self) -> list[Image]:
        """The images the run produced (code-interpreter plots), with their bytes, in order.

        Each :class:`~ipyassistant.images.Image` displays as the picture in IPython;
        ``image.data`` holds the bytes and ``image.save(path)`` writes them.
        """
        api = await client()
        images = []
        for file_id in image_file_ids(self.messages, self.steps):
            response = await api.files.content(file_id)
            images.append(Image(file_id, response.content))
        return images

    images = sync_twin(images_async)

    @on_portal
    async def cancel_async(self) -> Run:
        """Cancel the run on the server and wait until it has ended (no-op if it has)."""
        self._require_run()
        await self._abort()
        return self

    cancel = sync_twin(cancel_async)


def _check_handler_class(
    handler_class: type[AsyncAssistantEventHandler] | None,
) -> type[AsyncAssistantEventHandler] | None:
    if handler_class is None:
        return None
    if isinstance(handler_class, type) and issubclass(handler_class, AsyncAssistantEventHandler):
        return handler_class
    if isinstance(handler_class, type) and issubclass(handler_class, AssistantEventHandler):
        raise UsageError(
            f"{handler_class.__name__} is a sync openai.AssistantEventHandler; ipyassistant "
            "streams asynchronously: subclass openai.AsyncAssistantEventHandler instead"
        )
    raise UsageError(
        f"event_handler_class must be an openai.AsyncAssistantEventHandler subclass or None, "
        f"not {handler_class!r}"
    )


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str | Mapping):
        return choice
    if isinstance(choice, FunctionTool):
        return {"type": "function", "function": {"name": choice.name}}
    if isinstance(choice, CodeInterpreterTool):
        return {"type": "code_interpreter"}
    if callable(choice):
        return {"type": "function", "function": {"name": function_tool(choice).name}}
    raise UsageError(f"tool_choice must be a string, a tool, a function or a dict, not {choice!r}")
