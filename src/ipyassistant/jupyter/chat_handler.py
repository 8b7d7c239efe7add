"""The event handler of a chat turn: folds its stream into the :class:`~.chat_panel.ChatPanel`.

It runs on the portal's loop; the panel's live turn is guarded by the panel's lock, and its
traits are written on the kernel loop's thread only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import openai
from openai import AsyncAssistantEventHandler
from openai.types.beta import AssistantStreamEvent
from typing_extensions import override

from ..settings import take_model_note
from . import approval
from .chat_client import file_bytes
from .live import error_event

if TYPE_CHECKING:
    from .chat_panel import ChatPanel

__all__ = ["PanelHandler"]

logger = logging.getLogger(__name__)


class PanelHandler(AsyncAssistantEventHandler):
    """Folds a turn's stream into its panel (on the portal's loop); fetches its images."""

    def __init__(self, panel: ChatPanel) -> None:
        super().__init__()
        self._panel = panel

    @override
    async def on_event(self, event: AssistantStreamEvent) -> None:
        panel = self._panel
        approval.showing(panel, kernel_loop_free=True)  # a person answers in the panel
        note = take_model_note()  # the default model, chosen as this turn started
        if note:
            panel.show_note_soon(note)
        panel.push_event(event)
        for file_id in panel.claim_images():
            try:
                data = await file_bytes(file_id)
            except openai.APIError as exc:  # a missing image must not end the stream
                logger.warning("ipyassistant: could not fetch image file %s: %s", file_id, exc)
                continue
            panel.add_image(file_id, data)

    @override
    async def on_exception(self, exception: Exception) -> None:
        self._panel.push_event(error_event(exception))

    @override
    async def on_end(self) -> None:
        self._panel.flush()
