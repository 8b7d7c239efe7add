"""Checks of what a local model wrote: tool calls and JSON replies, validated before use.

The grammar shapes the output, but not every schema keyword is enforced while decoding (e.g.
``minimum``): every call and JSON reply is parsed and validated against its schema
(``jsonschema``) here, and anything invalid is a :class:`~..base.ModelError`, never a malformed
call. Pure functions over text (no llama.cpp).
"""

from __future__ import annotations

import json
from typing import Any

from ..base import ModelError
from .config import INSTALL_HINT

__all__ = ["check_json", "parse_calls", "repeats_a_call", "without_last_call"]


def _validator(schema: dict[str, Any]) -> Any:
    try:
        import jsonschema
    except ImportError:
        raise ModelError(
            f"The local model checks tool arguments with jsonschema, which is not installed: {INSTALL_HINT}"
        ) from None
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def parse_calls(
    text: str, schemas: dict[str, dict[str, Any]], model: str
) -> list[tuple[str, str]]:
    """The calls in the model's ``{"tool_calls": [...]}`` reply, checked: ``(name, JSON)``."""
    try:
        data = json.loads(text)
        calls = data["tool_calls"]
        assert isinstance(calls, list) and calls
    except (json.JSONDecodeError, KeyError, TypeError, AssertionError):
        raise ModelError(f"{model}: the model wrote a malformed tool call: {text[:300]!r}") from None
    out: list[tuple[str, str]] = []
    for call in calls:
        name = call.get("name") if isinstance(call, dict) else None
        if name not in schemas:
            raise ModelError(f"{model}: the model called an unknown tool: {text[:300]!r}")
        arguments = call.get("arguments")
        errors = sorted(_validator(schemas[name]).iter_errors(arguments), key=str)
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "(the arguments)"
            raise ModelError(
                f"{model}: the model called {name} with arguments that do not match its schema "
                f"({where}: {errors[0].message}): {json.dumps(arguments)[:300]}"
            )
        out.append((name, json.dumps(arguments, ensure_ascii=False)))
    return out


def _calls_so_far(text: str) -> list[Any] | None:
    """The calls of a ``{"tool_calls": [...`` prefix that ends right after a call, else None."""
    try:
        data = json.loads(text + "]}")
    except json.JSONDecodeError:
        return None
    calls = data.get("tool_calls") if isinstance(data, dict) else None
    return calls if isinstance(calls, list) else None


def repeats_a_call(text: str) -> bool:
    """Whether the calls prefix ``text`` just ended a call identical to an earlier one."""
    calls = _calls_so_far(text)
    return calls is not None and len(calls) > 1 and calls[-1] in calls[:-1]


def without_last_call(text: str) -> str:
    """The complete calls object of ``text`` minus its last call."""
    calls = _calls_so_far(text) or []
    return json.dumps({"tool_calls": calls[:-1]}, ensure_ascii=False)


def check_json(text: str, schema: dict[str, Any], model: str) -> None:
    """Raise :class:`ModelError` unless ``text`` is JSON that follows ``schema``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{model}: the model's JSON reply does not parse: {exc}") from None
    errors = sorted(_validator(schema).iter_errors(value), key=str)
    if errors:
        raise ModelError(
            f"{model}: the model's JSON reply does not match the response format's schema: "
            f"{errors[0].message}"
        )

