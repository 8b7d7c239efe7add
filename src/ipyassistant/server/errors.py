"""OpenAI-shaped API errors.

Every error the server returns is ``{"error": {"message", "type", "param", "code"}}`` with a
real HTTP status. Route and engine code raise :class:`APIError` (or a subclass); the
handlers in :mod:`ipyassistant.server.app` turn it into that shape.

    APIError
    ├── InvalidRequest      400 invalid_request_error
    │   └── ThreadBusy      400 thread_locked (not 409: the SDK retries 409 and 5xx)
    ├── AuthenticationError 401 invalid_request_error / invalid_api_key
    └── NotFound            404 invalid_request_error / not_found
"""

from __future__ import annotations

from typing import Any

__all__ = ["APIError", "AuthenticationError", "InvalidRequest", "NotFound", "ThreadBusy"]


class APIError(Exception):
    status_code = 500
    type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(APIError):
    status_code = 400
    type = "invalid_request_error"


class ThreadBusy(InvalidRequest):
    """A thread already has an active run; 400 so that the SDK does not retry it."""

    def __init__(self, thread_id: str, run_id: str, action: str):
        super().__init__(
            f"Can't {action} thread {thread_id} while run {run_id} is active. "
            f"Wait for the run to finish, or cancel it first.",
            code="thread_locked",
        )
        self.run_id = run_id


class AuthenticationError(APIError):
    status_code = 401
    type = "invalid_request_error"


class NotFound(APIError):
    status_code = 404
    type = "invalid_request_error"

    @classmethod
    def of(cls, kind: str, object_id: str, param: str | None = None) -> NotFound:
        return cls(f"No {kind} found with id '{object_id}'.", param=param, code="not_found")
