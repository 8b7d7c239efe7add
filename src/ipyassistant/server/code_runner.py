"""The interface between the run engine and whatever executes code-interpreter calls.

The engine (:mod:`.engine`) depends only on this protocol; :mod:`.code_interpreter` implements
it with Jupyter kernels, so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from .store import Tx

__all__ = ["CodeOutput", "CodeRunner"]


@dataclass
class CodeOutput:
    """What one code-interpreter execution produced."""

    logs: str
    #: Files API ids of the images the code displayed.
    image_file_ids: list[str] = field(default_factory=list)
    #: (path shown to the model, Files API id) of the files the code saved for the user.
    saved_files: list[tuple[str, str]] = field(default_factory=list)


class CodeRunner(Protocol):
    """Runs code-interpreter calls for a thread (see :mod:`.code_interpreter`)."""

    async def run_code(self, run: dict[str, Any], code: str) -> CodeOutput: ...

    async def prepare(self, run: dict[str, Any], tx: Tx) -> str:
        """Make the run's files available; returns a note for the model (may be empty)."""
        ...
