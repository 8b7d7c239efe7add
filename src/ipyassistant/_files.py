"""Files for assistants: uploads, and the vector stores that file search reads.

A file is given as a path, an SDK ``FileObject``, or the id of a file already uploaded
(``file-…``). :func:`index_files` puts files in a new vector store and waits until the server
has indexed them all, so that the first question already finds them; a file the server
cannot index (an unsupported type, a broken PDF) fails the wait with a
:class:`~ipyassistant.exceptions.FileIndexingError` naming it and saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from openai.types import FileObject

from .exceptions import FileIndexingError
from .tools import CodeInterpreterTool, Tool

__all__ = [
    "FileInput",
    "IndexedFiles",
    "attachment_list",
    "attachment_tools",
    "delete_store",
    "file_name",
    "index_files",
    "upload",
    "wait_indexed",
    "with_store",
]

#: A file to attach: a path, a file already uploaded (an SDK ``FileObject``), or its id.
FileInput = str | os.PathLike[str] | FileObject

#: How often the wait for indexing asks, at first and at most (it backs off in between).
_FIRST_POLL, _LAST_POLL = 0.05, 1.0


def _is_file_id(file: str | os.PathLike[str]) -> bool:
    # An id names no file here; a path that happens to start with "file-" is still a path.
    return isinstance(file, str) and file.startswith("file-") and not os.path.exists(file)


def file_name(file: FileInput) -> str:
    """What a file is called in messages: its path's name, its uploaded name, or its id."""
    if isinstance(file, FileObject):
        return file.filename
    return str(file) if _is_file_id(file) else Path(file).name


async def upload(api: openai.AsyncOpenAI, file: FileInput, purpose: str) -> tuple[str, bool]:
    """The file's id, uploading it first if it is a path; and whether it was uploaded now."""
    if isinstance(file, FileObject):
        return file.id, False
    if _is_file_id(file):
        return str(file), False
    uploaded = await api.files.create(file=Path(file), purpose=purpose)  # type: ignore[arg-type]
    return uploaded.id, True


@dataclass(frozen=True)
class IndexedFiles:
    """A vector store made for some files, and which of them were uploaded for it."""

    store_id: str
    uploaded: tuple[str, ...]


async def index_files(
    api: openai.AsyncOpenAI, files: Sequence[FileInput], name: str, timeout: float
) -> IndexedFiles:
    """Upload ``files``, make a vector store of them, and wait up to ``timeout`` seconds until
    they are indexed. On failure nothing is left behind (store and uploads are deleted)."""
    ids: list[str] = []
    uploaded: list[str] = []
    names: dict[str, str] = {}
    store_id: str | None = None
    try:
        for file in files:
            file_id, new = await upload(api, file, "assistants")
            ids.append(file_id)
            names[file_id] = file_name(file)
            if new:
                uploaded.append(file_id)
        store = await api.vector_stores.create(name=name, file_ids=ids)
        store_id = store.id
        await wait_indexed(api, store_id, names, timeout)
    except BaseException:
        with contextlib.suppress(openai.APIError):  # the first error is the one to see
            await delete_store(api, IndexedFiles(store_id or "", tuple(uploaded)))
        raise
    return IndexedFiles(store_id, tuple(uploaded))


async def wait_indexed(
    api: openai.AsyncOpenAI, store_id: str, names: dict[str, str], timeout: float
) -> None:
    """Wait until no file of the store is ``in_progress``; raise if one failed or time is up."""
    deadline = time.monotonic() + timeout
    pause = _FIRST_POLL
    while True:
        files = [f async for f in api.vector_stores.files.list(store_id, limit=100)]
        failed = [
            (
                await _name(api, f.id, names),
                f.last_error.code if f.last_error else f.status,
                f.last_error.message if f.last_error else f"the file's indexing was {f.status}",
            )
            for f in files
            if f.status in ("failed", "cancelled")
        ]
        pending = [f.id for f in files if f.status == "in_progress"]
        if failed:
            raise FileIndexingError(failed, [])
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise FileIndexingError([], [await _name(api, i, names) for i in pending], timeout)
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, _LAST_POLL)


async def _name(api: openai.AsyncOpenAI, file_id: str, names: dict[str, str]) -> str:
    known = names.get(file_id)
    if known is not None and known != file_id:
        return known
    with contextlib.suppress(openai.APIError):  # gone meanwhile: its id names it
        return f"{(await api.files.retrieve(file_id)).filename} ({file_id})"
    return file_id


async def delete_store(api: openai.AsyncOpenAI, indexed: IndexedFiles) -> None:
    """Delete a store made by :func:`index_files` and the files uploaded for it.

    Already gone is fine: the goal is reached. Other errors are raised after trying all.
    """
    problems: list[openai.APIError] = []
    deletions: list[Callable[[], Awaitable[object]]] = [
        functools.partial(api.files.delete, file_id) for file_id in indexed.uploaded
    ]
    if indexed.store_id:
        deletions.insert(0, functools.partial(api.vector_stores.delete, indexed.store_id))
    for delete in deletions:
        try:
            await delete()
        except openai.NotFoundError:
            pass
        except openai.APIError as exc:
            problems.append(exc)
    if problems:
        raise problems[0]


def attachment_list(file_ids: Iterable[str], tools: Iterable[str]) -> list[dict[str, object]]:
    """Message ``attachments``: each file, for each of ``tools``."""
    kinds = [{"type": tool} for tool in tools]
    return [{"file_id": file_id, "tools": kinds} for file_id in file_ids]


def attachment_tools(tools: Iterable[Tool]) -> list[str]:
    """The tools a file attached to a message is for: file search, and the code interpreter
    when the run has it (so that the model may also read the file with code)."""
    if any(isinstance(tool, CodeInterpreterTool) for tool in tools):
        return ["file_search", "code_interpreter"]
    return ["file_search"]


def with_store(tool_resources: Mapping[str, Any] | None, store_id: str) -> dict[str, Any]:
    """``tool_resources`` with the vector store ``store_id`` added for file search."""
    resources = dict(tool_resources or {})
    search = dict(resources.get("file_search") or {})
    search["vector_store_ids"] = [*search.get("vector_store_ids", []), store_id]
    resources["file_search"] = search
    return resources
