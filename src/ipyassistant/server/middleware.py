"""The two ASGI layers around every request: a body size limit and a last-resort 500.

:class:`BodyLimit` refuses a body above its limit with a 413 before it is read into memory:
at once when ``Content-Length`` says so, else as soon as the bytes received pass the limit.
Uploads (``multipart/form-data``) have their own, larger limit.

:class:`ErrorBoundary` turns an exception no handler took into an OpenAI-shaped 500, logs its
traceback once, and does not re-raise it: the server then keeps the connection open, as after
any other response (Starlette's own last handler re-raises, which makes uvicorn log the error a
second time and drop the keep-alive connection).
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import APIError

__all__ = ["BodyLimit", "BodyTooLarge", "ErrorBoundary"]

log = logging.getLogger("ipyassistant.server")


class BodyTooLarge(HTTPException):
    """A request body above the limit (an HTTPException, so route code passes it on)."""

    def __init__(self, limit: int):
        super().__init__(
            413,
            f"The request body is larger than this server accepts ({limit // (1 << 20)} MB).",
        )
        self.limit = limit


def too_large_body(limit: int) -> dict[str, object]:
    error = APIError(
        f"The request body is larger than this server accepts ({limit // (1 << 20)} MB).",
        code="request_too_large",
    )
    error.type = "invalid_request_error"
    return error.body()


class BodyLimit:
    """Refuse bodies above ``json_bytes`` (``upload_bytes`` for multipart uploads) with 413."""

    def __init__(self, app: ASGIApp, *, json_bytes: int, upload_bytes: int):
        self.app = app
        self.json_bytes = json_bytes
        self.upload_bytes = upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").lower()
        limit = self.upload_bytes if content_type.startswith(b"multipart/") else self.json_bytes
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await JSONResponse(too_large_body(limit), status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


class ErrorBoundary:
    """Answer an unhandled exception with an OpenAI-shaped 500 and log it once."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:  # the status is sent: nothing to do but end the response
                return
            body = APIError(f"The server had an error: {type(exc).__name__}").body()
            await JSONResponse(body, status_code=500)(scope, receive, send)
