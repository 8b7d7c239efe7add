"""Numbers that configure model providers, read from environment variables.

One reader for every provider, so that a bad value is reported the same way everywhere: a
:class:`~.base.ModelError` that names the variable and the value.
"""

from __future__ import annotations

import os
from typing import TypeVar

from .base import ModelError

__all__ = ["env_number"]

N = TypeVar("N", int, float)
D = TypeVar("D")

_KINDS = {int: "a whole number", float: "a number"}


def env_number(name: str, default: D, kind: type[N], *, zero: bool = False) -> N | D:
    """The ``kind`` (``int`` or ``float``) in environment variable ``name``; ``default`` when
    it is unset or blank.

    It must be positive, or, with ``zero``, zero or more (a count such as retries).
    """
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = kind(value)
    except ValueError:
        raise ModelError(f"{name} must be {_KINDS[kind]}, got {value!r}") from None
    if number < 0 or (number == 0 and not zero):
        raise ModelError(f"{name} must be {'zero or ' if zero else ''}positive, got {value!r}")
    return number
