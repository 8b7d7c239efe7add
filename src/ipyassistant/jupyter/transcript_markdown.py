"""Model-written markdown as static, sanitised HTML, at the level of the live views.

What the transcripts (:mod:`.transcript`) show of a message's text: markdown-it with raw HTML
*escaped*, unsafe links dropped and images made links, plus what the live views draw:

- Math (``$…$``, ``$$…$$``, ``\\(…\\)``, ``\\[…\\]``) is taken out before the markdown pass, so
  ``\\,`` and ``_`` survive it, and put back as escaped TeX between ``\\(…\\)`` or ``\\[…\\]``.
  nbconvert's HTML loads MathJax, which typesets those delimiters; JupyterLab's own HTML
  renderer typesets them as well; anywhere else the TeX reads as the source it is. No Python
  TeX renderer is a dependency, and emitted MathML would be dropped by most sanitisers.
- Fenced code is coloured with Pygments (IPython depends on it, so it is always here) as
  class-named spans, coloured by a short style sheet that follows JupyterLab's editor theme.
- GFM task lists show disabled checkboxes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

__all__ = ["MARKDOWN_STYLE", "extract_math", "link_ok", "placeholder", "render_markdown"]

_SAFE_SCHEMES = ("http://", "https://", "mailto:")

#: Pygments' short token classes, coloured like the live views' highlight.js tokens.
MARKDOWN_STYLE = """\
.ipa-transcript .highlight [class^=k]{color:var(--jp-mirror-editor-keyword-color,#008000);font-weight:bold}
.ipa-transcript .highlight [class^=s]{color:var(--jp-mirror-editor-string-color,#ba2121)}
.ipa-transcript .highlight [class^=m]{color:var(--jp-mirror-editor-number-color,#080)}
.ipa-transcript .highlight [class^=c]{color:var(--jp-mirror-editor-comment-color,#408080);font-style:italic}
.ipa-transcript .highlight .nf,.ipa-transcript .highlight .nc{color:var(--jp-mirror-editor-def-color,#00f)}
.ipa-transcript .highlight .nb,.ipa-transcript .highlight .nt{color:var(--jp-mirror-editor-builtin-color,#008000)}
.ipa-transcript .highlight .o,.ipa-transcript .highlight .ow{color:var(--jp-mirror-editor-operator-color,#a2f)}
.ipa-transcript .ipa-text{overflow-wrap:anywhere}
.ipa-transcript table{border-collapse:collapse;display:block;max-width:100%;overflow-x:auto}
.ipa-transcript th,.ipa-transcript td{border:1px solid #8884;padding:2px 8px;overflow-wrap:normal}
.ipa-transcript li.task-list-item{list-style:none}
.ipa-transcript .math-display{display:block;overflow-x:auto}"""

# Delimiters in the order they are tried at a position: (open, close, display).
_DELIMITERS = (("$$", "$$", True), ("\\[", "\\]", True), ("\\(", "\\)", False), ("$", "$", False))
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_PLACEHOLDER = "ipamath{}z{}z"
_FORMATTER = HtmlFormatter(nowrap=True)


def link_ok(url: str) -> bool:
    """Whether a model-written link may be kept: http(s), mailto or relative."""
    lowered = url.strip().lower()
    if lowered.startswith(_SAFE_SCHEMES) or lowered.startswith(("#", "/", "./", "../")):
        return True
    # A relative link has no scheme: no colon before the first slash, query or fragment.
    head = lowered.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return ":" not in head


def _code_end(text: str, i: int) -> int:
    """The end of the code starting at ``i`` (a fence or a backtick run), or -1."""
    fence = _FENCE.match(text, i) if i == 0 or text[i - 1] == "\n" else None
    if fence:
        marker = fence.group(1)
        closing = re.compile(rf"\n {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*(?=\n|$)")
        found = closing.search(text, fence.end())
        return found.end() if found else len(text)
    if text[i] != "`":
        return -1
    run = len(text[i:]) - len(text[i:].lstrip("`"))
    ticks = "`" * run
    j = text.find(ticks, i + run)
    while j >= 0:
        if text[j + run : j + run + 1] != "`" and text[j - 1] != "`":
            return j + run
        j = text.find(ticks, j + run)
    return i + run


def _math_end(text: str, i: int, opener: str, closer: str, display: bool) -> int:
    """The index of the delimiter closing the math opened at ``i``, or -1."""
    start = i + len(opener)
    if opener == "$":
        # Pandoc's rule, so that prices stay text: "$5 and $10" is not math.
        if start >= len(text) or text[start].isspace():
            return -1
        j = text.find("$", start)
        while j >= 0:
            if "\n\n" in text[start:j]:
                return -1
            after = text[j + 1 : j + 2]
            if text[j - 1] != "\\" and j > start and not text[j - 1].isspace() and not after.isdigit():
                return j
            j = text.find("$", j + 1)
        return -1
    j = text.find(closer, start)
    if j <= start or (not display and "\n\n" in text[start:j]):
        return -1
    return j


def extract_math(text: str, key: str = "0") -> tuple[str, list[tuple[str, bool]]]:
    """``text`` with its math replaced by placeholders, and the math as (TeX, display) pairs.

    Code spans and fenced code are skipped; an escaped dollar is not a delimiter.
    """
    spans: list[tuple[str, bool]] = []
    out: list[str] = []
    i = copied = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and text[i + 1 : i + 2] == "$":
            i += 2
            continue
        end = _code_end(text, i) if ch in "` ~" else -1
        if end > i:
            i = end
            continue
        found = -1
        if ch in "$\\":
            for opener, closer, display in _DELIMITERS:
                if text.startswith(opener, i):
                    found = _math_end(text, i, opener, closer, display)
                    break
        if found < 0:
            i += 1
            continue
        stop = found + len(closer)
        out.append(text[copied:i] + _PLACEHOLDER.format(key, len(spans)))
        spans.append((text[i + len(opener) : found].strip(), display))
        i = copied = stop
    out.append(text[copied:])
    return "".join(out), spans


def _highlight(code: str, lang: str, _attrs: Any) -> str:
    """A fence's code as Pygments spans (escaped by Pygments), or "" to keep it plain."""
    try:
        lexer = get_lexer_by_name(lang.strip().split()[0]) if lang.strip() else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""
    return str(pygments_highlight(code, lexer, _FORMATTER))


def _task_lists(state: Any) -> None:
    """Mark ``[ ]`` and ``[x]`` at the start of a list item as a disabled checkbox."""
    tokens = state.tokens
    for k in range(2, len(tokens)):
        inline = tokens[k]
        if inline.type != "inline" or tokens[k - 2].type != "list_item_open" or not inline.children:
            continue
        first = inline.children[0]
        match = re.match(r"\[([ xX])\] ", first.content) if first.type == "text" else None
        if not match:
            continue
        first.content = first.content[match.end() :]
        box = Token("html_inline", "", 0)
        checked = " checked" if match.group(1) != " " else ""
        box.content = f'<input type="checkbox" disabled{checked}> '
        inline.children.insert(0, box)
        tokens[k - 2].attrSet("class", "task-list-item")


def _markdown(breaks: bool) -> MarkdownIt:
    md = MarkdownIt(
        "commonmark", {"html": False, "breaks": breaks, "highlight": _highlight}
    ).enable(["table", "strikethrough"])
    md.validateLink = link_ok  # type: ignore[method-assign]

    def image_as_link(_renderer: Any, tokens: Any, idx: int, _options: Any, _env: Any) -> str:
        token = tokens[idx]
        src = html.escape(str(token.attrGet("src") or ""), quote=True)
        alt = html.escape(token.content or "image")
        return f'<a href="{src}" rel="noopener noreferrer">[image: {alt}]</a>'

    md.add_render_rule("image", image_as_link)
    md.core.ruler.push("ipa_task_lists", _task_lists)
    return md


_MD = _markdown(breaks=False)
#: For what a person typed: each line break is one.
_TYPED = _markdown(breaks=True)


def _math_html(tex: str, display: bool) -> str:
    body = html.escape(tex, quote=True)
    if display:
        return f'<span class="math math-display">\\[{body}\\]</span>'
    return f'<span class="math">\\({body}\\)</span>'


def placeholder(number: int) -> str:
    """What stands for ``markers[number]`` in the text given to :func:`render_markdown`.

    Private-use characters: markdown leaves them alone, and no model writes them.
    """
    return f"\ue000{number}\ue001"


_MARKER = re.compile("\ue000(\\d+)\ue001")


def render_markdown(
    text: str, *, breaks: bool = False, markers: Sequence[tuple[str, str]] = ()
) -> str:
    """Markdown to HTML with raw HTML escaped, unsafe links dropped, images made links.

    ``markers`` are ``(html, plain)`` pairs that replace the :func:`placeholder` of their index
    in ``text`` after the markdown pass: ``html`` in running text (a citation's link), the
    escaped ``plain`` in code and in a tag's attributes.
    """
    key = str(abs(hash(text)) % 10**8)
    masked, spans = extract_math(text, key)
    rendered = (_TYPED if breaks else _MD).render(masked)
    if not spans and not markers:
        return rendered

    pattern = re.compile(re.escape(f"ipamath{key}z") + r"(\d+)z")

    def source(match: re.Match[str]) -> str:
        return html.escape(_source(*spans[int(match.group(1))]), quote=True)

    def drawn(match: re.Match[str]) -> str:
        return _math_html(*spans[int(match.group(1))])

    def marker(plain: bool) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            n = int(match.group(1))
            if n >= len(markers):
                return match.group(0)
            return html.escape(markers[n][1], quote=True) if plain else markers[n][0]

        return replace

    # Math and markers are drawn in text only: in a tag (a link's target) or in code (an
    # indented block) they get their source back, escaped for where they stand.
    pieces = re.split(r"(<[^>]*>)", rendered)
    in_code = 0
    for n, piece in enumerate(pieces):
        plain = bool(n % 2 or in_code)
        if n % 2:
            in_code += piece.startswith("<code") - piece.startswith("</code")
        piece = pattern.sub(source if plain else drawn, piece)
        pieces[n] = _MARKER.sub(marker(plain), piece)
    return "".join(pieces)


def _source(tex: str, display: bool) -> str:
    return f"$${tex}$$" if display else f"${tex}$"
