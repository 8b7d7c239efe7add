"""Attribute filters for search: OpenAI's ComparisonFilter and CompoundFilter, checked once and
turned into a predicate over a chunk's ``attributes``.

- comparison: ``{"type": "eq"|"ne"|"gt"|"gte"|"lt"|"lte"|"in"|"nin", "key": str, "value": …}``,
  the value a string, number or boolean (a list of them for ``in``/``nin``);
- compound: ``{"type": "and"|"or", "filters": [filter, …]}``, nested to any reasonable depth.

Semantics: values compare only with values of the same kind (a boolean is not a number, so
``True`` never equals ``1``); ``gt``/``gte``/``lt``/``lte`` order numbers, or strings (ISO dates
order correctly); a missing key or a value of another kind fails every comparison except
``ne`` and ``nin``, which it passes (the attribute is indeed not equal / not in the list).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Predicate", "compile_filter"]

Predicate = Callable[[Mapping[str, Any] | None], bool]

_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
_COMPARISONS = ("eq", "ne", *_ORDERINGS, "in", "nin")
_MAX_DEPTH = 32


def _kind(value: Any) -> str | None:
    """The comparable kind of an attribute value, or None for anything else."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def compile_filter(spec: Mapping[str, Any] | None) -> Predicate | None:
    """The predicate ``spec`` describes (None for no filter), or :class:`ValueError` naming
    what is wrong and where (e.g. ``filters.filters[1].value``)."""
    if spec is None:
        return None
    return _compile(spec, "filters", 0)


def _compile(spec: Any, where: str, depth: int) -> Predicate:
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where}: filters nest deeper than {_MAX_DEPTH} levels")
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: a filter must be an object, not {type(spec).__name__}")
    kind = spec.get("type")
    if kind in ("and", "or"):
        parts = spec.get("filters")
        if not isinstance(parts, list) or not parts:
            raise ValueError(f"{where}.filters: an '{kind}' filter needs a non-empty list")
        compiled = [_compile(p, f"{where}.filters[{i}]", depth + 1) for i, p in enumerate(parts)]
        combine = all if kind == "and" else any
        return lambda attributes: combine(p(attributes) for p in compiled)
    if kind not in _COMPARISONS:
        raise ValueError(
            f"{where}.type: {kind!r} is not a filter type; use one of "
            f"{', '.join(_COMPARISONS)}, and, or"
        )
    key = spec.get("key")
    if not isinstance(key, str) or not key:
        raise ValueError(f"{where}.key: a comparison needs the attribute's name as a string")
    value = spec.get("value")
    if kind in ("in", "nin"):
        return _membership(kind, key, value, where)
    value_kind = _kind(value)
    if value_kind is None:
        raise ValueError(f"{where}.value: '{kind}' compares with a string, number or boolean")
    if kind in _ORDERINGS and value_kind == "boolean":
        raise ValueError(f"{where}.value: '{kind}' orders numbers or strings, not booleans")
    return _comparison(kind, key, value, value_kind)


def _comparison(kind: str, key: str, value: Any, value_kind: str) -> Predicate:
    order = _ORDERINGS.get(kind)
    negate = kind == "ne"

    def predicate(attributes: Mapping[str, Any] | None) -> bool:
        present = attributes is not None and key in attributes
        actual = attributes[key] if present and attributes is not None else None
        if not present or _kind(actual) != value_kind:
            return negate
        if order is not None:
            return bool(order(actual, value))
        return (actual == value) != negate

    return predicate


def _membership(kind: str, key: str, value: Any, where: str) -> Predicate:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}.value: '{kind}' needs a non-empty list of values")
    members: set[tuple[str, Any]] = set()
    for i, item in enumerate(value):
        item_kind = _kind(item)
        if item_kind is None:
            raise ValueError(f"{where}.value[{i}]: list items must be strings, numbers or booleans")
        members.add((item_kind, item))
    negate = kind == "nin"

    def predicate(attributes: Mapping[str, Any] | None) -> bool:
        if attributes is None or key not in attributes:
            return negate
        actual = attributes[key]
        actual_kind = _kind(actual)
        found = actual_kind is not None and (actual_kind, actual) in members
        return found != negate

    return predicate
