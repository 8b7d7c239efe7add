"""What a failed or interrupted run says in a notebook: a hint per kind of failure, and the
one-line errors that end a cell.

A failed run shows its error with one line that says what to do (:func:`failure_hint`; the
browser's status bar has the same table, ``js/status_bar.ts``). ``%%assistant`` can end its
cell with :class:`RunFailedError` (``AssistantMagics.raise_on_failure``), so that "Run All"
stops at a failed run; an interrupted run ends its cell with a ``KeyboardInterrupt``
(:func:`interrupted`). Both show as one line, not as a traceback through ipyassistant: IPython
shows what an exception's ``_render_traceback_`` returns instead of its traceback.
"""

from __future__ import annotations

import re
import sys
from typing import Any

__all__ = [
    "FAILED_STATUSES",
    "INTERRUPTED",
    "RunFailedError",
    "failure_hint",
    "interactive_execution",
    "interrupted",
]

#: Run statuses that count as a failure (``raise_on_failure``): the run did not answer.
FAILED_STATUSES = frozenset({"failed", "expired"})

#: The one line an interrupted ``%%assistant`` cell ends with.
INTERRUPTED = "Interrupted: the run was cancelled."

#: What names the upstream call in the server's error messages ("openai:gpt-4o at https://…
#: answered 503: …"): the words before the verb.
_WHERE = re.compile(
    r"^(?P<where>.+?) (?:answered|timed out|could not|dropped|reported|sent)\b", re.DOTALL
)

_MODEL_HINT = (
    "Choose an available model with %assistant model NAME (e.g. openai:gpt-4o-mini, local, "
    "test), or set IPYASSISTANT_MODEL before the kernel starts."
)


def failure_hint(code: str | None, message: str) -> str:
    """One line saying what to do about a run's error (``last_error``'s code and message)."""
    code = code or ""
    lowered = message.lower()
    if code == "rate_limit_exceeded":
        return "The model's server is rate-limiting requests: wait a moment, then Retry."
    if code in ("model_not_found", "invalid_model") or (
        "model" in lowered and ("not available" in lowered or "not found" in lowered)
    ):
        return _MODEL_HINT
    if code == "server_error":
        found = _WHERE.match(message)
        called = f" The call to {found['where']} failed." if found else ""
        return f"The model's server failed.{called} Retry, or choose another model."
    return "Retry, or change the message or the model."


class RunFailedError(Exception):
    """A ``%%assistant`` run that failed, raised from its cell (``raise_on_failure``).

    It shows as one line (and the hint), so that "Run All" stops with a readable reason.
    """

    def __init__(self, run_id: str, code: str | None, message: str) -> None:
        super().__init__(f"{run_id}: {code or 'failed'}: {message}")
        self.run_id = run_id
        self.code = code
        self.message = message

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback."""
        return [f"RunFailedError: {self}", failure_hint(self.code, self.message)]


def interrupted() -> KeyboardInterrupt:
    """The ``KeyboardInterrupt`` an interrupted ``%%assistant`` cell ends with.

    Still a ``KeyboardInterrupt`` (so the kernel reports it as one and "Run All" stops), shown
    as :data:`INTERRUPTED` alone: the traceback would only lead through ipyassistant.
    """
    exc = KeyboardInterrupt("the run was cancelled")
    exc._render_traceback_ = lambda: [INTERRUPTED]  # type: ignore[attr-defined]
    return exc


def interactive_execution(shell: Any) -> bool:
    """Whether the cell running now was sent by a person at a front end.

    A Jupyter kernel is told with each execute request whether it may ask for input
    (``allow_stdin``): JupyterLab, Notebook and VS Code say yes, while nbclient, papermill and
    nbconvert, which run notebooks unattended, say no. Terminal IPython is interactive; any
    other Python (a script) is not.
    """
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return shell is not None and "IPython.terminal" in sys.modules
    get_parent = getattr(kernel, "get_parent", None)
    parent = get_parent("shell") if callable(get_parent) else getattr(kernel, "_parent_header", {})
    content = (parent or {}).get("content") or {}
    return bool(content.get("allow_stdin", False))
