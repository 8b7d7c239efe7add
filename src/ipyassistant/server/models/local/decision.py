"""Whether a reply should call a tool, and which, for ``tool_choice`` ``auto`` (needs llama.cpp).

A 135M-parameter model puts a near-constant probability on opening a call, and on each tool's
name, whatever the user asked: left to sample under a grammar that allows text or calls, it
either never calls or calls the same tool for everything. What does carry information is how
the request *moves* those probabilities. So each decision compares the model's
log-probability of a continuation after the real prompt with its mean after content-free
prompts (the same system message, a user message of ``"N/A"`` or nothing): contextual
calibration (Zhao et al., 2021, "Calibrate Before Use").

- :meth:`Decider.wants_a_call`: a call when the request makes opening a calls object more
  likely than the content-free requests do;
- :meth:`Decider.choose_tool`: the tool whose name the request makes most likely, relative to
  the content-free requests.

The baselines depend only on the system message and the tools, so they are computed once per
model and kept. Evaluations reuse the model's context: only what differs from the previous
prompt is evaluated (as ``Llama.generate`` does), and a decided call decodes from the prompt
it was decided on without evaluating it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..base import ChatMessage, FunctionSpec
from .prompt import CONTENT_FREE

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["CALL_OPENER", "Decider", "sequence_logprob"]

#: The first characters of a calls object (:mod:`.grammar`): its first token opens a call.
CALL_OPENER = '{"tool_calls"'
#: What comes before a tool's name in a calls object.
_NAME_PREFIX = '{"tool_calls": [{"name": "'

#: Renders a conversation as the model's prompt tokens (with this tools note).
Render = Callable[[list[ChatMessage], str], list[int]]


class Decider:
    """Call-or-text and which-tool decisions for one request (runs on the model's thread)."""

    def __init__(self, llama: Llama, messages: list[ChatMessage], note: str, render: Render):
        self.llama = llama
        self.note = note
        self.render = render
        self.system = [m for m in messages if m.role == "system"]
        # Per model: baselines by (system message, tools note, continuation).
        self._baselines: dict[Any, float] = llama.__dict__.setdefault("_ipa_baselines", {})

    def wants_a_call(self, prompt: list[int]) -> bool:
        """Whether the reply to ``prompt`` should open a calls object."""
        opener = _tokens(self.llama, CALL_OPENER)[:1]
        return sequence_logprob(self.llama, prompt, opener) > self._baseline(opener)

    def choose_tool(self, prompt: list[int], tools: Sequence[FunctionSpec]) -> FunctionSpec:
        """The tool the request calls for most, relative to the content-free requests."""
        prefix = _tokens(self.llama, _NAME_PREFIX)

        def lift(spec: FunctionSpec) -> float:
            name = _tokens(self.llama, json.dumps(spec.name)[1:])  # the name and its closing quote
            score = sequence_logprob(self.llama, prompt + prefix, name)
            return score - self._baseline(name, prefix)

        return max(tools, key=lift)

    def _baseline(self, continuation: list[int], prefix: list[int] | None = None) -> float:
        prefix = prefix or []
        key = (tuple(m.content for m in self.system), self.note, tuple(prefix), tuple(continuation))
        if key not in self._baselines:
            scores = [
                sequence_logprob(
                    self.llama,
                    self.render([*self.system, ChatMessage(role="user", content=filler)], self.note) + prefix,
                    continuation,
                )
                for filler in CONTENT_FREE
            ]
            self._baselines[key] = sum(scores) / len(scores)
        return self._baselines[key]


def _tokens(llama: Llama, text: str) -> list[int]:
    return llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)


def sequence_logprob(llama: Llama, prompt: list[int], continuation: list[int]) -> float:
    """The log-probability that ``continuation`` follows ``prompt``.

    Only the part of each prefix after what the model's context already holds is evaluated,
    so scoring several continuations of one prompt evaluates the prompt once.
    """
    return sum(
        _next_token_logprob(llama, prompt + continuation[:i], token)
        for i, token in enumerate(continuation)
    )


def _next_token_logprob(llama: Llama, prompt: list[int], token: int) -> float:
    import llama_cpp
    import numpy as np

    held = 0
    for a, b in zip(llama._input_ids.tolist(), prompt[:-1], strict=False):
        if a != b:
            break
        held += 1
    llama.n_tokens = held  # eval drops the context's cache beyond this
    llama.eval(prompt[held:])
    logits = np.ctypeslib.as_array(
        llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1), shape=(llama.n_vocab(),)
    ).astype(np.float64)
    top = logits.max()
    return float(logits[token] - top - np.log(np.exp(logits - top).sum()))
