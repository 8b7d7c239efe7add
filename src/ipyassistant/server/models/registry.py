"""Model strings and the providers they name: one parser, and a registry of provider prefixes.

A model string is ``PREFIX`` or ``PREFIX:NAME`` (``test``, ``openai:gpt-4o-mini``, ``local``,
``local:/path/to/model.gguf``, ``function:NAME``); :func:`parse_model` is the one place that
splits it. Each prefix is registered here by the import path of its :class:`ProviderFactory`,
and that module is imported only when a model string with its prefix is checked or resolved,
so a server that only ever runs ``test`` never imports the OpenAI SDK's client code or llama.cpp.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

from .base import ModelProvider

__all__ = ["PROVIDERS", "ModelRef", "ProviderFactory", "factory", "parse_model"]


@dataclass(frozen=True)
class ModelRef:
    """A parsed model string: ``provider`` (the prefix) and ``name`` (after the colon, or "")."""

    provider: str
    name: str
    #: The model string as given.
    model: str

    @property
    def request_model(self) -> str:
        """The model a :class:`~.base.ModelRequest` names: the name, or the whole string."""
        return self.name or self.model


def parse_model(model: str) -> ModelRef:
    """Split ``model`` at its first colon (``"local:C:/m.gguf"`` keeps the path whole)."""
    provider, _, name = model.partition(":")
    return ModelRef(provider=provider, name=name, model=model)


class ProviderFactory(ABC):
    """What a provider prefix offers the registry: which names it takes, and providers for them."""

    #: Said after "is not available." when this prefix's model cannot run here.
    unavailable_hint: str = ""

    @abstractmethod
    def examples(self) -> list[str]:
        """The model strings of this prefix that error messages list (none if it cannot run)."""

    @abstractmethod
    def accepts(self, ref: ModelRef) -> bool:
        """Whether ``ref`` can run here."""

    @abstractmethod
    def create(self, ref: ModelRef) -> ModelProvider:
        """A provider for ``ref`` (which :meth:`accepts` accepted)."""


#: Provider prefixes, in the order error messages list them, each with the ``module:attribute``
#: of its factory (imported on first use).
PROVIDERS: dict[str, str] = {
    "test": f"{__package__}.test:FACTORY",
    "openai": f"{__package__}.openai_compat:FACTORY",
    "local": f"{__package__}.local.provider:FACTORY",
    "function": f"{__package__}.function:FACTORY",
}

_factories: dict[str, ProviderFactory] = {}
_lock = threading.Lock()


def factory(prefix: str) -> ProviderFactory | None:
    """The factory registered for ``prefix``, its module imported now if need be."""
    path = PROVIDERS.get(prefix)
    if path is None:
        return None
    with _lock:
        found = _factories.get(prefix)
        if found is None:
            module, _, attribute = path.partition(":")
            found = _factories[prefix] = getattr(importlib.import_module(module), attribute)
        return found
