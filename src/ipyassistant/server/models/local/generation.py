"""One generation on llama.cpp: render the prompt, decode under a grammar, emit the events.

This is the part of the ``local`` provider that needs llama-cpp-python (the ``local`` extra),
imported inside the functions that call it. A :class:`Generation` runs on the model's worker
thread (:mod:`.instance`) and hands its events to the provider through ``emit``:

- The prompt is the conversation (:mod:`.prompt`) formatted by the GGUF's own chat template
  and tokenized with the model's tokenizer, which also counts usage.
- With tools, the grammar (:mod:`.grammar`) decides the first character: ``{`` opens a calls
  object, decoded under the grammar to its end and checked (:mod:`.checks`); anything else is
  text, which streams token by token and decodes on without the grammar.
- ``max_tokens`` ends the reply with finish reason ``length``; setting ``stop`` ends it at the
  next token.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..base import (
    ChatMessage,
    Finish,
    ModelError,
    ModelRequest,
    TextDelta,
    ToolCallDelta,
    Usage,
    new_call_id,
)
from ..env import env_number
from .checks import check_json, parse_calls, repeats_a_call, without_last_call
from .config import DEFAULT_MAX_TOKENS
from .decision import Decider
from .grammar import NO_CALL_GRAMMAR, response_format_grammar, tool_grammar
from .loop_guard import LoopGuard
from .prompt import CHATML, apply_template, chat_messages, tools_note
from .sampling import recommended_sampling

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

__all__ = ["Generation", "render", "tokenize"]


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


class Generation:
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

        # A model that saw tools or calls might write a calls object where text is wanted.
        might_call = bool(allowed) or any(m.tool_calls for m in request.messages)
        note = tools_note(allowed, forced) if allowed else ""
        prompt = self._prompt(note)
        if allowed and not forced:
            # Decide first, then decode only what was decided: a call under the grammar, or
            # text from a prompt without the tools (which small models otherwise talk about).
            # Right after tool results the reply is text: one round of calls per message, as
            # a small model otherwise calls again and again.
            answered = bool(request.messages) and request.messages[-1].role == "tool"
            decider = Decider(llama, request.messages, note, self._render)
            if not answered and decider.wants_a_call(prompt):
                # One call of the tool decided on; the prompt stays the one decided on.
                forced, parallel = True, False
                allowed = [decider.choose_tool(prompt, allowed)]
            else:
                allowed = []
                prompt = self._prompt("")
        n_ctx = llama.n_ctx()
        if len(prompt) >= n_ctx:
            raise ModelError(
                f"{self.model}: the prompt has {len(prompt)} tokens, more than the model's "
                f"context of {n_ctx} (set max_prompt_tokens with truncation_strategy 'auto', or "
                "IPYASSISTANT_LOCAL_N_CTX)."
            )
        default_budget = env_number("IPYASSISTANT_LOCAL_MAX_TOKENS", DEFAULT_MAX_TOKENS, int) or 0
        budget = min(
            request.max_tokens if request.max_tokens is not None else default_budget,
            n_ctx - len(prompt),
        )
        sampling = self._sampling()

        if allowed:
            grammar, schemas = tool_grammar(allowed, forced=forced, parallel=parallel)
            outcome = self._decode_tools(prompt, budget, sampling, grammar)
            if self.stop.is_set():
                return  # nobody listens any more
            calls_json = outcome.text.lstrip().startswith("{")
            if calls_json and outcome.finish == "stop":
                calls = parse_calls(outcome.text, schemas, self.model)
                for index, (name, arguments) in enumerate(calls):
                    self.emit(ToolCallDelta(index, arguments=arguments, id=new_call_id(), name=name))
            self.emit(Usage(len(prompt), len(outcome.tokens)))
            if calls_json and outcome.finish == "stop":
                self.emit(Finish("tool_calls"))
            else:
                self.emit(Finish(outcome.finish))
            return

        json_grammar, schema = response_format_grammar(request.response_format)
        if json_grammar is None and might_call:
            outcome = self._decode_tools(prompt, budget, sampling, NO_CALL_GRAMMAR)
        else:
            outcome = self._decode(prompt, budget, sampling, json_grammar, stream=True)
        if self.stop.is_set():
            return
        if schema is not None and outcome.finish == "stop":
            check_json(outcome.text, schema, self.model)
        self.emit(Usage(len(prompt), len(outcome.tokens)))
        self.emit(Finish(outcome.finish))

    def _sampling(self) -> dict[str, Any]:
        """The model's recommended sampling (:mod:`.sampling`), with what the run sets."""
        recommended = recommended_sampling(self.llama.metadata, _file_name(self.llama))
        return recommended.with_run(self.request.temperature, self.request.top_p).generate_kwargs()

    def _prompt(self, note: str) -> list[int]:
        """The request's conversation, with the tools ``note`` in its system message, as tokens."""
        return self._render(self.request.messages, note)

    def _render(self, messages: list[ChatMessage], note: str) -> list[int]:
        return tokenize(self.llama, render(self.llama, chat_messages(messages, note), self.model))

    def _pieces(
        self, prompt: list[int], sampling: dict[str, Any], grammar: str | None, outcome: _Outcome
    ) -> Generator[str, None, None]:
        """The text of each token decoded after ``prompt``, each token recorded in ``outcome``.

        Ends at the end of the turn, or when ``stop`` is set (nobody listens any more); a
        grammar of ``None`` decodes freely.
        """
        from llama_cpp import LlamaGrammar

        compiled = None
        if grammar is not None:
            _check_grammar(self.llama, grammar, self.model)
            compiled = LlamaGrammar.from_string(grammar, verbose=False)
        tokens = self.llama.generate(prompt, grammar=compiled, **sampling)
        try:
            for token in tokens:
                if self.stop.is_set() or self._end_of_turn(token):
                    return
                outcome.tokens.append(token)
                yield outcome.decoder.decode(self.llama.detokenize([token]))
        finally:
            _close(tokens)

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
        # Text is shown a few tokens late, so that a loop (:mod:`.loop_guard`) is cut before
        # its repeats are shown: ``texts[i]`` is the text of the i-th new token.
        before, texts, shown = len(outcome.tokens), [], 0
        guard = LoopGuard() if grammar is None else None
        pieces = self._pieces(prompt + outcome.tokens, sampling, grammar, outcome)
        with contextlib.closing(pieces):
            for piece in pieces:
                if not started:
                    piece = piece.lstrip()  # templates end with a newline; replies start at text
                    started = bool(piece)
                texts.append(piece)
                if guard is not None and guard.add(outcome.tokens[-1]):
                    # The repeats not shown yet go; the reply ends after one copy of the cycle.
                    del texts[max(guard.releasable(), shown) :]
                    del outcome.tokens[before + len(texts) :]
                    break
                if len(outcome.tokens) >= budget:
                    outcome.finish = "length"
                    break
                if stream and guard is not None:
                    shown = self._show(texts, shown, guard.releasable())
        if self.stop.is_set():
            return outcome
        texts.append(decoder.decode(b"", final=True))
        outcome.text += "".join(texts)
        if stream:
            self._show(texts, shown, len(texts))
        return outcome

    def _show(self, texts: list[str], shown: int, upto: int) -> int:
        """Emit the text of ``texts[shown:upto]``; returns how far is shown now."""
        if upto > shown:
            self._emit_text("".join(texts[shown:upto]))
            return upto
        return shown

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
        pieces = self._pieces(prompt, sampling, grammar, outcome)
        text_mode = False
        with contextlib.closing(pieces):
            for piece in pieces:
                outcome.text += piece
                if len(outcome.tokens) >= budget:
                    outcome.finish = "length"
                    break
                head = outcome.text.lstrip()
                if head and not head.startswith("{"):
                    text_mode = True
                    break
                if head.endswith("}") and repeats_a_call(head):
                    # Small models tend to repeat a call over and over: the first copy is
                    # all that is needed, and the reply ends there.
                    outcome.text = without_last_call(head)
                    break
        if self.stop.is_set():
            return outcome
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


