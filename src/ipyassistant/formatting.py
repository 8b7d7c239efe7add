"""Rich panels for messages and run steps, and the ``pprint_*`` functions that print them.

The panel builders are pure functions of SDK objects (``Message``, ``RunStep``) and of the
local paths of the images they show; :class:`~ipyassistant.PrintHandler` uses them while a run
streams, and :func:`pprint_run`, :func:`pprint_messages` and :func:`pprint_steps` after the
fact. A terminal cannot show images, so they are downloaded to a temporary folder and shown
as a path (a link, where the terminal supports links).
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openai.types.beta.threads import Message
from openai.types.beta.threads.runs import RunStep
from rich.console import Console, Group, RenderableType
from rich.markdown import Markdown
from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text

from ._portal import client, on_portal, portal, sync_twin

if TYPE_CHECKING:
    from .runs import Run

__all__ = [
    "download_images",
    "download_images_async",
    "image_file_ids",
    "message_panel",
    "pprint_messages",
    "pprint_run",
    "pprint_steps",
    "run_panels",
    "step_panel",
]

#: Tool outputs and logs longer than this are cut in panels (the objects keep everything).
MAX_OUTPUT_CHARS = 2000

_ROLE_STYLE = {"user": "green", "assistant": "blue"}
_STATUS_STYLE = {"failed": "red", "cancelled": "yellow", "expired": "red", "incomplete": "yellow"}
_downloaded: dict[str, Path] = {}


def _time(timestamp: int | None) -> str:
    if not timestamp:
        return ""
    return datetime.fromtimestamp(timestamp).strftime("%H:%M:%S")


def _cut(text: str) -> str:
    if len(text) <= MAX_OUTPUT_CHARS:
        return text
    return f"{text[:MAX_OUTPUT_CHARS]}… ({len(text) - MAX_OUTPUT_CHARS} more characters)"


def _image_line(file_id: str, images: Mapping[str, Path]) -> Text:
    path = images.get(file_id)
    if path is None:
        return Text(f"🖼  image {file_id}", style="magenta")
    line = Text("🖼  ", style="magenta")
    line.append(str(path), style=f"magenta link {path.as_uri()}")
    return line


def message_panel(message: Message, images: Mapping[str, Path] | None = None) -> Panel:
    """A message as a panel: its text as markdown, its images as paths."""
    images = images or {}
    parts: list[RenderableType] = []
    for block in message.content:
        if block.type == "text":
            parts.append(Markdown(block.text.value))
        elif block.type == "image_file":
            parts.append(_image_line(block.image_file.file_id, images))
        elif block.type == "image_url":
            parts.append(Text(f"🖼  {block.image_url.url}", style="magenta"))
        elif block.type == "refusal":
            parts.append(Text(block.refusal, style="red"))
    for attachment in message.attachments or []:
        if attachment.file_id:
            parts.append(Text(f"📎 {attachment.file_id}", style="dim"))
    if message.status == "incomplete":
        reason = message.incomplete_details.reason if message.incomplete_details else "unknown"
        parts.append(Text(f"(incomplete: {reason})", style="yellow"))
    style = _ROLE_STYLE.get(message.role, "white")
    return Panel(
        Group(*parts) if parts else Text("…", style="dim"),
        title=f"[bold]{message.role.capitalize()}[/]",
        title_align="left",
        subtitle=f"[italic]{_time(message.created_at)}[/]",
        subtitle_align="right",
        border_style=style,
    )


def _arguments(arguments: str) -> RenderableType:
    try:
        pretty = json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except (json.JSONDecodeError, TypeError):
        return Text(arguments)  # still streaming, or not JSON at all
    return Syntax(pretty, "json", theme="ansi_dark", background_color="default")


def _tool_call(call: Any, images: Mapping[str, Path]) -> list[RenderableType]:
    if call.type == "function":
        fn = call.function
        parts: list[RenderableType] = [
            Text.assemble(("🛠  ", ""), (fn.name or "…", "bold cyan")),
            _arguments(fn.arguments or ""),
        ]
        if fn.output is not None:
            parts.append(Text.assemble(("→ ", "bold"), (_cut(fn.output), "")))
        return parts
    if call.type == "code_interpreter":
        ci = call.code_interpreter
        parts = [
            Text("🐍 code interpreter", style="bold cyan"),
            Syntax(ci.input or "", "python", theme="ansi_dark", background_color="default"),
        ]
        for output in ci.outputs or []:
            if output.type == "logs":
                parts.append(Text(_cut(output.logs), style="dim"))
            elif output.type == "image":
                parts.append(_image_line(output.image.file_id, images))
        return parts
    if call.type == "file_search":
        found = call.file_search
        query = getattr(found, "query", None)  # this server's addition to the step object
        parts = [Text.assemble(("🔎 file search", "bold cyan"), (f"  {query}" if query else "", ""))]
        for result in found.results or []:
            parts.append(Text(f"{result.file_name}  score {result.score:.2f}", style="dim"))
        return parts
    return [Text(f"tool call {call.type}", style="bold cyan")]


def step_panel(step: RunStep, images: Mapping[str, Path] | None = None) -> Panel | None:
    """A ``tool_calls`` step as a panel (``None`` for message steps: messages show those)."""
    details = step.step_details
    if details.type != "tool_calls":
        return None
    images = images or {}
    parts: list[RenderableType] = []
    for call in details.tool_calls:
        parts.extend(_tool_call(call, images))
    if step.status == "in_progress":
        parts.append(Text("running…", style="dim italic"))
    elif step.status != "completed":
        error = f": {step.last_error.message}" if step.last_error else ""
        parts.append(Text(f"{step.status}{error}", style=_STATUS_STYLE.get(step.status, "red")))
    return Panel(
        Group(*parts) if parts else Text("…", style="dim"),
        title="[bold]Tool calls[/]",
        title_align="left",
        subtitle=f"[italic]{_time(step.created_at)}[/]",
        subtitle_align="right",
        border_style="cyan",
    )


def run_status_panel(run: Any) -> Panel | None:
    """A panel for a run that did not complete (failed, cancelled, …), else ``None``."""
    status = getattr(run, "status", None)
    if status in (None, "completed", "requires_action", "queued", "in_progress"):
        return None
    detail = ""
    if run.last_error:
        detail = f"{run.last_error.code}: {run.last_error.message}"
    elif run.incomplete_details:
        detail = f"reason: {run.incomplete_details.reason}"
    return Panel(
        Text(detail or f"The run was {status}."),
        title=f"[bold]Run {status}[/]",
        title_align="left",
        border_style=_STATUS_STYLE.get(status, "red"),
    )


def image_file_ids(messages: Iterable[Message] = (), steps: Iterable[RunStep] = ()) -> list[str]:
    """The image files that messages and steps show, in order, without repeats."""
    found: dict[str, None] = {}
    for message in messages:
        for block in message.content:
            if block.type == "image_file":
                found[block.image_file.file_id] = None
    for step in steps:
        if step.step_details.type != "tool_calls":
            continue
        for call in step.step_details.tool_calls:
            if call.type == "code_interpreter":
                for output in call.code_interpreter.outputs or []:
                    if output.type == "image":
                        found[output.image.file_id] = None
    return list(found)


@on_portal
async def download_images_async(file_ids: Iterable[str]) -> dict[str, Path]:
    """Download image files to a temporary folder (once per file); maps id to local path.

    Files that cannot be downloaded are left out (their panels show the id instead).
    """
    api = await client()
    paths: dict[str, Path] = {}
    for file_id in file_ids:
        if file_id not in _downloaded:
            try:
                response = await api.files.content(file_id)
            except Exception:  # a missing image must not break printing
                continue
            data = response.content
            path = _image_folder() / f"{file_id}{_extension(data)}"
            path.write_bytes(data)
            _downloaded[file_id] = path
        paths[file_id] = _downloaded[file_id]
    return paths


download_images = sync_twin(download_images_async)


@functools.cache
def _image_folder() -> Path:
    """This process's own temporary folder for images (kept after exit, for viewing)."""
    return Path(tempfile.mkdtemp(prefix="ipyassistant-images-"))


