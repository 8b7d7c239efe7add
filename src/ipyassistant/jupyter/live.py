"""What the streaming widgets share: a live view state in the kernel, sent to the browser as patches.

:class:`~.widgets.RunView` (one run) and :class:`~.chat_panel.ChatPanel` (a conversation)
both keep the state that is still streaming in the kernel, fold stream events into it under a
lock, send the ops as coalesced patches (:class:`~.throttle.PatchThrottle`), send image bytes
as binary buffers, and write the images to the synced ``images`` trait when a stream ends.
Both show their content as static HTML beside the widget, for nbconvert and GitHub.
:class:`LiveWidget` owns those parts; each widget owns its traits, messages and life.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import anywidget
import traitlets

from .module_loader import serve_module
from .throttle import PatchThrottle, TimerLoop
from .view_items import field
from .view_state import BOUNDARY_EVENTS, Op, ViewState, apply_ops, diff_event

__all__ = ["MISSING_ESM", "LiveWidget", "error_event"]

#: Shown instead of a widget when the JavaScript bundle was not built (a source checkout
#: installed without hatch-jupyter-builder): the transcript in the same output still shows.
MISSING_ESM = """\
export default {
  render({ el }) {
    el.textContent = "ipyassistant: the widget's JavaScript is not built " +
      "(run `npm install && npm run build` in the source tree).";
  },
};
"""


def error_event(exc: BaseException) -> dict[str, Any]:
    """The ``error`` event that shows ``exc`` in a view (what broke a stream or a turn)."""
    return {"event": "error", "data": {"code": type(exc).__name__, "message": str(exc)}}


class LiveWidget(anywidget.AnyWidget):
    """Base of the streaming widgets: the lock, the patch throttle, the live image bytes.

    Args:
        images: Image bytes by file id to start from.
        interval: The shortest time between two live patch messages, in seconds.
        clock: The clock ``interval`` is measured with.
        timer_loop: Returns the loop to arm the interval's timer on.
        traits: Initial values of the subclass's synced traits.
    """

    #: Image bytes by file id; ipywidgets sends bytes values as binary buffers.
    images = traitlets.Dict(key_trait=traitlets.Unicode(), value_trait=traitlets.Bytes()).tag(
        sync=True
    )
    #: Identifies this widget's live state among the browser's models.
    _uid = traitlets.Unicode().tag(sync=True)

    def __init__(
        self,
        images: Mapping[str, bytes] | None,
        interval: float,
        clock: Callable[[], float],
        timer_loop: Callable[[], TimerLoop | None],
        **traits: Any,
    ) -> None:
        super().__init__(images=dict(images or {}), _uid=uuid.uuid4().hex, **traits)
        # Guards the live state: the stream's events arrive on the portal's thread while the
        # kernel's thread answers snapshot requests and ends streams.
        self._lock = threading.RLock()
        self._patches = PatchThrottle(
            self.send, self._lock, interval=interval, clock=clock, timer_loop=timer_loop
        )
        self._live_images: dict[str, bytes] = dict(images or {})
        # The page asks for the widget's module when the JupyterLab extension cannot give it.
        self.on_msg(lambda _widget, content, _buffers: serve_module(self.send, content))

    def _fold(self, live: ViewState, event: Any) -> list[Op]:
        """Fold one stream event into ``live`` and queue its ops (hold the lock)."""
        ops = diff_event(live, event)
        if ops:
            apply_ops(live, ops, in_place=True)
        self._patches.add(ops, boundary=str(field(event, "event", "")) in BOUNDARY_EVENTS)
        return ops

    def _unsynced_images(self) -> tuple[list[str], list[bytes]]:
        """The ids and bytes of the live images the ``images`` trait lacks (hold the lock)."""
        missing = [file_id for file_id in self._live_images if file_id not in self.images]
        return missing, [self._live_images[file_id] for file_id in missing]

    def transcript_html(self) -> str:
        """The widget's content as static, sanitised HTML (each widget says what it shows)."""
        raise NotImplementedError

    def saved_bundle(self) -> dict[str, Any]:
        """The widget's content as a bundle that renders without a kernel (see :mod:`.saved`)."""
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        return {**data, "text/html": self.transcript_html()}, metadata
