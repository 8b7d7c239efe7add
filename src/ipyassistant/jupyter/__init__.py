"""Jupyter integration: the run view and chat panel widgets, the event handler, the view-state
reducer.

``view_state`` is pure (no widget imports); ``widgets`` and ``handler`` need ipywidgets and
anywidget, which are imported only when their names are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chat_panel import ChatPanel
    from .context import notebook_tools
    from .handler import WidgetHandler, files_fetcher
    from .widgets import RunView

__all__ = ["ChatPanel", "RunView", "WidgetHandler", "files_fetcher", "notebook_tools"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import ipyassistant.jupyter.view_state` stays light.
    if name == "ChatPanel":
        from .chat_panel import ChatPanel

        return ChatPanel
    if name == "RunView":
        from .widgets import RunView

        return RunView
    if name == "notebook_tools":
        from .context import notebook_tools

        return notebook_tools
    if name in ("WidgetHandler", "files_fetcher"):
        from . import handler

        return getattr(handler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
