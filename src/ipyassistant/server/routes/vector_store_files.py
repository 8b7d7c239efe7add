"""``/vector_stores/{id}/files`` and ``/file_batches``: adding files to a store, reading their
state and indexed content, changing their attributes, removing them; batches of files.

Adding files writes them ``in_progress`` and wakes the indexer; its progress is read back from
the database (the SDK's ``*_and_poll`` helpers poll these routes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from .. import db
from .. import vector_store_objects as vso
from .. import vector_stores as stores
from ..auth import CallerDep
from ..caller import Caller
from ..errors import NotFound
from ..retrieval import index
from ..store import Store
from ..vector_store_schemas import CreateFileBatch, CreateVectorStoreFile, UpdateFileAttributes
from .common import Page, listing, new_router

if TYPE_CHECKING:
    from ..app import Server

__all__ = ["router"]

StatusFilter = Annotated[
    Literal["in_progress", "completed", "failed", "cancelled"] | None, Query()
]

_files = db.vector_store_files


def router(server: Server) -> APIRouter:
    """The routes of a store's files and file batches, on ``server``'s store and indexer."""
    store, indexer = server.store, server.indexer
    routes = new_router()

    @routes.post("/vector_stores/{vector_store_id}/files")
    async def create_file(
        vector_store_id: str, body: CreateVectorStoreFile, caller: CallerDep
    ) -> dict[str, Any]:
        async with store.tx(caller) as tx:
            current = await stores.get_usable(tx, vector_store_id, "take new files")
            obj = await stores.add_file(
                tx,
                vector_store_id,
                body.file_id,
                chunking=body.chunking_strategy,
                attributes=body.attributes,
            )
            await tx.update("vector_store", stores.touch(current))
            await stores.refresh(tx, vector_store_id)
        indexer.wake()
        return obj

    @routes.get("/vector_stores/{vector_store_id}/files")
    async def list_files(
        vector_store_id: str, page: Page, caller: CallerDep, filter: StatusFilter = None
    ) -> Response:
        where = [_files.c.vector_store_id == vector_store_id]
        if filter is not None:
            where.append(_files.c.status == filter)
        return await _page(store, caller, page, where, vector_store_id)

    @routes.get("/vector_stores/{vector_store_id}/files/{file_id}")
    async def get_file(vector_store_id: str, file_id: str, caller: CallerDep) -> dict[str, Any]:
        async with store.read(caller) as tx:
            await tx.get("vector_store", vector_store_id)
            return await stores.file_row(tx, vector_store_id, file_id)

    @routes.post("/vector_stores/{vector_store_id}/files/{file_id}")
    async def update_file(
        vector_store_id: str, file_id: str, body: UpdateFileAttributes, caller: CallerDep
    ) -> dict[str, Any]:
        async with store.tx(caller) as tx:
            await tx.get("vector_store", vector_store_id)
            obj = await stores.file_row(tx, vector_store_id, file_id)
            obj["attributes"] = body.attributes or {}
            await stores.write_file(tx, obj)
            # Chunks carry a copy of the attributes, so that filters need no join.
            await index.set_attributes(tx.conn, vector_store_id, file_id, body.attributes or None)
        return obj

    @routes.delete("/vector_stores/{vector_store_id}/files/{file_id}")
    async def delete_file(vector_store_id: str, file_id: str, caller: CallerDep) -> dict[str, Any]:
        async with store.tx(caller) as tx:
            await tx.get("vector_store", vector_store_id)
            await stores.delete_file(tx, vector_store_id, file_id)
        return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}

    @routes.get("/vector_stores/{vector_store_id}/files/{file_id}/content")
    async def file_content(
        vector_store_id: str, file_id: str, caller: CallerDep
    ) -> dict[str, Any]:
        async with store.read(caller) as tx:
            await tx.get("vector_store", vector_store_id)
            await stores.file_row(tx, vector_store_id, file_id)
            return vso.content_page(await index.file_chunks(tx.conn, vector_store_id, file_id))

    # -- batches --------------------------------------------------------------------------

    @routes.post("/vector_stores/{vector_store_id}/file_batches")
    async def create_batch(
        vector_store_id: str, body: CreateFileBatch, caller: CallerDep
    ) -> dict[str, Any]:
        if body.files is not None:
            entries = [(f"files[{i}].file_id", f) for i, f in enumerate(body.files)]
            wanted = [(p, f.file_id, f.chunking_strategy, f.attributes) for p, f in entries]
        else:
            wanted = [
                (f"file_ids[{i}]", file_id, body.chunking_strategy, body.attributes)
                for i, file_id in enumerate(body.file_ids or [])
            ]
        unique = {file_id: (param, file_id, chunking, attrs) for param, file_id, chunking, attrs in wanted}
        async with store.tx(caller) as tx:
            current = await stores.get_usable(tx, vector_store_id, "take new files")
            batch = vso.batch_object(vector_store_id, len(unique))
            await tx.insert("vector_store.files_batch", batch)
            for param, file_id, chunking, attributes in unique.values():
                await stores.add_file(
                    tx,
                    vector_store_id,
                    file_id,
                    chunking=chunking,
                    attributes=attributes,
                    batch_id=batch["id"],
                    param=param,
                )
            await tx.update("vector_store", stores.touch(current))
            await stores.refresh(tx, vector_store_id, [batch["id"]])
            batch = await tx.get("vector_store.files_batch", batch["id"])
        indexer.wake()
        return batch

    @routes.get("/vector_stores/{vector_store_id}/file_batches/{batch_id}")
    async def get_batch(vector_store_id: str, batch_id: str, caller: CallerDep) -> dict[str, Any]:
        async with store.read(caller) as tx:
            return await _batch(tx, vector_store_id, batch_id)

    @routes.post("/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel")
    async def cancel_batch(
        vector_store_id: str, batch_id: str, caller: CallerDep
    ) -> dict[str, Any]:
        async with store.tx(caller) as tx:
            return await stores.cancel_batch(tx, await _batch(tx, vector_store_id, batch_id))

    @routes.get("/vector_stores/{vector_store_id}/file_batches/{batch_id}/files")
    async def list_batch_files(
        vector_store_id: str,
        batch_id: str,
        page: Page,
        caller: CallerDep,
        filter: StatusFilter = None,
    ) -> Response:
        async with store.read(caller) as tx:
            await _batch(tx, vector_store_id, batch_id)
        where = [_files.c.vector_store_id == vector_store_id, _files.c.batch_id == batch_id]
        if filter is not None:
            where.append(_files.c.status == filter)
        return await _page(store, caller, page, where, vector_store_id)

    return routes


async def _batch(tx: Any, vector_store_id: str, batch_id: str) -> dict[str, Any]:
    """A store's batch (as if absent when it is another store's)."""
    await tx.get("vector_store", vector_store_id)
    batch: dict[str, Any] = await tx.get("vector_store.files_batch", batch_id)
    if batch["vector_store_id"] != vector_store_id:
        raise NotFound.of("vector store file batch", batch_id)
    return batch


async def _page(
    store: Store, caller: Caller, page: Any, where: list[Any], vector_store_id: str
) -> Response:
    async with store.read(caller) as tx:
        await tx.get("vector_store", vector_store_id)
        keys = await tx.page_keys("vector_store.file", page, where=where)
    return listing(store, keys)
