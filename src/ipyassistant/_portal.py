"""The one background event loop that runs every coroutine of ipyassistant.

A :class:`Portal` owns an event loop in a daemon thread, started on first use and stopped at
interpreter exit (``weakref.finalize``). Every public coroutine of ipyassistant executes there
(:func:`on_portal`), whichever loop awaits it, so the SDK client and its connections live in one
loop for the life of the process. Each sync method is the twin of an async one (same
signature and docstring, kept in step by a test), made by :func:`sync_twin` (and
:class:`SyncContext` for ``with``): it submits the coroutine with :meth:`Portal.call` and
waits, which works in scripts and inside a running loop (Jupyter) alike, without ever starting
a loop per call.

Interrupts: a ``KeyboardInterrupt`` in a thread waiting on :meth:`Portal.call` (Ctrl-C, a
kernel interrupt) cancels the coroutine, waits a moment for it to clean up (a run cancels
itself on the server), then propagates. A ``KeyboardInterrupt`` raised *inside* the loop (by a
tool) must not reach the loop itself, so it travels as :class:`Interrupt` and is raised again
as ``KeyboardInterrupt`` in the caller.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import threading
import weakref
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from .exceptions import UsageError
from .settings import Settings, connect

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = [
    "Interrupt",
    "Portal",
    "SyncContext",
    "caller_loop",
    "client",
    "on_portal",
    "portal",
    "sync_twin",
]

P = ParamSpec("P")
R = TypeVar("R")

#: How long an interrupted call waits for its coroutine to clean up (cancel its run).
CANCEL_GRACE_SECONDS = 15.0
#: How often a waiting sync call wakes to let ``_thread.interrupt_main()`` through (real
#: signals interrupt the wait at once).
_WAKE_SECONDS = 0.1

_caller_loop: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "ipyassistant_caller_loop", default=None
)


class Interrupt(Exception):
    """A ``KeyboardInterrupt`` raised inside the portal's loop, on its way to the caller."""


