"""What a view leaves in the saved notebook: a MIME bundle that renders without a kernel.

A live widget's output is only a reference to a model in the kernel (``model_id``): after the
kernel is gone, JupyterLab shows "Error displaying widget: model not found", and the widget
MIME type wins over any ``text/html`` beside it. So a view that is over (a finished run, an
object's transcript) is shown, and saved, as a bundle that needs no kernel:

- ``application/vnd.ipyassistant.view+json`` (:data:`VIEW_MIME`): the view states and their
  images (base64), drawn by the JupyterLab extension shipped with the package with the same
  renderers as the live widgets (math, highlighting, Copy and "Insert into a new cell");
- ``text/html``: the static transcript (:mod:`.transcript`), for nbconvert, GitHub and front
  ends without the extension;
- ``text/plain``.

A :class:`~.chat_panel.ChatPanel` stays a widget (it takes input), so its bundle carries the
widget view as well, with the ``model_id`` in :data:`VIEW_MIME`'s data: the extension draws the
live widget while its model is alive and the saved conversation once it is not.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from .transcript import transcript_html
from .view_state import ViewState, file_ids

__all__ = ["VIEW_MIME", "provenance", "saved_bundle", "view_data"]

#: The MIME type of a view's saved data (its version is in the data: ``"version": 1``).
VIEW_MIME = "application/vnd.ipyassistant.view+json"


def view_data(
    kind: str,
    states: Sequence[ViewState],
    images: Mapping[str, bytes],
    *,
    model_id: str | None = None,
) -> dict[str, Any]:
    """The JSON of :data:`VIEW_MIME`: the states and the images they show, base64-encoded.

    ``kind`` is ``"run"`` (one run or a thread's transcript) or ``"chat"`` (a ChatPanel's
    history and turns); ``model_id`` names the live widget, when there is one.
    """
    shown = {file_id for state in states for file_id in file_ids(state)}
    data: dict[str, Any] = {
        "version": 1,
        "kind": kind,
        "states": [dict(state) for state in states],
        "images": {
            file_id: base64.b64encode(data).decode("ascii")
            for file_id, data in images.items()
            if file_id in shown
        },
    }
    if model_id is not None:
        data["model_id"] = model_id
    return data


def saved_bundle(
    kind: str,
    states: Sequence[ViewState],
    images: Mapping[str, bytes],
    text: str,
    *,
    model_id: str | None = None,
) -> dict[str, Any]:
    """The whole bundle of a view that renders without a kernel (see the module docstring)."""
    return {
        VIEW_MIME: view_data(kind, states, images, model_id=model_id),
        "text/html": "".join(transcript_html(state, images) for state in states),
        "text/plain": text,
    }


def provenance(states: Sequence[ViewState]) -> dict[str, Any]:
    """Output metadata naming where the answers in ``states`` came from (``{}`` before a run).

    ``{"ipyassistant": {"assistant", "thread", "run", "model"}}`` for the latest run, and
    ``"runs"`` listing every run when the view shows several (a chat), so that a reader of a
    saved notebook knows which assistant, thread, run and model gave each answer.
    """
    runs = [run for state in states if (run := state.get("run")) is not None]
    if not runs:
        return {}
    last = runs[-1]
    about: dict[str, Any] = {
        "assistant": last["assistant_id"],
        "thread": last["thread_id"],
        "run": last["id"],
        "model": last["model"],
    }
    if len(runs) > 1:
        about["runs"] = [
            {"run": run["id"], "assistant": run["assistant_id"], "model": run["model"]}
            for run in runs
        ]
    return {"ipyassistant": about}
