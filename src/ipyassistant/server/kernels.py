"""The code interpreter's kernel pool: one kernel per thread, warm kernels, and their limits.

Each thread that runs code owns one kernel (see :mod:`.kernel` for the process itself: its
memory cap, environment and sockets). The kernel is kept between runs, so variables persist as
in a notebook, and works in the thread's own directory. The pool around them:

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
  thread's next execution gets a fresh kernel, and :class:`Execution` says why.
- **Nothing outlives the pool.** :meth:`KernelPool.stop` kills every kernel's process group (the
  kernel and whatever it spawned). A kernel whose server dies without ``stop()``, even by
  ``kill -9``, is killed by a parent-death signal (see :mod:`.kernel`); in a sandbox, so is
  everything its code started (its PID namespace ends with it).
- **Sandbox.** With ``sandbox="bwrap"`` each kernel runs confined by bubblewrap (see
  :mod:`.sandbox`), its thread's directory bound inside when it starts. A kernel is therefore
  started for its thread, and no warm kernels are kept: a thread's first execution waits for a
  kernel to start (about a second).
- **Gateway.** With a :class:`~.gateway.Gateway` the kernels (warm ones too) are started on a
  Jupyter Kernel or Enterprise Gateway instead, and no process is started here; the limits
  above hold, applied through the gateway (interrupts and shutdowns are its REST calls), except
  the memory cap and the sandbox, which are the gateway's to apply. The thread's directory is
  sent into a kernel when it enters it, new files before each execution, and what the code
  saved in ``output/`` comes back after it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .gateway import Gateway, GatewayKernel
from .kernel import (
    Kernel,
    KernelStartError,
    OutputHook,
    PooledKernel,
    kernel_env,
    kernel_files,
    kernel_specs,
    new_manager,
)
from .sandbox import Bubblewrap, sandbox_env

__all__ = ["Execution", "KernelPool"]

log = logging.getLogger("ipyassistant.server")

# At the latest this long after a thread takes a warm kernel, a replacement starts.
_REFILL_DELAY = 1.0
# How many reasons for lost kernels are remembered (for the threads' next executions).
_MAX_LOST = 10_000


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
        sandbox: Literal["none", "bwrap"] = "none",
        network: bool = False,
        hidden: Sequence[Path] = (),
        gateway: Gateway | None = None,
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
        self.sandbox = sandbox
        #: In a sandbox: whether it reaches the network, and what else it must not see.
        self._network = network
        self._hidden = tuple(hidden)
        self._bwrap: Bubblewrap | None = None
        #: Where kernels run when not here (see :mod:`.gateway`).
        self.gateway = gateway
        self._env = kernel_env()
        self._runtime: Path | None = None
        #: Every kernel started (or being started) and not shut down yet.
        self._kernels: set[PooledKernel] = set()
        #: Warm kernels: start tasks, done or still running, oldest first.
        self._warm: list[asyncio.Task[PooledKernel]] = []
        #: Thread kernels, least recently used first.
        self._threads: OrderedDict[str, PooledKernel] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._lost: dict[str, str] = {}
        self._starting = 0
        self._room: asyncio.Condition | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: dict[PooledKernel, asyncio.Task[None]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start filling the warm pool; returns at once.

        Raises :class:`~.sandbox.SandboxUnavailable` when the sandbox cannot run here.
        """
        self._stopping = False
        self._room = asyncio.Condition()
        if self.gateway is not None:
            await self.gateway.open()
            log.info("code-interpreter kernels run on the kernel gateway at %s", self.gateway.url)
            if self.sandbox == "bwrap":
                log.warning(
                    "the code sandbox (bwrap) does not apply: kernels run on the kernel gateway "
                    "at %s, confined as the gateway confines them",
                    self.gateway.url,
                )
            self._reaper = asyncio.create_task(self._reap(), name="ipyassistant-kernel-reaper")
            self._refill()
            return
        self._runtime = Path(tempfile.mkdtemp(prefix="ipya-"))
        if self.sandbox == "bwrap":
            try:
                self._bwrap = await asyncio.to_thread(
                    Bubblewrap.prepare,
                    self.python,
                    [*self._hidden, self._runtime],
                    network=self._network,
                    tmp_bytes=max(self.memory_mb, 0) << 20,
                )
            except BaseException:
                shutil.rmtree(self._runtime, ignore_errors=True)
                self._runtime = None
                raise
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
        await asyncio.gather(*(self._close(k) for k in list(self._kernels)), return_exceptions=True)
        if self._runtime is not None:
            shutil.rmtree(self._runtime, ignore_errors=True)
        if self.gateway is not None:
            await self.gateway.aclose()

    def warm_count(self) -> int:
        """How many warm kernels are ready now."""
        return sum(1 for t in self._warm if t.done() and not t.cancelled() and not t.exception())

    def pids(self) -> list[int]:
        """The process ids of every local kernel the pool holds (warm ones included)."""
        return [kernel.pid for kernel in list(self._kernels) if kernel.pid]

    def thread_pid(self, thread_id: str) -> int | None:
        """The process id of the thread's kernel, if it has one (0 on a gateway)."""
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
                await self._close(kernel)
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
            await self._send_files(thread_id, kernel, workdir)
            msg_id = await kernel.execute(code)
            try:
                state = await kernel.collect(msg_id, timeout, on_output)
                if state == "idle":
                    result.outcome = "completed"
                    await self._fetch_files(kernel, workdir, result)
                    return result
                if state == "timeout":
                    result.outcome = "timeout"
                    await kernel.interrupt()
                    # Keep collecting: the KeyboardInterrupt traceback shows where it was.
                    state = await kernel.collect(msg_id, self.interrupt_grace, on_output)
                    if state == "timeout":
                        reason = "did not stop when interrupted, so it was restarted"
                        await self._discard(thread_id, kernel, reason)
                        result.notes.append(
                            f"The kernel {reason}: variables defined so far are lost."
                        )
                    elif state == "idle":
                        await self._fetch_files(kernel, workdir, result)
                    return result
                reason = await kernel.death()
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

    async def _settle(
        self, thread_id: str, kernel: PooledKernel, msg_id: str, lock: asyncio.Lock
    ) -> None:
        """Interrupt a cancelled execution; replace the kernel if it does not stop."""
        try:
            if await kernel.is_alive():
                await kernel.interrupt()
                state = await kernel.collect(msg_id, self.interrupt_grace, None)
            else:
                state = "died"
            if state != "idle":
                await self._discard(thread_id, kernel, "did not stop after a cancelled run")
        finally:
            lock.release()
            await self._notify()

    # -- which kernel ---------------------------------------------------------------------

    async def _kernel_for(self, thread_id: str, workdir: Path) -> tuple[PooledKernel, Execution]:
        """The thread's kernel, or a new one; called with the thread's lock held."""
        kernel = self._threads.get(thread_id)
        if kernel is not None:
            if await kernel.is_alive():
                self._threads.move_to_end(thread_id)
                return kernel, Execution("completed")
            await self._discard(thread_id, kernel, await kernel.death())
        await self._make_room()
        self._starting += 1
        try:
            if self._bwrap is not None:  # started in the directory bound inside
                kernel = await self._start_kernel(workdir)
            else:
                kernel = await self._take()
                try:
                    await kernel.enter(workdir, self.start_timeout)
                except BaseException:
                    await asyncio.shield(self._close(kernel))
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

    async def _take(self) -> PooledKernel:
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
            if await kernel.is_alive():
                return kernel
            await self._close(kernel)
        return await self._start_kernel()

    def _refill(self) -> None:
        if self._bwrap is not None:
            return  # a sandboxed kernel is started for its thread
        while not self._stopping and self._room is not None and len(self._warm) < self.warm:
            self._warm.append(asyncio.create_task(self._start_kernel(), name="ipyassistant-warm"))

    async def _discard(self, thread_id: str, kernel: PooledKernel, reason: str) -> None:
        """Forget a thread's kernel and kill it; its next execution says ``reason``."""
        if self._threads.get(thread_id) is kernel:
            del self._threads[thread_id]
            self._lost[thread_id] = reason
            while len(self._lost) > _MAX_LOST:  # threads that never come back
                del self._lost[next(iter(self._lost))]
            lock = self._locks.get(thread_id)
            if lock is not None and not lock.locked():
                del self._locks[thread_id]  # nobody holds or awaits it: a new one will do
        await self._close(kernel)

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

    async def _start_kernel(self, workdir: Path | None = None) -> PooledKernel:
        """A new kernel; a sandboxed one (given its thread's ``workdir``) works there."""
        if self._stopping or self._room is None:
            raise KernelStartError("The code interpreter is not running.")
        kernel: PooledKernel
        if self.gateway is not None:
            kernel = GatewayKernel(self.gateway)
        else:
            assert self._runtime is not None
            files = kernel_files(self._runtime)
            # Made for each kernel: a sandbox's command names the thread's directory, and the
            # kernel watches for the death of this process, whichever it is by now.
            if self._bwrap is not None:
                assert workdir is not None
                wrapper = self._bwrap.argv(workdir, files)
                specs = kernel_specs(self._bwrap.python, self.memory_mb, wrapper)
                env, python = sandbox_env(workdir), self._bwrap.python
            else:
                specs = kernel_specs(self.python, self.memory_mb)
                env, python = self._env, self.python
            kernel = Kernel(new_manager(specs, files), env, python)
        self._kernels.add(kernel)
        try:
            await kernel.start(self.start_timeout)
            if self._stopping:
                raise KernelStartError("The code interpreter is shutting down.")
        except BaseException:
            await asyncio.shield(self._close(kernel))
            raise
        return kernel

    async def _send_files(self, thread_id: str, kernel: PooledKernel, workdir: Path) -> None:
        """Give the kernel the thread's new files; a kernel that cannot take them is dropped."""
        try:
            await kernel.send_files(workdir, self.start_timeout)
        except (KernelStartError, OSError) as exc:
            await self._discard(thread_id, kernel, f"could not receive the thread's files ({exc})")
            raise KernelStartError(
                f"Could not send the thread's files into its kernel: {exc}"
            ) from exc

    async def _fetch_files(self, kernel: PooledKernel, workdir: Path, result: Execution) -> None:
        """Bring back what the code saved; on failure the execution's notes say so."""
        try:
            await kernel.fetch_files(workdir, self.start_timeout)
        except (KernelStartError, OSError) as exc:
            log.warning("could not fetch the files saved by the code", exc_info=True)
            result.notes.append(f"The files the code saved could not be read back: {exc}")

    async def _close(self, kernel: PooledKernel) -> None:
        """Shut a kernel down (its process group, or on the gateway) and free what it holds;
        never raises.

        The work runs in a task of its own that a cancelled caller does not stop: a kernel
        half shut down would be forgotten by the pool and outlive the server.
        """
        task = self._closing.get(kernel)
        if task is None:
            if kernel not in self._kernels:
                return
            task = asyncio.create_task(self._shutdown(kernel))
            self._closing[kernel] = task
        await asyncio.shield(task)

    async def _shutdown(self, kernel: PooledKernel) -> None:
        try:
            await kernel.close()
        finally:
            self._kernels.discard(kernel)
            self._closing.pop(kernel, None)

    async def _notify(self) -> None:
        if self._room is not None:
            async with self._room:
                self._room.notify_all()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
