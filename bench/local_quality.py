"""Reply quality of a model through the whole stack: 20 fixed prompts, with tools in the prompt.

One assistant with three function tools (dice, weather, currency) and a short persona answers
20 prompts, each on a new thread: 10 need one of the tools, 10 do not. Everything goes through
the public client on the embedded server, so the run engine, the provider, its sampling, its
loop guard and the tool round trip are all measured as a user meets them. Printed:

- the share of replies whose run ended ``completed`` without reaching the token budget;
- the median reply length (completion tokens of the run, and words of its final text);
- a repetition score per reply: distinct word 3-grams / all word 3-grams (1.0: no repeats);
- tool decisions: a tool prompt is right when its first call is the expected tool, a plain
  prompt when no tool is called.

Targets (the ``local`` model): no reply reaches the budget, every reply's 3-gram ratio >= 0.6,
at least 15 of 20 tool decisions right.

    python bench/local_quality.py [--model local] [--only N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import warnings
from dataclasses import dataclass

warnings.filterwarnings("ignore", category=DeprecationWarning)

from ipyassistant import Assistant, Thread  # noqa: E402
from ipyassistant.server.models.local.loop_guard import distinct_ngram_ratio  # noqa: E402


def roll_dice(n_dice: int = 1) -> list[int]:
    """Roll six-sided dice.

    Args:
        n_dice: How many dice to roll.
    """
    return [random.randint(1, 6) for _ in range(max(1, min(n_dice, 10)))]


def get_weather(city: str) -> str:
    """Get the current weather in a city.

    Args:
        city: The city's name.
    """
    return f"{city}: 18 °C, light rain"


def convert_currency(amount: float, from_currency: str, to_currency: str) -> str:
    """Convert an amount of money from one currency to another.

    Args:
        amount: How much money.
        from_currency: The currency to convert from, e.g. USD.
        to_currency: The currency to convert to, e.g. EUR.
    """
    return f"{amount} {from_currency} = {round(amount * 0.92, 2)} {to_currency}"


TOOLS = [roll_dice, get_weather, convert_currency]

#: (prompt, the tool it needs or None)
PROMPTS: list[tuple[str, str | None]] = [
    ("Roll two dice for me.", "roll_dice"),
    ("What's the weather in Paris right now?", "get_weather"),
    ("Convert 100 US dollars to euros.", "convert_currency"),
    ("Please roll a die.", "roll_dice"),
    ("Is it raining in London today?", "get_weather"),
    ("How many yen is 50 dollars?", "convert_currency"),
    ("Roll five dice and tell me the total.", "roll_dice"),
    ("Tell me the current temperature in Tokyo.", "get_weather"),
    ("I need 20 euros in British pounds.", "convert_currency"),
    ("Throw three dice, please.", "roll_dice"),
    ("What is the capital of France?", None),
    ("Write a haiku about the sea.", None),
    ("Explain what a Python list is in one sentence.", None),
    ("Hello! How are you?", None),
    ("What is 7 times 8?", None),
    ("Give me a synonym for happy.", None),
    ("Name three primary colors.", None),
    ("What does CPU stand for?", None),
    ("Suggest a name for a pet cat.", None),
    ("Thank you, that's all.", None),
]


@dataclass
class Result:
    prompt: str
    expected: str | None
    status: str
    budget_hit: bool
    tokens: int
    text: str
    calls: list[str]
    seconds: float

    @property
    def words(self) -> int:
        return len(self.text.split())

    @property
    def distinct_3grams(self) -> float:
        return distinct_ngram_ratio(self.text.split(), 3)

    @property
    def right_decision(self) -> bool:
        if self.expected is None:
            return not self.calls
        return bool(self.calls) and self.calls[0] == self.expected


def ask(ai: Assistant, prompt: str, expected: str | None) -> Result:
    started = time.perf_counter()
    run = ai.say(prompt, thread=Thread(), event_handler_class=None)
    seconds = time.perf_counter() - started
    details = run.run.incomplete_details
    calls = [
        call.function.name
        for step in run.steps
        if step.step_details.type == "tool_calls"
        for call in step.step_details.tool_calls
        if call.type == "function"
    ]
    text = "\n".join(
        block.text.value
        for message in run.messages
        if message.role == "assistant"
        for block in message.content
        if block.type == "text"
    )
    usage = run.run.usage
    return Result(
        prompt=prompt,
        expected=expected,
        status=run.run.status,
        budget_hit=details is not None and details.reason == "max_completion_tokens",
        tokens=usage.completion_tokens if usage else 0,
        text=text,
        calls=calls,
        seconds=seconds,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local")
    parser.add_argument("--only", type=int, default=len(PROMPTS), help="the first N prompts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    ai = Assistant(
        name="Helper",
        instructions="You are {{ self_.name }}, a friendly and concise assistant.",
        model=args.model,
        tools=TOOLS,
    )
    results = []
    with ai:
        for prompt, expected in PROMPTS[: args.only]:
            result = ask(ai, prompt, expected)
            results.append(result)
            mark = "ok " if result.right_decision else "BAD"
            print(
                f"{mark} {result.status:<10} {result.tokens:>5} tok {result.seconds:6.1f} s "
                f"3g {result.distinct_3grams:4.2f} calls={result.calls or '-'} | {prompt}\n"
                f"    {result.text[:160]!r}",
                flush=True,
            )
    clean = sum(r.status == "completed" and not r.budget_hit for r in results)
    worst = min(r.distinct_3grams for r in results)
    right = sum(r.right_decision for r in results)
    tool_right = sum(r.right_decision for r in results if r.expected)
    plain_right = sum(r.right_decision for r in results if not r.expected)
    print()
    print(f"model {args.model}: {len(results)} prompts in {sum(r.seconds for r in results):.0f} s")
    print(f"completed without reaching the budget: {clean}/{len(results)} (target: all)")
    print(f"budget reached: {sum(r.budget_hit for r in results)}")
    print(
        f"median reply: {statistics.median(r.tokens for r in results):.0f} tokens, "
        f"{statistics.median(r.words for r in results):.0f} words"
    )
    print(
        f"distinct 3-grams: min {worst:.2f}, median "
        f"{statistics.median(r.distinct_3grams for r in results):.2f} (target: min >= 0.6)"
    )
    print(
        f"tool decisions right: {right}/{len(results)} "
        f"(needs a tool: {tool_right}, needs none: {plain_right}; target >= 15/20)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
