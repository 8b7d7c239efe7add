"""Getting ready in a Jupyter kernel while the user types: the client, the view, the server.

A first ``say()`` in a fresh process pays for importing the client (the SDK's Assistants types
and resources are most of it), the notebook layer's view and the embedded server's start.
In a kernel, :func:`start_in_kernel` (called when the package is imported and by
``%load_ext``) does all three at once on one daemon thread, so the first ``say()`` finds them
ready or waits only for the remainder: Python's import locks make a concurrent import wait for
the one under way, and the embedded server's ``start()`` is idempotent and locked.

Nothing starts outside a kernel (scripts and terminal IPython start the server on first use),
nor when ``IPYASSISTANT_BASE_URL`` names another server. The server's settings
(``IPYASSISTANT_DATA_DIR``) are therefore read when the package is imported in a kernel.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from . import _hooks, _server

__all__ = ["start_in_kernel"]

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_thread: threading.Thread | None = None


def start_in_kernel() -> bool:
    """Start warming up on a daemon thread, once, if this process is a notebook kernel.

    Returns whether warming up has started (now or before).
    """
    global _thread
    if os.environ.get("IPYASSISTANT_BASE_URL") or not _hooks.in_notebook():
        return False
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_warm_up, name="ipyassistant-warmup", daemon=True)
            _thread.start()
    return True


def _warm_up() -> None:
    # The client first, in the order a cell's ``from ipyassistant import Assistant`` imports
    # it, so that the two threads take the same modules' import locks in the same order.
    from . import assistants  # noqa: F401

    _hooks.load_notebook_view()
    try:
        base_url, api_key = _server.start_embedded()
        asyncio.run(_first_request(base_url, api_key))
    except Exception:  # the first use starts it again, and reports why it cannot
        _log.debug("warming up the embedded server failed", exc_info=True)


async def _first_request(base_url: str, api_key: str) -> None:
    """One request through the SDK: what only a first request loads, on both sides, loads now.

    The SDK's Assistants resources and its HTTP transport; the server's routes and queries.
    """
    from openai import AsyncOpenAI  # here: importing the package must stay cheap

    async with AsyncOpenAI(base_url=base_url, api_key=api_key) as api:
        await api.beta.assistants.list(limit=1)
