"""ipyassistant: stateful LLM assistants for Jupyter, on their own Assistants API server."""

from __future__ import annotations

from ._version import __version__

__all__ = ["__version__"]
