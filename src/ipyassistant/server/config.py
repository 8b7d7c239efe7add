"""The server's configuration: one frozen object, read from arguments or ``IPYASSISTANT_*``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeVar

import platformdirs

__all__ = ["ServerConfig", "default_data_dir", "sandbox_setting"]

_Number = TypeVar("_Number", int, float)


def default_data_dir() -> Path:
    """``IPYASSISTANT_DATA_DIR``, else the user data directory of this platform."""
    env = os.environ.get("IPYASSISTANT_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("ipyassistant", appauthor=False))


def sandbox_setting() -> Literal["none", "bwrap"] | None:
    """``IPYASSISTANT_CODE_SANDBOX`` (``bwrap`` or ``none``); None when unset or empty."""
    value = os.environ.get("IPYASSISTANT_CODE_SANDBOX", "").strip().lower()
    if not value:
        return None
    if value not in ("none", "bwrap"):
        raise ValueError(f"IPYASSISTANT_CODE_SANDBOX must be bwrap or none, got {value!r}")
    return "bwrap" if value == "bwrap" else "none"


def _env_flag(name: str) -> bool:
    """The variable ``name`` as a yes/no: ``1``, ``true``, ``yes`` or ``on`` are yes."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _env_number(name: str, default: _Number) -> _Number:
    """The variable ``name`` as a number of ``default``'s type; ``default`` when unset or empty."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    kind = type(default)
    try:
        return kind(value)
    except ValueError:
        expected = "a whole number" if kind is int else "a number of seconds"
        raise ValueError(f"{name} must be {expected}, got {value!r}") from None


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to know; build it with :meth:`from_env`.

    ``api_key`` is the Bearer key every request must carry. ``database_url`` is any
    SQLAlchemy async URL; by default a SQLite file inside ``data_dir``.
    """

    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None
    #: Connections each server process keeps to a database server (PostgreSQL), at most (one
    #: listens for cancels); a request finding them all busy waits for one. Not used for SQLite.
    database_pool_size: int = 20
    api_key: str | None = None
    #: A JSON request body above this many MB is refused (413) before it is read.
    max_request_mb: int = 32
    #: The same for a file upload (multipart), as OpenAI's limit on a file.
    max_upload_mb: int = 512
    #: Upgrade the database's schema at start (see schema.py); if not, refuse an old one.
    migrate: bool = True
    #: How long a run may wait in ``requires_action`` (and live at all) before it expires.
    run_expiry_seconds: float = 600.0
    #: A worker that has not written its heartbeat for this long is presumed dead and its
    #: active runs are failed by any other worker (or by itself after a restart).
    worker_lease_seconds: float = 10.0
    #: How often a worker writes its heartbeat and looks for dead workers' runs.
    heartbeat_seconds: float = 2.0

    # -- the code interpreter (see server/kernels.py) --
    #: The Python that runs code-interpreter kernels (it needs ipykernel); None: this one.
    code_python: str | None = None
    #: Wall-clock limit of one execution; past it the kernel is interrupted.
    code_timeout_seconds: float = 60.0
    #: How long an interrupted kernel may take to stop before it is killed and replaced.
    code_interrupt_grace_seconds: float = 5.0
    #: Memory cap of each kernel (an rlimit on its data segment); 0: no cap.
    code_memory_mb: int = 2048
    #: The logs of one execution are cut to this many characters (head and tail kept).
    code_output_chars: int = 20_000
    #: Kernels that belong to threads at once; the least recently used idle one makes room.
    code_max_kernels: int = 8
    #: A thread's kernel idle this long is shut down (its files stay).
    code_kernel_ttl_seconds: float = 3600.0
    #: Kernels kept started ahead of need, so a thread's first execution does not wait.
    code_warm_kernels: int = 1
    #: ``bwrap``: kernels confined by bubblewrap (see server/sandbox.py); ``none``: not. Off by
    #: default (the embedded server's code runs as the notebook's user anyway); ``ipyassistant
    #: serve`` turns it on when bubblewrap works.
    code_sandbox: Literal["none", "bwrap"] = "none"
    #: Whether sandboxed kernels reach the network (unsandboxed ones always do).
    code_network: bool = False
    #: A Jupyter Kernel Gateway or Enterprise Gateway (``http://host:8888``) that runs the
    #: kernels instead of this server (see server/gateway.py); ``code_python``,
    #: ``code_memory_mb`` and ``code_sandbox`` are then the gateway's business.
    kernel_gateway_url: str | None = None
    #: Sent to the gateway as ``Authorization: token …``.
    kernel_gateway_token: str | None = None
    #: The gateway's kernel spec to start; None: the gateway's default.
    kernel_gateway_kernel: str | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> ServerConfig:
        """Read ``IPYASSISTANT_*`` variables; keyword arguments that are not ``None`` win."""
        config = cls(
            data_dir=default_data_dir(),
            database_url=os.environ.get("IPYASSISTANT_DATABASE_URL") or None,
            database_pool_size=_env_number("IPYASSISTANT_DATABASE_POOL_SIZE", cls.database_pool_size),
            api_key=os.environ.get("IPYASSISTANT_API_KEY") or None,
            max_request_mb=_env_number("IPYASSISTANT_MAX_REQUEST_MB", 32),
            max_upload_mb=_env_number("IPYASSISTANT_MAX_UPLOAD_MB", 512),
            run_expiry_seconds=_env_number("IPYASSISTANT_RUN_EXPIRY", 600.0),
            worker_lease_seconds=_env_number("IPYASSISTANT_WORKER_LEASE", 10.0),
            heartbeat_seconds=_env_number("IPYASSISTANT_HEARTBEAT", 2.0),
            code_python=os.environ.get("IPYASSISTANT_CODE_PYTHON") or None,
            code_timeout_seconds=_env_number("IPYASSISTANT_CODE_TIMEOUT", 60.0),
            code_interrupt_grace_seconds=_env_number("IPYASSISTANT_CODE_INTERRUPT_GRACE", 5.0),
            code_memory_mb=_env_number("IPYASSISTANT_CODE_MEMORY_MB", 2048),
            code_output_chars=_env_number("IPYASSISTANT_CODE_OUTPUT_CHARS", 20_000),
            code_max_kernels=_env_number("IPYASSISTANT_CODE_MAX_KERNELS", 8),
            code_kernel_ttl_seconds=_env_number("IPYASSISTANT_CODE_KERNEL_TTL", 3600.0),
            code_warm_kernels=_env_number("IPYASSISTANT_CODE_WARM_KERNELS", 1),
            code_sandbox=sandbox_setting() or "none",
            code_network=_env_flag("IPYASSISTANT_CODE_NETWORK"),
            kernel_gateway_url=os.environ.get("IPYASSISTANT_KERNEL_GATEWAY_URL") or None,
            kernel_gateway_token=os.environ.get("IPYASSISTANT_KERNEL_GATEWAY_TOKEN") or None,
            kernel_gateway_kernel=os.environ.get("IPYASSISTANT_KERNEL_GATEWAY_KERNEL") or None,
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        if "data_dir" in given:
            given["data_dir"] = Path(str(given["data_dir"])).expanduser()
        return replace(config, **given)  # type: ignore[arg-type]

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def code_dir(self) -> Path:
        """The code interpreter's working directories, one per thread."""
        return self.data_dir / "code_interpreter"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'ipyassistant.sqlite3'}"

    @property
    def private_dirs(self) -> list[Path]:
        """What sandboxed code must not see: the data directory, and the folder of a SQLite
        database kept outside it."""
        dirs = [self.data_dir]
        url = self.resolved_database_url
        if url.startswith("sqlite"):
            from sqlalchemy.engine import make_url  # only the server needs SQLAlchemy

            database = make_url(url).database
            if database and database != ":memory:":
                folder = Path(database).expanduser().resolve().parent
                if not folder.is_relative_to(self.data_dir.resolve()):
                    dirs.append(folder)
        return dirs
