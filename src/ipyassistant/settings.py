"""Every client setting in one place, read from ``IPYASSISTANT_*`` environment variables.

========================  ===========================  ==========================================
variable                  default                      meaning
========================  ===========================  ==========================================
``IPYASSISTANT_BASE_URL``  unset: the embedded server   any Assistants API server, e.g.
                                                       ``http://127.0.0.1:8000/v1`` (``ipyassistant
                                                       serve``)
``IPYASSISTANT_API_KEY``   unset                        the Bearer key for that server
``IPYASSISTANT_MODEL``     ``test``                     the model of assistants that name none
``IPYASSISTANT_DATA_DIR``  the platform's data folder   where the embedded server keeps its
                                                       database and files
========================  ===========================  ==========================================

The variables are read when they are needed: the model when an assistant is created, the
connection when the client connects (and again whenever they change). The ``openai`` SDK
client is constructed here and nowhere else.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass

from openai import AsyncOpenAI

from . import _server

__all__ = ["DEFAULT_MODEL", "Settings", "connect", "default_model", "note_model_in_views", "take_model_note"]

#: The model used when neither the assistant nor ``IPYASSISTANT_MODEL`` names one.
DEFAULT_MODEL = "test"


_note_lock = threading.Lock()
#: Whether the default model's announcement waits for a view (set by the notebook layer).
_note_in_views = False
#: That announcement: None until made, "" once a view took it.
_model_note: str | None = None


def default_model() -> str:
    """The model of an assistant that names none, announced once per process.

    In order: ``IPYASSISTANT_MODEL`` if set; else ``openai:gpt-4o-mini`` when
    ``OPENAI_API_KEY`` is set; else ``local`` when the ``local`` extra is installed; else
    ``test``. The order lives in :mod:`ipyassistant.server.models.defaults`.

    A script or a terminal gets the announcement on standard error. In a notebook, where
    standard error shows as a pink box that reads like an error, the notebook layer calls
    :func:`note_model_in_views` and the announcement waits for the next view, which shows it
    as a quiet line (:func:`take_model_note`).
    """
    global _model_note
    if not _note_in_views:
        return _server.default_model()
    model = _server.default_model(announce=False)
    with _note_lock:
        if _model_note is None:
            _model_note = (
                f"Using model {model!r} ({_server.default_model_reason()}); "
                "choose another with %assistant model NAME."
            )
    return model


def note_model_in_views() -> None:
    """From now on, announce the default model in the next view instead of standard error."""
    global _note_in_views
    _note_in_views = True


def take_model_note() -> str | None:
    """The default model's announcement, once, for the view that shows it (None: none)."""
    global _model_note
    with _note_lock:
        note, _model_note = _model_note, ("" if _model_note is not None else None)
    return note or None


@dataclass(frozen=True)
class Settings:
    """The client's settings; :meth:`from_env` reads them from the environment."""

    #: The server's API root (ending in ``/v1``); ``None`` starts the embedded server.
    base_url: str | None = None
    #: The key sent as ``Authorization: Bearer``; the embedded server brings its own.
    api_key: str | None = None
    #: The default model (see :func:`default_model`).
    model: str = DEFAULT_MODEL

    @classmethod
    def from_env(cls) -> Settings:
        """The settings as the environment says now."""
        return cls(
            base_url=os.environ.get("IPYASSISTANT_BASE_URL") or None,
            api_key=os.environ.get("IPYASSISTANT_API_KEY") or None,
            model=default_model(),
        )

    @property
    def connection(self) -> tuple[str | None, str | None]:
        """What identifies a client: two equal connections can share one."""
        return (self.base_url, self.api_key)


async def connect(settings: Settings) -> AsyncOpenAI:
    """A new SDK client for ``settings``, starting the embedded server if no URL is set.

    The client belongs to the event loop that calls this (its connections do).
    """
    if settings.base_url is None:
        base_url, api_key = await asyncio.to_thread(_server.start_embedded)
        return AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=MAX_RETRIES)
    return AsyncOpenAI(
        base_url=settings.base_url, api_key=settings.api_key or "unset", max_retries=MAX_RETRIES
    )


#: Retries (with the SDK's exponential backoff) of a request that met a connection error, a
#: timeout, a 429 or a 5xx. Reads and cancels are safe to repeat; the requests that start or
#: continue a run opt out (``ipyassistant.runs``), a repeated one could start a second run.
MAX_RETRIES = 2


def unretried(api: AsyncOpenAI) -> AsyncOpenAI:
    """``api`` without retries, for requests that must not be sent twice.

    The SDK retries after connection errors even when the server may have acted on the request:
    a retried run creation could start a second run, a retried submission submit twice, a
    retried message be added twice. Reads and cancels keep the client's retries
    (:data:`MAX_RETRIES`).
    """
    return api.with_options(max_retries=0)
