"""An :class:`Assistant`: a model with instructions and tools, and how long it lives on the server.

Lifecycles (:class:`Lifecycle`), from the most convenient:

- **lazy**: an assistant without id is created before each call (``say``, ``Thread.run``) and
  deleted after it, leaving nothing behind on the server;
- **context**: ``with ai:`` / ``async with ai:`` (nestable) create it once, at the outermost
  entry, and delete it at the outermost exit;
- **manual**: ``create()`` and ``delete()`` (errors when already created / not created);
- **loaded**: ``Assistant(id=…, …)`` or ``Assistant.load(id, tools=[…])`` use an existing one
  and never delete it automatically.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import warnings
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Final, Literal

import openai
from openai import AsyncAssistantEventHandler
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from . import _hooks
from ._files import (
    FileInput,
    IndexedFiles,
    attachment_tools,
    delete_store,
    index_files,
    with_store,
)
from ._portal import SyncContext, client, on_portal, sync_twin
from .exceptions import LifecycleError, MissingToolWarning
from .handlers import PrintHandler
from .instructions import render_instructions
from .runs import Run
from .settings import default_model
from .threads import Thread
from .tools import (
    FileSearch,
    FileSearchTool,
    FunctionTool,
    Tool,
    as_tools,
)

__all__ = ["DEFAULT_HANDLER", "Assistant", "DefaultHandler", "Lifecycle", "choose_handler"]


class DefaultHandler:
    """The type of :data:`DEFAULT_HANDLER`, ``say()``'s default ``event_handler_class``.

    It stands for "show the run where it runs": in a notebook a live ``RunView``
    (``ipyassistant.jupyter.WidgetHandler``, its view displayed in the calling cell), elsewhere
    :class:`~ipyassistant.PrintHandler`. ``event_handler_kwargs`` that only PrintHandler takes
    (``print_messages``, ``print_steps``, ``console``) choose PrintHandler in a notebook too.
    :func:`choose_handler` decides.
    """

    def __repr__(self) -> str:
        return "DEFAULT_HANDLER"


#: ``say()``'s default handler: a RunView in a notebook, else PrintHandler (see DefaultHandler).
DEFAULT_HANDLER: Final = DefaultHandler()

HandlerClass = type[AsyncAssistantEventHandler] | None


def choose_handler(
    handler_class: HandlerClass | DefaultHandler,
    handler_kwargs: Mapping[str, Any] | None,
) -> tuple[HandlerClass, Mapping[str, Any] | None]:
    """The handler class and kwargs to use; the one place that resolves ``DEFAULT_HANDLER``.

    Call it in the thread that runs the cell: in a notebook it displays the run's view there.
    """
    if not isinstance(handler_class, DefaultHandler):
        return handler_class, handler_kwargs
    chosen = _hooks.notebook_handler(handler_kwargs)  # cheap: widgets load only in a notebook
    if chosen is not None:
        return chosen
    return PrintHandler, handler_kwargs


def _choose_handler_in_caller(call: inspect.BoundArguments) -> None:
    """``say()``'s step in the caller's thread: a notebook view must be displayed from it.

    ``say_async`` then runs on the portal with the class chosen here, which
    :func:`choose_handler` passes through unchanged.
    """
    arguments = call.arguments
    arguments["event_handler_class"], arguments["event_handler_kwargs"] = choose_handler(
        arguments["event_handler_class"], arguments["event_handler_kwargs"]
    )


class Lifecycle(enum.Enum):
    """How an assistant's server object comes and goes (see the module docstring)."""

    #: No server object; each call creates one and deletes it afterwards.
    LAZY = "lazy"
    #: Created by ``with``/``async with`` (or for one lazy call); deleted at the outermost exit.
    CONTEXT = "context"
    #: Created by ``create()``; deleted by ``delete()``.
    MANUAL = "manual"
    #: An existing server object (an ``id`` was given, or ``load()``); never deleted for you.
    LOADED = "loaded"


