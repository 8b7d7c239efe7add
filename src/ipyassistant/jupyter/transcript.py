"""A static HTML transcript of a view state, for the ``text/html`` part of a widget's output.

Notebook viewers that run no JavaScript (nbconvert's HTML, GitHub, a notebook opened without
its kernel's widgets) show this instead of the live widget. Model text is untrusted: it is
rendered as markdown with raw HTML *escaped*, links other than http(s)/mailto/relative
dropped, and markdown images turned into plain links, since an image URL written by a model
is a way to send data out of the notebook the moment it is shown (see
:mod:`.transcript_markdown`, which also draws math, colours code and shows task lists).
Images the run made (Files API files) are embedded as ``data:`` URLs from their bytes. A
file search shows its query and results (each found chunk in a ``<details>``), and a message's
citations are numbered links to the sources listed under it (:mod:`.sources`).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from typing import Any

from .sources import Source, cite, with_markers
from .transcript_markdown import MARKDOWN_STYLE, link_ok, placeholder, render_markdown
from .view_state import ViewState
from .view_types import FileSearchItem, MessageItem

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
.ipa-transcript .ipa-sources{font-size:.9em;margin:.4em 0 0;padding-left:2em}
.ipa-transcript .ipa-sources blockquote{margin:.2em 0;padding-left:.6em;border-left:2px solid #8886;white-space:pre-wrap}
.ipa-transcript .ipa-source-file{font-weight:bold}
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


def _message(item: MessageItem, state: ViewState, images: Mapping[str, bytes]) -> str:
    role = str(item.get("role", "assistant"))
    parts = [f'<div class="ipa-msg ipa-{_esc(role)}"><div class="ipa-role">{_esc(role)}</div>']
    cited = cite(item, state)
    markers = [_marker(item["id"], source) for source in cited.sources]
    for block, numbers in zip(item.get("blocks", []), cited.numbers, strict=True):
        if block["type"] == "text":
            citations = block.get("citations", [])
            # Source n is markers[n - 1].
            marked = with_markers(block["text"], citations, numbers, lambda n: placeholder(n - 1))
            text = render_markdown(marked, breaks=role == "user", markers=markers)
            parts.append(f'<div class="ipa-text">{text}</div>')
        elif block["type"] == "refusal":
            parts.append(f'<p class="ipa-error">{_esc(block["text"])}</p>')
        elif block["type"] == "image":
            parts.append(_image(block["file_id"], images))
        elif block["type"] == "image_url" and link_ok(str(block["url"])):
            url = _esc(block["url"])
            parts.append(f'<p><a href="{url}" rel="noopener noreferrer">[image: {url}]</a></p>')
    if item.get("status") == "incomplete":
        parts.append("<p><em>(incomplete)</em></p>")
    parts.append(_sources(item["id"], cited.sources))
    parts.append("</div>")
    return "".join(parts)


def _marker(message_id: str, source: Source) -> tuple[str, str]:
    """A citation's number: a link to its source (``html``), or ``[n]`` (``plain``)."""
    label = f"Source {source.number}: {source.file_name}"
    link = (
        f'<sup class="ipa-cite"><a href="#ipa-src-{_esc(message_id)}-{source.number}"'
        f' aria-label="{_esc(label)}">[{source.number}]</a></sup>'
    )
    return link, f"[{source.number}]"


def _sources(message_id: str, sources: list[Source]) -> str:
    if not sources:
        return ""
    parts = ['<ol class="ipa-sources" aria-label="Sources">']
    for source in sources:
        parts.append(
            f'<li id="ipa-src-{_esc(message_id)}-{source.number}" value="{source.number}">'
            f'<span class="ipa-source-file">{_esc(source.file_name)}</span>'
        )
        if source.quote:
            parts.append(f"<blockquote>{_esc(source.quote)}</blockquote>")
        parts.append("</li>")
    parts.append("</ol>")
    return "".join(parts)


def _file_search(item: FileSearchItem) -> str:
    results = item["results"]
    found = "…" if item["status"] == "in_progress" else f"{len(results)} result(s)"
    parts = [f"<details open><summary>File search ({_esc(item['status'])}): {found}</summary>"]
    if item["query"]:
        parts.append(f'<p class="ipa-query">Query: <q>{_esc(item["query"])}</q></p>')
    if item["ranker"] is not None or item["score_threshold"] is not None:
        parts.append(
            f'<p class="ipa-ranking">Ranker {_esc(item["ranker"] or "auto")},'
            f" score threshold {_esc(item['score_threshold'] or 0)}</p>"
        )
    if results:
        parts.append('<ol class="ipa-results">')
        for result in results:
            head = f"{_esc(result['file_name'] or result['file_id'])} · score {result['score']:.2f}"
            if result["content"]:
                parts.append(
                    f"<li><details><summary>{head}</summary>"
                    f"<pre>{_esc(result['content'])}</pre></details></li>"
                )
            else:
                parts.append(f"<li>{head}</li>")
        parts.append("</ol>")
    parts.append(_error(item["error"]))
    parts.append("</details>")
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
        if item["kind"] == "message":
            parts.append(_message(item, state, images))
        elif item["kind"] == "tool_call":
            parts.append(_tool_call(item))
        elif item["kind"] == "code":
            parts.append(_code(item, images))
        elif item["kind"] == "file_search":
            parts.append(_file_search(item))
    parts.append(_run(state.get("run")))
    parts.append(_error(state.get("error")))
    parts.append("</div>")
    return "".join(parts)
