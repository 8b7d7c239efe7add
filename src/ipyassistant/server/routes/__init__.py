"""The API's routes under ``/v1``, one module a resource, joined behind authentication.

Each module's ``router(server)`` returns that resource's :class:`APIRouter`, whose routes
close over the app's :class:`~ipyassistant.server.app.Server`; what several of them share
(paging, streaming, checks of tools and messages) is in :mod:`.common`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends

from ..auth import authenticate
from . import assistants, files, runs, threads, vector_store_files, vector_stores

if TYPE_CHECKING:
    from ..app import Server

__all__ = ["api_router"]


def api_router(server: Server) -> APIRouter:
    """Every route of the API, each refusing a caller without a key (the routes that act on
    objects take the caller as a :data:`~..auth.CallerDep` parameter too: one check a request)."""
    router = APIRouter(dependencies=[Depends(authenticate)])
    router.include_router(assistants.router(server))
    # Runs before threads: POST /threads/{thread_id} would otherwise shadow POST /threads/runs.
    router.include_router(runs.router(server))
    router.include_router(threads.router(server))
    router.include_router(files.router(server))
    router.include_router(vector_stores.router(server))
    router.include_router(vector_store_files.router(server))
    return router