class Assistant(BaseModel, SyncContext):
    """An assistant: a model, instructions and tools, talking on threads.

    ``instructions`` are a Jinja template rendered with ``self_`` (the assistant) in a sandbox,
    at every run. ``tools`` are Python functions (sync or async), ``CodeInterpreter``,
    ``FileSearch``, or tool specs. ``model=None`` means the server object's model, or
    ``IPYASSISTANT_MODEL`` (default ``test``) when ipyassistant creates it.

    ``files`` (paths, uploaded files or file ids) are what ``FileSearch`` searches: when the
    assistant is created on the server, they are uploaded into a vector store of its own,
    and the creation waits (at most ``index_timeout`` seconds) until they are indexed; a file
    that cannot be indexed raises :class:`~ipyassistant.exceptions.FileIndexingError`, naming
    it. The store and the uploads go when the assistant is deleted, so a lazy assistant
    indexes its files for each call: ``with ai:`` or ``ai.create()`` index them once.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, validate_assignment=True)

    name: str = "Assistant"
    id: str | None = None
    description: str | None = None
    instructions: str | None = Field(default=None, repr=False)
    model: str | None = None
    tools: list[Tool] = Field(default_factory=list)
    tool_resources: dict[str, Any] | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    response_format: str | dict[str, Any] | None = None
    #: The files ``FileSearch`` searches (see the class docstring).
    files: list[FileInput] = Field(default_factory=list)
    #: How long creating the assistant waits for its ``files`` to be indexed, in seconds.
    index_timeout: float = 300.0
    #: Whether calls of tools that need approval ask (see :mod:`ipyassistant.approval`);
    #: ``None``: ``IPYASSISTANT_APPROVE``, else ``"ask"``.
    approve: Literal["ask", "always", "never"] | None = None
    default_thread: Thread = Field(default_factory=Thread, repr=False)

    _lifecycle: Lifecycle = PrivateAttr(default=Lifecycle.LAZY)
    _depth: int = PrivateAttr(default=0)
    _lock: asyncio.Lock | None = PrivateAttr(default=None)
    #: The vector store of ``files`` while the assistant exists on the server.
    _indexed: IndexedFiles | None = PrivateAttr(default=None)

    @field_validator("tools", mode="before")
    @classmethod
    def _as_tools(cls, tools: Iterable[Any]) -> list[Tool]:
        return as_tools(tools)

    @model_validator(mode="after")
    def _files_need_file_search(self) -> Assistant:
        if self.files and not any(isinstance(tool, FileSearchTool) for tool in self.tools):
            raise ValueError(
                "files are searched by the FileSearch tool: add it, "
                "Assistant(tools=[FileSearch, ...], files=[...])"
            )
        return self

    def model_post_init(self, context: Any, /) -> None:
        if self.id is not None:
            self._lifecycle = Lifecycle.LOADED

    @property
    def lifecycle(self) -> Lifecycle:
        """The assistant's lifecycle now."""
        return self._lifecycle

    def clear_default_thread(self) -> None:
        """Start a new conversation: replace ``default_thread`` with a new thread."""
        self.default_thread = Thread()

    def get_instructions(self) -> str | None:
        """The instructions rendered for now (raises InstructionsError if they do not render)."""
        if self.instructions is None:
            return None
        return render_instructions(self.instructions, self)

    # -- talking ---------------------------------------------------------------------------

    async def say_async(
        self,
        message: str,
        thread: Thread | None = None,
        event_handler_class: HandlerClass | DefaultHandler = DEFAULT_HANDLER,
        event_handler_kwargs: Mapping[str, Any] | None = None,
        code_interpreter_files: Iterable[FileInput] | None = None,
        image_files: Iterable[FileInput] | None = None,
        attachments: Iterable[FileInput] | None = None,
        **run_kwargs: Any,
    ) -> Run:
        """Say ``message`` on ``thread`` (default: ``default_thread``) and run the assistant.

        Saying again continues the conversation. The run is shown as it streams: in a
        notebook as a live view, elsewhere printed by ``PrintHandler`` (``DEFAULT_HANDLER``;
        ``event_handler_class=None`` shows nothing; ``event_handler_kwargs=dict(
        print_messages=False)`` or ``dict(print_steps=False)`` print less). Files are uploaded:
        ``code_interpreter_files`` attached for the code interpreter, ``image_files`` shown to
        the model, ``attachments`` put in the thread's vector store for file search (and
        attached for the code interpreter too when the assistant has it; the run gets
        ``FileSearch`` if the assistant lacks it). ``run_kwargs`` go to :class:`Run`. Returns
        the finished run.
        """
        # Not on the portal: awaited, this runs in the awaiting thread, where a notebook view
        # must be displayed (through say(), _choose_handler_in_caller chose there already).
        handler_class, handler_kwargs = choose_handler(event_handler_class, event_handler_kwargs)
        return await self._say(
            message,
            thread,
            handler_class,
            handler_kwargs,
            code_interpreter_files,
            image_files,
            attachments,
            run_kwargs,
        )

    say: ClassVar = sync_twin(say_async, prepare=_choose_handler_in_caller)

    @on_portal
    async def _say(
        self,
        message: str,
        thread: Thread | None,
        event_handler_class: HandlerClass,
        event_handler_kwargs: Mapping[str, Any] | None,
        code_interpreter_files: Iterable[FileInput] | None,
        image_files: Iterable[FileInput] | None,
        attachments: Iterable[FileInput] | None,
        run_kwargs: dict[str, Any],
    ) -> Run:
        thread = self.default_thread if thread is None else thread
        run = Run(
            thread,
            self,
            event_handler_class=event_handler_class,
            event_handler_kwargs=event_handler_kwargs,
            **run_kwargs,
        )
        attached = list(attachments or ())
        tools = run.effective_tools()
        if attached and not any(isinstance(tool, FileSearchTool) for tool in tools):
            run.additional_tools.append(FileSearch)  # attached to be searched: search them
        run.request()  # instructions and tools are checked before anything reaches the server
        user_message = await thread.add_async(
            message,
            code_interpreter_files=code_interpreter_files,
            image_files=image_files,
            attachments=attached,
            attachment_tools=attachment_tools(tools),
        )
        run.add_preamble(user_message)
        return await run.execute_async()

    def chat(self, thread: Thread | None = None, **say_kwargs: Any) -> None:
        """Talk with the assistant in the terminal until you enter ``exit`` (or press Ctrl-D).

        Each line is said on ``thread`` (default: ``default_thread``) with ``say_kwargs``
        (see :meth:`say`); the prompt keeps a history (arrow keys). The assistant is created
        once for the whole conversation. Ctrl-C during a reply cancels that run only.
        """
        session = _prompt_session()
        with self:
            while (text := _read(session)) is not None:
                if text:
                    with _interrupt_cancels_the_reply():
                        self.say(text, thread=thread, **say_kwargs)

    async def chat_async(self, thread: Thread | None = None, **say_kwargs: Any) -> None:
        """Talk with the assistant in the terminal until you enter ``exit`` (or press Ctrl-D).

        Each line is said on ``thread`` (default: ``default_thread``) with ``say_kwargs``
        (see :meth:`say`); the prompt keeps a history (arrow keys). The assistant is created
        once for the whole conversation. Ctrl-C during a reply cancels that run only.
        """
        session = _prompt_session()
        async with self:
            while (text := await _read_async(session)) is not None:
                if text:
                    with _interrupt_cancels_the_reply():
                        await self.say_async(text, thread=thread, **say_kwargs)

    # -- lifecycle -------------------------------------------------------------------------

    def _create_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "name": self.name,
            "model": self.model or default_model(),
            "tools": [tool.spec() for tool in self.tools],
            "metadata": self.metadata,
        }
        optional = {
            "description": self.description,
            "instructions": self.get_instructions(),
            "tool_resources": self.tool_resources,
            "response_format": self.response_format,
        }
        params.update({key: value for key, value in optional.items() if value is not None})
        return params

    async def _create(self, lifecycle: Lifecycle) -> None:
        params = self._create_params()  # a template error comes before the request
        api = await client()
        indexed = None
        if self.files:
            indexed = await index_files(api, self.files, f"{self.name}: files", self.index_timeout)
            params["tool_resources"] = with_store(params.get("tool_resources"), indexed.store_id)
        try:
            created = await api.beta.assistants.create(**params)
        except BaseException:
            if indexed is not None:
                with contextlib.suppress(openai.APIError):  # the first error is the one to see
                    await delete_store(api, indexed)
            raise
        self.id = created.id
        self._indexed = indexed
        self._lifecycle = lifecycle

    async def _delete(self) -> None:
        assert self.id is not None
        api = await client()
        with contextlib.suppress(openai.NotFoundError):  # deleted elsewhere: goal reached
            await api.beta.assistants.delete(self.id)
        self.id = None
        self._lifecycle = Lifecycle.LAZY
        indexed, self._indexed = self._indexed, None
        if indexed is not None:
            await delete_store(api, indexed)

    @on_portal
    async def create_async(self) -> Assistant:
        """Create the assistant on the server, to keep until :meth:`delete`."""
        if self.id is not None:
            raise LifecycleError(
                f"the assistant exists already (id {self.id}, {self._lifecycle.value} "
                "lifecycle); create() makes a new one only for an assistant without id"
            )
        await self._create(Lifecycle.MANUAL)
        return self

    # The sync twins are ClassVars to pydantic: methods, not fields.
    create: ClassVar = sync_twin(create_async)

    @on_portal
    async def delete_async(self) -> None:
        """Delete the assistant from the server; it becomes lazy again."""
        if self.id is None:
            raise LifecycleError(
                "the assistant has not been created, so it cannot be deleted "
                "(create() it, or give it an id)"
            )
        await self._delete()

    delete: ClassVar = sync_twin(delete_async)

    @classmethod
    async def load_async(cls, /, id: str, **kwargs: Any) -> Assistant:
        """The assistant with this id, read from the server; ``kwargs`` replace its fields.

        Function tools are stored on the server as specs only: pass the functions as
        ``tools=[…]``, or a MissingToolWarning says which ones cannot be called.
        """
        return await _load(cls, id, kwargs)

    load: ClassVar = classmethod(sync_twin(load_async))

    # ``with``/``async with`` (SyncContext) acquire and release the assistant.

    @on_portal
    async def _acquire(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.id is None:
                await self._create(Lifecycle.CONTEXT)
            self._depth += 1

    @on_portal
    async def _release(self) -> None:
        assert self._lock is not None
        async with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._lifecycle is Lifecycle.CONTEXT and self.id is not None:
                await self._delete()

    @asynccontextmanager
    async def in_use(self) -> AsyncIterator[str]:
        """Internal: the assistant's id, existing on the server inside this block.

        A :class:`~ipyassistant.Run` executes inside it: a lazy assistant is created for the
        run and deleted after it, as at the outermost exit of ``async with``.
        """
        await self._acquire()
        try:
            assert self.id is not None
            yield self.id
        finally:
            await self._release()


_EXIT = frozenset({"exit", "quit", "/exit", "/quit"})


def _prompt_session() -> Any:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import InMemoryHistory

    return PromptSession(history=InMemoryHistory())


# chat() and chat_async() read and reply in their own flavour; what a line means is shared.


def _read(session: Any) -> str | None:
    """The next line typed, to say ('' for a blank one), or None when the user ends the chat."""
    with contextlib.suppress(EOFError, KeyboardInterrupt):  # Ctrl-D or Ctrl-C at the prompt
        return _to_say(session.prompt("you> "))
    return None


async def _read_async(session: Any) -> str | None:
    """:func:`_read` awaiting the prompt."""
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        return _to_say(await session.prompt_async("you> "))
    return None


def _to_say(line: str) -> str | None:
    text = line.strip()
    return None if text.lower() in _EXIT else text


@contextlib.contextmanager
def _interrupt_cancels_the_reply() -> Iterator[None]:
    """Ctrl-C during a reply: its run was cancelled; the chat goes on."""
    try:
        yield
    except KeyboardInterrupt:
        print("(interrupted; the run was cancelled)")


@on_portal
async def _load(cls: type[Assistant], assistant_id: str, overrides: dict[str, Any]) -> Assistant:
    api = await client()
    found = await api.beta.assistants.retrieve(assistant_id)
    fields: dict[str, Any] = {
        "id": found.id,
        "name": found.name or "Assistant",
        "description": found.description,
        "instructions": found.instructions,
        "model": found.model,
        "tools": found.tools,
        "tool_resources": _plain(found.tool_resources),
        "metadata": found.metadata or {},
        "response_format": _plain(found.response_format),
    }
    assistant = cls(**(fields | overrides | {"id": found.id}))
    stored = [t.function.name for t in found.tools if t.type == "function"]
    callable_names = {
        t.name for t in assistant.tools if isinstance(t, FunctionTool) and t.function is not None
    }
    missing = [name for name in stored if name not in callable_names]
    if missing:
        warnings.warn(
            f"assistant {found.id} has function tools without Python functions here, so they "
            f"cannot be called: {', '.join(missing)}; pass them as "
            f"Assistant.load({found.id!r}, tools=[...])",
            MissingToolWarning,
            stacklevel=2,
        )
    return assistant


def _plain(value: Any) -> Any:
    """An SDK object as plain JSON-like data (as the API accepts it back)."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    return value
