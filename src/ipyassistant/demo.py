"""``ipyassistant demo``: a short conversation in the terminal, on the embedded server.

An assistant with a dice-rolling tool answers one message (given on the command line) or a
short scripted conversation: a tool call round trip, then a plain reply. Everything goes
through the public API and is printed by :class:`~ipyassistant.PrintHandler`.
"""

from __future__ import annotations

import random
from typing import Any

import openai
from rich.console import Console

from .assistants import Assistant
from .exceptions import IpyassistantError
from .settings import default_model

__all__ = ["SCRIPT", "demo_assistant", "roll_dice", "run_demo"]


def roll_dice(n_dice: int = 2) -> list[int]:
    """Roll six-sided dice.

    Args:
        n_dice: How many dice to roll (1 to 10).
    """
    return [random.randint(1, 6) for _ in range(max(1, min(n_dice, 10)))]


#: The scripted conversation: each message, with the run options it is said with.
SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("Hello! Please roll two dice for me.", {}),
    ("Thanks, that's all.", {"tool_choice": "none"}),
]


def demo_assistant(model: str) -> Assistant:
    """The demo's assistant: Dicey, with the :func:`roll_dice` tool."""
    return Assistant(
        name="Dicey",
        instructions=(
            "You are {{ self_.name }}, a cheerful assistant. When asked for dice, "
            "call roll_dice and report the numbers."
        ),
        model=model,
        tools=[roll_dice],
    )


def run_demo(model: str | None, message: str | None) -> int:
    """Run the demo with ``model`` (default: the settings' default model); 0 on success."""
    console = Console()
    model = model or default_model()
    console.rule(f"[bold]ipyassistant demo[/] — model [cyan]{model}[/]")
    ai = demo_assistant(model)
    try:
        with ai:
            if message is not None:
                ai.say(message)
            else:
                for text, options in SCRIPT:
                    ai.say(text, **options)
    except (IpyassistantError, openai.OpenAIError) as exc:
        console.print(f"[red]The demo failed:[/] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted; the run was cancelled.[/]")
        return 130
    if model == "test":
        console.print(
            "[dim]That was the offline test model. Try a real one with "
            "--model openai:gpt-4o-mini (and OPENAI_API_KEY).[/]"
        )
    return 0
