"""The in-memory state of one executing segment of a run, shared by the engine's modules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import EventSink

if TYPE_CHECKING:
    from .citations import CitationStream

__all__ = ["Segment"]


@dataclass
class Segment:
    """The in-memory side of one executing segment.

    ``run`` is the engine's copy of the run, as it last wrote or read it; ``message`` and
    ``message_step`` are the assistant message being streamed (if any) and its step, whose
    text, images and citations accumulate here until the message is closed.
    """

    run: dict[str, Any]
    sink: EventSink
    message: dict[str, Any] | None = None
    message_step: dict[str, Any] | None = None
    text: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    #: Files the code saved since the last message: cited by the next one (``file_path``).
    saved_files: list[tuple[str, str]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    #: (file id, file name) of the run's search results, in the numbering of the markers
    #: the model cites them with; and the open message's markers turning into citations.
    sources: list[tuple[str, str]] = field(default_factory=list)
    citations: CitationStream | None = None
    #: Why a search (by call id) found less than it could, told to the model with its results.
    search_notes: dict[str, str] = field(default_factory=dict)
