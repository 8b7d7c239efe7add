"""The code interpreter's Jupyter kernels: one per thread, a warm pool, and their limits.

Each thread that runs code owns one kernel, an ``ipykernel`` process started and spoken to with
``jupyter_client``'s :class:`AsyncKernelManager` and :class:`AsyncKernelClient`. The kernel is
kept between runs, so variables persist as in a notebook, and works in the thread's own
directory. The pool around them:

- **Warm pool.** ``warm`` kernels are started in the background before anyone needs one. A
  thread's first execution takes a warm kernel (or waits for the one being started, which is
  never slower than starting another), changes its working directory, and a replacement starts
  in the background. Start-up is the expensive part of a kernel (about a second); a change of
  directory costs a round trip.
- **At most ``max_kernels`` kernels belong to threads.** Making room shuts down the least
  recently used idle kernel; when every kernel is busy the newcomer waits for one to finish.
  Warm kernels are not counted.
- **Idle kernels are shut down** after ``idle_seconds``; the thread's files stay on disk.
- **Limits.** An execution that outlives its timeout is interrupted (SIGINT to the kernel's
  process group); a kernel that does not stop within ``interrupt_grace`` seconds is killed. A
  kernel that dies (``os._exit``, a segfault, out of memory) is discarded. Either way the
  thread's next execution gets a fresh kernel, and :class:`Execution` says why. Memory is capped
  by an rlimit on the kernel's data segment (``RLIMIT_DATA``: heap and private mappings, which
  on Linux is what allocations consume; unlike ``RLIMIT_AS`` it does not count the address
  space that thread stacks and allocator arenas merely reserve), set before ipykernel starts
  and inherited by anything the code spawns.
- **Nothing outlives the pool.** :meth:`KernelPool.stop` kills every kernel's process group (the
  kernel and whatever it spawned). A kernel whose server dies without ``stop()`` exits by itself:
  ipykernel watches its parent process (``JPY_PARENT_PID``).

Kernels talk to the server over Unix sockets in a private (0700) temporary directory rather
than loopback TCP, so that other local users cannot read their output. Still, this is a
separate process with resource limits, **not a security sandbox**: the code runs as the
server's user and can read and write whatever that user can, and reach the network. The
kernel's environment is the server's, less variables that look like credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any, Literal

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

__all__ = ["Execution", "KernelPool", "KernelStartError", "OutputHook"]

log = logging.getLogger("ipyassistant.server")

#: Receives each output message of an execution: its ``msg_type`` and ``content``.
OutputHook = Callable[[str, dict[str, Any]], None]

# Runs in the kernel's Python before ipykernel: set the memory rlimit, then start the kernel
# exactly as ``python -m ipykernel_launcher`` would. An inline program rather than a module of
# this package, because the kernel's Python need not have ipyassistant installed.
_BOOTSTRAP = """\
import sys
limit = int(sys.argv.pop(1))
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
# At the latest this long after a thread takes a warm kernel, a replacement starts.
_REFILL_DELAY = 1.0
# How many reasons for lost kernels are remembered (for the threads' next executions).
_MAX_LOST = 10_000
_KERNEL_NAME = "ipyassistant-python"


class KernelStartError(RuntimeError):
    """A kernel could not be started (a wrong Python, ipykernel missing, a time-out)."""


@dataclass
class Execution:
    """How one execution went (its output went to the :data:`OutputHook`)."""

    #: ``completed`` (the code ran to its end, exceptions included), ``timeout`` (it was
    #: interrupted) or ``died`` (the kernel process ended).
    outcome: Literal["completed", "timeout", "died"]
    #: The code ran in a kernel started for it: nothing from earlier executions is defined.
    fresh: bool = False
    #: Why the thread's previous kernel went away (``"died (exit code 1)"``), when known.
    previous: str | None = None
    #: Sentences about the kernel itself (killed, died), for the model and the user.
    notes: list[str] = field(default_factory=list)


@dataclass(eq=False)
class _Kernel:
    manager: AsyncKernelManager
    client: AsyncKernelClient
    pid: int
    last_used: float = field(default_factory=time.monotonic)


