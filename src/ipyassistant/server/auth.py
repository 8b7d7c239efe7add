"""The API key check every request passes first (``Authorization: Bearer KEY``)."""

from __future__ import annotations

import secrets

from starlette.requests import HTTPConnection

from .config import ServerConfig
from .errors import AuthenticationError

__all__ = ["authenticate"]


def authenticate(config: ServerConfig, request: HTTPConnection) -> None:
    """Raise :class:`AuthenticationError` unless the request carries the server's key."""
    if not config.api_key:
        return
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
            code="missing_api_key",
        )
    if not secrets.compare_digest(key.strip().encode(), config.api_key.encode()):
        raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