class _Job:
    """One coroutine submitted to the loop from another thread, cancellable from there."""

    def __init__(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]):
        self.loop = loop
        self.done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False
        # call_soon_threadsafe copies the caller's context into the task (context variables).
        loop.call_soon_threadsafe(self._start, coro)

    def _start(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._task = self.loop.create_task(coro)
        self._task.add_done_callback(self._finish)
        if self._cancelled:
            self._task.cancel()

    def _finish(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self.done.set_exception(asyncio.CancelledError())
        elif (exc := task.exception()) is not None:
            self.done.set_exception(exc)
        else:
            self.done.set_result(task.result())

    def cancel(self) -> None:
        """Cancel the coroutine (from any thread); it may still clean up before it ends."""
        self.loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        self._cancelled = True
        if self._task is not None:
            self._task.cancel()


class Portal:
    """Owns the background loop (started on first use) and the SDK clients bound to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._clients: dict[tuple[str | None, str | None], AsyncOpenAI] = {}
        self._client_lock: asyncio.Lock | None = None
        self._finalizer: weakref.finalize[Any, Portal] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's loop, running in its own thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._start()
        return loop

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is not None and not self._loop.is_closed():
                return self._loop
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(
                target=_serve, args=(loop, ready), name="ipyassistant-portal", daemon=True
            )
            thread.start()
            ready.wait()
            self._clients.clear()
            self._client_lock = None
            self._loop, self._thread = loop, thread
            self._finalizer = weakref.finalize(self, _shutdown, loop, thread, self._clients)
            return loop

    def in_loop(self) -> bool:
        """Whether the caller runs on the portal's loop."""
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def call(self, coro: Coroutine[Any, Any, R]) -> R:
        """Run ``coro`` on the loop and wait for it, from a thread that is not the loop's."""
        if self._thread is not None and threading.current_thread() is self._thread:
            coro.close()
            raise UsageError(
                "a sync ipyassistant method was called on ipyassistant's own event loop "
                "(from an async tool or an event handler), where waiting for it would never "
                "end; await its _async twin instead"
            )
        token = _caller_loop.set(None)  # async tools of a sync call run on the portal
        try:
            job = _Job(self.loop, coro)
        finally:
            _caller_loop.reset(token)
        thread = self._thread
        try:
            while not _wait(job.done, _WAKE_SECONDS):
                if thread is not None and not thread.is_alive():
                    raise RuntimeError("ipyassistant's event loop stopped during the call")
        except KeyboardInterrupt:
            job.cancel()
            with contextlib.suppress(KeyboardInterrupt):  # a second one stops the wait
                _wait(job.done, CANCEL_GRACE_SECONDS)
            raise
        return _result(job.done)

    async def run(self, coro: Coroutine[Any, Any, R]) -> R:
        """Await ``coro`` on the portal's loop from another loop; cancelling cancels it."""
        job = _Job(self.loop, _with_caller(coro, asyncio.get_running_loop()))
        waiter = asyncio.wrap_future(job.done)
        try:
            return await asyncio.shield(waiter)
        except Interrupt:
            raise KeyboardInterrupt from None
        except asyncio.CancelledError:
            if not job.done.done():  # the caller was cancelled, not the job: cancel it too
                job.cancel()
                await asyncio.wait([waiter], timeout=CANCEL_GRACE_SECONDS)
            raise

    async def client(self) -> AsyncOpenAI:
        """The SDK client for the current settings (call on the portal's loop)."""
        settings = Settings.from_env()
        found = self._clients.get(settings.connection)
        if found is not None:
            return found
        if self._client_lock is None:
            self._client_lock = asyncio.Lock()
        async with self._client_lock:
            found = self._clients.get(settings.connection)
            if found is None:
                found = self._clients[settings.connection] = await connect(settings)
            return found

    def close(self) -> None:
        """Close the clients and stop the loop (a later call starts a new one)."""
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._loop = self._thread = None


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()


def _shutdown(
    loop: asyncio.AbstractEventLoop,
    thread: threading.Thread,
    clients: dict[tuple[str | None, str | None], AsyncOpenAI],
) -> None:
    if loop.is_closed() or not thread.is_alive():
        return

    async def close_all() -> None:
        for client in list(clients.values()):
            with contextlib.suppress(Exception):  # broken connections: nothing to release
                await client.close()
        clients.clear()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
        await loop.shutdown_asyncgens()

    with contextlib.suppress(Exception):  # the loop is going away regardless
        asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    if not thread.is_alive():
        loop.close()


def _wait(future: concurrent.futures.Future[Any], timeout: float) -> bool:
    done, _ = concurrent.futures.wait([future], timeout=timeout)
    return bool(done)


def _result(future: concurrent.futures.Future[R]) -> R:
    try:
        return future.result(timeout=0)
    except Interrupt:
        raise KeyboardInterrupt from None


async def _with_caller(coro: Coroutine[Any, Any, R], loop: asyncio.AbstractEventLoop) -> R:
    _caller_loop.set(loop)
    return await coro


_portal = Portal()


def portal() -> Portal:
    """The process's portal."""
    return _portal


def caller_loop() -> asyncio.AbstractEventLoop | None:
    """The loop that awaited the current public coroutine, if it is not the portal's.

    Async tools run there, so that they may use objects bound to the caller's loop.
    """
    loop = _caller_loop.get()
    if loop is None or loop is _portal._loop or loop.is_closed() or not loop.is_running():
        return None
    return loop


async def client() -> AsyncOpenAI:
    """The SDK client (await on the portal's loop, i.e. inside an :func:`on_portal` method)."""
    return await _portal.client()


def on_portal(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Make a public coroutine function execute on the portal's loop, whoever awaits it."""

    @functools.wraps(fn)
    async def hop(*args: P.args, **kwargs: P.kwargs) -> R:
        if _portal.in_loop():
            return await fn(*args, **kwargs)
        return await _portal.run(fn(*args, **kwargs))

    return hop


def sync_twin(
    fn: Callable[P, Coroutine[Any, Any, R]],
    *,
    prepare: Callable[[inspect.BoundArguments], None] | None = None,
) -> Callable[P, R]:
    """The sync twin of the coroutine function ``fn``: ``create = sync_twin(create_async)``.

    The twin submits ``fn(...)`` to the portal and waits for it (:meth:`Portal.call`: an
    interrupt cancels the coroutine). It has ``fn``'s signature (for :func:`inspect.signature`
    through ``__wrapped__``, for type checkers through ``P``), its docstring, and its name
    without ``_async``. It is a plain function, so in a class body it binds as a method; at
    module level it is a function. The twin of a classmethod is a classmethod again:
    ``load = classmethod(sync_twin(load_async))``.

    ``prepare`` runs first, in the caller's thread, with the call's arguments (defaults
    applied), and may change them: for work that must not happen on the portal's thread.
    """
    if isinstance(fn, classmethod):  # what a class body holds (type checkers see the function)
        fn = fn.__func__
    start: Callable[..., Coroutine[Any, Any, R]] = fn
    if prepare is not None:
        start = _prepared(fn, prepare)

    @functools.wraps(fn)
    def twin(*args: P.args, **kwargs: P.kwargs) -> R:
        return _portal.call(start(*args, **kwargs))

    twin.__name__ = fn.__name__.removesuffix("_async")
    twin.__qualname__ = fn.__qualname__.removesuffix("_async")
    return twin


def _prepared(
    fn: Callable[..., Coroutine[Any, Any, R]], prepare: Callable[[inspect.BoundArguments], None]
) -> Callable[..., Coroutine[Any, Any, R]]:
    """``fn``, its arguments first given to ``prepare`` (in the calling thread)."""
    signature = inspect.signature(fn)

    def start(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, R]:
        call = signature.bind(*args, **kwargs)
        call.apply_defaults()
        prepare(call)
        return fn(*call.args, **call.kwargs)

    return start


class _Scoped(Protocol):
    """What a :class:`SyncContext` class provides: entering and leaving a block."""

    async def _acquire(self) -> None: ...

    async def _release(self) -> None: ...


_ScopedT = TypeVar("_ScopedT", bound=_Scoped)


class SyncContext:
    """Mixin: ``async with obj:`` and its sync twin ``with obj:``, on one implementation.

    The class provides ``_acquire`` (entering the block) and ``_release`` (leaving it, whether
    or not it raised) as coroutines. ``__aenter__`` and ``__aexit__`` await them;
    ``__enter__`` and ``__exit__`` run them on the portal (:meth:`Portal.call`).
    """

    async def __aenter__(self: _ScopedT) -> _ScopedT:
        await self._acquire()
        return self

    async def __aexit__(
        self: _Scoped,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._release()

    def __enter__(self: _ScopedT) -> _ScopedT:
        _portal.call(self._acquire())
        return self

    def __exit__(
        self: _Scoped,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _portal.call(self._release())