class _SpecManager(KernelSpecManager):
    """Serves the one kernel spec the pool uses, instead of searching Jupyter's paths."""

    def __init__(self, spec: KernelSpec):
        super().__init__()
        self._spec = spec

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return self._spec


def kernel_env() -> dict[str, str]:
    """The environment kernels start with."""
    env = {k: v for k, v in os.environ.items() if not _PRIVATE_ENV.search(k)}
    # Figures become PNG display data (plt.show() and at the end of each cell).
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env["PYTHONUNBUFFERED"] = "1"
    # Keep debugpy from warning about frozen modules on every start.
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    threads = str(min(os.cpu_count() or 1, _MAX_THREADS))
    for name in _THREAD_VARS:
        env.setdefault(name, threads)
    return env


def _describe_exit(code: int | None) -> str:
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


def _open_log(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


def _log_tail(path: Path, limit: int = 2000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.strip().splitlines() if "running over TCP without" not in line]
    return "\n".join(lines)[-limit:]


class KernelPool:
    """Kernels by thread id, with a warm pool; see the module docstring."""

    def __init__(
        self,
        *,
        python: str | None = None,
        memory_mb: int = 2048,
        max_kernels: int = 8,
        idle_seconds: float = 3600.0,
        warm: int = 1,
        interrupt_grace: float = 5.0,
        start_timeout: float = 60.0,
    ):
        if max_kernels < 1:
            raise ValueError("max_kernels must be at least 1")
        self.python = python or sys.executable
        self.memory_mb = memory_mb
        self.max_kernels = max_kernels
        self.idle_seconds = idle_seconds
        self.warm = max(warm, 0)
        self.interrupt_grace = interrupt_grace
        self.start_timeout = start_timeout
        limit = max(memory_mb, 0) * 1024 * 1024
        self._specs = _SpecManager(
            KernelSpec(
                argv=[
                    self.python,
                    "-c",
                    _BOOTSTRAP,
                    str(limit),
                    "-f",
                    "{connection_file}",
                    # Keep the model's code out of the user's IPython history.
                    "--HistoryManager.hist_file=:memory:",
                ],
                display_name="ipyassistant code interpreter",
                language="python",
                interrupt_mode="signal",
                env={},
            )
        )
        self._env = kernel_env()
        self._runtime: Path | None = None
        #: Every kernel manager with a process (or about to have one), and its client.
        self._managers: dict[AsyncKernelManager, AsyncKernelClient | None] = {}
        #: Warm kernels: start tasks, done or still running, oldest first.
        self._warm: list[asyncio.Task[_Kernel]] = []
        #: Thread kernels, least recently used first.
        self._threads: OrderedDict[str, _Kernel] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._lost: dict[str, str] = {}
        self._starting = 0
        self._room: asyncio.Condition | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: dict[AsyncKernelManager, asyncio.Task[None]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start filling the warm pool; returns at once."""
        self._stopping = False
        self._room = asyncio.Condition()
        self._runtime = Path(tempfile.mkdtemp(prefix="ipya-"))
        # A private IPython directory: the user's profile and startup files are theirs.
        self._env["IPYTHONDIR"] = str(self._runtime / "ipython")
        self._reaper = asyncio.create_task(self._reap(), name="ipyassistant-kernel-reaper")
        self._refill()

    async def stop(self) -> None:
        """Kill every kernel (and whatever its code spawned); waits until they are gone."""
        self._stopping = True
        if self._reaper is not None:
            self._reaper.cancel()
        for task in [*self._warm, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._warm, *self._tasks, return_exceptions=True)
        if self._reaper is not None:
            await asyncio.gather(self._reaper, return_exceptions=True)
        await asyncio.gather(*self._closing.values(), return_exceptions=True)
        self._warm.clear()
        self._threads.clear()
        await asyncio.gather(
            *(self._close(m, c) for m, c in list(self._managers.items())), return_exceptions=True
        )
        if self._runtime is not None:
            shutil.rmtree(self._runtime, ignore_errors=True)

    def warm_count(self) -> int:
        """How many warm kernels are ready now."""
        return sum(1 for t in self._warm if t.done() and not t.cancelled() and not t.exception())

    def pids(self) -> list[int]:
        """The process ids of every kernel the pool holds (warm ones included)."""
        pids = (getattr(m.provisioner, "pid", None) for m in list(self._managers))
        return [pid for pid in pids if pid is not None]

    def thread_pid(self, thread_id: str) -> int | None:
        """The process id of the thread's kernel, if it has one."""
        kernel = self._threads.get(thread_id)
        return kernel.pid if kernel else None

    async def discard_thread(self, thread_id: str) -> None:
        """Shut the thread's kernel down (e.g. when the thread is deleted)."""
        lock = self._locks.get(thread_id)
        if lock is None:
            return
        async with lock:
            kernel = self._threads.pop(thread_id, None)
            self._locks.pop(thread_id, None)
            self._lost.pop(thread_id, None)
            if kernel is not None:
                await self._close(kernel.manager, kernel.client)
        await self._notify()

    # -- executing ------------------------------------------------------------------------

    async def execute(
        self, thread_id: str, workdir: Path, code: str, timeout: float, on_output: OutputHook
    ) -> Execution:
        """Run ``code`` in the thread's kernel, started (in ``workdir``) if need be.

        Cancelling the call interrupts the code; the thread's next execution waits until the
        kernel has stopped (or has been replaced).
        """
        lock = self._locks.setdefault(thread_id, asyncio.Lock())
        await lock.acquire()
        handed_over = False
        try:
            kernel, result = await self._kernel_for(thread_id, workdir)
            if result.fresh:
                # Replace the kernel taken from the warm pool once this first execution is
                # over, or after a moment if it runs long: starting a kernel takes a CPU
                # for about a second, which the execution would otherwise share.
                asyncio.get_running_loop().call_later(_REFILL_DELAY, self._refill)
            await _drain_replies(kernel.client)
            msg_id = kernel.client.execute(code, store_history=True, allow_stdin=False)
            try:
                state = await self._collect(kernel, msg_id, timeout, on_output)
                if state == "idle":
                    result.outcome = "completed"
                    return result
                if state == "timeout":
                    result.outcome = "timeout"
                    await kernel.manager.interrupt_kernel()
                    # Keep collecting: the KeyboardInterrupt traceback shows where it was.
                    state = await self._collect(kernel, msg_id, self.interrupt_grace, on_output)
                    if state == "timeout":
                        reason = "did not stop when interrupted, so it was restarted"
                        await self._discard(thread_id, kernel, reason)
                        result.notes.append(
                            f"The kernel {reason}: variables defined so far are lost."
                        )
                    return result
                exit_code = await self._exit_code(kernel)
                reason = f"died ({_describe_exit(exit_code)})"
                await self._discard(thread_id, kernel, reason)
                result.outcome = "died"
                result.notes.append(
                    f"The code stopped: the kernel {reason}. Its variables are lost; the next "
                    "execution starts a fresh kernel."
                )
                return result
            except asyncio.CancelledError:
                # The run was cancelled (or the server is stopping): stop the code in the
                # background, holding the thread's lock until the kernel is quiet again.
                self._spawn(self._settle(thread_id, kernel, msg_id, lock))
                handed_over = True
                raise
            finally:
                kernel.last_used = time.monotonic()
        finally:
            self._refill()
            if not handed_over:
                lock.release()
                await self._notify()

    async def _collect(
        self, kernel: _Kernel, msg_id: str, seconds: float, on_output: OutputHook | None
    ) -> Literal["idle", "timeout", "died"]:
        """Pass the execution's output on until the kernel is idle, dies or time is up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            wait = deadline - loop.time()
            if wait <= 0:
                return "timeout"
            try:
                msg = await kernel.client.get_iopub_msg(timeout=min(wait, _POLL_SECONDS))
            except Empty:
                if not await kernel.manager.is_alive():
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

    async def _settle(
        self, thread_id: str, kernel: _Kernel, msg_id: str, lock: asyncio.Lock
    ) -> None:
        """Interrupt a cancelled execution; replace the kernel if it does not stop."""
        try:
            if await kernel.manager.is_alive():
                await kernel.manager.interrupt_kernel()
                state = await self._collect(kernel, msg_id, self.interrupt_grace, None)
            else:
                state = "died"
            if state != "idle":
                await self._discard(thread_id, kernel, "did not stop after a cancelled run")
        finally:
            lock.release()
            await self._notify()

    async def _exit_code(self, kernel: _Kernel) -> int | None:
        provisioner = kernel.manager.provisioner
        return None if provisioner is None else await provisioner.poll()

    # -- which kernel ---------------------------------------------------------------------

    async def _kernel_for(self, thread_id: str, workdir: Path) -> tuple[_Kernel, Execution]:
        """The thread's kernel, or a new one; called with the thread's lock held."""
        kernel = self._threads.get(thread_id)
        if kernel is not None:
            if await kernel.manager.is_alive():
                self._threads.move_to_end(thread_id)
                return kernel, Execution("completed")
            exit_code = await self._exit_code(kernel)
            await self._discard(thread_id, kernel, f"died ({_describe_exit(exit_code)})")
        await self._make_room()
        self._starting += 1
        try:
            kernel = await self._take()
            try:
                await self._enter(kernel, workdir)
            except BaseException:
                await asyncio.shield(self._close(kernel.manager, kernel.client))
                raise
        finally:
            self._starting -= 1
        self._threads[thread_id] = kernel
        return kernel, Execution("completed", fresh=True, previous=self._lost.pop(thread_id, None))

    async def _make_room(self) -> None:
        """Shut the least recently used idle kernels down until a new one may start."""
        assert self._room is not None
        while len(self._threads) + self._starting >= self.max_kernels:
            victim = next(
                (t for t in self._threads if not self._locks[t].locked()),
                None,
            )
            if victim is not None:
                await self._discard(
                    victim,
                    self._threads[victim],
                    f"was shut down to make room for other threads' kernels "
                    f"(at most {self.max_kernels} run at once)",
                )
                continue
            async with self._room:
                await self._room.wait()

    async def _take(self) -> _Kernel:
        """A warm kernel if there is one (or one on its way), else a new one."""
        task = next((t for t in self._warm if t.done()), None) or (
            self._warm[0] if self._warm else None
        )
        if task is None:
            return await self._start_kernel()
        self._warm.remove(task)
        try:
            kernel = await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                self._warm.insert(0, task)  # still good for the next thread
            raise
        except Exception:
            log.warning("a warm kernel failed to start; starting another", exc_info=True)
        else:
            if await kernel.manager.is_alive():
                return kernel
            await self._close(kernel.manager, kernel.client)
        return await self._start_kernel()

    def _refill(self) -> None:
        while not self._stopping and self._runtime is not None and len(self._warm) < self.warm:
            self._warm.append(asyncio.create_task(self._start_kernel(), name="ipyassistant-warm"))

    async def _enter(self, kernel: _Kernel, workdir: Path) -> None:
        """Move a new kernel into the thread's working directory."""
        code = f"import os as _os\n_os.chdir({str(workdir)!r})\ndel _os"
        msg_id = kernel.client.execute(code, silent=True, store_history=False)
        errors: list[str] = []

        def on_output(kind: str, content: dict[str, Any]) -> None:
            if kind == "error":
                errors.append(f"{content.get('ename')}: {content.get('evalue')}")

        state = await self._collect(kernel, msg_id, self.start_timeout, on_output)
        if state != "idle" or errors:
            raise KernelStartError(
                f"The kernel could not enter {workdir}: {errors[0] if errors else state}"
            )

    async def _discard(self, thread_id: str, kernel: _Kernel, reason: str) -> None:
        """Forget a thread's kernel and kill it; its next execution says ``reason``."""
        if self._threads.get(thread_id) is kernel:
            del self._threads[thread_id]
            self._lost[thread_id] = reason
            while len(self._lost) > _MAX_LOST:  # threads that never come back
                del self._lost[next(iter(self._lost))]
            lock = self._locks.get(thread_id)
            if lock is not None and not lock.locked():
                del self._locks[thread_id]  # nobody holds or awaits it: a new one will do
        await self._close(kernel.manager, kernel.client)

    async def _reap(self) -> None:
        interval = max(0.05, min(self.idle_seconds / 4, 60.0))
        while True:
            await asyncio.sleep(interval)
            cutoff = time.monotonic() - self.idle_seconds
            for thread_id, kernel in list(self._threads.items()):
                if kernel.last_used < cutoff and not self._locks[thread_id].locked():
                    await self._discard(
                        thread_id,
                        kernel,
                        f"was shut down after {self.idle_seconds:g} s without use",
                    )
                    await self._notify()

    # -- starting and stopping kernels ----------------------------------------------------

    async def _start_kernel(self) -> _Kernel:
        if self._stopping or self._runtime is None:
            raise KernelStartError("The code interpreter is not running.")
        name = uuid.uuid4().hex[:12]
        runtime = self._runtime
        options: dict[str, Any] = {"connection_file": str(runtime / f"{name}.json")}
        if sys.platform != "win32":
            options.update(transport="ipc", ip=str(runtime / name))
        manager = AsyncKernelManager(
            kernel_spec_manager=self._specs, kernel_name=_KERNEL_NAME, **options
        )
        log_path = runtime / f"{name}.log"
        client: AsyncKernelClient | None = None
        self._managers[manager] = None
        try:
            stderr = _open_log(log_path)
            try:
                await manager.start_kernel(
                    cwd=str(runtime), env=dict(self._env), stdout=subprocess.DEVNULL, stderr=stderr
                )
            finally:
                os.close(stderr)  # the kernel has its own copy
            client = manager.client()
            self._managers[manager] = client
            client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
            await client.wait_for_ready(timeout=self.start_timeout)
            if self._stopping:
                raise KernelStartError("The code interpreter is shutting down.")
        except BaseException as exc:
            await asyncio.shield(self._close(manager, client))
            if isinstance(exc, (KernelStartError, asyncio.CancelledError)) or not isinstance(
                exc, Exception
            ):
                raise
            detail = _log_tail(log_path) or f"{type(exc).__name__}: {exc}"
            raise KernelStartError(
                f"Could not start a Jupyter kernel with {self.python} "
                f"(it needs ipykernel installed): {detail}"
            ) from exc
        provisioner = manager.provisioner
        pid = int(getattr(provisioner, "pid", 0) or 0)
        return _Kernel(manager, client, pid)

    async def _close(self, manager: AsyncKernelManager, client: AsyncKernelClient | None) -> None:
        """Kill a kernel's process group and remove its files; never raises.

        The work runs in a task of its own that a cancelled caller does not stop: a kernel
        half shut down would be forgotten by the pool and outlive the server.
        """
        task = self._closing.get(manager)
        if task is None:
            if manager not in self._managers:
                return
            task = asyncio.create_task(self._shutdown(manager, client))
            self._closing[manager] = task
        await asyncio.shield(task)

    async def _shutdown(
        self, manager: AsyncKernelManager, client: AsyncKernelClient | None
    ) -> None:
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
            self._managers.pop(manager, None)
            self._closing.pop(manager, None)
            with contextlib.suppress(OSError):
                Path(manager.connection_file).with_suffix(".log").unlink(missing_ok=True)

    async def _notify(self) -> None:
        if self._room is not None:
            async with self._room:
                self._room.notify_all()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _drain_replies(client: AsyncKernelClient) -> None:
    """Drop execute replies already received (the iopub status told us all we use).

    Without this they would pile up in the shell socket; waiting for each right after its
    execution would cost a round trip, so they are dropped before the next one instead.
    """
    while await client.shell_channel.msg_ready():
        await client.get_shell_msg(timeout=0)
