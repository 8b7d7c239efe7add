"""The Assistants API server: ``create_app`` for ASGI, :mod:`.embedded` for a background thread."""

from __future__ import annotations

from .app import create_app
from .config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
