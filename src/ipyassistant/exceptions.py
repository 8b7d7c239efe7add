"""What ipyassistant raises and warns.

Misuse (fix the calling code) is kept apart from the state of the server's objects::

    IpyassistantError
    ├── UsageError              the API was called the wrong way
    │   ├── LifecycleError      create() on a created object, delete() before create(), …
    │   ├── InstructionsError   the instructions template does not render
    │   └── ToolDefinitionError a function cannot become a tool (every problem listed)
    ├── ThreadBusyError         the thread has an active run (``run_id`` names it)
    └── FileIndexingError       files for file search failed to index, or took too long

Errors of the server or the connection are the ``openai`` SDK's own (``openai.APIError`` and
its subclasses), passed through unchanged.

Not errors:

- :class:`EndRun` is a signal a tool raises (or returns) to end its run early.
- :class:`MissingToolWarning`: a loaded assistant has function tools without Python functions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "EndRun",
    "FileIndexingError",
    "InstructionsError",
    "IpyassistantError",
    "LifecycleError",
    "MissingToolWarning",
    "ThreadBusyError",
    "ToolDefinitionError",
    "UsageError",
]


_RUN_ID = re.compile(r"\b(run_[A-Za-z0-9]+)\b")


class IpyassistantError(Exception):
    """The root of every error ipyassistant raises itself."""


class UsageError(IpyassistantError):
    """The API was called in a way that cannot work; the message says how to fix it."""


class LifecycleError(UsageError):
    """An assistant or thread is not in the state the call needs (created, not created, …)."""


class InstructionsError(UsageError):
    """The instructions are not a valid Jinja template, or rendering them failed."""


class ToolDefinitionError(UsageError):
    """One or more functions cannot become tools; ``problems`` lists every reason at once."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"- {p}" for p in self.problems)
        super().__init__(f"cannot turn these functions into tools:\n{lines}")


class ThreadBusyError(IpyassistantError):
    """A thread cannot change while one of its runs is active (queued, in progress, …)."""

    def __init__(self, thread_id: str, run_id: str | None, action: str):
        self.thread_id = thread_id
        self.run_id = run_id
        run = f"run {run_id}" if run_id else "a run"
        super().__init__(
            f"cannot {action} thread {thread_id} while {run} is active on it; "
            "wait for the run to end, or cancel it first"
        )

    @classmethod
    def from_api_error(
        cls, error: Exception, thread_id: str, action: str
    ) -> ThreadBusyError | None:
        """The error a server's "thread is busy" answer means, else ``None``.

        Recognises the ``thread_locked`` code and OpenAI's wording ("… while a run run_… is
        active"); the run is named when the message names it.
        """
        message = str(getattr(error, "message", "") or error)
        code = getattr(error, "code", None)
        if code != "thread_locked" and not ("while" in message and "active" in message):
            return None
        found = _RUN_ID.search(message)
        return cls(thread_id, found.group(1) if found else None, action)


class FileIndexingError(IpyassistantError):
    """Files for file search could not be indexed (``failed``: name, code and message of each),
    or were still being indexed when the wait ended (``pending``: their names)."""

    def __init__(
        self,
        failed: Sequence[tuple[str, str, str]],
        pending: Sequence[str],
        timeout: float | None = None,
    ):
        self.failed = list(failed)
        self.pending = list(pending)
        problems = [f"{name}: {code}: {message}" for name, code, message in self.failed]
        if self.pending:
            problems.append(
                f"still being indexed after {timeout:g} s: {', '.join(self.pending)}"
                " (an Assistant waits longer with index_timeout=SECONDS)"
            )
        super().__init__("file search cannot use these files:\n" + "\n".join(
            f"- {problem}" for problem in problems
        ))


class EndRun(Exception):
    """Raise (or return) this from a tool to end the run at once.

    The run is cancelled on the server and control returns to the caller, whose
    :class:`~ipyassistant.Run` holds ``data`` as ``run.data``. A tool may also return
    :data:`~ipyassistant.ENDRUN_TOKEN`, which ends the run with ``data=None``.
    """

    def __init__(self, data: Any = None):
        super().__init__(data)
        self.data = data


class MissingToolWarning(UserWarning):
    """A loaded assistant has function tools whose Python functions were not given."""
