"""``file_path`` citations of the files the code interpreter saved for the user."""

from __future__ import annotations

from typing import Any

from .. import objects
from .segment import Segment

__all__ = ["cite_saved_files"]


def cite_saved_files(seg: Segment) -> None:
    """Annotate the files the code saved where the message mentions them (``file_path``).

    A file the text does not mention is listed at its end, so that every saved file is
    cited; the addition and the annotations are streamed as message deltas.
    """
    if not seg.saved_files or seg.message is None:
        return
    text = "".join(seg.text)
    spans: list[tuple[str, str, int]] = []
    missing: list[tuple[str, str]] = []
    for path, file_id in seg.saved_files:
        found = next(
            ((n, i) for n in (path, path.rsplit("/", 1)[-1]) if (i := text.find(n)) >= 0),
            None,
        )
        if found is None:
            missing.append((path, file_id))
        else:
            spans.append((found[0], file_id, found[1]))
    if missing:
        extra = ("\n\n" if text else "") + "Files:"
        for path, file_id in missing:
            extra += "\n- "
            spans.append((path, file_id, len(text) + len(extra)))
            extra += path
        seg.text.append(extra)
        seg.sink.emit("thread.message.delta", objects.message_delta(seg.message["id"], 0, extra))
    seg.annotations = [
        {
            "type": "file_path",
            "text": name,
            "start_index": start,
            "end_index": start + len(name),
            "file_path": {"file_id": file_id},
        }
        for name, file_id, start in spans
    ]
    seg.saved_files = []
    seg.sink.emit("thread.message.delta", _annotations_delta(seg.message["id"], seg.annotations))


def _annotations_delta(message_id: str, annotations: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``thread.message.delta`` that adds ``annotations`` to the message's text block."""
    return {
        "id": message_id,
        "object": "thread.message.delta",
        "delta": {
            "content": [
                {
                    "index": 0,
                    "type": "text",
                    "text": {"annotations": [{"index": i, **a} for i, a in enumerate(annotations)]},
                }
            ]
        },
    }
