"""The HTTP API: the OpenAI Assistants API v2 under ``/v1``, as a FastAPI app.

This module builds the app: the objects shared by its requests (:class:`Server`: store, files,
run engine, indexer, code interpreter), their lifespan, the middleware and the error handlers. The
routes are in :mod:`.routes`, one module a resource.

Routes validate, then write in one transaction; runs are handed to the :class:`RunEngine`.
JSON bodies are parsed and checked by one layer (:mod:`.bodies`) before the request models
(:mod:`.schemas`) validate them. Every error, including request validation, a body over the
size limit and an unexpected failure, is OpenAI-shaped (see :mod:`.errors`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import schema
from .auth import authenticate
from .bodies import APIJSONResponse
from .code_interpreter import CodeInterpreter
from .config import ServerConfig
from .engine import RunEngine
from .errors import APIError, AuthenticationError
from .files import FileStore
from .keys import KeyBook
from .middleware import BodyLimit, BodyTooLarge, ErrorBoundary, too_large_body
from .models import close_providers
from .retrieval.indexer import Indexer
from .routes import api_router
from .store import Store
from .validation import invalid_request

__all__ = ["create_app"]


class Server:
    """The objects shared by all requests of one app: store, files, engine."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.store = Store.from_url(config.resolved_database_url, config.database_pool_size)
        self.keys = KeyBook(self.store)
        self.files = FileStore(config.files_dir)
        self.engine = RunEngine(self.store, self.files, config)
        self.code_interpreter = CodeInterpreter(config, self.files, self.store)
        self.engine.code_runner = self.code_interpreter
        # The files of vector stores are indexed under the engine's worker id and heartbeat.
        self.indexer = Indexer(self.store, self.files, config, self.engine.worker_id)

    async def start(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        if self.config.migrate:
            await self.store.migrate()
        else:
            schema.check_current(
                await self.store.schema_revision(), self.config.resolved_database_url
            )
        await self.engine.start()
        self.indexer.start()
        await self.code_interpreter.start()  # the warm pool fills in the background

    async def stop(self) -> None:
        try:
            await self.indexer.stop()
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
    app.include_router(api_router(server), prefix="/v1")

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
            await authenticate(request)
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
