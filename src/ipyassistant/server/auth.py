"""The API key check every request passes first (``Authorization: Bearer KEY``).

A request's key is either the server's own (``--api-key`` / ``IPYASSISTANT_API_KEY``, the
admin) or a person's key from the database (:mod:`.keys`); :func:`authenticate` answers with
the :class:`~.caller.Caller` it identifies, which the routes pass to the store. A server with
no key of either kind is open (the caller is then the server).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from .caller import SERVER, Caller
from .errors import AuthenticationError

if TYPE_CHECKING:
    from .app import Server

__all__ = ["CallerDep", "authenticate"]

#: Where a request keeps the caller once known (several layers ask: see :mod:`.bodies`).
_SCOPE_KEY = "ipyassistant.caller"


async def authenticate(request: HTTPConnection) -> Caller:
    """The caller the request's key identifies; :class:`AuthenticationError` if none."""
    known = request.scope.get(_SCOPE_KEY)
    if known is not None:
        return known
    caller = await _identify(request.app.state.server, request)
    request.scope[_SCOPE_KEY] = caller
    return caller


async def _identify(server: Server, request: HTTPConnection) -> Caller:
    configured = server.config.api_key
    if not configured and not await server.keys.any():
        return SERVER  # an open server, as before keys (the embedded server always has one)
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
            code="missing_api_key",
        )
    if configured and secrets.compare_digest(key.encode(), configured.encode()):
        return SERVER
    caller = await server.keys.caller(key)
    if caller is None:
        raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
    return caller


#: A route parameter: the request's caller (authenticated once a request, whoever asks).
CallerDep = Annotated[Caller, Depends(authenticate)]
