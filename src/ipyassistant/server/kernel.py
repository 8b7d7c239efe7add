"""One code-interpreter kernel: its process, its environment, and speaking to it.

A kernel is an ``ipykernel`` process started and spoken to with ``jupyter_client``'s
:class:`AsyncKernelManager` and :class:`AsyncKernelClient`; :mod:`.kernels` pools them. What
the pool needs of any kernel, this one or one on a gateway (:mod:`.gateway`), is
:class:`PooledKernel`.

- **Memory** is capped by an rlimit on the kernel's data segment (``RLIMIT_DATA``: heap and
  private mappings, which on Linux is what allocations consume; unlike ``RLIMIT_AS`` it does
  not count the address space that thread stacks and allocator arenas merely reserve), set
  before ipykernel starts and inherited by anything the code spawns.
- **Environment.** The kernel's environment is the server's, less variables that look like
  credentials, with numerical libraries held to a few threads (a sandboxed kernel's is a
  minimal one instead: see :mod:`.sandbox`).
- **Transport.** Kernels talk to the server over Unix sockets (ZMQ's ``ipc`` transport) in a
  private (0700) temporary directory, one folder a kernel, rather than loopback TCP: other local
  users cannot read their output, and a sandboxed kernel (:mod:`.sandbox`), whose network
  namespace has a loopback of its own, reaches the server through its folder bound inside.
- **Dying with the server.** A kernel asks for ``SIGKILL`` when the server dies
  (``PR_SET_PDEATHSIG``, before ipykernel starts), so that even ``kill -9`` of the server
  leaves no kernel behind. The signal follows the *thread* that started the kernel: the
  server's event loop thread, which lives as long as the server.

Still, unless sandboxed (:mod:`.sandbox`), this is a separate process with resource limits,
**not a security sandbox**: the code runs as the server's user and can read and write whatever
that user can, and reach the network.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any, Literal, Protocol

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

__all__ = [
    "Kernel",
    "KernelStartError",
    "OutputHook",
    "PooledKernel",
    "Stat",
    "describe_exit",
    "follow",
    "kernel_env",
    "kernel_files",
    "kernel_specs",
    "new_manager",
    "run_quietly",
    "scan_files",
    "shut_down",
    "spawn",
    "start_error",
]

log = logging.getLogger("ipyassistant.server")

#: A file's size and modification time (in ns): what tells a changed file from the same one.
Stat = tuple[int, int]
#: Receives each output message of an execution: its ``msg_type`` and ``content``.
OutputHook = Callable[[str, dict[str, Any]], None]

# Runs in the kernel's Python before ipykernel: set the memory rlimit, ask for SIGKILL when the
# server (``parent``) dies, then start the kernel exactly as ``python -m ipykernel_launcher``
# would. An inline program rather than a module of this package, because the kernel's Python
# need not have ipyassistant installed. In a sandbox (``parent`` 0) bwrap kills the kernel with
# the server, and the server's pid means nothing in the sandbox's PID namespace: ipykernel's
# own watch of its parent, which would take bwrap's init for a dead parent, is left off.
_BOOTSTRAP = """\
import os, sys
limit = int(sys.argv.pop(1))
parent = int(sys.argv.pop(1))
if parent:
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the server died before the signal was asked for
        os._exit(1)
else:
    os.environ.pop("JPY_PARENT_PID", None)
if limit:
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    except (ImportError, AttributeError, ValueError, OSError):
        pass
