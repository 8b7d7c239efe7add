"""``/threads/{thread_id}/runs`` and their ``/steps``, and ``POST /threads/runs``.

A new run is checked and inserted in the request's transaction, then handed to the
:class:`~ipyassistant.server.engine.RunEngine`, which executes it (streaming its events to
the caller when asked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import Response

from .. import db, objects, vector_stores
from ..errors import InvalidRequest, NotFound
from ..events import NO_EVENTS, EventStream
from ..models import check_model
from ..schemas import CreateRun, CreateThread, CreateThreadAndRun, ModifyMetadata, SubmitToolOutputs
from ..store import Tx, now
from .common import (
    Page,
    check_files,
    check_tools,
    fetch_own,
    get_own,
    listing,
    message_row,
    new_router,
    sse,
)
from .threads import insert_thread

if TYPE_CHECKING:
    from ..app import Server

__all__ = ["router"]


def _check_tool_choice(choice: Any, tools: list[dict[str, Any]]) -> None:
    """A forced tool must be among the run's tools."""
    if not isinstance(choice, dict):
        return
    if choice["type"] == "function" and choice["function"]["name"] not in {
        t["function"]["name"] for t in tools if t["type"] == "function"
    }:
        raise InvalidRequest(
            f"tool_choice names the function {choice['function']['name']!r}, which is not among the run's tools.",
            param="tool_choice",
            code="invalid_value",
        )
    if choice["type"] == "code_interpreter" and not any(
        t["type"] == "code_interpreter" for t in tools
    ):
        raise InvalidRequest(
            "tool_choice requires the code interpreter, which the run does not have.",
            param="tool_choice",
            code="invalid_value",
        )


def router(server: Server) -> APIRouter:
    """The runs' and run steps' routes, on ``server``'s store and run engine."""
    store, engine, config = server.store, server.engine, server.config
    routes = new_router()

    async def insert_run(
        tx: Tx, thread_id: str, body: CreateRun | CreateThreadAndRun
    ) -> dict[str, Any]:
        assistant = await tx.get("assistant", body.assistant_id, param="assistant_id")
        model = body.model or assistant["model"]
        check_model(model)
        tools = objects._dump(body.tools) if body.tools is not None else assistant["tools"]
        check_tools(tools, "tools")
        choice = objects._dump(body.tool_choice)
        _check_tool_choice(choice, tools)
        instructions = (
            body.instructions if body.instructions is not None else assistant["instructions"] or ""
        )
        extra = getattr(body, "additional_instructions", None)
        if extra:
            instructions = f"{instructions}\n\n{extra}" if instructions else extra
        options = body.model_dump(exclude_none=True, by_alias=True)
        options["tool_choice"] = choice
        run = objects.run_object(
            thread_id=thread_id,
            assistant=assistant,
            options=options,
            instructions=instructions,
            tools=tools,
            expires_at=now() + int(config.run_expiry_seconds),
        )
        await tx.lock_thread(thread_id, run["id"])
        rows = []
        for i, message in enumerate(getattr(body, "additional_messages", None) or []):
            await check_files(tx, message, f"additional_messages[{i}]")
            await vector_stores.attach_message_files(tx, thread_id, message)
            rows.append(message_row(thread_id, message))
        await tx.insert_many("message", rows)
        await tx.insert("run", run, worker_id=engine.worker_id)
        return run

    def start(
        run: dict[str, Any], stream: bool | None, thread: dict[str, Any] | None = None
    ) -> Any:
        """Launch ``run``; a stream starts with the new ``thread`` (create-and-run), then the run."""
        prelude = [("thread.created", thread)] if thread is not None else []
        prelude += [("thread.run.created", run), ("thread.run.queued", run)]
        server.indexer.wake()  # for the files its messages attached for file search
        if not stream:
            engine.launch(run, NO_EVENTS, [])
            return run
        events = EventStream()
        engine.launch(run, events, prelude)
        return sse(events)

    @routes.post("/threads/{thread_id}/runs")
    async def create_run(thread_id: str, body: CreateRun) -> Any:
        async with store.tx() as tx:
            await tx.get("thread", thread_id)
            run = await insert_run(tx, thread_id, body)
        return start(run, body.stream)

    @routes.post("/threads/runs")
    async def create_thread_and_run(body: CreateThreadAndRun) -> Any:
        async with store.tx() as tx:
            thread_body = body.thread or CreateThread()
            if body.tool_resources is not None and thread_body.tool_resources is None:
                thread_body = thread_body.model_copy(update={"tool_resources": body.tool_resources})
            thread = await insert_thread(tx, thread_body, "thread.")
            run = await insert_run(tx, thread["id"], body)
        return start(run, body.stream, thread)

    @routes.get("/threads/{thread_id}/runs")
    async def list_runs(thread_id: str, page: Page) -> Response:
        async with store.read() as tx:
            await tx.get("thread", thread_id)
            keys = await tx.page_keys("run", page, where=[db.runs.c.thread_id == thread_id])
        return listing(store, keys)

    @routes.get("/threads/{thread_id}/runs/{run_id}")
    async def get_run(thread_id: str, run_id: str) -> dict[str, Any]:
        return await fetch_own(store, "run", run_id, thread_id)

    @routes.post("/threads/{thread_id}/runs/{run_id}")
    async def modify_run(thread_id: str, run_id: str, body: ModifyMetadata) -> dict[str, Any]:
        for _ in range(5):
            async with store.tx() as tx:
                run = await get_own(tx, "run", run_id, thread_id)
                run["metadata"] = body.metadata or {}
                if await tx.update_run(run, run["status"]):
                    return run
        raise InvalidRequest(f"Run {run_id} kept changing; try again.")

    @routes.post("/threads/{thread_id}/runs/{run_id}/cancel")
    async def cancel_run(thread_id: str, run_id: str) -> dict[str, Any]:
        return await engine.cancel(thread_id, run_id)

    @routes.post("/threads/{thread_id}/runs/{run_id}/submit_tool_outputs")
    async def submit_tool_outputs(thread_id: str, run_id: str, body: SubmitToolOutputs) -> Any:
        outputs = [o.model_dump() for o in body.tool_outputs]
        if not body.stream:
            return await engine.submit_tool_outputs(thread_id, run_id, outputs, NO_EVENTS)
        events = EventStream()
        await engine.submit_tool_outputs(thread_id, run_id, outputs, events)
        return sse(events)

    # -- steps ---------------------------------------------------------------------------

    @routes.get("/threads/{thread_id}/runs/{run_id}/steps")
    async def list_steps(thread_id: str, run_id: str, page: Page) -> Response:
        async with store.read() as tx:
            await get_own(tx, "run", run_id, thread_id)
            keys = await tx.page_keys("run_step", page, where=[db.run_steps.c.run_id == run_id])
        return listing(store, keys)

    @routes.get("/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
    async def get_step(thread_id: str, run_id: str, step_id: str) -> dict[str, Any]:
        async with store.read() as tx:
            step = await get_own(tx, "run_step", step_id, thread_id)
        if step["run_id"] != run_id:
            raise NotFound.of("run step", step_id)
        return step

    return routes
