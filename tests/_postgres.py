"""A throw-away PostgreSQL cluster for the tests and benchmarks: initdb in a temporary folder.

The cluster runs as the ``postgres`` user when the tests run as root (PostgreSQL refuses to run
as root), listens only on a Unix socket in its own folder (no port to collide with another
run's), and trades durability for speed (no fsync: it is deleted at the end anyway).

Each test server gets a database of its own, copied from a template that already holds the
schema at its newest revision, which costs a few milliseconds instead of a migration.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = ["PostgresCluster", "postgres_bin_dir"]

#: Where Debian's ``postgresql`` package puts its programs, one folder per major version.
_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_TEMPLATE = "ipyassistant_template"


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's programs (initdb, postgres), or None."""
    found = [Path(d) for d in glob.glob(_BIN_GLOB) if (Path(d) / "initdb").exists()]
    if not found:
        return None
    return max(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)


class PostgresCluster:
    """A running cluster: :meth:`new_database` gives a fresh database's async URL."""

    def __init__(self, bin_dir: Path | None = None):
        bin_dir = bin_dir or postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError(f"PostgreSQL is not installed (no {_BIN_GLOB}/initdb)")
        self.bin_dir = bin_dir
        # Short: a Unix socket's path must fit in ~100 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="ipa-pg-"))
        self.data = self.dir / "data"
        self.user = "postgres"
        # How the programs run: as ``postgres`` when we are root (PostgreSQL refuses root), the
        # folder then belonging to it; else as ourselves.
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        self._count = 0
        self._run(
            str(bin_dir / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust",
            "--encoding=UTF8", "--no-locale", "--no-sync",
        )  # fmt: skip
        # A Unix socket in its folder and no TCP; no durability (the cluster is thrown away).
        settings = {
            "listen_addresses": "",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
        }
        command = [str(bin_dir / "postgres"), "-D", str(self.data), "-k", str(self.dir)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        with open(self.dir / "server.log", "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, **self._as
            )
        self._wait_ready()

    def _run(self, *command: str) -> None:
        result = subprocess.run(
            command, capture_output=True, text=True, cwd=self.dir, **self._as
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {result.stderr or result.stdout}")

    def url(self, database: str, driver: str = "asyncpg") -> str:
        """The SQLAlchemy URL of ``database`` (``asyncpg``, ``psycopg`` or a sync driver)."""
        return f"postgresql+{driver}://{self.user}@/{database}?host={self.dir}"

    def _wait_ready(self, timeout: float = 30) -> None:
        socket_file = self.dir / ".s.PGSQL.5432"
        deadline = time.monotonic() + timeout
        while not socket_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "server.log").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start:\n{log}")
            time.sleep(0.02)

    def _admin(self) -> sa.Engine:
        return sa.create_engine(self.url("postgres", "psycopg"), isolation_level="AUTOCOMMIT")

    def prepare_template(self) -> None:
        """The template every test database copies: the schema at its newest revision."""
        from ipyassistant.server import schema

        engine = self._admin()
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {_TEMPLATE}")
        engine.dispose()
        schema.upgrade(self.url(_TEMPLATE))

    def new_database(self, *, empty: bool = False) -> str:
        """A new database's async URL: a copy of the migrated template, or ``empty``."""
        self._count += 1
        name = f"test_{self._count}"
        source = "template0" if empty else _TEMPLATE
        # PostgreSQL 15's default strategy writes the copy to the WAL: slower for small ones.
        version = self.bin_dir.parent.name
        strategy = " STRATEGY FILE_COPY" if version.isdigit() and int(version) >= 15 else ""
        engine = self._admin()
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE {source}{strategy}")
        engine.dispose()
        return self.url(name)

    def pid(self) -> int:
        """The postmaster's process id (the parent of every backend)."""
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            # SIGINT: the "fast" shutdown (SIGTERM's "smart" one waits for clients to leave).
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
