"""The ``function:NAME`` model: replies scripted by a Python function, for tests.

Like pydantic-ai's ``FunctionModel``: a test registers a function under a name and runs an
assistant with the model string ``function:NAME``; every model call of those runs calls the
function with the :class:`~.base.ModelRequest` (the conversation as chat messages, the tools
``tool_choice`` allows, the response format, ``max_tokens``...) and streams what it returns::

    from ipyassistant.server.models.function import Call, registered_function

    def weather(request: ModelRequest) -> Iterator[str | Call]:
        last = request.messages[-1]
        if last.role == "tool":  # the output submitted for the call below
            yield f"It is {last.content} in Paris."
        else:
            yield Call("get_weather", {"city": "Paris"})

    with registered_function("weather", weather) as model:  # model == "function:weather"
        assistant = client.beta.assistants.create(model=model, tools=[...])

The function may be sync or async, and return or yield (a sync or async generator) text chunks
(``str``, each streamed as one delta) and tool calls (:class:`Call`, with arguments as a dict or
as JSON text); a returned ``str`` or :class:`Call` is a reply of one part. Text after calls
is dropped by the engine, as for any model. A sync function runs on the server's event loop:
keep it quick, or make it async.

Tokens are counted like the ``test`` model counts them (words and punctuation marks);
``max_tokens`` cuts the reply at the text chunk that goes past it, with finish reason
``length``. A :class:`~.base.ModelError` raised by the function fails the run with its code and
message; any other exception fails it as ``server_error`` naming the exception. A model string
whose name is not registered is refused like an unknown model (400, ``model_not_found``).
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TypeAlias

from .base import ModelError, ModelEvent, ModelProvider, ModelRequest
from .registry import ModelRef, ProviderFactory
from .scripted import Call, ReplyItem, as_async, reply_events

__all__ = [
    "FACTORY",
    "Call",
    "FunctionModel",
    "ModelFunction",
    "Reply",
    "register_function",
    "registered_function",
    "unregister_function",
]

#: What a model function may return (or, as an ``async def``, return once awaited).
Reply: TypeAlias = ReplyItem | Iterable[ReplyItem] | AsyncIterable[ReplyItem]
#: A function that scripts a model's replies.
ModelFunction: TypeAlias = Callable[[ModelRequest], Reply | Awaitable[Reply]]

_functions: dict[str, ModelFunction] = {}
_lock = threading.Lock()


def register_function(name: str, function: ModelFunction) -> str:
    """Make ``function`` the model ``function:NAME`` (replacing one of the same name).

    Returns the model string.
    """
    if not name:
        raise ValueError("a model function needs a name")
    with _lock:
        _functions[name] = function
    return f"function:{name}"


def unregister_function(name: str) -> None:
    """Forget the function registered as ``name`` (runs that use it later fail)."""
    with _lock:
        _functions.pop(name, None)


@contextlib.contextmanager
def registered_function(name: str, function: ModelFunction) -> Iterator[str]:
    """Register ``function`` as ``name`` for the ``with`` block, which gets the model string."""
    with _lock:
        previous = _functions.get(name)
    model = register_function(name, function)
    try:
        yield model
    finally:
        if previous is None:
            unregister_function(name)
        else:
            register_function(name, previous)


def _function(name: str) -> ModelFunction | None:
    with _lock:
        return _functions.get(name)


class FunctionModel(ModelProvider):
    """The model ``function:NAME``: the function registered as NAME, looked up on every call."""

    def __init__(self, name: str):
        self.name = name
        self.model = f"function:{name}"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        function = _function(self.name)
        if function is None:
            raise ModelError(f"{self.model}: no model function is registered as {self.name!r}")
        events = reply_events(
            self._reply(function, request),
            self.count_tokens(request.messages),
            request.max_tokens,
        )
        async for event in events:
            yield event

    async def _reply(self, function: ModelFunction, request: ModelRequest) -> AsyncIterator[ReplyItem]:
        """What ``function`` answers, with its failures as :class:`ModelError`."""
        try:
            reply = function(request)
            if inspect.isawaitable(reply):
                reply = await reply
            if isinstance(reply, str | Call):
                reply = [reply]
            async for item in as_async(reply):
                if not isinstance(item, str | Call):
                    raise TypeError(
                        f"a model function yields str or Call values, not {type(item).__name__}"
                    )
                yield item
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"{self.model}: {type(exc).__name__}: {exc}") from exc


class _FunctionFactory(ProviderFactory):
    """The ``function`` prefix: the names registered with :func:`register_function`."""

    def examples(self) -> list[str]:
        with _lock:
            return [f"function:{name}" for name in _functions]

    def accepts(self, ref: ModelRef) -> bool:
        return _function(ref.name) is not None

    def create(self, ref: ModelRef) -> ModelProvider:
        return FunctionModel(ref.name)


#: How the registry makes ``function:NAME`` models.
FACTORY = _FunctionFactory()
