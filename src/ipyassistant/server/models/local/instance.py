"""The one loaded model per GGUF file and process, and the worker thread that alone uses it.

Each file's model is loaded on first use, with one worker thread in front of it: generations
queue there (first come, first served), so concurrent runs never interleave tokens. llama.cpp
is imported when the model loads, not before.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..base import ModelError
from ..env import env_number
from .config import DEFAULT_N_CTX, INSTALL_HINT

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["Instance", "Job", "instance_for"]


@dataclass
class Job:
    """One generation, queued for the model's worker thread."""

    run: Callable[[Llama], None]
    stop: threading.Event
    #: Reports a failure that happened before ``run`` could (e.g. while loading).
    fail: Callable[[BaseException], None]


class Instance:
    """A GGUF file's one loaded model, and the worker thread that alone uses it."""

    def __init__(self, path: Path):
        self.path = path
        self.llama: Llama | None = None
        self._load_lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()

    def load(self) -> Llama:
        """The model, loaded on first use (raises :class:`ModelError`)."""
        with self._load_lock:
            if self.llama is None:
                self.llama = _load(self.path)
            return self.llama

    def submit(self, job: Job) -> None:
        """Queue ``job`` behind the running and waiting ones."""
        with self._worker_lock:
            if self._worker is None or not self._worker.is_alive():
                # A daemon thread: a generation left running never holds up the process's exit.
                self._worker = threading.Thread(
                    target=self._work, name=f"ipyassistant-local {self.path.name}", daemon=True
                )
                self._worker.start()
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job.stop.is_set():
                continue  # cancelled while it waited
            try:
                llama = self.load()
            except BaseException as exc:
                job.fail(exc)
                continue
            job.run(llama)


_instances: dict[Path, Instance] = {}
_instances_lock = threading.Lock()


def instance_for(path: Path) -> Instance:
    """The one :class:`Instance` of the GGUF file at ``path`` (not loaded until it is used)."""
    with _instances_lock:
        found = _instances.get(path)
        if found is None:
            found = _instances[path] = Instance(path)
        return found


def _load(path: Path) -> Llama:
    """The model in ``path``, its context no larger than it was trained for."""
    try:
        from llama_cpp import Llama
    except ImportError as exc:  # installed but broken, e.g. a library that does not load
        raise ModelError(f"llama-cpp-python cannot be imported ({exc}): {INSTALL_HINT}") from None
    n_ctx = env_number("IPYASSISTANT_LOCAL_N_CTX", DEFAULT_N_CTX, int)
    threads = env_number("IPYASSISTANT_LOCAL_THREADS", None, int)
    try:
        with _output_left_alone():
            llama = Llama(model_path=str(path), n_ctx=n_ctx or 0, n_threads=threads, verbose=False)
            n_ctx_train = llama._model.n_ctx_train()
            if 0 < n_ctx_train < llama.n_ctx():
                # Beyond its training context a model writes garbage: make that the limit (the
                # file is in the page cache by now, so loading it again is quick).
                llama.close()
                llama = Llama(
                    model_path=str(path), n_ctx=n_ctx_train, n_threads=threads, verbose=False
                )
        return llama
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelError(f"llama.cpp could not load the local model {path}: {exc}") from None


class _NoRedirect:
    """A stand-in for llama-cpp-python's ``suppress_stdout_stderr`` that does nothing."""

    def __init__(self, disable: bool = True):
        pass

    def __enter__(self) -> _NoRedirect:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@contextlib.contextmanager
def _output_left_alone() -> Iterator[None]:
    """Load without llama-cpp-python's ``verbose=False`` silencing of stdout and stderr.

    That silencing points file descriptors 1 and 2 of the whole process at /dev/null (and swaps
    ``sys.stdout``/``sys.stderr``) while a model loads, which would swallow the output of every
    other thread of the server or the notebook kernel meanwhile. llama.cpp's own log messages
    go through llama-cpp-python's log callback, which ``verbose=False`` already limits to errors.
    """
    import llama_cpp._internals
    import llama_cpp.llama

    name = "suppress_stdout_stderr"
    modules = [module for module in (llama_cpp.llama, llama_cpp._internals) if hasattr(module, name)]
    saved = [getattr(module, name) for module in modules]
    for module in modules:
        setattr(module, name, _NoRedirect)
    try:
        yield
    finally:
        for module, original in zip(modules, saved, strict=True):
            setattr(module, name, original)
