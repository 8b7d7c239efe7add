"""The run engine: executes runs as server-side jobs, with their state in the database.

A run executes in *segments*, each an asyncio task in the process that received the request:
one from creation until the run ends or stops at ``requires_action``, and one after each
``submit_tool_outputs``. A segment loops: build the prompt from the thread, stream the model,
record a ``message_creation`` step for text and a ``tool_calls`` step for tool calls, run
code-interpreter calls here and hand function calls to the client.

Every change to a run is a conditional UPDATE on the status the engine last saw, so a
``cancelling`` written by another request (or another process) is never overwritten; the
engine notices and stops. Each worker process writes a heartbeat; any worker fails the
executing runs of a worker whose heartbeat is stale, so after a crash no run stays active and
no thread stays locked.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from . import objects
from .config import ServerConfig
from .errors import InvalidRequest
from .events import NO_EVENTS, EventSink
from .files import FileStore
from .models import resolve_model
from .models.base import (
    CODE_INTERPRETER_FUNCTION,
    ChatMessage,
    Finish,
    FunctionSpec,
    ModelError,
    ModelProvider,
    ModelRequest,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .store import ACTIVE_RUN_STATUSES, Store, Tx, new_id, now

__all__ = ["CodeOutput", "CodeRunner", "RunEngine"]

log = logging.getLogger("ipyassistant.server")
T = TypeVar("T")

_STEP_EVENT = {
    "cancelled": "cancelled",
    "failed": "failed",
    "expired": "expired",
    "completed": "completed",
}
_MESSAGE_REASON = {
    "cancelled": "run_cancelled",
    "failed": "run_failed",
    "expired": "run_expired",
    "incomplete": "max_tokens",
}


@dataclass
class CodeOutput:
    """What one code-interpreter execution produced."""

    logs: str
    #: Files API ids of the images the code displayed.
    image_file_ids: list[str] = field(default_factory=list)
    #: (path shown to the model, Files API id) of the files the code saved for the user.
    saved_files: list[tuple[str, str]] = field(default_factory=list)


class CodeRunner(Protocol):
    """Runs code-interpreter calls for a thread (see :mod:`.code_interpreter`)."""

    async def run_code(self, run: dict[str, Any], code: str) -> CodeOutput: ...

    async def prepare(self, run: dict[str, Any], tx: Tx) -> str:
        """Make the run's files available; returns a note for the model (may be empty)."""
        ...


@dataclass
class _Context:
    """What a prompt is built from: the thread's messages, this run's steps, a note."""

    messages: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    #: Told to the model after the instructions (e.g. the code interpreter's files).
    note: str


class _Stopped(Exception):
    """The run was asked to stop: cancelled by a client, or the server is shutting down."""


@dataclass
class _Segment:
    """The in-memory side of one executing segment."""

    run: dict[str, Any]
    sink: EventSink
    message: dict[str, Any] | None = None
    message_step: dict[str, Any] | None = None
    text: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    #: Files the code saved since the last message: cited by the next one (``file_path``).
    saved_files: list[tuple[str, str]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)


def _usage(prompt: int = 0, completion: int = 0) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _add_usage(total: dict[str, int] | None, extra: dict[str, int]) -> dict[str, int]:
    total = total or _usage()
    return _usage(
        total["prompt_tokens"] + extra["prompt_tokens"],
        total["completion_tokens"] + extra["completion_tokens"],
    )


def tool_choice_name(choice: Any) -> str:
    """A run's ``tool_choice`` as a :class:`ModelRequest` wants it."""
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "function":
        return str(choice["function"]["name"])
    if choice.get("type") == "code_interpreter":
        return CODE_INTERPRETER_FUNCTION
    return "auto"


