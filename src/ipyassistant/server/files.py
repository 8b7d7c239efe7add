"""Where uploaded and generated files live: ``<data dir>/files/<file id>``, nothing else.

The stored name is the file id, never a name from the client, so no upload can write outside
the data directory. Writes go to a temporary file first and are renamed into place, so a
failed upload leaves no partial file behind.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

__all__ = ["FileStore"]

_CHUNK = 1 << 20


class FileStore:
    def __init__(self, root: Path):
        self.root = root

    def path(self, file_id: str) -> Path:
        path = self.root / file_id
        if path.parent != self.root:  # ids are generated, but be strict all the same
            raise ValueError(f"invalid file id {file_id!r}")
        return path

    def write(self, file_id: str, source: BinaryIO) -> int:
        """Copy ``source`` into the store; returns the size in bytes."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(_CHUNK):
                    out.write(chunk)
                    size += len(chunk)
            os.replace(tmp, self.path(file_id))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size

    def write_bytes(self, file_id: str, data: bytes) -> int:
        return self.write(file_id, io.BytesIO(data))

    def read_bytes(self, file_id: str) -> bytes:
        return self.path(file_id).read_bytes()

    def delete(self, file_id: str) -> None:
        self.path(file_id).unlink(missing_ok=True)
