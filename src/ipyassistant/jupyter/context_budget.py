"""What the kernel context tools may send: budgets, bounded reprs and redaction.

- Every tool output is at most ``IPYASSISTANT_CONTEXT_CHARS`` characters (default 8,000), cut
  with a note saying so (:func:`clip`).
- A repr is cut to a size, and computed in a worker thread that is abandoned after a time
  limit, so that a huge or hanging ``__repr__`` (or ``len``, ``shape``, …) cannot hang the
  cell (:func:`bounded`, :func:`short_repr`); one that raises is named, not propagated.
- Names that look like secrets (``key``, ``token``, ``secret``, ``password``, …) have their
  values shown as ``<redacted>`` (:func:`looks_secret`), and strings that look like
  credentials (``sk-…``, ``ghp_…``, JWTs, AWS keys, ``Bearer …``) or that code assigns to
  such names (``api_key = "…"`` in a cell's source) are replaced by ``<redacted>`` in
  everything sent (:func:`redact`).
"""

from __future__ import annotations

import os
import re
import reprlib
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "DEFAULT_CONTEXT_CHARS",
    "REDACTED",
    "bounded",
    "clip",
    "context_chars",
    "looks_secret",
    "redact",
    "short_repr",
]

#: The default of ``IPYASSISTANT_CONTEXT_CHARS``.
DEFAULT_CONTEXT_CHARS = 8000
#: What a secret is replaced by.
REDACTED = "<redacted>"
#: Seconds a repr (or a summary) may take before it is abandoned.
REPR_SECONDS = 1.0

_SECRET_NAME = re.compile(r"key|token|secret|passw(or)?d|credential", re.IGNORECASE)
_CREDENTIAL = re.compile(
    r"""
    \bsk-[A-Za-z0-9_-]{16,}                         # OpenAI-style keys
    | \b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}    # GitHub tokens
    | \bgithub_pat_[A-Za-z0-9_]{20,}
    | \bxox[abposr]-[A-Za-z0-9-]{10,}               # Slack tokens
    | \bAKIA[0-9A-Z]{16}\b                          # AWS access key ids
    | \beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+  # JWTs
    | (?<=Bearer\ )[A-Za-z0-9._~+/-]{16,}=*          # bearer tokens
    """,
    re.VERBOSE,
)


#: A string given to a secret-looking name in source code: ``api_key = "…"``, ``"token": "…"``.
_SECRET_ASSIGNMENT = re.compile(
    r"""(\b\w*(?:key|token|secret|passw(?:or)?d|credential)\w*["']?\s*[:=]\s*[rbf]?)(["'])[^"'\n]*\2""",
    re.IGNORECASE,
)


def context_chars() -> int:
    """The budget of one tool output: ``IPYASSISTANT_CONTEXT_CHARS``, else 8,000."""
    try:
        return max(200, int(os.environ.get("IPYASSISTANT_CONTEXT_CHARS", DEFAULT_CONTEXT_CHARS)))
    except ValueError:
        return DEFAULT_CONTEXT_CHARS


def clip(text: str, limit: int | None = None) -> str:
    """``text`` within ``limit`` characters (default: the budget), with a note if it was cut."""
    limit = context_chars() if limit is None else limit
    if len(text) <= limit:
        return text
    note = f"\n… (cut: {len(text) - limit} more characters; the budget is {limit} characters)"
    return text[: max(0, limit - len(note))] + note


def looks_secret(name: str) -> bool:
    """Whether a variable's name says its value is a secret."""
    return bool(_SECRET_NAME.search(name))


def redact(text: str) -> str:
    """``text`` with every string that looks like a credential, or that code gives to a name
    that looks like a secret, replaced by ``<redacted>``."""
    text = _SECRET_ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}{m.group(2)}", text)
    return _CREDENTIAL.sub(REDACTED, text)


def bounded(compute: Callable[[], str], what: str = "repr", seconds: float = REPR_SECONDS) -> str:
    """``compute()`` in a worker thread, abandoned after ``seconds``; errors become text.

    An abandoned thread is a daemon: it ends with the process if the computation never does.
    """
    result: list[str] = []

    def work() -> None:
        try:
            result.append(compute())
        except BaseException as exc:  # whatever a hostile object raises is only reported
            result.append(f"<{what} failed: {type(exc).__name__}: {_first_line(exc)}>")

    worker = threading.Thread(target=work, name=f"ipyassistant-{what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if not result:
        return f"<{what} took longer than {seconds:g}s: abandoned>"
    return result[0]


def _first_line(exc: BaseException) -> str:
    try:
        return str(exc).splitlines()[0][:200] if str(exc) else ""
    except Exception:
        return "?"


def _repr_limits(size: int) -> reprlib.Repr:
    limits = reprlib.Repr()
    limits.maxstring = max(20, size)
    limits.maxother = max(20, size)
    limits.maxlist = limits.maxtuple = limits.maxset = limits.maxdict = 20
    limits.maxlevel = 3
    return limits


def short_repr(value: Any, size: int = 200) -> str:
    """``value``'s repr in at most ``size`` characters, bounded in time, credentials redacted.

    Containers are shortened by :mod:`reprlib` (their first items, a few levels deep) before
    they are cut; any other object's own repr is cut.
    """
    text = bounded(lambda: _repr_limits(size).repr(value))
    text = redact(text)
    if len(text) > size:
        text = text[: max(0, size - 1)] + "…"
    return text
