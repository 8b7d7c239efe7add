"""People's keys for the tests, made the way an operator makes them: ``ipyassistant keys``."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from ipyassistant.cli import main


def keys_command(data_dir: Path, *args: str) -> tuple[int, str, str]:
    """Run ``ipyassistant keys ARGS --data-dir DATA_DIR``: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["keys", *args, "--data-dir", str(data_dir)])
    return status, out.getvalue(), err.getvalue()


def make_key(data_dir: Path, name: str, *, admin: bool = False) -> str:
    """A new key for ``name`` in the database of the server at ``data_dir``."""
    status, out, err = keys_command(data_dir, "create", name, *(["--admin"] if admin else []))
    assert status == 0, err
    return out.strip()
