"""Transcript markdown at the live views' level: math, highlighted code, task lists."""

from __future__ import annotations

import re

import pytest

from ipyassistant.jupyter.transcript import transcript_html
from ipyassistant.jupyter.transcript_markdown import extract_math, render_markdown
from ipyassistant.jupyter.view_state import empty_state


def text_of(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def test_math_survives_the_markdown_pass_for_mathjax() -> None:
    html = render_markdown("Euler: $e^{i\\pi}+1=0$, $a_b + c_d$ and $x\\,y$.\n\n$$\\int_0^1 x\\,dx$$")
    assert '<span class="math">\\(e^{i\\pi}+1=0\\)</span>' in html
    assert '<span class="math">\\(a_b + c_d\\)</span>' in html
    assert "\\(x\\,y\\)" in html
    assert '<span class="math math-display">\\[\\int_0^1 x\\,dx\\]</span>' in html
    assert "<em>" not in html


@pytest.mark.parametrize(
    ("source", "tex"),
    [("\\(a_1\\)", "\\(a_1\\)"), ("\\[b_2\\]", "\\[b_2\\]"), ("$1 < 2$", "\\(1 &lt; 2\\)")],
)
def test_every_delimiter_and_escaping(source: str, tex: str) -> None:
    assert tex in render_markdown(f"see {source} here")


def test_prices_escapes_and_code_are_not_math() -> None:
    html = render_markdown("It costs $5 and $10. Escaped \\$x\\$.\n\n`$y$`\n\n```\n$z$\n```\n\n    $w$\n")
    assert 'class="math"' not in html
    assert "$5 and $10" in html
    assert "<code>$y$</code>" in html
    assert "$z$" in html and "$w$" in html


def test_math_cannot_break_out_of_a_tag_or_run_script() -> None:
    html = render_markdown('[x]($"onmouseover=alert(1)$) and $<script>alert(1)</script>$')
    assert "<script" not in html
    assert not re.search(r"<[^>]*\son\w+\s*=", html)
    assert "&lt;script&gt;" in html


def test_extract_math_leaves_placeholders_of_letters_and_digits() -> None:
    masked, spans = extract_math("a $x_1$ b \\[y\\]", key="7")
    assert masked == "a ipamath7z0z b ipamath7z1z"
    assert spans == [("x_1", False), ("y", True)]


@pytest.mark.parametrize(
    ("lang", "code", "token"),
    [
        ("python", "def f():\n    return 1", 'class="k"'),
        ("javascript", "const x = 1; // note", 'class="kd"'),
        ("sql", "SELECT name FROM users", 'class="k"'),
        ("bash", 'echo "hi"', 'class="nb"'),
    ],
)
def test_fences_are_highlighted_with_pygments(lang: str, code: str, token: str) -> None:
    html = render_markdown(f"```{lang}\n{code}\n```")
    assert f'<code class="language-{lang}">' in html
    assert token in html
    assert text_of(html).strip().replace("&quot;", '"') == code


def test_unknown_or_untagged_fences_stay_plain_and_escaped() -> None:
    html = render_markdown("```nolanguage\n<b>x</b>\n```\n\n```\n<i>y</i>\n```")
    assert "<span" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "&lt;i&gt;y&lt;/i&gt;" in html


def test_task_lists_are_disabled_checkboxes() -> None:
    html = render_markdown("- [x] done\n- [ ] to do\n- plain\n")
    assert html.count("<input") == 2
    assert '<li class="task-list-item"><input type="checkbox" disabled checked> done</li>' in html
    assert '<input type="checkbox" disabled> to do' in html
    assert "<li>plain</li>" in html


def test_a_raw_input_stays_text() -> None:
    assert "<input" not in render_markdown('<input type="text"> - [x] not at the start')


def test_the_transcript_carries_the_styles_for_wrapping_tables_and_tokens() -> None:
    message = {
        "kind": "message", "id": "m", "run_id": "r", "role": "assistant", "status": "completed",
        "blocks": [{"type": "text", "text": "x" * 300 + "\n\n| a | b |\n|---|---|\n| 1 | 2 |"}],
    }
    html = transcript_html({**empty_state(), "items": [message]})
    assert "overflow-wrap:anywhere" in html
    assert '<div class="ipa-text">' in html
    assert "<table>" in html and "<th>a</th>" in html
