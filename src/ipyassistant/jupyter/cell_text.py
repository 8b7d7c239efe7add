"""The text of ``%%assistant`` cells and replies: ``{var}`` expansion, reply text, code in it.

Pure functions over strings and runs, used by the magics (``--expand``, ``-f text``,
``-f code``, ``%assistant fix``).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

if TYPE_CHECKING:
    from ..runs import Run

__all__ = ["FENCE", "expand_braces", "extract_code", "reply_text"]

FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PYTHON = frozenset({"", "python", "py", "python3", "ipython", "ipython3"})


def expand_braces(text: str, namespace: Mapping[str, Any]) -> str:
    """``{name}`` (also ``{name.attr}``, ``{name[key]}``, ``{name:spec}``) from ``namespace``;
    ``{{`` and ``}}`` stand for literal braces."""
    try:
        return string.Formatter().vformat(text, (), namespace)
    except KeyError as exc:
        raise UsageError(
            f"--expand: no variable named {exc.args[0]!r} (write {{{{ and }}}} for literal braces)"
        ) from None
    except (IndexError, ValueError, AttributeError, TypeError) as exc:
        raise UsageError(f"--expand: {exc} (write {{{{ and }}}} for literal braces)") from None


def reply_text(run: Run) -> str:
    """The text of the assistant's messages in a run, in order."""
    parts = [
        block.text.value
        for message in run.messages
        if message.role == "assistant"
        for block in message.content
        if block.type == "text"
    ]
    return "\n\n".join(parts)


def extract_code(text: str) -> str:
    """The code in a reply: its fenced Python blocks (else all its fenced blocks), joined;
    a reply without fences is taken to be code as it is."""
    blocks = FENCE.findall(text)
    if not blocks:
        return text.strip()
    python = [body for language, body in blocks if language.lower() in _PYTHON]
    chosen = python or [body for _, body in blocks]
    return "\n".join(body.rstrip("\n") + "\n" for body in chosen).rstrip("\n")
