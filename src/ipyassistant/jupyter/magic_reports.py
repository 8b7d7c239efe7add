"""What ``%assistant threads``, ``history``, ``model`` and ``config`` show.

The magics keep the notebook's state (its conversations, the chosen assistant, the traits);
these functions turn it into the lines and tables the subcommands print.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import openai
from IPython.core.error import UsageError
from IPython.display import display

from ..assistants import Assistant
from ..formatting import pprint_messages
from ..settings import default_model
from ..threads import Thread
from .display import in_notebook

if TYPE_CHECKING:
    from .magics import AssistantMagics

__all__ = ["Conversation", "model_line", "print_config", "print_threads", "show_history"]


@dataclass
class Conversation:
    """A thread the magics talked on, whose it is, and how many cells it has seen."""

    label: str
    thread: Thread
    cells: int = 0


def model_line(model: str | None, assistant: Assistant) -> str:
    """The model of ``%%assistant`` runs and where it comes from (``model`` is the trait's)."""
    if model:
        return f"{model} (AssistantMagics.model)"
    if assistant.model:
        return f"{assistant.model} (the assistant's)"
    return f"{default_model()} (the default model)"


def print_threads(conversations: Sequence[Conversation], assistant: Assistant) -> None:
    """Print the notebook's conversations as a table, ``*`` marking ``assistant``'s thread."""
    if not conversations:
        print("No threads yet: the first %%assistant cell starts one.")
        return
    rows = [("", "assistant", "thread", "cells")]
    for conversation in conversations:
        mark = "*" if conversation.thread is assistant.default_thread else ""
        thread_id = conversation.thread.id or "(created with the next message)"
        rows.append((mark, conversation.label, thread_id, str(conversation.cells)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def show_history(thread: Thread) -> None:
    """Show the conversation on ``thread``: its view in a notebook, else printed."""
    if thread.id is None:
        print("No messages yet.")
    elif in_notebook():
        display(thread)
    else:
        try:
            messages = thread.get_messages(limit=100)
        except openai.NotFoundError as exc:
            raise UsageError(f"not found on the server: {exc.message}") from None
        pprint_messages(messages)


def print_config(magics: AssistantMagics, label: str, assistant: Assistant, chosen: bool) -> None:
    """Print the magics' settings and what a cell without NAME talks to, with and where."""
    print("AssistantMagics (change with %config AssistantMagics.NAME = value):")
    names = ("assistant_name", "instructions", "model", "format", "expand", "quiet")
    for name in (*names, "raise_on_failure", "context", "approve"):
        print(f"  {name} = {getattr(magics, name)!r}")
    thread = assistant.default_thread
    print(f"assistant: {label}" + ("" if chosen else " (the notebook's default)"))
    print(f"model: {model_line(magics.model, assistant)}")
    print(f"thread: {thread.id or '(created with the next message)'}")
    server = os.environ.get("IPYASSISTANT_BASE_URL") or "the embedded server"
    print(f"server: {server}")
    print(f"views: {'live widgets' if in_notebook() else 'printed (not a notebook)'}")