if sys.path and sys.path[0] == "":
    del sys.path[0]
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"""

# Environment variables the kernel does not inherit: the server's credentials and settings,
# and the parent notebook's kernel identity when the server is embedded in a kernel.
_PRIVATE_ENV = re.compile(
    r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|DATABASE_URL|DSN"
    r"|^IPYASSISTANT_|^OPENAI_|^JPY_",
    re.IGNORECASE,
)
# Numerical libraries start a thread per core, each with its own stack and buffers; on a
# large machine that alone could exceed the memory cap, and several kernels share the CPUs.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_MAX_THREADS = 4
# How often a silent kernel is checked for death while an execution waits for output.
_POLL_SECONDS = 0.2
_KERNEL_NAME = "ipyassistant-python"


class KernelStartError(RuntimeError):
    """A kernel could not be started (a wrong Python, ipykernel missing, a time-out)."""


class _SpecManager(KernelSpecManager):
    """Serves the one kernel spec the pool uses, instead of searching Jupyter's paths."""

    def __init__(self, spec: KernelSpec):
        super().__init__()
        self._spec = spec

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return self._spec


def kernel_specs(
    python: str, memory_mb: int, wrapper: Sequence[str] = ()
) -> KernelSpecManager:
    """The spec of a kernel run by ``python``, capped at ``memory_mb`` (0: no cap).

    ``wrapper`` is the command that runs it in a sandbox (:mod:`.sandbox`). A sandboxed kernel
    is interrupted by a message, which ipykernel turns into ``SIGINT`` to itself: a signal to
    its process group would reach bwrap, which dies of it and takes the kernel along.
    """
    limit = max(memory_mb, 0) * 1024 * 1024
    parent = 0 if wrapper else os.getpid()
    return _SpecManager(
        KernelSpec(
            argv=[
                *wrapper,
                python,
                "-c",
                _BOOTSTRAP,
                str(limit),
                str(parent),
                "-f",
                "{connection_file}",
                # Keep the model's code out of the user's IPython history.
                "--HistoryManager.hist_file=:memory:",
            ],
            display_name="ipyassistant code interpreter",
            language="python",
            interrupt_mode="message" if wrapper else "signal",
            env={},
        )
    )