class RunEngine:
    def __init__(self, store: Store, files: FileStore, config: ServerConfig):
        self.store = store
        self.files = files
        self.config = config
        self.worker_id = f"worker_{uuid.uuid4().hex[:16]}"
        self.code_runner: CodeRunner | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stop: dict[str, str] = {}
        #: Runs awaiting a model call or a code execution, which a stop may cancel.
        self._interruptible: set[str] = set()
        self._maintenance: asyncio.Task[None] | None = None
        self._suspects: set[str] = set()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.create_tables()
        await self.maintain()
        self._maintenance = asyncio.create_task(
            self._maintenance_loop(), name="ipyassistant-maintenance"
        )

    async def stop_runs(self, timeout: float = 10) -> None:
        """End every local run ``failed`` (the server shut down), which closes their streams.

        Called before the HTTP server waits for open connections, so that streaming clients
        get a final ``thread.run.failed`` instead of a cut connection.
        """
        for run_id in list(self._tasks):
            self._signal(run_id, "shutdown")
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=timeout)

    async def stop(self) -> None:
        """Stop every local run and the maintenance loop, and deregister this worker."""
        if self._maintenance:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        await self.stop_runs()
        async with self.store.tx() as tx:
            await tx.remove_worker(self.worker_id)

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            try:
                await self.maintain()
            except Exception:  # keep the heartbeat alive through a passing database error
                log.exception("run maintenance failed")

    async def maintain(self) -> None:
        """Heartbeat; fail dead workers' runs; expire stale ones; pick up remote cancels."""
        async with self.store.tx() as tx:
            await tx.heartbeat(self.worker_id)
        async with self.store.tx() as tx:
            for run in await tx.orphaned_runs(self.config.worker_lease_seconds):
                if run["id"] in self._tasks:
                    continue
                log.warning("failing run %s: the server executing it stopped", run["id"])
                await self._finish(
                    tx,
                    run,
                    "failed",
                    NO_EVENTS,
                    error=(
                        "server_error",
                        "The server executing this run stopped before it finished.",
                    ),
                )
            for run in await tx.expired_runs():
                if run["status"] == "requires_action" or run["id"] not in self._tasks:
                    await self._finish(tx, run, "expired", NO_EVENTS)
            remote_cancels = await tx.cancelling_runs(self.worker_id)
            # Our own runs with no task (their task died before it could end them): end them
            # when seen twice in a row, since a run is saved a moment before its task starts.
            lost = {
                r["id"]: r
                for r in await tx.worker_runs(self.worker_id)
                if r["id"] not in self._tasks
            }
            for run_id in lost.keys() & self._suspects:
                log.warning("failing run %s: its task ended without ending it", run_id)
                await self._finish(
                    tx,
                    lost[run_id],
                    "failed",
                    NO_EVENTS,
                    error=("server_error", "The run stopped unexpectedly."),
                )
            self._suspects = set(lost)
        for run_id in remote_cancels:
            self._signal(run_id, "cancel")

    # -- starting, cancelling -------------------------------------------------------------

    def launch(
        self, run: dict[str, Any], sink: EventSink, prelude: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """Execute ``run`` (already saved as ``queued``) in a task; events go to ``sink``."""
        for event, data in prelude:
            sink.emit(event, data)
        task = asyncio.create_task(self._execute(_Segment(run, sink)), name=f"run {run['id']}")
        self._tasks[run["id"]] = task

    def _signal(self, run_id: str, reason: str) -> None:
        task = self._tasks.get(run_id)
        if task is None or run_id in self._stop:
            return
        self._stop[run_id] = reason
        if run_id in self._interruptible:
            task.cancel()  # interrupts only that await; see _interruptible_await

    async def cancel(self, thread_id: str, run_id: str) -> dict[str, Any]:
        """Cancel a run: ``cancelling`` until its task stops, or ``cancelled`` at once if idle."""
        for _ in range(5):
            async with self.store.tx() as tx:
                run = await tx.get("run", run_id, param="run_id")
                if run["thread_id"] != thread_id:
                    raise InvalidRequest(
                        f"Run {run_id} does not belong to thread {thread_id}.", param="run_id"
                    )
                status = run["status"]
                if status == "cancelling":
                    return run
                if status not in ACTIVE_RUN_STATUSES:
                    raise InvalidRequest(
                        f"Cannot cancel run {run_id} with status '{status}'.", param="run_id"
                    )
                if status == "requires_action":
                    if await self._finish(tx, run, "cancelled", NO_EVENTS):
                        return run
                    continue
                expected = status
                run["status"] = "cancelling"
                if not await tx.update_run(run, expected):
                    continue
            self._signal(run_id, "cancel")
            return run
        raise InvalidRequest(f"Run {run_id} changed while it was being cancelled; try again.")

    # -- one segment ----------------------------------------------------------------------

    async def _execute(self, seg: _Segment) -> None:
        run_id = seg.run["id"]
        try:
            await self._advance(seg)
        except _Stopped:
            await self._end_stopped(seg)
        except ModelError as exc:
            await self._end(seg, "failed", error=(exc.code, exc.message))
        except asyncio.CancelledError:
            # Cancelled outside a model call (server exit): the reaper will fail the run.
            raise
        except Exception as exc:
            log.exception("run %s failed", run_id)
            await self._end(seg, "failed", error=("server_error", f"{type(exc).__name__}: {exc}"))
        finally:
            seg.sink.close()
            self._tasks.pop(run_id, None)
            self._stop.pop(run_id, None)

    async def _end_stopped(self, seg: _Segment) -> None:
        reason = self._stop.get(seg.run["id"], "cancel")
        if reason == "shutdown":
            await self._end(
                seg, "failed", error=("server_error", "The server shut down during the run.")
            )
        else:
            await self._end(seg, "cancelled")

    async def _end(
        self,
        seg: _Segment,
        status: str,
        *,
        error: tuple[str, str] | None = None,
        reason: str | None = None,
        message: tuple[str, dict[str, int]] | None = None,
        usage: dict[str, int] | None = None,
    ) -> None:
        """End the run with ``status``, from whatever state the database holds now.

        ``message`` (status, step usage) finishes the open message first, in the same
        transaction; otherwise an open message keeps its text and ends ``incomplete``.
        ``usage`` is the run's usage, if it changed.
        """
        async with self.store.tx() as tx:
            run = await tx.get("run", seg.run["id"])
            if run["status"] not in ACTIVE_RUN_STATUSES:
                return
            if usage is not None:
                run["usage"] = usage
            if seg.message is not None and message is not None:
                await self._close_message(seg, *message, tx=tx)
            elif seg.message is not None:
                seg.message["content"] = self._content(seg)
                await tx.update("message", seg.message)
            if not await self._finish(tx, run, status, seg.sink, error=error, reason=reason):
                return
        seg.run = run

    def _check(self, run_id: str) -> None:
        if run_id in self._stop:
            raise _Stopped

    async def _interruptible_await(self, run_id: str, awaitable: Awaitable[T]) -> T:
        """Await a model call or a code execution, which a stop request may cancel.

        Only this await is cancelled (see :meth:`_signal`), never a database write; the
        ``CancelledError`` becomes :class:`_Stopped` and the run goes on to end itself.
        """
        # A stop requested while we were elsewhere (e.g. in a database write) did not cancel
        # the task: honour it before waiting again.
        self._check(run_id)
        self._interruptible.add(run_id)
        try:
            return await awaitable
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if run_id in self._stop and task is not None:
                if hasattr(task, "uncancel"):  # Python >= 3.11
                    task.uncancel()
                raise _Stopped from None
            raise
        finally:
            self._interruptible.discard(run_id)

    async def _save(self, seg: _Segment, **changes: Any) -> None:
        """Write changes to the run, unless someone else changed its status meanwhile."""
        run = seg.run
        expected = run["status"]
        async with self.store.tx() as tx:
            if not await tx.update_run({**run, **changes}, expected):
                raise _Stopped
        run.update(changes)

    async def _advance(self, seg: _Segment) -> None:
        run = seg.run
        self._check(run["id"])
        changes = {"status": "in_progress", "started_at": run["started_at"] or now()}
        # Start the run and read what its first prompt needs in one transaction.
        async with self.store.tx() as tx:
            if not await tx.update_run({**run, **changes}, run["status"]):
                raise _Stopped
            run.update(changes)
            context: _Context | None = await self._load_context(tx, run)
        seg.sink.emit("thread.run.in_progress", run)
        provider = resolve_model(run["model"])
        first_call = not run.get("usage")
        while True:
            self._check(run["id"])
            if context is None:
                async with self.store.read() as tx:
                    context = await self._load_context(tx, run)
            request = await self._build_request(seg, provider, first_call, context)
            if request is None:
                return
            first_call = False
            context = None
            step, calls = await self._stream_model(seg, provider, request)
            if step is None:  # the run has ended
                return
            functions = [c for c in calls if c["type"] == "function"]
            code = [c for c in calls if c["type"] == "code_interpreter"]
            for call in code:
                self._check(run["id"])
                await self._run_code(seg, step, call)
            if functions:
                await self._require_action(seg, step, functions)
                return
            await self._complete_step(seg, step)

    # -- prompts --------------------------------------------------------------------------

    async def _load_context(self, tx: Tx, run: dict[str, Any]) -> _Context:
        note = ""
        if self.code_runner is not None and _has_code_interpreter(run):
            note = await self.code_runner.prepare(run, tx)
        return _Context(
            await tx.thread_messages(run["thread_id"]), await tx.run_steps(run["id"]), note
        )

    async def _build_request(
        self, seg: _Segment, provider: ModelProvider, first_call: bool, context: _Context
    ) -> ModelRequest | None:
        run = seg.run
        messages, steps, note = context.messages, context.steps, context.note
        system = run["instructions"] or ""
        if note:
            system = f"{system}\n\n{note}" if system else note
        history = [self._chat_message(m) for m in messages if m["run_id"] != run["id"]]
        truncation = run["truncation_strategy"] or {}
        if truncation.get("type") == "last_messages" and truncation.get("last_messages"):
            history = history[-truncation["last_messages"] :]
        own = self._own_messages(steps, {m["id"]: m for m in messages})
        prompt = [ChatMessage("system", system)] if system else []
        limit = run["max_prompt_tokens"]
        while True:
            chat = [*prompt, *history, *own]
            if limit is None or provider.count_tokens(chat) <= limit:
                break
            if truncation.get("type") == "auto" and len(history) > 1:
                history = history[1:]
                continue
            await self._end(seg, "incomplete", reason="max_prompt_tokens")
            return None

        max_tokens = None
        if run["max_completion_tokens"] is not None:
            used = (run.get("usage") or _usage())["completion_tokens"]
            max_tokens = run["max_completion_tokens"] - used
            if max_tokens <= 0:
                await self._end(seg, "incomplete", reason="max_completion_tokens")
                return None
        response_format = run["response_format"]
        return ModelRequest(
            model=run["model"].partition(":")[2] or run["model"],
            messages=chat,
            tools=self._function_specs(run),
            tool_choice=tool_choice_name(run["tool_choice"]) if first_call else "auto",
            parallel_tool_calls=run["parallel_tool_calls"],
            response_format=response_format
            if isinstance(response_format, dict) and response_format.get("type") != "text"
            else None,
            temperature=run["temperature"],
            top_p=run["top_p"],
            max_tokens=max_tokens,
        )

    def _function_specs(self, run: dict[str, Any]) -> list[FunctionSpec]:
        specs = []
        for tool in run["tools"]:
            if tool["type"] == "function":
                fn = tool["function"]
                specs.append(
                    FunctionSpec(
                        name=fn["name"],
                        description=fn.get("description") or "",
                        parameters=fn.get("parameters") or {"type": "object", "properties": {}},
                        strict=fn.get("strict"),
                    )
                )
        if self.code_runner is not None and _has_code_interpreter(run):
            specs.append(
                FunctionSpec(
                    name=CODE_INTERPRETER_FUNCTION,
                    description=(
                        "Run Python code in a stateful Jupyter kernel and see its output. "
                        "Variables persist between calls. Use print() to see values; "
                        "plots shown with plt.show() are returned as images."
                    ),
                    parameters={
                        "type": "object",
                        "properties": {
                            "code": {"type": "string", "description": "The Python code to run."}
                        },
                        "required": ["code"],
                    },
                )
            )
        return specs

    def _chat_message(self, message: dict[str, Any]) -> ChatMessage:
        texts, images = [], []
        for block in message["content"]:
            if block["type"] == "text":
                texts.append(block["text"]["value"])
            elif block["type"] == "image_url":
                images.append(block["image_url"]["url"])
            elif block["type"] == "image_file" and message["role"] == "user":
                images.append(self._data_url(block["image_file"]["file_id"]))
        return ChatMessage(message["role"], "\n".join(texts), images=images)

    def _data_url(self, file_id: str) -> str:
        try:
            data = self.files.read_bytes(file_id)
        except OSError:
            return ""
        mime = (
            "image/jpeg"
            if data[:2] == b"\xff\xd8"
            else "image/gif"
            if data[:3] == b"GIF"
            else "image/png"
        )
        return f"data:{mime};base64,{base64.b64encode(data).decode()}"

    @staticmethod
    def _own_messages(
        steps: list[dict[str, Any]], messages: dict[str, dict[str, Any]]
    ) -> list[ChatMessage]:
        """This run's earlier model turns: its messages, tool calls and tool outputs."""
        chat: list[ChatMessage] = []
        for step in steps:
            details = step["step_details"]
            if details["type"] == "message_creation":
                message = messages.get(details["message_creation"]["message_id"])
                if message:
                    text = "\n".join(
                        b["text"]["value"] for b in message["content"] if b["type"] == "text"
                    )
                    chat.append(ChatMessage("assistant", text))
                continue
            calls, outputs = [], []
            for call in details["tool_calls"]:
                if call["type"] == "function":
                    fn = call["function"]
                    calls.append(ToolCall(call["id"], fn["name"], fn["arguments"]))
                    outputs.append(
                        ChatMessage(
                            "tool", fn["output"] or "", tool_call_id=call["id"], name=fn["name"]
                        )
                    )
                elif call["type"] == "code_interpreter":
                    ci = call["code_interpreter"]
                    calls.append(
                        ToolCall(
                            call["id"], CODE_INTERPRETER_FUNCTION, json.dumps({"code": ci["input"]})
                        )
                    )
                    outputs.append(
                        ChatMessage(
                            "tool",
                            _describe_outputs(ci["outputs"]),
                            tool_call_id=call["id"],
                            name=CODE_INTERPRETER_FUNCTION,
                        )
                    )
            chat.append(ChatMessage("assistant", "", tool_calls=calls))
            chat.extend(outputs)
        return chat

    # -- streaming the model --------------------------------------------------------------

    async def _stream_model(
        self, seg: _Segment, provider: ModelProvider, request: ModelRequest
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """Stream one model call into a message and/or a tool-calls step.

        Returns the tool-calls step and its calls (``None, []`` when the model only wrote
        text, or when the run ended because the model ran out of tokens).
        """
        run = seg.run
        run_id = run["id"]
        calls: list[dict[str, Any]] = []
        step: dict[str, Any] | None = None
        finish = "stop"
        usage = _usage()
        stream = provider.stream(request).__aiter__()
        try:
            while True:
                try:
                    event = await self._interruptible_await(run_id, stream.__anext__())
                except StopAsyncIteration:
                    break
                self._check(run_id)
                if isinstance(event, TextDelta):
                    if not event.text:
                        continue
                    if seg.message is None:
                        if step is not None:
                            continue  # text after tool calls: the tool step comes first
                        await self._open_message(seg)
                    assert seg.message is not None
                    seg.text.append(event.text)
                    seg.sink.emit(
                        "thread.message.delta",
                        objects.message_delta(seg.message["id"], 0, event.text),
                    )
                elif isinstance(event, ToolCallDelta):
                    if step is None:
                        if seg.message is not None:
                            await self._close_message(seg, "completed", None)
                        step = await self._open_tool_step(seg)
                    self._tool_call_delta(seg, step, calls, event)
                elif isinstance(event, Usage):
                    usage = _usage(event.prompt_tokens, event.completion_tokens)
                elif isinstance(event, Finish):
                    finish = event.reason
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]

        truncated = finish == "length"
        run_usage = _add_usage(run.get("usage"), usage)
        if step is None or truncated:
            # Text only (or cut short): the run ends with this call, in one transaction with
            # its message. (Text before tool calls was closed when the first call arrived.)
            await self._end(
                seg,
                "incomplete" if truncated else "completed",
                reason="max_completion_tokens" if truncated else None,
                message=("incomplete" if truncated else "completed", usage),
                usage=run_usage,
            )
            return None, []
        await self._save(seg, usage=run_usage)
        step["usage"] = usage
        for call in calls:
            self._finish_call(run, call)
        return step, calls

    def _tool_call_delta(
        self, seg: _Segment, step: dict[str, Any], calls: list[dict[str, Any]], event: ToolCallDelta
    ) -> None:
        while len(calls) <= event.index:
            calls.append(
                {
                    "id": None,
                    "type": "function",
                    "function": {"name": "", "arguments": "", "output": None},
                }
            )
        call = calls[event.index]
        first = call["id"] is None
        if first:
            call["id"] = event.id or new_id("call")
            if (
                event.name == CODE_INTERPRETER_FUNCTION
                and self.code_runner is not None
                and _has_code_interpreter(seg.run)
            ):
                call.clear()
                call.update(
                    id=event.id or new_id("call"),
                    type="code_interpreter",
                    code_interpreter={"input": "", "outputs": []},
                    _arguments="",
                )
            else:
                call["function"]["name"] = event.name or ""
        step["step_details"]["tool_calls"] = calls
        if call["type"] == "code_interpreter":
            before = call["code_interpreter"]["input"]
            call["_arguments"] += event.arguments
            code = _partial_code(call["_arguments"])
            call["code_interpreter"]["input"] = code
            piece = code[len(before) :] if code.startswith(before) else code
            delta: dict[str, Any] = {
                "index": event.index,
                "type": "code_interpreter",
                "code_interpreter": {"input": piece},
            }
            if first:
                delta["id"] = call["id"]
                delta["code_interpreter"]["outputs"] = []
            if first or piece:
                seg.sink.emit("thread.run.step.delta", objects.step_delta(step["id"], delta))
            return
        call["function"]["arguments"] += event.arguments
        delta = {
            "index": event.index,
            "type": "function",
            "function": {"arguments": event.arguments},
        }
        if first:
            delta["id"] = call["id"]
            delta["function"].update(name=call["function"]["name"], output=None)
        seg.sink.emit("thread.run.step.delta", objects.step_delta(step["id"], delta))

    def _finish_call(self, run: dict[str, Any], call: dict[str, Any]) -> None:
        """Check a completed tool call against the run's tools."""
        if call["type"] == "code_interpreter":
            arguments = call.pop("_arguments")
            try:
                call["code_interpreter"]["input"] = json.loads(arguments or "{}")["code"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ModelError(
                    f"The model called the code interpreter with invalid arguments: {arguments[:200]!r}"
                ) from None
            return
        name = call["function"]["name"]
        allowed = {t["function"]["name"] for t in run["tools"] if t["type"] == "function"}
        if name not in allowed:
            raise ModelError(
                f"The model called the unknown tool {name!r}; the run's tools are: {', '.join(sorted(allowed)) or 'none'}."
            )

    # -- steps and messages ---------------------------------------------------------------

    async def _open_message(self, seg: _Segment) -> None:
        run = seg.run
        message = objects.message_object(
            run["thread_id"],
            "assistant",
            [],
            status="in_progress",
            assistant_id=run["assistant_id"],
            run_id=run["id"],
        )
        step = objects.step_object(
            run, {"type": "message_creation", "message_creation": {"message_id": message["id"]}}
        )
        async with self.store.tx() as tx:
            await tx.insert("run_step", step)
            await tx.insert("message", message)
        seg.message, seg.message_step, seg.text = message, step, []
        seg.sink.emit("thread.run.step.created", step)
        seg.sink.emit("thread.run.step.in_progress", step)
        seg.sink.emit("thread.message.created", message)
        seg.sink.emit("thread.message.in_progress", message)

    def _content(self, seg: _Segment) -> list[dict[str, Any]]:
        content = [objects.text_part("".join(seg.text))] if seg.text else []
        if content and seg.annotations:
            content[0]["text"]["annotations"] = seg.annotations
        content += [
            {"type": "image_file", "image_file": {"file_id": f, "detail": "auto"}}
            for f in seg.images
        ]
        return content

    async def _close_message(
        self, seg: _Segment, status: str, usage: dict[str, int] | None, tx: Tx | None = None
    ) -> None:
        """Finish the open message and its step (in ``tx``, or a transaction of its own)."""
        message, step = seg.message, seg.message_step
        assert message is not None and step is not None
        self._cite_saved_files(seg)
        t = now()
        message["content"] = self._content(seg)
        message["status"] = status
        if status == "completed":
            message["completed_at"] = t
        else:
            message["incomplete_at"] = t
            message["incomplete_details"] = {"reason": "max_tokens"}
        step.update(status="completed", completed_at=t, usage=usage or _usage())
        async with contextlib.AsyncExitStack() as stack:
            if tx is None:
                tx = await stack.enter_async_context(self.store.tx())
            await tx.update("message", message)
            await tx.update("run_step", step)
        seg.message = seg.message_step = None
        seg.images, seg.annotations = [], []
        seg.sink.emit(f"thread.message.{status}", message)
        seg.sink.emit("thread.run.step.completed", step)

    async def _open_tool_step(self, seg: _Segment) -> dict[str, Any]:
        step = objects.step_object(seg.run, {"type": "tool_calls", "tool_calls": []})
        async with self.store.tx() as tx:
            await tx.insert("run_step", step)
        seg.sink.emit("thread.run.step.created", step)
        seg.sink.emit("thread.run.step.in_progress", step)
        return step

    async def _run_code(self, seg: _Segment, step: dict[str, Any], call: dict[str, Any]) -> None:
        assert self.code_runner is not None
        # Like a model call, the execution is cancellable: a cancelled run (or a server
        # shutdown) cancels this task, which makes the runner interrupt the kernel.
        output = await self._interruptible_await(
            seg.run["id"], self.code_runner.run_code(seg.run, call["code_interpreter"]["input"])
        )
        outputs: list[dict[str, Any]] = []
        if output.logs:
            outputs.append({"type": "logs", "logs": output.logs})
        outputs += [{"type": "image", "image": {"file_id": f}} for f in output.image_file_ids]
        call["code_interpreter"]["outputs"] = outputs
        index = step["step_details"]["tool_calls"].index(call)
        delta_outputs = [{"index": i, **o} for i, o in enumerate(outputs)]
        seg.sink.emit(
            "thread.run.step.delta",
            objects.step_delta(
                step["id"],
                {
                    "index": index,
                    "type": "code_interpreter",
                    "code_interpreter": {"outputs": delta_outputs},
                },
            ),
        )
        seg.images.extend(output.image_file_ids)
        seg.saved_files.extend(output.saved_files)
        async with self.store.tx() as tx:
            await tx.update("run_step", step)

    def _cite_saved_files(self, seg: _Segment) -> None:
        """Annotate the files the code saved where the message mentions them (``file_path``).

        A file the text does not mention is listed at its end, so that every saved file is
        cited; the addition and the annotations are streamed as message deltas.
        """
        if not seg.saved_files or seg.message is None:
            return
        text = "".join(seg.text)
        spans: list[tuple[str, str, int]] = []
        missing: list[tuple[str, str]] = []
        for path, file_id in seg.saved_files:
            found = next(
                ((n, i) for n in (path, path.rsplit("/", 1)[-1]) if (i := text.find(n)) >= 0),
                None,
            )
            if found is None:
                missing.append((path, file_id))
            else:
                spans.append((found[0], file_id, found[1]))
        if missing:
            extra = ("\n\n" if text else "") + "Files:"
            for path, file_id in missing:
                extra += "\n- "
                spans.append((path, file_id, len(text) + len(extra)))
                extra += path
            seg.text.append(extra)
            seg.sink.emit(
                "thread.message.delta", objects.message_delta(seg.message["id"], 0, extra)
            )
        seg.annotations = [
            {
                "type": "file_path",
                "text": name,
                "start_index": start,
                "end_index": start + len(name),
                "file_path": {"file_id": file_id},
            }
            for name, file_id, start in spans
        ]
        seg.saved_files = []
        seg.sink.emit(
            "thread.message.delta",
            {
                "id": seg.message["id"],
                "object": "thread.message.delta",
                "delta": {
                    "content": [
                        {
                            "index": 0,
                            "type": "text",
                            "text": {
                                "annotations": [
                                    {"index": i, **a} for i, a in enumerate(seg.annotations)
                                ]
                            },
                        }
                    ]
                },
            },
        )

    async def _complete_step(self, seg: _Segment, step: dict[str, Any]) -> None:
        step.update(status="completed", completed_at=now())
        async with self.store.tx() as tx:
            await tx.update("run_step", step)
        seg.sink.emit("thread.run.step.completed", step)

    async def _require_action(
        self, seg: _Segment, step: dict[str, Any], functions: list[dict[str, Any]]
    ) -> None:
        required = {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {
                            "name": c["function"]["name"],
                            "arguments": c["function"]["arguments"],
                        },
                    }
                    for c in functions
                ]
            },
        }
        async with self.store.tx() as tx:
            await tx.update("run_step", step)
        await self._save(
            seg,
            status="requires_action",
            required_action=required,
            expires_at=now() + int(self.config.run_expiry_seconds),
        )
        seg.sink.emit("thread.run.requires_action", seg.run)

    # -- submitting tool outputs ----------------------------------------------------------

    async def submit_tool_outputs(
        self, thread_id: str, run_id: str, outputs: list[dict[str, Any]], sink: EventSink
    ) -> dict[str, Any]:
        """Record the client's outputs and continue the run in a new segment."""
        async with self.store.tx() as tx:
            run = await tx.get("run", run_id, param="run_id")
            if run["thread_id"] != thread_id:
                raise InvalidRequest(
                    f"Run {run_id} does not belong to thread {thread_id}.", param="run_id"
                )
            if run["status"] != "requires_action" or not run["required_action"]:
                raise InvalidRequest(
                    f"Run {run_id} is '{run['status']}'; tool outputs can only be submitted while it is 'requires_action'.",
                    param="run_id",
                )
            pending = [c["id"] for c in run["required_action"]["submit_tool_outputs"]["tool_calls"]]
            given: dict[str, str] = {}
            for i, item in enumerate(outputs):
                call_id = item.get("tool_call_id") or ""
                if call_id not in pending:
                    raise InvalidRequest(
                        f"Unknown tool_call_id {call_id!r}; the run is waiting for: {', '.join(pending)}.",
                        param=f"tool_outputs[{i}].tool_call_id",
                    )
                if call_id in given:
                    raise InvalidRequest(
                        f"Two outputs for tool call {call_id}.",
                        param=f"tool_outputs[{i}].tool_call_id",
                    )
                given[call_id] = item.get("output") or ""
            missing = [c for c in pending if c not in given]
            if missing:
                raise InvalidRequest(
                    f"Missing tool outputs for: {', '.join(missing)}. Submit one output for every pending tool call.",
                    param="tool_outputs",
                )
            steps = await tx.open_steps(run_id)
            step = next(s for s in steps if s["step_details"]["type"] == "tool_calls")
            for call in step["step_details"]["tool_calls"]:
                if call["type"] == "function" and call["id"] in given:
                    call["function"]["output"] = given[call["id"]]
            step.update(status="completed", completed_at=now())
            await tx.update("run_step", step)
            run.update(status="queued", required_action=None)
            if not await tx.update_run(run, "requires_action"):
                raise InvalidRequest(
                    f"Run {run_id} changed while outputs were submitted; retrieve it and try again."
                )
        self.launch(run, sink, [("thread.run.step.completed", step), ("thread.run.queued", run)])
        return run

    # -- ending runs ----------------------------------------------------------------------

    async def _finish(
        self,
        tx: Tx,
        run: dict[str, Any],
        status: str,
        sink: EventSink,
        *,
        error: tuple[str, str] | None = None,
        reason: str | None = None,
    ) -> bool:
        """Move ``run`` to a final status with its open steps and messages; release the lock.

        Returns False (changing nothing) when the run's status changed underneath.
        """
        expected = run["status"]
        t = now()
        step_status = "completed" if status in ("completed", "incomplete") else status
        for step in await tx.open_steps(run["id"]):
            step["status"] = step_status
            step[f"{step_status}_at" if step_status != "expired" else "expired_at"] = t
            if error:
                step["last_error"] = {"code": error[0], "message": error[1]}
            if step["usage"] is None:
                step["usage"] = _usage()
            await tx.update("run_step", step)
            sink.emit(f"thread.run.step.{_STEP_EVENT[step_status]}", step)
        for message in await tx.open_messages(run["id"]):
            message.update(
                status="incomplete",
                incomplete_at=t,
                incomplete_details={"reason": _MESSAGE_REASON.get(status, "run_failed")},
            )
            await tx.update("message", message)
            sink.emit("thread.message.incomplete", message)
        run.update(status=status, required_action=None)
        if status == "completed":
            run.update(completed_at=t, expires_at=None)
        elif status == "cancelled":
            run.update(cancelled_at=t, expires_at=None)
        elif status == "failed":
            run.update(
                failed_at=t,
                expires_at=None,
                last_error={"code": error[0], "message": error[1]} if error else None,
            )
        elif status == "incomplete":
            run.update(incomplete_details={"reason": reason}, expires_at=None)
        if run["usage"] is None:
            run["usage"] = _usage()
        if not await tx.update_run(run, expected):
            return False
        await tx.unlock_thread(run["thread_id"], run["id"])
        sink.emit(f"thread.run.{status}", run)
        return True


def _has_code_interpreter(run: dict[str, Any]) -> bool:
    return any(t["type"] == "code_interpreter" for t in run["tools"])


def _describe_outputs(outputs: list[dict[str, Any]]) -> str:
    parts = []
    for output in outputs:
        if output["type"] == "logs":
            parts.append(output["logs"])
        elif output["type"] == "image":
            parts.append(f"[image {output['image']['file_id']} shown to the user]")
    return "\n".join(parts) or "(no output)"


def _partial_code(arguments: str) -> str:
    """The ``code`` string of partial JSON arguments ``{"code": "...`` decoded so far."""
    key = arguments.find('"code"')
    if key < 0:
        return ""
    start = arguments.find('"', arguments.find(":", key) + 1)
    if start < 0:
        return ""
    body = arguments[start + 1 :]
    end = 0
    escaped = False
    for end, char in enumerate(body):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            body = body[:end]
            break
    else:
        if escaped:
            body = body[:-1]
    # A cut \uXXXX escape would not decode: drop it until the rest arrives.
    cut = body.rfind("\\u")
    if cut >= 0 and len(body) - cut < 6:
        body = body[:cut]
    try:
        return str(json.loads(f'"{body}"'))
    except json.JSONDecodeError:
        return ""
