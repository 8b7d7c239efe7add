"""Embedders: text to L2-normalised float32 vectors, named so a vector store can remember one.

Two kinds, chosen by the name's prefix (a registry, so each is set up only when used):

- ``wordllama:CONFIG:DIM`` (the default, :data:`DEFAULT_EMBEDDER`): WordLlama's static token
  embeddings, mean-pooled. The weights and the tokenizer ship inside the ``wordllama`` wheel and
  are read from there: ``WordLlama.load()`` looks for the tokenizer in a folder that does not
  exist (``tokenizer/`` instead of ``tokenizers/``) and then downloads it from the hub, and
  importing ``wordllama`` configures the root logger; so the package's files are located
  without importing it, and the inference (tokenize, look up, average, normalise) is done here.
  DIM truncates the 256-dimension vectors (they are trained Matryoshka-style): 64, 128 or 256.
- ``openai:MODEL``: any OpenAI-compatible ``/embeddings`` endpoint (OpenAI, Ollama, vLLM), at
  ``IPYASSISTANT_EMBEDDING_BASE_URL`` or ``OPENAI_BASE_URL`` with
  ``IPYASSISTANT_EMBEDDING_API_KEY`` or ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from .chunking import tokenizer, wordllama_file

__all__ = ["DEFAULT_EMBEDDER", "Embedder", "OpenAIEmbedder", "WordLlamaEmbedder", "get_embedder"]

#: 256 dimensions, the widest: on the benchmark's corpus (bench/file_search.py, 600 documents)
#: dense recall@5 was 0.65 against 0.48 at 128 and 0.37 at 64, and hybrid 0.815 against 0.809
#: and 0.774, while a query at 10k chunks stayed near 15 ms (p50), a third of the target.
DEFAULT_EMBEDDER = "wordllama:l2_supercat:256"

_WORDLLAMA_DIMS = (64, 128, 256)
# Texts per embeddings request (OpenAI accepts up to 2048 inputs; smaller keeps requests small).
_OPENAI_BATCH = 256
#: Texts embedded together by wordllama (64 chunks of 800 tokens gather 50 MB of vectors).
_WORDLLAMA_BATCH = 64


class Embedder(Protocol):
    """Turns texts into vectors: ``embed`` returns float32 rows of unit length (n, dimensions)."""

    name: str
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row (no known token) stays zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


class WordLlamaEmbedder:
    """WordLlama static embeddings from the files inside the ``wordllama`` package.

    The files are read on the first :meth:`embed` (in a worker thread, like all the CPU work),
    so creating one costs nothing.
    """

    def __init__(self, config: str = "l2_supercat", dim: int = 256):
        if dim not in _WORDLLAMA_DIMS:
            raise ValueError(f"wordllama dimensions must be one of {_WORDLLAMA_DIMS}, not {dim}")
        self.config = config
        self.dimensions = dim
        self.name = f"wordllama:{config}:{dim}"
        self._lock = threading.Lock()
        self._table: np.ndarray | None = None
        self._tokenizer: Any = None

    def _load(self) -> tuple[Any, np.ndarray]:
        with self._lock:
            if self._table is None:
                from safetensors import safe_open

                weights = wordllama_file(f"weights/{self.config}_256.safetensors")
                self._tokenizer = tokenizer()
                with safe_open(str(weights), framework="np") as f:
                    table = f.get_tensor("embedding.weight")[:, : self.dimensions]
                self._table = np.ascontiguousarray(table, dtype=np.float32)
            return self._tokenizer, self._table

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        """:meth:`embed` on the calling thread, a batch of texts at a time.

        Batches bound the memory (the token vectors of a batch are gathered at once: a whole
        large file's would be gigabytes) and hand the GIL back between them, so the server's
        event loop keeps answering while a large file is embedded.
        """
        tokenizer, table = self._load()
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(texts), _WORDLLAMA_BATCH):
            batch = list(texts[start : start + _WORDLLAMA_BATCH])
            encodings = tokenizer.encode_batch(batch, add_special_tokens=False)
            # Unpadded: the batch's token ids end to end, then one sum per text (reduceat), so a
            # batch of long chunks costs its tokens, not its longest text times the batch size.
            lengths = np.array([len(e.ids) for e in encodings], dtype=np.int64)
            present = lengths > 0
            if not present.any():
                continue
            ids = np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in encodings])
            np.clip(ids, 0, table.shape[0] - 1, out=ids)
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))[present]
            rows = out[start : start + len(batch)]
            rows[present] = np.add.reduceat(table[ids], starts, axis=0)
            rows[present] /= lengths[present, None]
        return _normalise(out)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return await asyncio.to_thread(self.embed_sync, texts)


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible ``/embeddings`` endpoint.

    ``dimensions`` is 0 until the first reply tells it (models differ, and some servers accept
    no ``dimensions`` parameter).
    """

    def __init__(self, model: str):
        self.model = model
        self.name = f"openai:{model}"
        self.dimensions = 0
        self._client: Any = None

    def _get_client(self) -> Any:
        if self._client is None:
            import openai

            env = os.environ
            self._client = openai.AsyncOpenAI(
                base_url=env.get("IPYASSISTANT_EMBEDDING_BASE_URL") or env.get("OPENAI_BASE_URL"),
                api_key=env.get("IPYASSISTANT_EMBEDDING_API_KEY")
                or env.get("OPENAI_API_KEY")
                or "none",  # local servers (Ollama, vLLM) take any key
            )
        return self._client

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        client = self._get_client()
        rows: list[list[float]] = []
        for start in range(0, len(texts), _OPENAI_BATCH):
            batch = [t or " " for t in texts[start : start + _OPENAI_BATCH]]  # "" is refused
            reply = await client.embeddings.create(model=self.model, input=batch)
            rows.extend(d.embedding for d in sorted(reply.data, key=lambda d: d.index))
        if not rows:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = np.asarray(rows, dtype=np.float32)
        self.dimensions = int(vectors.shape[1])
        return _normalise(vectors)


def _wordllama(rest: str) -> Embedder:
    config, _, dim = rest.partition(":")
    if config not in ("", "l2_supercat"):
        # The tokenizer and weights of l2_supercat are the only ones inside the wheel.
        raise ValueError(f"wordllama config {config!r} is not installed; use 'l2_supercat'")
    if dim and not dim.isdigit():
        raise ValueError(f"wordllama dimensions must be a number, not {dim!r}")
    return WordLlamaEmbedder(config or "l2_supercat", int(dim) if dim else 256)


def _openai(rest: str) -> Embedder:
    if not rest:
        raise ValueError("openai embedders need a model: 'openai:text-embedding-3-small'")
    return OpenAIEmbedder(rest)


_PROVIDERS: dict[str, Callable[[str], Embedder]] = {"wordllama": _wordllama, "openai": _openai}
_CACHE: dict[str, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def get_embedder(name: str | None = None) -> Embedder:
    """The embedder called ``name`` (default: ``IPYASSISTANT_EMBEDDING_MODEL`` or
    :data:`DEFAULT_EMBEDDER`), one instance per name.

    Accepted: ``wordllama``, ``wordllama:CONFIG``, ``wordllama:CONFIG:DIM`` (DIM 64, 128 or
    256) and ``openai:MODEL``; anything else raises :class:`ValueError` saying so.
    """
    name = name or os.environ.get("IPYASSISTANT_EMBEDDING_MODEL") or DEFAULT_EMBEDDER
    with _CACHE_LOCK:
        if name in _CACHE:
            return _CACHE[name]
        prefix, _, rest = name.partition(":")
        provider = _PROVIDERS.get(prefix)
        if provider is None:
            raise ValueError(
                f"Unknown embedding model {name!r}: use 'wordllama', "
                "'wordllama:l2_supercat:DIM' (DIM 64, 128 or 256) or 'openai:MODEL'."
            )
        embedder = provider(rest)
        # "wordllama" and "wordllama:l2_supercat:256" are one embedder (one copy of the table).
        _CACHE[name] = _CACHE.setdefault(embedder.name, embedder)
        return _CACHE[name]
