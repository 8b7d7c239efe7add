"""Request validation errors as OpenAI words them: one 400 naming the parameter, with a code.

FastAPI reports pydantic's errors with pydantic's locations and types; :func:`invalid_request`
turns the one that matters into an :class:`InvalidRequest` whose ``param`` is the path in the
body as the client wrote it (``tools[0].function.name``) and whose ``code`` is OpenAI's
(``missing_required_parameter``, ``unknown_parameter``, ``invalid_type``, …).
"""

from __future__ import annotations

from typing import Any

from .bodies import INVALID_JSON, param_path
from .errors import InvalidRequest

__all__ = ["invalid_request"]

#: pydantic error types that mean "wrong JSON type" (``null`` where none is allowed, too).
_TYPE_ERRORS = {
    "model_type",
    "model_attributes_type",
    "dict_type",
    "list_type",
    "is_instance_of",
    "null_not_allowed",
    "none_required",
}


def _body_path(parts: list[int | str], node: Any) -> list[int | str]:
    """``parts`` without what pydantic adds for unions: member labels (``str``,
    ``tagged-union[…]``) and discriminator tags, none of which is a key of the request body."""
    if not parts:
        return []
    head, rest = parts[0], parts[1:]
    if isinstance(head, int):
        item = node[head] if isinstance(node, list) and 0 <= head < len(node) else None
        return [head, *_body_path(rest, item)]
    if isinstance(node, dict) and head in node:
        return [head, *_body_path(rest, node[head])]
    if not rest and isinstance(node, dict):
        return [head]  # a missing or an unknown key
    return _body_path(rest, node)


def _param(loc: tuple[int | str, ...], body: Any = None) -> str:
    """A pydantic error location as the ``param`` OpenAI reports."""
    parts = list(loc)
    if parts and parts[0] == "body" and isinstance(body, dict | list):  # JSON, not a form
        parts = _body_path(parts[1:], body)
    elif parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return param_path(parts)


def _code(error: dict[str, Any]) -> str:
    kind = str(error.get("type", ""))
    value = error.get("input")
    if kind in _TYPE_ERRORS or kind.endswith(("_type", "_parsing")):
        return "invalid_type"
    number = "integer" if isinstance(value, int) else "decimal"
    if kind in ("greater_than", "greater_than_equal"):
        return f"{number}_below_min_value"
    if kind in ("less_than", "less_than_equal"):
        return f"{number}_above_max_value"
    if kind.startswith("string_too_"):
        return "string_above_max_length" if kind.endswith("long") else "string_below_min_length"
    if kind == "too_long":
        return "array_above_max_length"
    if kind == "too_short":
        return "empty_array" if not value else "array_below_min_length"
    return "invalid_value"


def invalid_request(errors: list[dict[str, Any]], body: Any) -> InvalidRequest:
    """The 400 for pydantic's ``errors`` about ``body`` (the parsed request body, if any)."""
    # Of the errors a union reports (one per member), the deepest is the member meant.
    first = max(errors, key=lambda e: len(e.get("loc", ())), default=None)
    if first is None:
        return InvalidRequest("Invalid request.", code="invalid_value")
    kind = first.get("type")
    if kind == "json_invalid":
        return InvalidRequest(INVALID_JSON, code="invalid_json")
    param = _param(tuple(first.get("loc", ())), body)
    shown = param or "''"  # an empty key is still a name
    if kind == "missing":
        if not param:
            return InvalidRequest("The request has no body; send a JSON object.", code="missing_required_parameter")
        return InvalidRequest(
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        )
    if kind == "extra_forbidden":
        return InvalidRequest(
            f"Unrecognized request argument supplied: {shown}",
            param=param,
            code="unknown_parameter",
        )
    message = str(first.get("msg", "Invalid value."))
    return InvalidRequest(
        f"Invalid value for '{param}': {message}" if param else message,
        param=param or None,
        code=_code(first),
    )
