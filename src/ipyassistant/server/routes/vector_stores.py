"""``/vector_stores``: create, list, read, modify and delete stores, and search them.

Their files and file batches are in :mod:`.vector_store_files`. What a store holds and how
its counts are kept is :mod:`ipyassistant.server.vector_stores`; the indexing is the
:class:`~ipyassistant.server.retrieval.indexer.Indexer`'s, woken after files are added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from .. import db
from .. import vector_store_objects as vso
from .. import vector_stores as stores
from ..auth import CallerDep
from ..errors import InvalidRequest
from ..retrieval.search import search
from ..vector_store_schemas import CreateVectorStore, ModifyVectorStore, SearchVectorStore
from .common import Page, deleted, listing, new_router

if TYPE_CHECKING:
    from ..app import Server

__all__ = ["router"]


def router(server: Server) -> APIRouter:
    """The vector stores' routes, on ``server``'s store and indexer."""
    store, indexer = server.store, server.indexer
    routes = new_router()

    @routes.post("/vector_stores", dependencies=[Depends(_has_body)])
    async def create_vector_store(body: CreateVectorStore, caller: CallerDep) -> dict[str, Any]:
        embedder = await stores.embedder_name(body.embedding_model)
        async with store.tx(caller) as tx:
            created = await stores.create_store(
                tx,
                embedding_model=embedder,
                name=body.name,
                description=body.description,
                metadata=body.metadata,
                expires_after=stores.plain(body.expires_after),
                file_ids=body.file_ids,
                chunking=body.chunking_strategy,
            )
        indexer.wake()
        return created

    @routes.get("/vector_stores")
    async def list_vector_stores(page: Page, caller: CallerDep) -> Response:
        async with store.read(caller) as tx:
            keys = await tx.page_keys("vector_store", page)
        return listing(store, keys)

    @routes.get("/vector_stores/{vector_store_id}")
    async def get_vector_store(vector_store_id: str, caller: CallerDep) -> dict[str, Any]:
        async with store.read(caller) as tx:
            return stores.as_read(await tx.get("vector_store", vector_store_id))

    @routes.post("/vector_stores/{vector_store_id}")
    async def modify_vector_store(
        vector_store_id: str, body: ModifyVectorStore, caller: CallerDep
    ) -> dict[str, Any]:
        given = body.model_fields_set
        embedder = None
        if body.embedding_model is not None:
            embedder = await stores.embedder_name(body.embedding_model)
        async with store.tx(caller) as tx:
            current = stores.as_read(await tx.get("vector_store", vector_store_id))
            if "name" in given:
                current["name"] = body.name or ""
            if "metadata" in given:
                current["metadata"] = body.metadata or {}
            if "expires_after" in given:
                if current["status"] == "expired":
                    raise InvalidRequest(
                        f"Vector store {vector_store_id} has expired; its expiry cannot change.",
                        param="expires_after",
                        code="vector_store_expired",
                    )
                if body.expires_after is None:
                    current.pop("expires_after", None)
                else:
                    current["expires_after"] = stores.plain(body.expires_after)
                stores.touch(current)
            changed = embedder is not None and embedder != current["embedding_model"]
            if changed:
                current["embedding_model"] = embedder
            await tx.update("vector_store", current)
            if changed:
                await stores.reindex(tx, vector_store_id)
                current = stores.as_read(await stores.refresh(tx, vector_store_id))
        indexer.wake()
        return current

    @routes.delete("/vector_stores/{vector_store_id}")
    async def delete_vector_store(vector_store_id: str, caller: CallerDep) -> dict[str, Any]:
        async with store.tx(caller) as tx:
            await stores.delete_store(tx, vector_store_id)
        return deleted("vector_store", vector_store_id)

    @routes.post("/vector_stores/{vector_store_id}/search")
    async def search_vector_store(
        vector_store_id: str, body: SearchVectorStore, caller: CallerDep
    ) -> dict[str, Any]:
        queries = [body.query] if isinstance(body.query, str) else body.query
        ranking = body.ranking_options
        async with store.tx(caller) as tx:
            used = await stores.get_usable(tx, vector_store_id, "be searched")
            await tx.update("vector_store", stores.touch(used))
        async with store.read(caller) as tx:
            try:
                hits = await search(
                    tx.conn,
                    [vector_store_id],
                    queries,
                    max_num_results=body.max_num_results,
                    filters=body.filters.model_dump(mode="json") if body.filters else None,
                    ranker="none" if ranking and ranking.ranker == "none" else "auto",
                    score_threshold=ranking.score_threshold if ranking else 0.0,
                )
            except ValueError as exc:
                raise InvalidRequest(str(exc), param="filters", code="invalid_value") from None
            names = await _filenames(tx, {hit.file_id for hit in hits})
        results = [
            {
                "file_id": hit.file_id,
                "filename": names.get(hit.file_id, ""),
                "score": hit.score,
                "attributes": hit.attributes,
                "content": [{"type": "text", "text": hit.text}],
            }
            for hit in hits
        ]
        return vso.search_page(queries, results)

    return routes


def _has_body(request: Request) -> None:
    """The spec requires a body to create a store (``{}`` will do): refuse a request with none."""
    if request.headers.get("content-length", "0") == "0" and "transfer-encoding" not in request.headers:
        raise InvalidRequest(
            "The request has no body; send a JSON object ({} makes a store with the defaults).",
            code="missing_required_parameter",
        )


async def _filenames(tx: Any, file_ids: set[str]) -> dict[str, str]:
    if not file_ids:
        return {}
    rows = await tx.conn.execute(
        sa.select(db.files.c.id, db.files.c.data).where(db.files.c.id.in_(file_ids))
    )
    return {file_id: data["filename"] for file_id, data in rows}