def _extension(data: bytes) -> str:
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data.startswith(b"GIF8"):
        return ".gif"
    if data[8:12] == b"WEBP":
        return ".webp"
    return ".png"


def _images_now(file_ids: list[str]) -> dict[str, Path]:
    """Download from sync code: through the portal, or directly when already on its loop."""
    if not file_ids:
        return {}
    if portal().in_loop():
        return {f: _downloaded[f] for f in file_ids if f in _downloaded}
    return download_images(file_ids)


def run_panels(
    messages: Iterable[Message], steps: Iterable[RunStep], images: Mapping[str, Path]
) -> list[Panel]:
    """A run's messages and tool calls as panels, in the order of its steps."""
    messages = list(messages)
    by_id = {message.id: message for message in messages}
    panels: list[Panel] = []
    shown: set[str] = set()
    for step in steps:
        details = step.step_details
        if details.type == "message_creation":
            message = by_id.get(details.message_creation.message_id)
            if message is not None and message.id not in shown:
                panels.append(message_panel(message, images))
                shown.add(message.id)
        elif (panel := step_panel(step, images)) is not None:
            panels.append(panel)
    panels += [message_panel(m, images) for m in messages if m.id not in shown]
    return panels


def pprint_messages(messages: Iterable[Message], *, console: Console | None = None) -> None:
    """Print messages as panels (e.g. ``thread.get_messages()`` or ``run.messages``)."""
    messages = list(messages)
    console = console or Console()
    images = _images_now(image_file_ids(messages))
    for message in messages:
        console.print(message_panel(message, images))


def pprint_steps(steps: Iterable[RunStep], *, console: Console | None = None) -> None:
    """Print the tool calls of run steps as panels (e.g. ``run.steps``)."""
    steps = list(steps)
    console = console or Console()
    images = _images_now(image_file_ids(steps=steps))
    for step in steps:
        panel = step_panel(step, images)
        if panel is not None:
            console.print(panel)


def pprint_run(run: Run, *, console: Console | None = None) -> None:
    """Print what a run did: its tool calls and messages in order, and how it ended."""
    console = console or Console()
    messages, steps = run.messages, run.steps
    images = _images_now(image_file_ids(messages, steps))
    for panel in run_panels(messages, steps, images):
        console.print(panel)
    status = run_status_panel(run.run)
    if status is not None:
        console.print(status)
