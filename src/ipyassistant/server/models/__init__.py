"""Model providers, resolved from a run's model string.

- ``test``: the deterministic offline model (:mod:`.test`).
- ``openai:MODEL``: any OpenAI-compatible Chat Completions endpoint (:mod:`.openai_compat`),
  configured by ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``.
- ``local`` / ``local:/path/to/model.gguf``: a GGUF model run by llama.cpp (:mod:`.local`).
- ``function:NAME``: a Python function registered by a test (:mod:`.function`).

Model strings are parsed, and prefixes mapped to providers, by :mod:`.registry`; this module is
the front door the server uses.
"""

from __future__ import annotations

import threading

from ..errors import InvalidRequest
from .base import ModelError, ModelProvider, ModelRequest
from .registry import PROVIDERS, ModelRef, ProviderFactory, factory, parse_model

__all__ = [
    "ModelError",
    "ModelProvider",
    "ModelRef",
    "ModelRequest",
    "available_models",
    "check_model",
    "close_providers",
    "parse_model",
    "resolve_model",
]

_providers: dict[str, ModelProvider] = {}
_lock = threading.Lock()


def available_models() -> list[str]:
    """What a model string may be, for error messages."""
    models: list[str] = []
    for prefix in PROVIDERS:
        found = factory(prefix)
        if found is not None:
            models += found.examples()
    return models


def check_model(model: str, param: str = "model") -> None:
    """Raise :class:`InvalidRequest` (400, ``param``) unless ``model`` names a provider."""
    _accepted(model, param)


def resolve_model(model: str) -> ModelProvider:
    """The provider for ``model`` (one instance per model string and process)."""
    ref, found = _accepted(model)
    with _lock:
        provider = _providers.get(model)
        if provider is None:
            provider = _providers[model] = found.create(ref)
        return provider


async def close_providers() -> None:
    """Release the providers' connections, which belong to the event loop that is ending."""
    with _lock:
        providers = list(_providers.values())
    for provider in providers:
        await provider.aclose()


def _accepted(model: str, param: str = "model") -> tuple[ModelRef, ProviderFactory]:
    """``model`` parsed, and the factory that accepts it (raises :class:`InvalidRequest`)."""
    ref = parse_model(model)
    found = factory(ref.provider)
    if found is not None and found.accepts(ref):
        return ref, found
    hint = f" {found.unavailable_hint}" if found is not None and found.unavailable_hint else ""
    raise InvalidRequest(
        f"The model {model!r} is not available.{hint} Available: {', '.join(available_models())}.",
        param=param,
        code="model_not_found",
    )
