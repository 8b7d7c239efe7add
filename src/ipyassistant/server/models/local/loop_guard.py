"""A guard against replies that loop: the same run of tokens written again and again.

Small models fall into cycles ("It's a ball. It's a ball. …", a fence line repeated to the
end of the budget, a block of code written again). :class:`LoopGuard` watches the tokens of a
reply as they are decoded and says when its tail has become periodic: some period ``p`` (at
most :attr:`max_period` tokens) repeated back to back, a short cycle over at least
:attr:`min_span` tokens and twice the period, a long one once :attr:`min_repeat` of its tokens
came again (a model may stop, or wander off, before its second copy of a block is whole). Then
the reply ends, keeping the first copy of the cycle and dropping the repeats.

To drop repeats before they are shown, a reply's text is released :attr:`holdback` tokens late
(:meth:`LoopGuard.releasable`, a fraction of a second at a small model's speed); a loop of a
longer cycle may have shown part of its second copy, and only the rest is dropped. Pure Python
over token ids (no llama.cpp), tested on recorded token streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LoopGuard", "distinct_ngram_ratio"]


@dataclass
class LoopGuard:
    """Feed it every token of a reply (:meth:`add`); it says when the reply started looping."""

    #: The longest cycle looked for, in tokens.
    max_period: int = 128
    #: How many tokens the repeated tail must cover before it counts as a loop.
    min_span: int = 32
    #: How many tokens of a cycle longer than this must come again for it to count as a loop.
    min_repeat: int = 32
    #: How many of the latest tokens are not released yet (they may still be dropped).
    holdback: int = 16
    tokens: list[int] = field(default_factory=list)
    #: Where the reply should end (a token count) once a loop is found; ``None`` until then.
    cut: int | None = None

    def add(self, token: int) -> bool:
        """Record ``token``; ``True`` when the reply now loops (then :attr:`cut` is set)."""
        self.tokens.append(token)
        if self.cut is None:
            self.cut = self._loop_start()
        return self.cut is not None

    def releasable(self, final: bool = False) -> int:
        """How many tokens from the start can be shown now (all of them when ``final``).

        After a loop, :attr:`cut`: the caller drops what it holds beyond it.
        """
        if self.cut is not None:
            return self.cut
        if final:
            return len(self.tokens)
        return max(0, len(self.tokens) - self.holdback)

    def _loop_start(self) -> int | None:
        tokens, n = self.tokens, len(self.tokens)
        last = tokens[-1]
        for period in range(1, min(self.max_period, n - 1) + 1):
            if tokens[-1 - period] != last:
                continue  # cheap test first: the last token must recur one period back
            # The tokens that came again: a short cycle's whole second copy (and at least
            # min_span tokens with the first), a long cycle's first min_repeat.
            span = period + min(max(self.min_span - period, period), self.min_repeat)
            if span > n:
                continue
            tail = tokens[n - span :]
            if tail[period:] == tail[:-period]:
                # Keep everything before the tail, and one copy of the cycle.
                return n - span + period
        return None


def distinct_ngram_ratio(words: list[str], n: int = 3) -> float:
    """Distinct ``n``-grams / all ``n``-grams of ``words``: 1.0 for text that never repeats.

    How repetitive a reply is, for tests and benchmarks (texts too short to hold two
    ``n``-grams count as 1.0).
    """
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0
