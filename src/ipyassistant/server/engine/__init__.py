"""The run engine: executes runs as server-side jobs, with their state in the database.

- :mod:`.run_engine`: :class:`RunEngine`, the front the app calls, and the segment loop;
- :mod:`.prompt`: the model request built from stored state (pure);
- :mod:`.tool_calls`: streamed tool calls accumulated, submitted outputs checked (pure);
- :mod:`.records`: messages, steps and the run's final status, with their events;
- :mod:`.file_search`: ``file_search`` calls: the search, its results, who sees the chunks;
- :mod:`.citations`: ``file_citation`` from the reply's markers, ``file_path`` of saved files;
- :mod:`.stopping`: stop requests, and the one await they interrupt;
- :mod:`.reaper`: the heartbeat, and the ending of abandoned or expired runs;
- :mod:`.segment`: the in-memory state of one executing segment.
"""

from __future__ import annotations

from .run_engine import RunEngine

__all__ = ["RunEngine"]
