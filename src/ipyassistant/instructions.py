"""Instructions are Jinja templates, rendered in a sandbox with the assistant as ``self_``.

``Assistant(name="Marvin", instructions="You are {{ self_.name }}.")`` sends "You are Marvin."
The environment is sandboxed (templates cannot reach Python internals) and strict (an
undefined name is an error, not an empty string), and any problem is raised as
:class:`~ipyassistant.exceptions.InstructionsError` before anything is sent to the server.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from .exceptions import InstructionsError

__all__ = ["render_instructions"]


@cache
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )


def render_instructions(template: str, self_: Any) -> str:
    """``template`` rendered with ``self_`` (raises InstructionsError, saying where and why)."""
    if "{" not in template:  # no Jinja syntax at all: nothing to render
        return template
    try:
        return _environment().from_string(template).render(self_=self_)
    except jinja2.TemplateSyntaxError as exc:
        raise InstructionsError(
            f"the instructions are not a valid template (line {exc.lineno}): {exc.message}"
        ) from exc
    except jinja2.TemplateError as exc:
        raise InstructionsError(f"the instructions template failed to render: {exc}") from exc
    except Exception as exc:
        raise InstructionsError(
            f"the instructions template failed to render: {type(exc).__name__}: {exc}"
        ) from exc
