"""Images a run produced (code-interpreter plots), as bytes that display in IPython."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Image"]


@dataclass(frozen=True)
class Image:
    """One image file of a run: its Files API id and its bytes (PNG, JPEG, GIF or WebP).

    In IPython and Jupyter an ``Image`` displays as the picture itself.
    """

    file_id: str
    data: bytes

    @property
    def mime_type(self) -> str:
        if self.data.startswith(b"\xff\xd8"):
            return "image/jpeg"
        if self.data.startswith(b"GIF8"):
            return "image/gif"
        if self.data[8:12] == b"WEBP":
            return "image/webp"
        return "image/png"

    def save(self, path: str | Path) -> Path:
        """Write the image's bytes to ``path``; returns the path."""
        path = Path(path)
        path.write_bytes(self.data)
        return path

    def _repr_png_(self) -> bytes | None:
        return self.data if self.mime_type == "image/png" else None

    def _repr_jpeg_(self) -> bytes | None:
        return self.data if self.mime_type == "image/jpeg" else None

    def __repr__(self) -> str:
        return f"Image(file_id={self.file_id!r}, {self.mime_type}, {len(self.data)} bytes)"
