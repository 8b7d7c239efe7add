"""One code-interpreter kernel: its process, its environment, and speaking to it.

A kernel is an ``ipykernel`` process started and spoken to with ``jupyter_client``'s
:class:`AsyncKernelManager` and :class:`AsyncKernelClient`; :mod:`.kernels` pools them.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any, Literal

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

__all__ = [
    "Kernel",
    "KernelStartError",
    "OutputHook",
    "describe_exit",
    "kernel_env",
    "kernel_files",
    "kernel_specs",
    "new_manager",
    "shut_down",
    "spawn",
    "start_error",
]

log = logging.getLogger("ipyassistant.server")

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


@dataclass(eq=False)
class Kernel:
    """A started kernel: its manager, the client speaking to it, and when it was last used."""

    manager: AsyncKernelManager
    client: AsyncKernelClient
    pid: int
    last_used: float = field(default_factory=time.monotonic)

    async def collect(
        self, msg_id: str, seconds: float, on_output: OutputHook | None
    ) -> Literal["idle", "timeout", "died"]:
        """Pass the execution's output on until the kernel is idle, dies or time is up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            wait = deadline - loop.time()
            if wait <= 0:
                return "timeout"
            try:
                msg = await self.client.get_iopub_msg(timeout=min(wait, _POLL_SECONDS))
            except Empty:
                if not await self.manager.is_alive():
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

    async def exit_code(self) -> int | None:
        """The process's exit code, or None while it runs (or when unknown)."""
        provisioner = self.manager.provisioner
        return None if provisioner is None else await provisioner.poll()

    async def enter(self, workdir: Path, timeout: float) -> None:
        """Move a new kernel into the thread's working directory."""
        code = f"import os as _os\n_os.chdir({str(workdir)!r})\ndel _os"
        msg_id = self.client.execute(code, silent=True, store_history=False)
        errors: list[str] = []

        def on_output(kind: str, content: dict[str, Any]) -> None:
            if kind == "error":
                errors.append(f"{content.get('ename')}: {content.get('evalue')}")

        state = await self.collect(msg_id, timeout, on_output)
        if state != "idle" or errors:
            raise KernelStartError(
                f"The kernel could not enter {workdir}: {errors[0] if errors else state}"
            )

    async def drain_replies(self) -> None:
        """Drop execute replies already received (the iopub status told us all we use).

        Without this they would pile up in the shell socket; waiting for each right after its
        execution would cost a round trip, so they are dropped before the next one instead.
        """
        while await self.client.shell_channel.msg_ready():
            await self.client.get_shell_msg(timeout=0)
