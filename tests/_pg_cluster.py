"""A throw-away PostgreSQL cluster: initdb in a temporary folder, served on a Unix socket there.

Used by the multi-process tests and ``bench/team_server.py``. The cluster runs as the
``postgres`` user when this process is root (PostgreSQL refuses to run as root), listens on no
TCP port, and is stopped (immediate mode) and deleted by :meth:`PostgresCluster.stop`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PostgresCluster", "postgres_bin"]


def postgres_bin() -> Path | None:
    """The folder of Debian's ``initdb``/``pg_ctl`` (the newest version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


class PostgresCluster:
    """A PostgreSQL server of its own; :attr:`url` is its SQLAlchemy asyncpg URL."""

    def __init__(self, max_connections: int = 200) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (no pg_ctl)")
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="ipyassistant-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-c listen_addresses='' -c unix_socket_directories={self.socket_dir} "
            f"-c max_connections={max_connections} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-w", "-l", str(self.root / "log"), "start")
        self.url = f"postgresql+asyncpg://postgres@/postgres?host={self.socket_dir}"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def create_database(self, name: str) -> str:
        """A new empty database on this cluster; its URL."""
        command = [str(self.bin.parent / "bin" / "psql")]
        if not Path(command[0]).exists():
            command = ["psql"]
        subprocess.run(
            [*command, "-h", str(self.socket_dir), "-U", "postgres", "-d", "postgres", "-c", f'CREATE DATABASE "{name}"'],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return f"postgresql+asyncpg://postgres@/{name}?host={self.socket_dir}"

    def pid(self) -> int:
        """The postmaster's process id (the parent of every backend)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
