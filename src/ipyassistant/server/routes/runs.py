"""``/threads/{thread_id}/runs`` and their ``/steps``, and ``POST /threads/runs``.

A new run is checked and inserted in the request's transaction, then handed to the
:class:`~ipyassistant.server.engine.RunEngine`, which executes it (streaming its events to
the caller when asked).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from .. import db, objects, vector_stores
from ..auth import CallerDep
from ..engine.file_search import INCLUDE_CONTENT, without_content
from ..errors import InvalidRequest, NotFound
from ..events import NO_EVENTS, EventStream
from ..models import check_model
from ..schemas import CreateRun, CreateThread, CreateThreadAndRun, ModifyMetadata, SubmitToolOutputs
from ..store import PageKeys, Store, Tx, now
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
    builtin = {"code_interpreter": "the code interpreter", "file_search": "file search"}
    kind = choice["type"]
    if kind in builtin and not any(t["type"] == kind for t in tools):
        raise InvalidRequest(
            f"tool_choice requires {builtin[kind]}, which the run does not have.",
            param="tool_choice",
            code="invalid_value",
        )


def _include_content(request: Request) -> bool:
    """Whether the request's ``include[]`` asks for the search results' chunks."""
    include = request.query_params.getlist("include[]") + request.query_params.getlist("include")
    for value in include:
        if value != INCLUDE_CONTENT:
            raise InvalidRequest(
                f"include[] cannot include {value!r}; the one value accepted is {INCLUDE_CONTENT!r}.",
                param="include[]",
                code="invalid_value",
            )
    return bool(include)


#: ``include[]=step_details.tool_calls[*].file_search.results[*].content``, as a parameter.
IncludeContent = Annotated[bool, Depends(_include_content)]


async def _steps_page(store: Store, keys: PageKeys) -> dict[str, Any]:
    """A page of steps without their search results' chunks (decoded, unlike other lists)."""
    table = db.run_steps
    query = (
        sa.select(table.c.data)
        .where(table.c.seq.in_(keys.seqs))
        .order_by(table.c.seq.desc() if keys.descending else table.c.seq.asc())
    )
    async with store.read() as tx:
        steps = [without_content(dict(row[0])) for row in await tx.conn.execute(query)]
    return {
        "object": "list",
        "data": steps,
        "first_id": steps[0]["id"] if steps else "",
        "last_id": steps[-1]["id"] if steps else "",
        "has_more": keys.has_more,
    }


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
        run: dict[str, Any],
        stream: bool | None,
        thread: dict[str, Any] | None = None,
        *,
        include_content: bool = False,
    ) -> Any:
        """Launch ``run``; a stream starts with the new ``thread`` (create-and-run), then the run."""
        prelude = [("thread.created", thread)] if thread is not None else []
        prelude += [("thread.run.created", run), ("thread.run.queued", run)]
        if not stream:
            engine.launch(run, NO_EVENTS, [])
            return run
        events = EventStream()
        engine.launch(run, events, prelude, include_content=include_content)
        return sse(events)

    @routes.post("/threads/{thread_id}/runs")
    async def create_run(
        thread_id: str, body: CreateRun, include: IncludeContent, caller: CallerDep
    ) -> Any:
        async with store.tx(caller) as tx:
            await tx.get("thread", thread_id)
            run = await insert_run(tx, thread_id, body)
        if tx.queued_indexing:  # its messages attached files for file search
            server.indexer.wake()
        return start(run, body.stream, include_content=include)

    @routes.post("/threads/runs")
    async def create_thread_and_run(body: CreateThreadAndRun, caller: CallerDep) -> Any:
        async with store.tx(caller) as tx:
            thread_body = body.thread or CreateThread()
            if body.tool_resources is not None and thread_body.tool_resources is None:
                thread_body = thread_body.model_copy(update={"tool_resources": body.tool_resources})
            thread = await insert_thread(tx, thread_body, "thread.")
            run = await insert_run(tx, thread["id"], body)
        if tx.queued_indexing:  # its messages or tool resources gave the thread files
            server.indexer.wake()
        return start(run, body.stream, thread)

    @routes.get("/threads/{thread_id}/runs")
    async def list_runs(thread_id: str, page: Page, caller: CallerDep) -> Response:
        async with store.read(caller) as tx:
            await tx.get("thread", thread_id)
            keys = await tx.page_keys("run", page, where=[db.runs.c.thread_id == thread_id])
        return listing(store, keys)

    @routes.get("/threads/{thread_id}/runs/{run_id}")
    async def get_run(thread_id: str, run_id: str, caller: CallerDep) -> dict[str, Any]:
        return await fetch_own(store, caller, "run", run_id, thread_id)

    @routes.post("/threads/{thread_id}/runs/{run_id}")
    async def modify_run(
        thread_id: str, run_id: str, body: ModifyMetadata, caller: CallerDep
    ) -> dict[str, Any]:
        for _ in range(5):
            async with store.tx(caller) as tx:
                run = await get_own(tx, "run", run_id, thread_id)
                run["metadata"] = body.metadata or {}
                if await tx.update_run(run, run["status"]):
                    return run
        raise InvalidRequest(f"Run {run_id} kept changing; try again.")

    @routes.post("/threads/{thread_id}/runs/{run_id}/cancel")
    async def cancel_run(thread_id: str, run_id: str, caller: CallerDep) -> dict[str, Any]:
        # The engine acts for the server: the caller may only ask for a run it can see.
        await fetch_own(store, caller, "run", run_id, thread_id)
        return await engine.cancel(thread_id, run_id)

    @routes.post("/threads/{thread_id}/runs/{run_id}/submit_tool_outputs")
    async def submit_tool_outputs(
        thread_id: str, run_id: str, body: SubmitToolOutputs, caller: CallerDep
    ) -> Any:
        await fetch_own(store, caller, "run", run_id, thread_id)
        outputs = [o.model_dump() for o in body.tool_outputs]
        if not body.stream:
            return await engine.submit_tool_outputs(thread_id, run_id, outputs, NO_EVENTS)
        events = EventStream()
        await engine.submit_tool_outputs(thread_id, run_id, outputs, events)
        return sse(events)

    # -- steps ---------------------------------------------------------------------------

    @routes.get("/threads/{thread_id}/runs/{run_id}/steps")
    async def list_steps(
        thread_id: str, run_id: str, page: Page, include: IncludeContent, caller: CallerDep
    ) -> Response:
        async with store.read(caller) as tx:
            await get_own(tx, "run", run_id, thread_id)
            keys = await tx.page_keys("run_step", page, where=[db.run_steps.c.run_id == run_id])
        if include:
            return listing(store, keys)
        body = json.dumps(await _steps_page(store, keys), ensure_ascii=False)
        return Response(body, media_type="application/json")

    @routes.get("/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
    async def get_step(
        thread_id: str, run_id: str, step_id: str, include: IncludeContent, caller: CallerDep
    ) -> dict[str, Any]:
        async with store.read(caller) as tx:
            step = await get_own(tx, "run_step", step_id, thread_id)
        if step["run_id"] != run_id:
            raise NotFound.of("run step", step_id)
        return step if include else without_content(step)

    return routes