def _file_name(llama: Llama) -> str:
    return str(getattr(llama, "model_path", "") or "").rsplit("/", 1)[-1]


def _close(tokens: Iterator[int]) -> None:
    close = getattr(tokens, "close", None)
    if close is not None:
        close()



@functools.lru_cache(maxsize=8)
def _formatter(template: str, eos: str, bos: str) -> Jinja2ChatFormatter:
    """A chat template, compiled once."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(
        template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True
    )


def render(llama: Llama, chat: list[dict[str, str]], model: str) -> str:
    """The prompt: ``chat`` formatted by the model's chat template."""
    eos, bos = llama.token_eos(), llama.token_bos()
    formatter = _formatter(
        llama.metadata.get("tokenizer.chat_template") or CHATML,
        llama._model.token_get_text(eos) if eos != -1 else "",
        llama._model.token_get_text(bos) if bos != -1 else "",
    )
    return apply_template(
        lambda messages: formatter(messages=messages).prompt,  # type: ignore[arg-type]
        chat,
        model,
    )


def tokenize(llama: Llama, prompt: str) -> list[int]:
    """The prompt's tokens; templates write their special tokens as text."""
    tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    bos = llama.token_bos()
    if llama._model.add_bos_token() and bos != -1 and (not tokens or tokens[0] != bos):
        tokens.insert(0, bos)
    return tokens



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

