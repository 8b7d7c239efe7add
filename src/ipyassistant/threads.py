"""A :class:`Thread`: a conversation, created on the server when it is first used."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import openai
from openai import AsyncAssistantEventHandler
from openai.types.beta.threads import Message
from pydantic import BaseModel, ConfigDict, PrivateAttr

from . import _hooks
from ._files import FileInput, attachment_list, upload
from ._portal import SyncContext, client, on_portal, sync_twin
from .exceptions import LifecycleError, ThreadBusyError
from .runs import Run
from .settings import unretried

if TYPE_CHECKING:
    from .assistants import Assistant

__all__ = ["FileInput", "Thread"]

class Thread(BaseModel, SyncContext):
    """A conversation: user messages, and what assistants answered in runs.

    ``Thread()`` is registered on the server lazily, when first used; ``Thread(id=…)``
    resumes an existing one. As a context manager (``with`` or ``async with``), a thread
    without id is created on entry and deleted on exit. While a run is active, the thread
    accepts no messages (:class:`~ipyassistant.exceptions.ThreadBusyError` names the run).
    In a notebook a thread displays as its transcript.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, validate_assignment=True)

    id: str | None = None
    metadata: dict[str, str] = {}
    tool_resources: dict[str, Any] | None = None

    _lock: asyncio.Lock | None = PrivateAttr(default=None)
    _depth: int = PrivateAttr(default=0)
    _created_by_block: bool = PrivateAttr(default=False)

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> _hooks.MimeBundle | None:
        return _hooks.thread_mimebundle(self, include, exclude)  # None outside a notebook

    # -- lifecycle -------------------------------------------------------------------------

    @on_portal
    async def create_async(self) -> Thread:
        """Create the thread on the server (an error if it has an id already)."""
        if self.id is not None:
            raise LifecycleError(f"thread {self.id} exists already; create() makes new threads")
        await self.ensure_created()
        return self

    # The sync twins are ClassVars to pydantic: methods, not fields.
    create: ClassVar = sync_twin(create_async)

    @on_portal
    async def delete_async(self) -> None:
        """Delete the thread, its messages and runs from the server."""
        if self.id is None:
            raise LifecycleError("the thread has not been created, so it cannot be deleted")
        api = await client()
        try:
            await api.beta.threads.delete(self.id)
        except openai.BadRequestError as exc:
            busy = ThreadBusyError.from_api_error(exc, self.id, "delete")
            if busy is None:
                raise
            raise busy from exc
        self.id = None
        self._created_by_block = False

    delete: ClassVar = sync_twin(delete_async)

    async def ensure_created(self) -> str:
        """Internal: the thread's id, creating the thread first if needed.

        What a :class:`~ipyassistant.Run` and :meth:`add_async` await before they use the id.
        """
        if self.id is not None:
            return self.id
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.id is None:
                api = await client()
                created = await api.beta.threads.create(
                    metadata=self.metadata or openai.omit,
                    tool_resources=self.tool_resources or openai.omit,  # type: ignore[arg-type]
                )
                self.id = created.id
            return self.id

    # ``with``/``async with`` (SyncContext): a thread without id lives for the outermost block.

    async def _acquire(self) -> None:
        if self.id is None:
            await self.create_async()
            self._created_by_block = True
        self._depth += 1

    async def _release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._created_by_block and self.id is not None:
            await self.delete_async()

    # -- messages --------------------------------------------------------------------------

    @on_portal
    async def add_async(
        self,
        message: str,
        code_interpreter_files: Iterable[FileInput] | None = None,
        image_files: Iterable[FileInput] | None = None,
        attachments: Iterable[FileInput] | None = None,
        attachment_tools: Iterable[str] = ("file_search",),
    ) -> Message:
        """Add a user message; files are uploaded (paths) and attached, or shown (images).

        ``attachments`` (paths, uploaded files or file ids) are attached for
        ``attachment_tools``: by default for file search, which puts them in the thread's
        vector store (the server indexes them; a run waits for that). ``code_interpreter_files``
        are attached for the code interpreter. Returns the SDK message. Raises ThreadBusyError
        while a run is active.
        """
        api = await client()
        code_files = [(await upload(api, f, "assistants"))[0] for f in code_interpreter_files or ()]
        searched = [(await upload(api, f, "assistants"))[0] for f in attachments or ()]
        images = [(await upload(api, f, "vision"))[0] for f in image_files or ()]
        content: str | list[dict[str, Any]] = message
        if images:
            content = [{"type": "text", "text": message}] + [
                {"type": "image_file", "image_file": {"file_id": image}} for image in images
            ]
        attached = attachment_list(code_files, ["code_interpreter"])
        attached += attachment_list(searched, attachment_tools)
        thread_id = await self.ensure_created()
        try:
            return await unretried(api).beta.threads.messages.create(
                thread_id,
                role="user",
                content=content,  # type: ignore[arg-type]
                attachments=attached or openai.omit,  # type: ignore[arg-type]
            )
        except openai.BadRequestError as exc:
            busy = ThreadBusyError.from_api_error(exc, thread_id, "add a message to")
            if busy is None:
                raise
            raise busy from exc

    add: ClassVar = sync_twin(add_async)

    @on_portal
    async def get_messages_async(
        self,
        limit: int = 20,
        before_message: str | None = None,
        after_message: str | None = None,
    ) -> list[Message]:
        """Messages oldest first: the last ``limit`` (1-100) ones, or the ``limit`` just
        before ``before_message`` and/or just after ``after_message`` (message ids)."""
        if self.id is None:
            return []
        api = await client()
        if after_message is not None:
            page = await api.beta.threads.messages.list(
                self.id,
                limit=limit,
                order="asc",
                after=after_message,
                before=before_message or openai.omit,
            )
            return list(page.data)
        page = await api.beta.threads.messages.list(
            self.id, limit=limit, order="desc", after=before_message or openai.omit
        )
        return list(reversed(page.data))

    get_messages: ClassVar = sync_twin(get_messages_async)

    # -- runs ------------------------------------------------------------------------------

    @on_portal
    async def run_async(
        self,
        assistant: Assistant,
        event_handler_class: type[AsyncAssistantEventHandler] | None = None,
        event_handler_kwargs: Mapping[str, Any] | None = None,
        **run_kwargs: Any,
    ) -> Run:
        """Run ``assistant`` on this thread and return the finished :class:`Run`.

        Prints nothing unless given an ``event_handler_class`` (e.g. ``PrintHandler``).
        ``run_kwargs`` are :class:`Run`'s overrides (``model``, ``instructions``,
        ``additional_instructions``, ``tools``, ``additional_tools``, ``tool_choice``) and
        any other API run parameter.
        """
        run = Run(
            self,
            assistant,
            event_handler_class=event_handler_class,
            event_handler_kwargs=event_handler_kwargs,
            **run_kwargs,
        )
        return await run.execute_async()

    run: ClassVar = sync_twin(run_async)
