"""How a local model samples: its recommended settings, and what a run may override.

Small instruct models write well only with the settings their authors recommend (SmolLM2's
card: temperature 0.2, top-p 0.9); llama.cpp's generic defaults (temperature 0.8, top-p 0.95,
no repetition penalty) make SmolLM2-135M ramble and loop. The settings come, in order, from:

1. the run (``temperature``, ``top_p``) when it sets them;
2. the GGUF file's own ``general.sampling.*`` metadata, where its converter wrote it;
3. :data:`KNOWN_MODELS`, matched on the file's ``general.basename`` / ``general.name`` / file
   name;
4. :data:`GENERIC`.

Pure functions over the metadata dict llama.cpp reads from the file: no llama.cpp here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["GENERIC", "KNOWN_MODELS", "Sampling", "recommended_sampling"]


@dataclass(frozen=True)
class Sampling:
    """Sampling settings, in llama.cpp's terms (``Llama.generate`` keyword arguments)."""

    temperature: float
    top_p: float
    top_k: int = 40
    min_p: float = 0.05
    #: > 1 makes tokens seen in the last 64 less likely (llama.cpp's repetition penalty).
    repeat_penalty: float = 1.1

    def with_run(self, temperature: float | None, top_p: float | None) -> Sampling:
        """These settings with what the run sets (``None``: not set) taking precedence."""
        changes: dict[str, Any] = {}
        if temperature is not None:
            changes["temperature"] = float(temperature)
        if top_p is not None:
            changes["top_p"] = float(top_p)
        return dataclasses.replace(self, **changes) if changes else self

    def generate_kwargs(self) -> dict[str, float | int]:
        """The keyword arguments of ``llama_cpp.Llama.generate``."""
        return {
            "temp": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty,
        }


#: For models nobody recorded settings for: conservative values for small instruct models.
GENERIC = Sampling(temperature=0.7, top_p=0.9)

#: Recommended settings by model family (a lower-case substring of the model's name).
KNOWN_MODELS: dict[str, Sampling] = {
    # HuggingFaceTB/SmolLM2-*-Instruct model cards: temperature=0.2, top_p=0.9.
    "smollm2": Sampling(temperature=0.2, top_p=0.9, repeat_penalty=1.15),
    # Qwen2.5-*-Instruct generation_config.json: temperature 0.7, top_p 0.8, top_k 20,
    # repetition_penalty 1.05.
    "qwen2.5": Sampling(temperature=0.7, top_p=0.8, top_k=20, repeat_penalty=1.05),
    # Llama-3.2-*-Instruct generation_config.json: temperature 0.6, top_p 0.9.
    "llama-3.2": Sampling(temperature=0.6, top_p=0.9),
}

#: GGUF metadata keys (llama.cpp's ``general.sampling.*``) and the field each sets.
_GGUF_KEYS = {
    "general.sampling.temp": "temperature",
    "general.sampling.top_p": "top_p",
    "general.sampling.top_k": "top_k",
    "general.sampling.min_p": "min_p",
    "general.sampling.penalty_repeat": "repeat_penalty",
}
_INTEGER_FIELDS = {"top_k"}


def _family(metadata: Mapping[str, str], file_name: str) -> Sampling:
    names = [metadata.get("general.basename", ""), metadata.get("general.name", ""), file_name]
    haystack = " ".join(names).lower().replace("_", "-")
    for family, sampling in KNOWN_MODELS.items():
        if family in haystack:
            return sampling
    return GENERIC


def recommended_sampling(metadata: Mapping[str, str], file_name: str = "") -> Sampling:
    """The settings for a model from its GGUF metadata (or its family's, or generic ones)."""
    sampling = _family(metadata, file_name)
    changes: dict[str, Any] = {}
    for key, field_name in _GGUF_KEYS.items():
        raw = metadata.get(key)
        if raw is None:
            continue
        try:
            number = float(raw)
        except ValueError:
            continue  # a value llama.cpp could not read as a number: ignore it
        changes[field_name] = int(number) if field_name in _INTEGER_FIELDS else number
    return dataclasses.replace(sampling, **changes) if changes else sampling
