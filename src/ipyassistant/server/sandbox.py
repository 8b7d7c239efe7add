"""Confining code-interpreter kernels with bubblewrap (``IPYASSISTANT_CODE_SANDBOX=bwrap``).

Each sandboxed kernel runs under Debian's ``bwrap`` in namespaces of its own, and sees:

- **the system read-only** (``/`` bound read-only, every capability dropped, so nothing can be
  remounted), with a fresh ``/proc`` of its own PID namespace (the server's processes, and so
  their environments, are invisible), a minimal ``/dev``, and an empty ``/run`` (no system
  sockets: D-Bus, a container engine, PostgreSQL's);
- **its thread's directory read-write**, at its own path, and its own connection file and ZMQ
  sockets (the kernel talks to the server over Unix sockets, which cross network namespaces:
  see :mod:`.kernel`);
- **a private** ``/tmp`` (a tmpfs no larger than the kernel's memory cap);
- **neither the data directory** (database, files, other threads' directories) **nor the
  server user's home** (keys and configuration), each covered by an empty read-only tmpfs; the
  kernel Python's own installation is shown again read-only when it lives there;
- **no network** unless ``IPYASSISTANT_CODE_NETWORK=1`` (then the host's network);
- **a clean environment**: ``PATH``, the locale, ``HOME`` (its working directory) and the
  kernel's settings (:func:`.kernel.kernel_env`), none of the server's variables.

``--die-with-parent`` kills the sandbox when the server dies, even by ``kill -9``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .kernel import kernel_env

__all__ = [
    "Bubblewrap",
    "SandboxUnavailable",
    "bwrap_problem",
    "sandbox_env",
    "unavailable",
]

# The server's variables a sandboxed kernel keeps: where programs are, and the locale.
_KEPT_ENV = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ")
# The options every sandbox starts with: namespaces of its own (network aside), no capability
# (the server may run as root), killed with the server.
_BASE = ("--unshare-all", "--cap-drop", "ALL", "--die-with-parent")
# A sandbox that sees the whole file system read-only: for checking that bwrap works here.
_PLAIN = (*_BASE, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev")
# Prints the kernel's Python itself (past a launcher such as pyenv's shims, which the sandbox
# may hide), then what it needs to see: its installation and import path.
_PROBE = (
    "import json, os, sys; e = sys.executable; print(json.dumps([e, sys.prefix, "
    "sys.base_prefix, sys.exec_prefix, os.path.dirname(e), os.path.dirname(os.path.realpath(e)), "
    "*sys.path]))"
)


class SandboxUnavailable(RuntimeError):
    """The sandbox was asked for but cannot run here; the message says what to do."""


def bwrap_problem() -> str | None:
    """Why bubblewrap cannot confine kernels here (not installed, not permitted), or None."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        done = subprocess.run(
            [bwrap, *_PLAIN, "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap could not run: {exc}"
    if done.returncode != 0:
        return f"bwrap does not work here: {done.stderr.strip() or f'exit code {done.returncode}'}"
    return None


def unavailable(problem: str) -> str:
    """The error for a sandbox asked for that cannot run: the ``problem``, and what to do."""
    return (
        f"the code interpreter's sandbox (IPYASSISTANT_CODE_SANDBOX=bwrap) cannot run: "
        f"{problem}. Install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: "
        "dnf install bubblewrap), or set IPYASSISTANT_CODE_SANDBOX=none (ipyassistant serve "
        "--code-sandbox none) to run code unconfined."
    )


def sandbox_env(workdir: Path) -> dict[str, str]:
    """The whole environment of a sandboxed kernel working in ``workdir``."""
    base = {name: os.environ[name] for name in _KEPT_ENV if name in os.environ}
    base.setdefault("PATH", os.defpath)
    base.setdefault("LANG", "C.UTF-8")
    env = kernel_env(base)
    env.update(
        HOME=str(workdir),
        TMPDIR="/tmp",
        # Caches and settings in the private /tmp, not among the thread's files.
        IPYTHONDIR="/tmp/.ipython",
        MPLCONFIGDIR="/tmp/.matplotlib",
        XDG_CACHE_HOME="/tmp/.cache",
        XDG_CONFIG_HOME="/tmp/.config",
    )
    return env


def _covered(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _home() -> list[Path]:
    """The server user's home, hidden in every sandbox (unless it is ``/``)."""
    home = Path.home()
    return [home] if home != Path("/") else []


@dataclass(frozen=True)
class Bubblewrap:
    """How kernels are confined: the ``bwrap`` command line for a kernel (see the module)."""

    bwrap: str
    #: The kernel's Python executable, as it calls itself (a launcher's target).
    python: str
    #: Directories covered by an empty tmpfs (the data directory, the kernels' files).
    hidden: tuple[Path, ...]
    #: The kernel Python's installation under a covered directory, shown again read-only.
    exposed: tuple[Path, ...]
    network: bool
    #: The size of the private /tmp in bytes; 0: no limit of its own.
    tmp_bytes: int

    @classmethod
    def prepare(
        cls, python: str, hidden: Sequence[Path], *, network: bool, tmp_bytes: int
    ) -> Bubblewrap:
        """Check that bubblewrap runs ``python`` here and learn what it must show of it.

        Raises :class:`SandboxUnavailable` saying how to install bubblewrap or turn it off.
        """
        problem = bwrap_problem()
        if problem is not None:
            raise SandboxUnavailable(unavailable(problem))
        bwrap = shutil.which("bwrap") or "bwrap"
        cannot = f"The code interpreter's Python {python} could not run in the bubblewrap sandbox"
        try:
            done = subprocess.run(
                [bwrap, *_PLAIN, python, "-c", _PROBE],
                capture_output=True,
                text=True,
                timeout=60,
                env=sandbox_env(Path("/")),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxUnavailable(f"{cannot}: {exc}") from exc
        try:
            python, *found = json.loads(done.stdout)
            paths = [Path(p) for p in found if p]
        except ValueError as exc:
            raise SandboxUnavailable(f"{cannot}: {done.stderr.strip() or exc}") from exc
        covered = [Path("/tmp"), Path("/run"), *_home(), *hidden]
        shown = sorted({p for p in paths if p.is_dir() and _covered(p, covered)})
        # A directory inside another shown one is shown with it.
        exposed = tuple(p for p in shown if not _covered(p, [q for q in shown if q != p]))
        return cls(bwrap, python, tuple(hidden), exposed, network, max(tmp_bytes, 0))

    def argv(self, workdir: Path, files: Path) -> list[str]:
        """The command prefix that runs a kernel in ``workdir``, its connection in ``files``."""
        args = [self.bwrap, *_BASE]
        if self.network:
            args.append("--share-net")
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        if self.tmp_bytes:
            args += ["--size", str(self.tmp_bytes)]
        args += ["--tmpfs", "/tmp", "--tmpfs", "/run"]
        if self.network:  # a resolv.conf that points into /run still resolves names
            args += ["--ro-bind-try", "/run/systemd/resolve", "/run/systemd/resolve"]
        covers = ["/run", *map(str, [*_home(), *self.hidden])]
        for home in _home():
            args += ["--tmpfs", str(home)]
        for path in self.exposed:
            args += ["--ro-bind", str(path), str(path)]
        for path in self.hidden:
            args += ["--tmpfs", str(path)]
        args += ["--bind", str(files), str(files), "--bind", str(workdir), str(workdir)]
        # The covers are empty and read-only: what the code writes outside its directory and
        # /tmp fails rather than vanishing with the sandbox.
        for cover in covers:
            args += ["--remount-ro", cover]
        args += ["--chdir", str(workdir), "--"]
        return args
