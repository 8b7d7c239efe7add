"""A static HTML transcript of a view state, for the ``text/html`` part of a widget's output.

Notebook viewers that run no JavaScript (nbconvert's HTML, GitHub, a notebook opened without
its kernel's widgets) show this instead of the live widget. Model text is untrusted: it is
rendered as markdown with raw HTML *escaped*, links other than http(s)/mailto/relative
dropped, and markdown images turned into plain links, since an image URL written by a model
is a way to send data out of the notebook the moment it is shown (see
:mod:`.transcript_markdown`, which also draws math, colours code and shows task lists).
Images the run made (Files API files) are embedded as ``data:`` URLs from their bytes.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from typing import Any

from .transcript_markdown import MARKDOWN_STYLE, link_ok, render_markdown
from .view_state import ViewState

__all__ = ["image_mime", "render_markdown", "transcript_html"]

_STYLE = """\
<style>
.ipa-transcript{font-family:var(--jp-content-font-family,system-ui,sans-serif);line-height:1.45}
.ipa-transcript .ipa-msg{margin:.4em 0;padding:.3em .7em;border-left:3px solid #888}
.ipa-transcript .ipa-user{border-color:#1976d2}
.ipa-transcript .ipa-assistant{border-color:#43a047}
.ipa-transcript .ipa-role{font-size:.8em;opacity:.7;text-transform:uppercase}
.ipa-transcript pre{white-space:pre-wrap;overflow-x:auto;padding:.4em;background:rgba(127,127,127,.1)}
.ipa-transcript .ipa-error{color:#c62828}
.ipa-transcript img{max-width:100%}
""" + MARKDOWN_STYLE + "\n</style>"


def image_mime(data: bytes) -> str:
    """The MIME type of image bytes, from their first bytes (PNG when unknown)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "image/svg+xml"
    return "image/png"


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _image(file_id: str, images: Mapping[str, bytes]) -> str:
    data = images.get(file_id)
    if data is None:
        return f'<p class="ipa-image-missing">[image {_esc(file_id)}]</p>'
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{_esc(file_id)}" src="data:{image_mime(data)};base64,{encoded}"/>'


def _error(error: Mapping[str, Any] | None) -> str:
    if not error:
        return ""
    return f'<p class="ipa-error">{_esc(error.get("code"))}: {_esc(error.get("message"))}</p>'


def _message(item: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    role = str(item.get("role", "assistant"))
    parts = [f'<div class="ipa-msg ipa-{_esc(role)}"><div class="ipa-role">{_esc(role)}</div>']
    for block in item.get("blocks", []):
        kind = block.get("type")
        if kind == "text":
            text = render_markdown(block.get("text", ""), breaks=role == "user")
            parts.append(f'<div class="ipa-text">{text}</div>')
        elif kind == "refusal":
            parts.append(f'<p class="ipa-error">{_esc(block.get("text"))}</p>')
        elif kind == "image":
            parts.append(_image(block.get("file_id", ""), images))
        elif kind == "image_url" and link_ok(str(block.get("url", ""))):
            url = _esc(block.get("url"))
            parts.append(f'<p><a href="{url}" rel="noopener noreferrer">[image: {url}]</a></p>')
    if item.get("status") == "incomplete":
        parts.append("<p><em>(incomplete)</em></p>")
    parts.append("</div>")
    return "".join(parts)


def _tool_call(item: Mapping[str, Any]) -> str:
    parts = [
        f"<details open><summary>Tool call <code>{_esc(item.get('name'))}</code>"
        f" ({_esc(item.get('status'))})</summary>",
        f"<pre>{_esc(item.get('arguments'))}</pre>",
    ]
    if item.get("output") is not None:
        parts.append(f"<div>Output:</div><pre>{_esc(item.get('output'))}</pre>")
    parts.append(_error(item.get("error")))
    parts.append("</details>")
    return "".join(parts)


def _code(item: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    parts = [
        f"<details open><summary>Code interpreter ({_esc(item.get('status'))})</summary>",
        f'<pre><code class="language-python">{_esc(item.get("code"))}</code></pre>',
    ]
    if item.get("logs"):
        parts.append(f"<div>Logs:</div><pre>{_esc(item.get('logs'))}</pre>")
    parts.extend(_image(file_id, images) for file_id in item.get("images", []))
    parts.append(_error(item.get("error")))
    parts.append("</details>")
    return "".join(parts)


def _run(run: Mapping[str, Any] | None) -> str:
    if not run:
        return ""
    bits = [f"run {_esc(run.get('status'))}"]
    if run.get("model"):
        bits.append(f"model {_esc(run.get('model'))}")
    started, finished = run.get("started_at"), run.get("finished_at")
    if isinstance(started, int) and isinstance(finished, int):
        bits.append(f"{finished - started} s")
    usage = run.get("usage")
    if usage:
        bits.append(
            f"{_esc(usage.get('total_tokens'))} tokens ({_esc(usage.get('prompt_tokens'))} in,"
            f" {_esc(usage.get('completion_tokens'))} out)"
        )
    return f'<div class="ipa-run">{" · ".join(bits)}</div>{_error(run.get("error"))}'


def transcript_html(state: ViewState, images: Mapping[str, bytes] | None = None) -> str:
    """The whole state as one self-contained, sanitised HTML fragment."""
    images = images or {}
    parts = [_STYLE, '<div class="ipa-transcript">']
    for item in state.get("items", []):
        kind = item.get("kind")
        if kind == "message":
            parts.append(_message(item, images))
        elif kind == "tool_call":
            parts.append(_tool_call(item))
        elif kind == "code":
            parts.append(_code(item, images))
    parts.append(_run(state.get("run")))
    parts.append(_error(state.get("error")))
    parts.append("</div>")
    return "".join(parts)
