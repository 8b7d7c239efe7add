"""JSON bodies in and out: requests parsed and checked as a whole before a route's model sees
them, responses written whatever text the store holds.

Every route of the API is a :class:`JSONBodyRoute`. For a route that takes a JSON body, the
body is, in this order:

- refused to a caller without the key (no feedback on a request that is not authenticated);
- decoded as UTF-8 and parsed (neither: 400 ``invalid_json``); an absent body is ``{}``;
- required to be an object (``null``, a list or a number: 400 ``invalid_type``);
- required to hold proper Unicode in every key and string: a lone surrogate, sent as a
  ``\\ud800`` escape or as CESU-8 bytes, is refused with a 400 that names its path. Such text
  cannot be encoded as UTF-8, so once stored it would break every read that returns it.

Only then does FastAPI validate the parsed body against the route's pydantic model.

Responses are :class:`APIJSONResponse`: should stored text still hold a lone surrogate (stored
before these checks existed), it is sent as a JSON ``\ud800`` escape instead of failing the
read, so nothing in the store can make a read fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import params
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope

from .auth import authenticate
from .errors import InvalidRequest

__all__ = [
    "INVALID_JSON",
    "APIJSONResponse",
    "JSONBodyRoute",
    "check_text",
    "param_path",
    "parse_body",
]

INVALID_JSON = "We could not parse the JSON body of your request. Send a valid JSON object."

_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_TYPE = re.compile(r"^application/([\w.+-]*\+)?json\s*(;|$)", re.IGNORECASE)


def param_path(parts: list[int | str] | tuple[int | str, ...]) -> str:
    """A location in a body as OpenAI writes it in ``param``: ``tools[0].function.name``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def check_text(value: Any, path: tuple[int | str, ...] = ()) -> None:
    """Raise :class:`InvalidRequest` at the first key or string that is not proper Unicode."""
    if isinstance(value, str):
        found = _SURROGATE.search(value)
        if found:
            where = param_path(path)
            raise InvalidRequest(
                f"Invalid value for '{where}': the text is not valid Unicode (a lone "
                f"surrogate at character {found.start()}). Send text as UTF-8.",
                param=where or None,
                code="invalid_value",
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, path)  # a bad key is reported where it stands
            check_text(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_text(item, (*path, i))


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object a request body holds, checked as the module docstring says."""
    if not raw.strip():
        return {}
    try:
        # surrogatepass: CESU-8 bytes become lone surrogates, which check_text then reports
        # with their path; any other invalid byte is a decoding error.
        value = json.loads(raw.decode("utf-8", "surrogatepass"))
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"The body of your request is not UTF-8 (byte {exc.start}). Send JSON as UTF-8.",
            code="invalid_json",
        ) from None
    except json.JSONDecodeError:
        raise InvalidRequest(INVALID_JSON, code="invalid_json") from None
    if not isinstance(value, dict):
        kind = "null" if value is None else type(value).__name__
        raise InvalidRequest(
            f"The body of your request must be a JSON object, not {kind}.", code="invalid_type"
        )
    check_text(value)
    return value


class _ParsedRequest(Request):
    """A request whose body was read and parsed by :func:`parse_body`."""

    def __init__(self, scope: Scope, receive: Receive, raw: bytes, value: dict[str, Any]):
        super().__init__(scope, receive)
        self._raw = raw
        self._value = value

    async def body(self) -> bytes:
        return self._raw

    async def json(self) -> Any:
        return self._value


class APIJSONResponse(JSONResponse):
    """JSON that is always UTF-8: text that cannot be encoded goes out as ``\\u`` escapes."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


class JSONBodyRoute(APIRoute):
    """A route whose JSON body (if it takes one) goes through :func:`parse_body` first.

    Its return value is sent by the response class as it is, not re-serialized through the
    return annotation's pydantic model (which fails on text the response class can escape).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any):
        kwargs.setdefault("response_model", None)
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None or isinstance(self.body_field.field_info, params.Form):
            return handler

        async def checked(request: Request) -> Response:
            await authenticate(request)
            content_type = request.headers.get("content-type")
            if content_type and not _JSON_TYPE.match(content_type):
                return await handler(request)  # not JSON: the model's validation says so
            raw = await request.body()
            value = parse_body(raw)
            scope = request.scope
            if not content_type:  # a body without a type (or none at all) is read as JSON
                headers = [*scope["headers"], (b"content-type", b"application/json")]
                scope = {**scope, "headers": headers}
            return await handler(_ParsedRequest(scope, request.receive, raw or b"{}", value))

        return checked
