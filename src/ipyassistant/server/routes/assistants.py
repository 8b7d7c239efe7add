"""``/assistants``: create, list, read, modify and delete assistants."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import Response

from .. import objects, vector_stores
from ..auth import CallerDep
from ..models import check_model
from ..schemas import CreateAssistant, ModifyAssistant
from .common import Page, check_tools, delete_one, deleted, fetch, listing, new_router

if TYPE_CHECKING:
    from ..app import Server

__all__ = ["router"]


def router(server: Server) -> APIRouter:
    """The assistants' routes, on ``server``'s store."""
    store = server.store
    routes = new_router()

    @routes.post("/assistants")
    async def create_assistant(body: CreateAssistant, caller: CallerDep) -> dict[str, Any]:
        check_model(body.model)
        assistant = objects.assistant_object(dict(body))
        check_tools(assistant["tools"], "tools")
        async with store.tx(caller) as tx:
            assistant["tool_resources"] = await vector_stores.resolve_tool_resources(
                tx, body.tool_resources, "tool_resources"
            )
            return await tx.insert("assistant", assistant)

    @routes.get("/assistants")
    async def list_assistants(page: Page, caller: CallerDep) -> Response:
        async with store.read(caller) as tx:
            keys = await tx.page_keys("assistant", page)
        return listing(store, keys)

    @routes.get("/assistants/{assistant_id}")
    async def get_assistant(assistant_id: str, caller: CallerDep) -> dict[str, Any]:
        return await fetch(store, caller, "assistant", assistant_id)

    @routes.post("/assistants/{assistant_id}")
    async def modify_assistant(
        assistant_id: str, body: ModifyAssistant, caller: CallerDep
    ) -> dict[str, Any]:
        if body.model is not None:
            check_model(body.model)
        changes = {key: getattr(body, key) for key in body.model_fields_set}
        fresh = objects.assistant_object({"model": "", **changes})
        async with store.tx(caller) as tx:
            assistant = await tx.get("assistant", assistant_id)
            for key in changes:
                assistant[key] = fresh[key]
            if "tool_resources" in changes:
                assistant["tool_resources"] = await vector_stores.resolve_tool_resources(
                    tx, body.tool_resources, "tool_resources"
                )
            check_tools(assistant["tools"], "tools")
            return await tx.update("assistant", assistant)

    @routes.delete("/assistants/{assistant_id}")
    async def delete_assistant(assistant_id: str, caller: CallerDep) -> dict[str, Any]:
        await delete_one(store, caller, "assistant", assistant_id)
        return deleted("assistant", assistant_id)

    return routes
