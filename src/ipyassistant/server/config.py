"""The server's configuration: one frozen object, read from arguments or ``IPYASSISTANT_*``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

__all__ = ["ServerConfig", "default_data_dir"]


def default_data_dir() -> Path:
    """``IPYASSISTANT_DATA_DIR``, else the user data directory of this platform."""
    env = os.environ.get("IPYASSISTANT_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("ipyassistant", appauthor=False))


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to know; build it with :meth:`from_env`.

    ``api_key`` is the Bearer key every request must carry. ``database_url`` is any
    SQLAlchemy async URL; by default a SQLite file inside ``data_dir``.
    """

    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None
    api_key: str | None = None
    #: How long a run may wait in ``requires_action`` (and live at all) before it expires.
    run_expiry_seconds: float = 600.0
    #: A worker that has not written its heartbeat for this long is presumed dead and its
    #: active runs are failed by any other worker (or by itself after a restart).
    worker_lease_seconds: float = 10.0
    #: How often a worker writes its heartbeat and looks for dead workers' runs.
    heartbeat_seconds: float = 2.0

    @classmethod
    def from_env(cls, **overrides: object) -> ServerConfig:
        """Read ``IPYASSISTANT_*`` variables; keyword arguments that are not ``None`` win."""
        config = cls(
            data_dir=default_data_dir(),
            database_url=os.environ.get("IPYASSISTANT_DATABASE_URL") or None,
            api_key=os.environ.get("IPYASSISTANT_API_KEY") or None,
            run_expiry_seconds=_env_float("IPYASSISTANT_RUN_EXPIRY", 600.0),
            worker_lease_seconds=_env_float("IPYASSISTANT_WORKER_LEASE", 10.0),
            heartbeat_seconds=_env_float("IPYASSISTANT_HEARTBEAT", 2.0),
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        if "data_dir" in given:
            given["data_dir"] = Path(str(given["data_dir"])).expanduser()
        return replace(config, **given)  # type: ignore[arg-type]

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'ipyassistant.sqlite3'}"
