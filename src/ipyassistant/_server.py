"""The client's one door into the server (:mod:`ipyassistant.server`): the embedded-start hook.

The client talks to any Assistants API server over HTTP and knows nothing of the server's
code, with two exceptions that live here: starting the embedded server (when no
``IPYASSISTANT_BASE_URL`` is set) and the default model's order, which belongs to the server's
models. Each import happens when its function is called, so the server's dependencies load only
when it is used. The contract in ``pyproject.toml`` (``[tool.importlinter]``) names this module
as the only client module that imports the server.
"""

from __future__ import annotations

__all__ = ["default_model", "start_embedded"]


def start_embedded() -> tuple[str, str]:
    """Start the embedded server once per process (blocking); its base URL and API key."""
    from .server import embedded

    server = embedded.start()
    return server.base_url, server.api_key


def default_model(announce: bool = True) -> str:
    """The default model, as :func:`ipyassistant.server.models.defaults.default_model` says
    (``announce=False``: without its note on standard error)."""
    from .server.models.defaults import default_model as choose

    return choose(announce=announce)


def default_model_reason() -> str:
    """Why the default model is the one it is (the environment, read now)."""
    from .server.models.defaults import choose_default_model

    return choose_default_model()[1]
