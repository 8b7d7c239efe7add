"""The :class:`RunEngine`: starts, cancels and continues runs, and orchestrates their segments.

What a segment does at each point lives beside it: the prompt (:mod:`.prompt`), the streamed
tool calls (:mod:`.tool_calls`), the messages, steps and final status (:mod:`.records`),
stop requests (:mod:`.stopping`) and the heartbeat that ends abandoned runs (:mod:`.reaper`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from .. import objects
from ..code_runner import CodeRunner
from ..config import ServerConfig
from ..errors import InvalidRequest
from ..events import NO_EVENTS, EventSink
from ..files import FileStore
from ..models import resolve_model
from ..models.base import (
    Finish,
    ModelError,
    ModelProvider,
    ModelRequest,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from ..models.search_results import CITING_NOTE
from ..notify import notifier_for
from ..store import ACTIVE_RUN_STATUSES, Store, Tx, now
from . import file_search, records, tool_calls
from .citations import stream_text
from .prompt import Context, Incomplete, build_request, user_image_files
from .reaper import Reaper
from .segment import Segment
from .stopping import RunTasks, Stopped

__all__ = ["RunEngine"]

log = logging.getLogger("ipyassistant.server")


class RunEngine:
    """Executes runs as server-side jobs, with their state in the database.

    A run executes in *segments*, each an asyncio task in the process that received the
    request: one from creation until the run ends or stops at ``requires_action``, and one
    after each ``submit_tool_outputs``. A segment loops: build the prompt from the thread,
    stream the model, record a ``message_creation`` step for text and a ``tool_calls`` step
    for tool calls, run code-interpreter calls (with :attr:`code_runner`) and file-search
    calls (with :attr:`file_searcher`) here and hand function calls to the client.

    Every change to a run is a conditional UPDATE on the status the engine last saw, so a
    ``cancelling`` written by another request (or another process) is never overwritten; the
    engine notices and stops: at once when the cancel came to this process, else when
    :attr:`notifier` wakes it (PostgreSQL ``NOTIFY``, or polling) or at its next heartbeat.
    Each worker process (one engine, :attr:`worker_id`) writes a heartbeat; any worker fails
    the executing runs of a worker whose heartbeat is stale, so after a crash no run stays
    active and no thread stays locked.

    The app calls :meth:`start` and :meth:`stop` with its lifespan, :meth:`stop_runs` before
    waiting for open connections, and :meth:`launch`, :meth:`cancel` and
    :meth:`submit_tool_outputs` from its routes.
    """

    def __init__(self, store: Store, files: FileStore, config: ServerConfig):
        self.store = store
        self.files = files
        self.config = config
        #: This process's name in the workers' heartbeat table and on the runs it executes.
        self.worker_id = f"worker_{uuid.uuid4().hex[:16]}"
        #: Runs code-interpreter calls; without one, the code interpreter is not offered.
        self.code_runner: CodeRunner | None = None
        #: Searches vector stores for file-search calls.
        self.file_searcher: file_search.FileSearcher = file_search.IndexSearcher(store)
        #: How long a search waits for the thread's files still being indexed.
        self.index_wait_seconds = 30.0
        self._runs = RunTasks()
        self._reaper = Reaper(store, config, self.worker_id, self._runs)
        #: Wakes this process when another one cancels a run executing here.
        self.notifier = notifier_for(store, busy=lambda: len(self._runs) > 0)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Do one maintenance pass, start the heartbeat and listening (the schema must be
        current: the app upgrades it first)."""
        await self._reaper.maintain()
        self._reaper.start()
        await self.notifier.start(self._reaper.wake)

    async def stop_runs(self, timeout: float = 10) -> None:
        """End every local run ``failed`` (the server shut down), which closes their streams.

        Called before the HTTP server waits for open connections, so that streaming clients
        get a final ``thread.run.failed`` instead of a cut connection.
        """
        await self._runs.stop_all("shutdown", timeout)

    async def stop(self) -> None:
        """Stop every local run and the maintenance loop, and deregister this worker."""
        await self.notifier.stop()
        await self._reaper.stop()
        await self.stop_runs()
        await self._reaper.deregister()

    # -- starting, cancelling, continuing -------------------------------------------------

    def launch(
        self,
        run: dict[str, Any],
        sink: EventSink,
        prelude: list[tuple[str, dict[str, Any]]],
        *,
        include_content: bool = False,
    ) -> None:
        """Execute ``run`` (already saved as ``queued``) in a task; events go to ``sink``.

        The steps' search results come with their chunks only with ``include_content``.
        """
        if not include_content:
            sink = file_search.WithoutContent(sink)
        for event, data in prelude:
            sink.emit(event, data)
        task = asyncio.create_task(self._execute(Segment(run, sink)), name=f"run {run['id']}")
        self._runs.add(run["id"], task)

    async def cancel(self, thread_id: str, run_id: str) -> dict[str, Any]:
        """Cancel a run: ``cancelling`` until its task stops, or ``cancelled`` at once if idle."""
        for _ in range(5):
            async with self.store.tx() as tx:
                run = await _thread_run(tx, thread_id, run_id)
                status = run["status"]
                if status == "cancelling":
                    return run
                if status not in ACTIVE_RUN_STATUSES:
                    raise InvalidRequest(
                        f"Cannot cancel run {run_id} with status '{status}'.", param="run_id"
                    )
                if status == "requires_action":
                    if await records.finish(tx, run, "cancelled", NO_EVENTS):
                        return run
                    continue
                expected = status
                run["status"] = "cancelling"
                if not await tx.update_run(run, expected):
                    continue
                if run_id not in self._runs:  # it executes in another process: wake it
                    await self.notifier.publish(tx, run_id)
            self._runs.signal(run_id, "cancel")
            return run
        raise InvalidRequest(f"Run {run_id} changed while it was being cancelled; try again.")

    async def submit_tool_outputs(
        self, thread_id: str, run_id: str, outputs: list[dict[str, Any]], sink: EventSink
    ) -> dict[str, Any]:
        """Record the client's outputs and continue the run in a new segment."""
        async with self.store.tx() as tx:
            run = await _thread_run(tx, thread_id, run_id)
            given = tool_calls.submitted_outputs(run, outputs)
            steps = await tx.open_steps(run_id)
            step = next(s for s in steps if s["step_details"]["type"] == "tool_calls")
            tool_calls.apply_outputs(step, given)
            step.update(status="completed", completed_at=now())
            await tx.update("run_step", step)
            run.update(status="queued", required_action=None)
            if not await tx.update_run(run, "requires_action"):
                raise InvalidRequest(
                    f"Run {run_id} changed while outputs were submitted; retrieve it and try again."
                )
        self.launch(run, sink, [("thread.run.step.completed", step), ("thread.run.queued", run)])
        return run

    # -- one segment ----------------------------------------------------------------------

    async def _execute(self, seg: Segment) -> None:
        run_id = seg.run["id"]
        try:
            await self._advance(seg)
        except Stopped:
            await self._end_stopped(seg)
        except ModelError as exc:
            await records.end(self.store, seg, "failed", error=(exc.code, exc.message))
        except asyncio.CancelledError:
            # Cancelled outside a model call (server exit): the reaper will fail the run.
            raise
        except Exception as exc:
            log.exception("run %s failed", run_id)
            await records.end(
                self.store, seg, "failed", error=("server_error", f"{type(exc).__name__}: {exc}")
            )
        finally:
            seg.sink.close()
            self._runs.forget(run_id)

    async def _end_stopped(self, seg: Segment) -> None:
        if self._runs.reason(seg.run["id"]) == "shutdown":
            await records.end(
                self.store,
                seg,
                "failed",
                error=("server_error", "The server shut down during the run."),
            )
        else:
            await records.end(self.store, seg, "cancelled")

    def _code_interpreter(self, run: dict[str, Any]) -> bool:
        """Whether the run's model may run code: it has the tool, and this server a runner."""
        return self.code_runner is not None and any(
            t["type"] == "code_interpreter" for t in run["tools"]
        )

    async def _advance(self, seg: Segment) -> None:
        run = seg.run
        self._runs.check(run["id"])
        # A run that has not started yet has no steps to read.
        started = run["started_at"] is not None
        changes = {"status": "in_progress", "started_at": run["started_at"] or now()}
        # Start the run and read what its first prompt needs in one transaction.
        async with self.store.tx() as tx:
            if not await tx.update_run({**run, **changes}, run["status"]):
                raise Stopped
            run.update(changes)
            context: Context | None = await self._load_context(tx, run, seg, steps=started)
        seg.sink.emit("thread.run.in_progress", run)
        provider = resolve_model(run["model"])
        first_call = not run.get("usage")
        while True:
            self._runs.check(run["id"])
            if context is None:
                async with self.store.read() as tx:
                    context = await self._load_context(tx, run, seg)
            request = build_request(
                run,
                context,
                count_tokens=provider.count_tokens,
                first_call=first_call,
                code_interpreter=self._code_interpreter(run),
                images=self._read_images(run, context),
                file_search=file_search.enabled(run),
            )
            seg.sources = file_search.sources(context.steps)
            if isinstance(request, Incomplete):
                await records.end(self.store, seg, "incomplete", reason=request.reason)
                return
            first_call = False
            context = None
            step, calls = await self._stream_model(seg, provider, request)
            if step is None:  # the run has ended
                return
            functions = [c for c in calls if c["type"] == "function"]
            code = [c for c in calls if c["type"] == "code_interpreter"]
            for call in code:
                self._runs.check(run["id"])
                await self._run_code(seg, step, call)
            for call in (c for c in calls if c["type"] == "file_search"):
                self._runs.check(run["id"])
                await self._search(seg, step, call)
            if functions:
                await records.require_action(
                    self.store, seg, step, functions, self.config.run_expiry_seconds
                )
                return
            await records.complete_step(self.store, seg, step)

    async def _load_context(
        self, tx: Tx, run: dict[str, Any], seg: Segment, *, steps: bool = True
    ) -> Context:
        """What the next prompt needs: the thread's messages, the run's steps (unless told it
        has none yet) and the notes on its tools."""
        notes = []
        if self._code_interpreter(run):
            assert self.code_runner is not None
            notes.append(await self.code_runner.prepare(run, tx))
        if file_search.enabled(run):
            notes.append(CITING_NOTE)
        return Context(
            await tx.thread_messages(run["thread_id"]),
            await tx.run_steps(run["id"]) if steps else [],
            "\n\n".join(n for n in notes if n),
            seg.search_notes,
        )

    def _read_images(self, run: dict[str, Any], context: Context) -> dict[str, bytes]:
        """The bytes of the images users attached that the prompt shows; unreadable ones left out."""
        images = {}
        for file_id in user_image_files(run, context.messages):
            try:
                images[file_id] = self.files.read_bytes(file_id)
            except OSError:
                continue
        return images

    async def _stream_model(
        self, seg: Segment, provider: ModelProvider, request: ModelRequest
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """Stream one model call into a message and/or a tool-calls step.

        Returns the tool-calls step and its calls (``None, []`` when the model only wrote
        text, or when the run ended because the model ran out of tokens).
        """
        run = seg.run
        run_id = run["id"]
        code_interpreter = self._code_interpreter(run)
        searches = file_search.enabled(run)
        calls: list[dict[str, Any]] = []
        step: dict[str, Any] | None = None
        finish = "stop"
        usage = records.usage()
        stream = provider.stream(request).__aiter__()
        try:
            while True:
                try:
                    event = await self._runs.interruptible_await(run_id, stream.__anext__())
                except StopAsyncIteration:
                    break
                self._runs.check(run_id)
                if isinstance(event, TextDelta):
                    if not event.text:
                        continue
                    if seg.message is None:
                        if step is not None:
                            continue  # text after tool calls: the tool step comes first
                        await records.open_message(self.store, seg)
                    stream_text(seg, event.text)
                elif isinstance(event, ToolCallDelta):
                    if step is None:
                        if seg.message is not None:
                            await records.close_message(self.store, seg, "completed", None)
                        step = await records.open_tool_step(self.store, seg)
                        step["step_details"]["tool_calls"] = calls
                    delta = tool_calls.accumulate(
                        calls, event, code_interpreter=code_interpreter, file_search=searches
                    )
                    if delta is not None:
                        seg.sink.emit(
                            "thread.run.step.delta", objects.step_delta(step["id"], delta)
                        )
                elif isinstance(event, Usage):
                    usage = records.usage(event.prompt_tokens, event.completion_tokens)
                elif isinstance(event, Finish):
                    finish = event.reason
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]

        truncated = finish == "length"
        run_usage = records.add_usage(run.get("usage"), usage)
        if step is None or truncated:
            # Text only (or cut short): the run ends with this call, in one transaction with
            # its message. (Text before tool calls was closed when the first call arrived.)
            await records.end(
                self.store,
                seg,
                "incomplete" if truncated else "completed",
                reason="max_completion_tokens" if truncated else None,
                message=("incomplete" if truncated else "completed", usage),
                run_usage=run_usage,
            )
            return None, []
        await records.save(self.store, seg, usage=run_usage)
        step["usage"] = usage
        for call in calls:
            tool_calls.finish_call(call, run["tools"])
        return step, calls

    async def _run_code(self, seg: Segment, step: dict[str, Any], call: dict[str, Any]) -> None:
        assert self.code_runner is not None
        # Like a model call, the execution is cancellable: a cancelled run (or a server
        # shutdown) cancels this task, which makes the runner interrupt the kernel.
        output = await self._runs.interruptible_await(
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

    async def _search(self, seg: Segment, step: dict[str, Any], call: dict[str, Any]) -> None:
        # Cancellable like a model call: the wait for indexing can take a while.
        note = await self._runs.interruptible_await(
            seg.run["id"],
            file_search.search(
                self.store, self.file_searcher, seg.run, call, self.index_wait_seconds
            ),
        )
        if note:
            seg.search_notes[call["id"]] = note
        found = call["file_search"]
        index = step["step_details"]["tool_calls"].index(call)
        seg.sink.emit(
            "thread.run.step.delta",
            objects.step_delta(
                step["id"],
                {
                    "index": index,
                    "type": "file_search",
                    "file_search": {
                        "ranking_options": found["ranking_options"],
                        "results": found["results"],
                    },
                },
            ),
        )
        async with self.store.tx() as tx:
            await tx.update("run_step", step)


async def _thread_run(tx: Tx, thread_id: str, run_id: str) -> dict[str, Any]:
    """The run ``run_id``, which must belong to thread ``thread_id``."""
    run = await tx.get("run", run_id, param="run_id")
    if run["thread_id"] != thread_id:
        raise InvalidRequest(f"Run {run_id} does not belong to thread {thread_id}.", param="run_id")
    return run
