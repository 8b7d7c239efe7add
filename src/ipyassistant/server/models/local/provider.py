"""The ``local`` provider: :class:`LocalModel`, which streams a generation from the worker thread.

The generation runs on the model's worker thread (:mod:`.instance`); its events travel to the
event loop through an :class:`asyncio.Queue` fed with ``loop.call_soon_threadsafe``. Cancelling
the consuming task (the engine does when a run is cancelled) stops the generation at the next
token. Importing this module does not import llama.cpp.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..base import ChatMessage, ModelError, ModelEvent, ModelProvider, ModelRequest, TextDelta
from ..registry import ModelRef, ProviderFactory
from .config import INSTALL_HINT, local_available, model_path
from .generation import Generation, render, tokenize
from .instance import Instance, Job, instance_for
from .prompt import chat_messages

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["FACTORY", "LocalModel"]

_DONE = object()


class LocalModel(ModelProvider):
    """A GGUF model run in this process by llama.cpp; ``path=None`` is the bundled SmolLM2."""

    def __init__(self, path: str | None = None):
        self.path = path
        self.model = f"local:{path}" if path else "local"

    def _instance(self) -> Instance:
        return instance_for(model_path(self.path))

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        instance = self._instance()
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody listens any more
                stop.set()

        def fail(exc: BaseException) -> None:
            emit(exc)
            emit(_DONE)

        def run(llama: Llama) -> None:
            try:
                Generation(llama, request, self.model, emit, stop).run()
            except BaseException as exc:
                emit(exc)
            finally:
                emit(_DONE)

        instance.submit(Job(run, stop, fail))
        pending: Any = None
        try:
            while True:
                item = pending if pending is not None else await events.get()
                pending = None
                if isinstance(item, TextDelta):
                    # Tokens that queued up while the loop was busy travel as one delta.
                    while not events.empty():
                        following = events.get_nowait()
                        if not isinstance(following, TextDelta):
                            pending = following
                            break
                        item = TextDelta(item.text + following.text)
                if item is _DONE:
                    break
                if isinstance(item, ModelError):
                    raise item
                if isinstance(item, BaseException):
                    raise ModelError(
                        f"{self.model}: llama.cpp failed: {type(item).__name__}: {item}"
                    ) from item
                yield item
        finally:
            # Cancelled, closed early or done: a generation still running stops at its next
            # token, and one still waiting in the queue is skipped.
            stop.set()

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        """The prompt's size in the model's own tokens (loads the model if needed)."""
        llama = self._instance().load()
        chat = chat_messages(messages, "")
        return len(tokenize(llama, render(llama, chat, self.model)))


class _LocalFactory(ProviderFactory):
    """The ``local`` prefix: the bundled model, or ``local:/path/to/model.gguf``."""

    unavailable_hint = f"The local model needs the 'local' extra: {INSTALL_HINT}."

    def examples(self) -> list[str]:
        if importlib.util.find_spec("llama_cpp") is None:
            return []
        return ["local", "local:/path/to/model.gguf"]

    def accepts(self, ref: ModelRef) -> bool:
        # local:/path needs llama.cpp; bare "local" also needs the bundled model.
        return importlib.util.find_spec("llama_cpp") is not None and bool(
            ref.name or local_available()
        )

    def create(self, ref: ModelRef) -> ModelProvider:
        return LocalModel(ref.name or None)


#: How the registry makes ``local`` models.
FACTORY = _LocalFactory()
