"""``CodeBox``: generated code with a copy button (what ``%%assistant -f code`` shows).

The code also goes into a new cell where the front end supports it (IPython's
``set_next_input``); the copy button works everywhere widgets do. Its ``text/html`` fallback
(nbconvert, GitHub) is the code in a ``<pre>`` block. The widget's JavaScript is small enough
to live here, inline, beside the run view's bundle.
"""

from __future__ import annotations

import html
from typing import Any

import anywidget
import traitlets

__all__ = ["CodeBox"]

_ESM = """\
function copyText(text, button) {
  const done = () => {
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = "Copy"), 1200);
  };
  const fallback = () => {
    const area = document.createElement("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    try { if (document.execCommand("copy")) done(); } finally { area.remove(); }
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, fallback);
  } else {
    fallback();
  }
}

export default {
  render({ model, el }) {
    const box = document.createElement("div");
    box.className = "ipa-codebox";
    const bar = document.createElement("div");
    bar.className = "ipa-codebox-bar";
    const label = document.createElement("span");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "ipa-codebox-copy";
    button.textContent = "Copy";
    button.title = "Copy to the clipboard";
    button.addEventListener("click", () => copyText(model.get("code"), button));
    bar.append(label, button);
    const pre = document.createElement("pre");
    const code = document.createElement("code");
    pre.append(code);
    box.append(bar, pre);
    const update = () => {
      code.textContent = model.get("code");
      label.textContent = model.get("note");
    };
    update();
    model.on("change:code", update);
    model.on("change:note", update);
    el.append(box);
    return () => {
      model.off("change:code", update);
      model.off("change:note", update);
    };
  },
};
"""

_CSS = """\
.ipa-codebox { border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px; }
.ipa-codebox-bar { display: flex; justify-content: space-between; align-items: center;
  padding: 2px 6px; font-size: 0.85em; opacity: 0.8;
  background: var(--jp-layout-color2, #f5f5f5); }
.ipa-codebox pre { margin: 0; padding: 6px 8px; overflow-x: auto;
  font-family: var(--jp-code-font-family, monospace); }
.ipa-codebox-copy { cursor: pointer; font-size: inherit; padding: 1px 8px;
  border: 1px solid var(--jp-border-color1, #bbb); border-radius: 3px;
  background: var(--jp-layout-color1, #fff); color: var(--jp-ui-font-color1, #222); }
"""


class CodeBox(anywidget.AnyWidget):
    """Code shown in a box with a copy button.

    Args:
        code: The code.
        note: A short line above it (e.g. "Also in a new cell below").
    """

    _esm = _ESM
    _css = _CSS

    #: The code shown and copied.
    code = traitlets.Unicode().tag(sync=True)
    #: The line above the code.
    note = traitlets.Unicode().tag(sync=True)

    def __init__(self, code: str, note: str = "", **kwargs: Any) -> None:
        super().__init__(code=code, note=note, **kwargs)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        fallback = f"<pre><code>{html.escape(self.code)}</code></pre>"
        return {**data, "text/html": fallback, "text/plain": self.code}, metadata
