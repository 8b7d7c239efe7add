"""``/files``: upload, list, read, delete files and download their content.

A file's bytes are in the :class:`~ipyassistant.server.files.FileStore`; its object (name,
size, purpose) is in the database. Deleting a file also takes it out of every vector store
that holds it, with its chunks.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response

from .. import db, objects, vector_stores
from ..auth import CallerDep
from ..errors import InvalidRequest, NotFound
from ..store import Cursor, new_id
from .common import Order, fetch, listing, new_router

if TYPE_CHECKING:
    from ..app import Server

__all__ = ["FILE_PURPOSES", "router"]

# The purposes a client may upload with (the file schema's enum, less the server-made ones).
# Not "evals": the upload request allows it, but the file object's enum does not, so such a
# file could not be returned as the spec says.
FILE_PURPOSES = ("assistants", "vision", "user_data", "batch", "fine-tune")


def _check_form(names: list[str], purpose: str) -> None:
    """Refuse an upload's fields other than ``file`` and a known ``purpose``."""
    for name in names:
        if name.startswith("expires_after"):
            raise InvalidRequest(
                "expires_after is not supported: files on this server never expire.",
                param="expires_after",
                code="unsupported_parameter",
            )
        if name not in ("file", "purpose"):
            raise InvalidRequest(
                f"Unrecognized request argument supplied: {name or repr(name)}",
                param=name,
                code="unknown_parameter",
            )
    if purpose not in FILE_PURPOSES:
        raise InvalidRequest(
            f"Invalid purpose {purpose!r}; use one of: {', '.join(FILE_PURPOSES)}.",
            param="purpose",
            code="invalid_value",
        )


def router(server: Server) -> APIRouter:
    """The files' routes, on ``server``'s store and file store."""
    store, files = server.store, server.files
    routes = new_router()

    @routes.post("/files")
    async def upload_file(
        request: Request,
        file: Annotated[UploadFile, File()],
        purpose: Annotated[str, Form()],
        caller: CallerDep,
    ) -> dict[str, Any]:
        _check_form(list(await request.form()), purpose)  # parsed already: FastAPI read it
        file_id = new_id("file")
        size = files.write(file_id, file.file)
        # Keep only the last part of a client's path: a client that saves downloads under
        # this name must not be led outside its folder.
        filename = PurePosixPath((file.filename or "").replace("\\", "/")).name or "upload"
        row = objects.file_object(file_id, filename, size, purpose)
        try:
            async with store.tx(caller) as tx:
                return await tx.insert("file", row)
        except BaseException:
            files.delete(file_id)
            raise

    @routes.get("/files")
    async def list_files(
        caller: CallerDep,
        purpose: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
        order: Order = "desc",
        after: str | None = None,
    ) -> Response:
        where = [db.files.c.purpose == purpose] if purpose else []
        async with store.read(caller) as tx:
            keys = await tx.page_keys("file", Cursor(limit, order, after, None), where=where)
        return listing(store, keys)

    @routes.get("/files/{file_id}")
    async def get_file(file_id: str, caller: CallerDep) -> dict[str, Any]:
        return await fetch(store, caller, "file", file_id)

    @routes.delete("/files/{file_id}")
    async def delete_file(file_id: str, caller: CallerDep) -> dict[str, Any]:
        async with store.tx(caller) as tx:
            if not await tx.delete("file", file_id):
                raise NotFound.of("file", file_id)
            # From every store that holds it, the caller's or not (an admin may have added it).
            await vector_stores.remove_file(tx.as_server(), file_id)
        files.delete(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    @routes.get("/files/{file_id}/content")
    async def file_content(file_id: str, caller: CallerDep) -> Response:
        async with store.read(caller) as tx:
            row = await tx.get("file", file_id)
        path = files.path(file_id)
        if not path.exists():
            raise NotFound(
                f"The content of file {file_id} is missing from the server.", code="not_found"
            )
        return FileResponse(path, filename=row["filename"])

    return routes