def kernel_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment kernels start with: ``base`` (the server's) with the kernel's settings."""
    inherited = os.environ if base is None else base
    env = {k: v for k, v in inherited.items() if not _PRIVATE_ENV.search(k)}
    # Figures become PNG display data (plt.show() and at the end of each cell).
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env["PYTHONUNBUFFERED"] = "1"
    # Keep debugpy from warning about frozen modules on every start.
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    threads = str(min(os.cpu_count() or 1, _MAX_THREADS))
    for name in _THREAD_VARS:
        env.setdefault(name, threads)
    return env


def describe_exit(code: int | None) -> str:
    """Why a kernel process ended, from its exit code: ``killed by SIGKILL, perhaps ...``."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        reason = f"killed by {name}"
        if -code == signal.SIGKILL:
            reason += ", perhaps for using too much memory"
        return reason
    return f"exit code {code}"


def _log_path(manager: AsyncKernelManager) -> Path:
    """Where the kernel's stderr goes: beside its connection file."""
    return Path(manager.connection_file).with_suffix(".log")


def _log_tail(path: Path, limit: int = 2000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.strip().splitlines() if "running over TCP without" not in line]
    return "\n".join(lines)[-limit:]


def kernel_files(runtime: Path) -> Path:
    """A new folder in ``runtime`` for one kernel's connection file, sockets and log."""
    files = runtime / uuid.uuid4().hex[:12]
    files.mkdir(mode=0o700)
    return files


def scan_files(top: Path, base: Path) -> dict[str, Stat]:
    """The files under ``top`` (hidden ones and hidden folders skipped): their paths relative to
    ``base``, with ``/``, and their size and modification time in ns."""
    found: dict[str, Stat] = {}
    for folder, dirs, names in os.walk(top):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            path = Path(folder, name)
            try:
                stat = path.stat()
            except OSError:
                continue
            found[path.relative_to(base).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return found


def new_manager(specs: KernelSpecManager, files: Path) -> AsyncKernelManager:
    """The manager of a new kernel whose connection file (and sockets) are in ``files``."""
    options: dict[str, Any] = {"connection_file": str(files / "kernel.json")}
    if sys.platform != "win32":
        options.update(transport="ipc", ip=str(files / "zmq"))
    return AsyncKernelManager(kernel_spec_manager=specs, kernel_name=_KERNEL_NAME, **options)


async def spawn(manager: AsyncKernelManager, env: dict[str, str]) -> None:
    """Start the manager's kernel process, its stderr to a private log beside its files."""
    log_path = _log_path(manager)
    stderr = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        await manager.start_kernel(
            cwd=str(log_path.parent), env=dict(env), stdout=subprocess.DEVNULL, stderr=stderr
        )
    finally:
        os.close(stderr)  # the kernel has its own copy


def start_error(manager: AsyncKernelManager, python: str, exc: Exception) -> KernelStartError:
    """Why the kernel could not start: the end of its log, else ``exc``."""
    detail = _log_tail(_log_path(manager)) or f"{type(exc).__name__}: {exc}"
    return KernelStartError(
        f"Could not start a Jupyter kernel with {python} (it needs ipykernel installed): {detail}"
    )


async def shut_down(manager: AsyncKernelManager, client: AsyncKernelClient | None) -> None:
    """Kill the kernel's process group and remove its files; never raises an ``Exception``."""
    try:
        if client is not None:
            client.stop_channels()
        if manager.has_kernel:
            await manager.shutdown_kernel(now=True)
        else:
            await manager.cleanup_resources()
    except Exception:
        log.warning("could not shut a kernel down cleanly", exc_info=True)
    finally:
        shutil.rmtree(_log_path(manager).parent, ignore_errors=True)


class PooledKernel(Protocol):
    """What the pool (:mod:`.kernels`) needs of a kernel, wherever it runs.

    :class:`Kernel` is a local process; :class:`.gateway.GatewayKernel` runs on a Jupyter
    Kernel (or Enterprise) Gateway.
    """

    #: The local process id, or 0 (a kernel on a gateway has none here).
    pid: int
    last_used: float

    async def start(self, timeout: float) -> None:
        """Start the kernel and wait until it answers; raises :class:`KernelStartError`."""
        ...

    async def is_alive(self) -> bool: ...

    async def death(self) -> str:
        """Why the kernel is gone, after a verb: ``died (exit code 3)``."""
        ...

    async def execute(self, code: str, *, silent: bool = False) -> str:
        """Send an execute request; returns its message id (outputs come from :meth:`collect`)."""
        ...

    async def collect(
        self, msg_id: str, seconds: float, on_output: OutputHook | None
    ) -> Literal["idle", "timeout", "died"]:
        """Pass the execution's output on until the kernel is idle, dies or time is up."""
        ...

    async def interrupt(self) -> None: ...

    async def enter(self, workdir: Path, timeout: float) -> None:
        """Make a new kernel work in the thread's directory ``workdir`` (its files included)."""
        ...

    async def send_files(self, workdir: Path, timeout: float) -> None:
        """Before an execution: give the kernel the files of ``workdir`` it does not have."""
        ...

    async def fetch_files(self, workdir: Path, timeout: float) -> None:
        """After an execution: bring what the code saved in ``output/`` into ``workdir``."""
        ...

    async def close(self) -> None:
        """Shut the kernel down and free what it holds; never raises an ``Exception``."""
        ...


async def follow(
    receive: Callable[[float], Awaitable[dict[str, Any] | None]],
    alive: Callable[[], Awaitable[bool]],
    msg_id: str,
    seconds: float,
    on_output: OutputHook | None,
    poll: float,
) -> Literal["idle", "timeout", "died"]:
    """Pass an execution's output on until the kernel is idle, dies or time is up.

    ``receive(timeout)`` gives the kernel's next iopub message, or None when none came in time
    (or the kernel is gone); then ``alive()`` says whether to wait on. It is asked at least
    every ``poll`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        wait = deadline - loop.time()
        if wait <= 0:
            return "timeout"
        msg = await receive(min(wait, poll))
        if msg is None:
            if not await alive():
                return "died"
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue  # a previous execution's stragglers, or a silent set-up
        kind = msg["msg_type"]
        if kind == "status":
            if msg["content"].get("execution_state") == "idle":
                return "idle"
        elif on_output is not None:
            on_output(kind, msg["content"])


async def run_quietly(kernel: PooledKernel, code: str, timeout: float, doing: str) -> str:
    """Run the server's own ``code`` silently (no history, nothing shown); returns its stdout.

    Raises :class:`KernelStartError`, saying what it was ``doing``, when the code fails, the
    kernel dies or time is up.
    """
    msg_id = await kernel.execute(code, silent=True)
    out: list[str] = []
    errors: list[str] = []

    def on_output(kind: str, content: dict[str, Any]) -> None:
        if kind == "stream" and content.get("name") == "stdout":
            out.append(str(content.get("text", "")))
        elif kind == "error":
            errors.append(f"{content.get('ename')}: {content.get('evalue')}")

    state = await kernel.collect(msg_id, timeout, on_output)
    if state != "idle" or errors:
        detail = errors[0] if errors else {"timeout": "timed out", "died": "the kernel died"}[state]
        raise KernelStartError(f"The kernel could not {doing}: {detail}")
    return "".join(out)


@dataclass(eq=False)
class Kernel:
    """A local kernel process: its manager, the client speaking to it, when it was last used.

    Its working directory is on the server's disk, so files need no sending.
    """

    manager: AsyncKernelManager
    env: dict[str, str]
    #: The Python named in errors when the kernel cannot start.
    python: str
    client: AsyncKernelClient | None = None
    pid: int = 0
    last_used: float = field(default_factory=time.monotonic)

    async def start(self, timeout: float) -> None:
        try:
            await spawn(self.manager, self.env)
            self.client = self.manager.client()
            self.client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
            await self.client.wait_for_ready(timeout=timeout)
        except Exception as exc:
            raise start_error(self.manager, self.python, exc) from exc
        self.pid = int(getattr(self.manager.provisioner, "pid", 0) or 0)

    async def is_alive(self) -> bool:
        return bool(await self.manager.is_alive())

    async def death(self) -> str:
        provisioner = self.manager.provisioner
        code = None if provisioner is None else await provisioner.poll()
        return f"died ({describe_exit(code)})"

    async def execute(self, code: str, *, silent: bool = False) -> str:
        assert self.client is not None
        await self._drain_replies()
        return str(
            self.client.execute(code, silent=silent, store_history=not silent, allow_stdin=False)
        )

    async def collect(
        self, msg_id: str, seconds: float, on_output: OutputHook | None
    ) -> Literal["idle", "timeout", "died"]:
        return await follow(self._receive, self.is_alive, msg_id, seconds, on_output, _POLL_SECONDS)

    async def _receive(self, timeout: float) -> dict[str, Any] | None:
        assert self.client is not None
        try:
            return dict(await self.client.get_iopub_msg(timeout=timeout))
        except Empty:
            return None

    async def interrupt(self) -> None:
        await self.manager.interrupt_kernel()

    async def enter(self, workdir: Path, timeout: float) -> None:
        code = f"import os as _os\n_os.chdir({str(workdir)!r})\ndel _os"
        await run_quietly(self, code, timeout, f"enter {workdir}")

    async def send_files(self, workdir: Path, timeout: float) -> None:
        """Nothing to send: the kernel works in ``workdir`` itself."""

    async def fetch_files(self, workdir: Path, timeout: float) -> None:
        """Nothing to fetch: the code saved its files in ``workdir`` itself."""

    async def close(self) -> None:
        await shut_down(self.manager, self.client)

    async def _drain_replies(self) -> None:
        """Drop execute replies already received (the iopub status told us all we use).

        Without this they would pile up in the shell socket; waiting for each right after its
        execution would cost a round trip, so they are dropped before the next one instead.
        """
        assert self.client is not None
        while await self.client.shell_channel.msg_ready():
            await self.client.get_shell_msg(timeout=0)
