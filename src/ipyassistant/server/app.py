"""The HTTP API: the OpenAI Assistants API v2 under ``/v1``, as FastAPI routes.

Routes validate, then write in one transaction; runs are handed to the :class:`RunEngine`.
JSON bodies are parsed and checked by one layer (:mod:`.bodies`) before the request models
(:mod:`.schemas`) validate them. Every error, including request validation, a body over the
size limit and an unexpected failure, is OpenAI-shaped (see :mod:`.errors`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import db, objects
from .auth import authenticate
from .bodies import APIJSONResponse, JSONBodyRoute
from .code_interpreter import CodeInterpreter
from .config import ServerConfig
from .engine import RunEngine
from .errors import APIError, AuthenticationError, InvalidRequest, NotFound
from .events import NO_EVENTS, EventStream
from .files import FileStore
from .middleware import BodyLimit, BodyTooLarge, ErrorBoundary, too_large_body
from .models import check_model, close_providers
from .schemas import (
    CreateAssistant,
    CreateMessage,
    CreateRun,
    CreateThread,
    CreateThreadAndRun,
    ModifyAssistant,
    ModifyMetadata,
    ModifyThread,
    SubmitToolOutputs,
)
from .store import Cursor, PageKeys, Store, Tx, new_id, now
from .validation import invalid_request

__all__ = ["create_app"]

log = logging.getLogger("ipyassistant.server")

Order = Annotated[Literal["asc", "desc"], Query()]


def _cursor(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Order = "desc",
    after: str | None = None,
    before: str | None = None,
) -> Cursor:
    """The query parameters every list endpoint takes."""
    return Cursor(limit, order, after, before)


Page = Annotated[Cursor, Depends(_cursor)]


def _listing(store: Store, keys: PageKeys) -> StreamingResponse:
    """A list page, streamed from the database one object at a time."""
    return StreamingResponse(store.stream_page(keys), media_type="application/json")


def _sse(events: EventStream) -> StreamingResponse:
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


# The purposes a client may upload with (the file schema's enum, less the server-made ones).
# Not "evals": the upload request allows it, but the file object's enum does not, so such a
# file could not be returned as the spec says.
FILE_PURPOSES = ("assistants", "vision", "user_data", "batch", "fine-tune")


def _deleted(kind: str, object_id: str) -> dict[str, Any]:
    return {"id": object_id, "object": f"{kind}.deleted", "deleted": True}


def _check_tools(tools: list[dict[str, Any]], param: str) -> None:
    names = set()
    for i, tool in enumerate(tools):
        if tool["type"] == "file_search":
            raise InvalidRequest(
                "The file_search tool needs vector stores, which this server does not provide. "
                "Remove it, or use the code_interpreter tool to read files.",
                param=f"{param}[{i}]",
                code="invalid_value",
            )
        if tool["type"] == "function":
            name = tool["function"]["name"]
            if name in names:
                raise InvalidRequest(
                    f"Two function tools are named {name!r}.",
                    param=f"{param}[{i}].function.name",
                    code="invalid_value",
                )
            names.add(name)


async def _check_files(tx: Tx, message: CreateMessage, param: str) -> None:
    prefix = f"{param}." if param else ""  # the message is the whole body: no prefix
    for i, attachment in enumerate(message.attachments or []):
        if not await tx.exists("file", attachment.file_id):
            raise NotFound.of("file", attachment.file_id, f"{prefix}attachments[{i}].file_id")
    if isinstance(message.content, list):
        for i, part in enumerate(message.content):
            if part.type == "image_file" and not await tx.exists("file", part.image_file.file_id):
                raise NotFound.of(
                    "file", part.image_file.file_id, f"{prefix}content[{i}].image_file.file_id"
                )


def _message_row(thread_id: str, message: CreateMessage) -> dict[str, Any]:
    return objects.message_object(
        thread_id,
        message.role,
        objects.user_content(message.content),
        attachments=[a.model_dump(mode="json") for a in message.attachments or []],
        metadata=message.metadata,
    )


class Server:
    """The objects shared by all requests of one app: store, files, engine."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.store = Store.from_url(config.resolved_database_url)
        self.files = FileStore(config.files_dir)
        self.engine = RunEngine(self.store, self.files, config)
        self.code_interpreter = CodeInterpreter(config, self.files, self.store)
        self.engine.code_runner = self.code_interpreter

    async def start(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        await self.engine.start()
        await self.code_interpreter.start()  # the warm pool fills in the background

    async def stop(self) -> None:
        try:
            await self.engine.stop()
        finally:
            # After the runs have stopped: no kernel process outlives the server.
            await self.code_interpreter.stop()
        await close_providers()
        await self.store.close()


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """The ASGI app. Runs need its lifespan (uvicorn and ``httpx.ASGITransport`` users: start it)."""
    config = config or ServerConfig.from_env()
    server = Server(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = FastAPI(
        title="ipyassistant Assistants API",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        default_response_class=APIJSONResponse,
    )
    app.state.server = server
    _install_error_handlers(app)
    # Inside Starlette's outermost error middleware, outside the routes' exception handlers.
    app.add_middleware(
        BodyLimit,
        json_bytes=config.max_request_mb << 20,
        upload_bytes=config.max_upload_mb << 20,
    )
    app.add_middleware(ErrorBoundary)
    app.include_router(_routes(server), prefix="/v1")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "worker": server.engine.worker_id}

    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(_request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI may read the body before it runs dependencies: authenticate first, so that
        # an unauthenticated caller gets a 401, not feedback on its request.
        try:
            authenticate(request.app.state.server.config, request)
        except AuthenticationError as refused:
            return JSONResponse(refused.body(), status_code=refused.status_code)
        error = invalid_request(list(exc.errors()), exc.body)
        return JSONResponse(error.body(), status_code=error.status_code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, BodyTooLarge):
            return JSONResponse(too_large_body(exc.limit), status_code=413)
        if exc.status_code == 404:
            message = f"Invalid URL ({request.method} {request.url.path})"
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed for {request.url.path}."
        else:
            message = str(exc.detail)
        error = APIError(message)
        error.type = "invalid_request_error"
        return JSONResponse(error.body(), status_code=exc.status_code)


def _routes(server: Server) -> APIRouter:
    store, engine, files, config = server.store, server.engine, server.files, server.config

    async def authenticated(request: Request) -> None:
        authenticate(config, request)

    router = APIRouter(dependencies=[Depends(authenticated)], route_class=JSONBodyRoute)

    # -- assistants ----------------------------------------------------------------------

    @router.post("/assistants")
    async def create_assistant(body: CreateAssistant) -> dict[str, Any]:
        check_model(body.model)
        assistant = objects.assistant_object(dict(body))
        _check_tools(assistant["tools"], "tools")
        async with store.tx() as tx:
            return await tx.insert("assistant", assistant)

    @router.get("/assistants")
    async def list_assistants(page: Page) -> Response:
        async with store.read() as tx:
            keys = await tx.page_keys("assistant", page)
        return _listing(store, keys)

    @router.get("/assistants/{assistant_id}")
    async def get_assistant(assistant_id: str) -> dict[str, Any]:
        async with store.read() as tx:
            return await tx.get("assistant", assistant_id)

    @router.post("/assistants/{assistant_id}")
    async def modify_assistant(assistant_id: str, body: ModifyAssistant) -> dict[str, Any]:
        if body.model is not None:
            check_model(body.model)
        changes = {key: getattr(body, key) for key in body.model_fields_set}
        fresh = objects.assistant_object({"model": "", **changes})
        async with store.tx() as tx:
            assistant = await tx.get("assistant", assistant_id)
            for key in changes:
                assistant[key] = fresh[key]
            _check_tools(assistant["tools"], "tools")
            return await tx.update("assistant", assistant)

    @router.delete("/assistants/{assistant_id}")
    async def delete_assistant(assistant_id: str) -> dict[str, Any]:
        async with store.tx() as tx:
            if not await tx.delete("assistant", assistant_id):
                raise NotFound.of("assistant", assistant_id)
        return _deleted("assistant", assistant_id)

    # -- threads -------------------------------------------------------------------------

    async def insert_thread(tx: Tx, body: CreateThread, param: str = "") -> dict[str, Any]:
        thread = objects.thread_object(body.metadata, body.tool_resources)
        await tx.insert("thread", thread)
        rows = []
        for i, message in enumerate(body.messages or []):
            await _check_files(tx, message, f"{param}messages[{i}]")
            rows.append(_message_row(thread["id"], message))
        await tx.insert_many("message", rows)
        return thread

    @router.post("/threads")
    async def create_thread(body: CreateThread) -> dict[str, Any]:
        async with store.tx() as tx:
            return await insert_thread(tx, body)

    # -- messages ------------------------------------------------------------------------

    @router.post("/threads/{thread_id}/messages")
    async def create_message(thread_id: str, body: CreateMessage) -> dict[str, Any]:
        async with store.tx() as tx:
            await tx.ensure_thread_idle(thread_id, "add messages to")
            await _check_files(tx, body, "")
            return await tx.insert("message", _message_row(thread_id, body))

    @router.get("/threads/{thread_id}/messages")
    async def list_messages(thread_id: str, page: Page, run_id: str | None = None) -> Response:
        where = [db.messages.c.thread_id == thread_id]
        if run_id is not None:
            where.append(db.messages.c.run_id == run_id)
        async with store.read() as tx:
            await tx.get("thread", thread_id)
            keys = await tx.page_keys("message", page, where=where)
        return _listing(store, keys)

    async def get_own(tx: Tx, kind: str, object_id: str, thread_id: str) -> dict[str, Any]:
        obj = await tx.get(kind, object_id)
        if obj["thread_id"] != thread_id:
            raise NotFound.of(kind.replace("_", " "), object_id)
        return obj

    @router.get("/threads/{thread_id}/messages/{message_id}")
    async def get_message(thread_id: str, message_id: str) -> dict[str, Any]:
        async with store.read() as tx:
            return await get_own(tx, "message", message_id, thread_id)

    @router.post("/threads/{thread_id}/messages/{message_id}")
    async def modify_message(
        thread_id: str, message_id: str, body: ModifyMetadata
    ) -> dict[str, Any]:
        async with store.tx() as tx:
            message = await get_own(tx, "message", message_id, thread_id)
            message["metadata"] = body.metadata or {}
            return await tx.update("message", message)

    @router.delete("/threads/{thread_id}/messages/{message_id}")
    async def delete_message(thread_id: str, message_id: str) -> dict[str, Any]:
        async with store.tx() as tx:
            await get_own(tx, "message", message_id, thread_id)
            await tx.ensure_thread_idle(thread_id, "delete messages of")
            await tx.delete("message", message_id)
        return _deleted("thread.message", message_id)

    # -- runs ----------------------------------------------------------------------------

    async def insert_run(
        tx: Tx, thread_id: str, body: CreateRun | CreateThreadAndRun
    ) -> dict[str, Any]:
        assistant = await tx.get("assistant", body.assistant_id, param="assistant_id")
        model = body.model or assistant["model"]
        check_model(model)
        tools = objects._dump(body.tools) if body.tools is not None else assistant["tools"]
        _check_tools(tools, "tools")
        choice = objects._dump(body.tool_choice)
        if isinstance(choice, dict):
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
            await _check_files(tx, message, f"additional_messages[{i}]")
            rows.append(_message_row(thread_id, message))
        await tx.insert_many("message", rows)
        await tx.insert("run", run, worker_id=engine.worker_id)
        return run

    def start(run: dict[str, Any], stream: bool | None, thread: dict[str, Any] | None = None) -> Any:
        """Launch ``run``; a stream starts with the new ``thread`` (create-and-run), then the run."""
        prelude = [("thread.created", thread)] if thread is not None else []
        prelude += [("thread.run.created", run), ("thread.run.queued", run)]
        if not stream:
            engine.launch(run, NO_EVENTS, [])
            return run
        events = EventStream()
        engine.launch(run, events, prelude)
        return _sse(events)

    @router.post("/threads/{thread_id}/runs")
    async def create_run(thread_id: str, body: CreateRun) -> Any:
        async with store.tx() as tx:
            await tx.get("thread", thread_id)
            run = await insert_run(tx, thread_id, body)
        return start(run, body.stream)

    @router.post("/threads/runs")
    async def create_thread_and_run(body: CreateThreadAndRun) -> Any:
        async with store.tx() as tx:
            thread_body = body.thread or CreateThread()
            if body.tool_resources is not None and thread_body.tool_resources is None:
                thread_body = thread_body.model_copy(update={"tool_resources": body.tool_resources})
            thread = await insert_thread(tx, thread_body, "thread.")
            run = await insert_run(tx, thread["id"], body)
        return start(run, body.stream, thread)

    # Registered after POST /threads/runs, which it would otherwise shadow.
    @router.get("/threads/{thread_id}")
    async def get_thread(thread_id: str) -> dict[str, Any]:
        async with store.read() as tx:
            return await tx.get("thread", thread_id)

    @router.post("/threads/{thread_id}")
    async def modify_thread(thread_id: str, body: ModifyThread) -> dict[str, Any]:
        async with store.tx() as tx:
            thread = await tx.get("thread", thread_id)
            if "metadata" in body.model_fields_set:
                thread["metadata"] = body.metadata or {}
            if "tool_resources" in body.model_fields_set:
                thread["tool_resources"] = objects.tool_resources(body.tool_resources)
            return await tx.update("thread", thread)

    @router.delete("/threads/{thread_id}")
    async def delete_thread(thread_id: str) -> dict[str, Any]:
        async with store.tx() as tx:
            await tx.delete_thread(thread_id)
        # The thread's kernel and working directory go with it.
        await server.code_interpreter.discard_thread(thread_id, remove_files=True)
        return _deleted("thread", thread_id)

    @router.get("/threads/{thread_id}/runs")
    async def list_runs(thread_id: str, page: Page) -> Response:
        async with store.read() as tx:
            await tx.get("thread", thread_id)
            keys = await tx.page_keys("run", page, where=[db.runs.c.thread_id == thread_id])
        return _listing(store, keys)

    @router.get("/threads/{thread_id}/runs/{run_id}")
    async def get_run(thread_id: str, run_id: str) -> dict[str, Any]:
        async with store.read() as tx:
            return await get_own(tx, "run", run_id, thread_id)

    @router.post("/threads/{thread_id}/runs/{run_id}")
    async def modify_run(thread_id: str, run_id: str, body: ModifyMetadata) -> dict[str, Any]:
        for _ in range(5):
            async with store.tx() as tx:
                run = await get_own(tx, "run", run_id, thread_id)
                run["metadata"] = body.metadata or {}
                if await tx.update_run(run, run["status"]):
                    return run
        raise InvalidRequest(f"Run {run_id} kept changing; try again.")

    @router.post("/threads/{thread_id}/runs/{run_id}/cancel")
    async def cancel_run(thread_id: str, run_id: str) -> dict[str, Any]:
        return await engine.cancel(thread_id, run_id)

    @router.post("/threads/{thread_id}/runs/{run_id}/submit_tool_outputs")
    async def submit_tool_outputs(thread_id: str, run_id: str, body: SubmitToolOutputs) -> Any:
        outputs = [o.model_dump() for o in body.tool_outputs]
        if not body.stream:
            return await engine.submit_tool_outputs(thread_id, run_id, outputs, NO_EVENTS)
        events = EventStream()
        await engine.submit_tool_outputs(thread_id, run_id, outputs, events)
        return _sse(events)

    @router.get("/threads/{thread_id}/runs/{run_id}/steps")
    async def list_steps(thread_id: str, run_id: str, page: Page) -> Response:
        async with store.read() as tx:
            await get_own(tx, "run", run_id, thread_id)
            keys = await tx.page_keys("run_step", page, where=[db.run_steps.c.run_id == run_id])
        return _listing(store, keys)

    @router.get("/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
    async def get_step(thread_id: str, run_id: str, step_id: str) -> dict[str, Any]:
        async with store.read() as tx:
            step = await get_own(tx, "run_step", step_id, thread_id)
        if step["run_id"] != run_id:
            raise NotFound.of("run step", step_id)
        return step

    # -- files ---------------------------------------------------------------------------

    @router.post("/files")
    async def upload_file(
        request: Request, file: Annotated[UploadFile, File()], purpose: Annotated[str, Form()]
    ) -> dict[str, Any]:
        for name in await request.form():  # parsed already: FastAPI read it
            if name.startswith("expires_after"):
                raise InvalidRequest(
                    "expires_after is not supported: files on this server never expire.",
                    param="expires_after",
                    code="unsupported_parameter",
                )
            if name not in ("file", "purpose"):
                raise InvalidRequest(
                    f"Unrecognized request argument supplied: {name or repr(name)}",
                    param=name,
                    code="unknown_parameter",
                )
        if purpose not in FILE_PURPOSES:
            raise InvalidRequest(
                f"Invalid purpose {purpose!r}; use one of: {', '.join(FILE_PURPOSES)}.",
                param="purpose",
                code="invalid_value",
            )
        file_id = new_id("file")
        size = files.write(file_id, file.file)
        # Keep only the last part of a client's path: a client that saves downloads under
        # this name must not be led outside its folder.
        filename = PurePosixPath((file.filename or "").replace("\\", "/")).name or "upload"
        row = objects.file_object(file_id, filename, size, purpose)
        try:
            async with store.tx() as tx:
                return await tx.insert("file", row)
        except BaseException:
            files.delete(file_id)
            raise

    @router.get("/files")
    async def list_files(
        purpose: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
        order: Order = "desc",
        after: str | None = None,
    ) -> Response:
        where = [db.files.c.purpose == purpose] if purpose else []
        async with store.read() as tx:
            keys = await tx.page_keys("file", Cursor(limit, order, after, None), where=where)
        return _listing(store, keys)

    @router.get("/files/{file_id}")
    async def get_file(file_id: str) -> dict[str, Any]:
        async with store.read() as tx:
            return await tx.get("file", file_id)

    @router.delete("/files/{file_id}")
    async def delete_file(file_id: str) -> dict[str, Any]:
        async with store.tx() as tx:
            if not await tx.delete("file", file_id):
                raise NotFound.of("file", file_id)
        files.delete(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    @router.get("/files/{file_id}/content")
    async def file_content(file_id: str) -> Response:
        async with store.read() as tx:
            row = await tx.get("file", file_id)
        path = files.path(file_id)
        if not path.exists():
            raise NotFound(
                f"The content of file {file_id} is missing from the server.", code="not_found"
            )
        return FileResponse(path, filename=row["filename"])

    return router
