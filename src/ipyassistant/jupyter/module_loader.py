"""The widgets' JavaScript, loaded once per page instead of saved in every view's state.

anywidget keeps a widget's ES module and CSS in the synced ``_esm`` and ``_css`` traits, so
a notebook saved with its widget state would carry the whole bundle (KaTeX, highlight.js,
the renderers: about half a megabyte) once per view. Instead each widget's ``_esm`` is a
small loader (:func:`loader_esm`) that takes the module from the package's JupyterLab
extension, which has the same modules and whose CSS is on the page already, when that
extension was built from the same sources (the same build id). Front ends without it
(VS Code, Colab, an extension of another version) ask the kernel, which answers with the
module and its CSS over the widget's comm (:func:`serve_module`): one copy per page, never
in the saved state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["MODULES", "build_id", "loader_esm", "serve_module"]

_STATIC = Path(__file__).resolve().parent.parent / "static"

#: The widget modules the kernel serves (by the name the loader asks for).
MODULES = ("run_view", "chat_panel")

#: The message the loader sends and the kernel's reply carries.
REQUEST = "ipa-module"

_LOADER = """\
const NAME = %(name)s, BUILD = %(build)s;
async function fromKernel(model) {
  const reply = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("ipyassistant: the kernel sent no module")), 60000);
    const on = (msg) => {
      if (!msg || msg.type !== %(request)s || msg.name !== NAME) return;
      clearTimeout(timer);
      model.off("msg:custom", on);
      resolve(msg);
    };
    model.on("msg:custom", on);
    model.send({ type: %(request)s, name: NAME });
  });
  if (reply.css && !document.querySelector(`style[data-ipa-module="${NAME}"]`)) {
    const style = document.createElement("style");
    style.dataset.ipaModule = NAME;
    style.textContent = reply.css;
    document.head.append(style);
  }
  const url = URL.createObjectURL(new Blob([reply.esm], { type: "text/javascript" }));
  try { return (await import(url)).default; } finally { URL.revokeObjectURL(url); }
}
let widget;
export default {
  async initialize(ctx) {
    const lab = globalThis.__ipyassistant?.widgets;
    widget = lab && lab.build === BUILD && lab[NAME] ? lab[NAME] : await fromKernel(ctx.model);
    return widget.initialize?.(ctx);
  },
  render(ctx) { return widget.render(ctx); },
};
"""


@cache
def build_id() -> str:
    """The id of the built bundle: the hash js/build_id.mjs gives the labextension too."""
    digest = hashlib.sha256()
    for name in MODULES:
        for ext in ("js", "css"):
            path = _STATIC / f"{name}.{ext}"
            digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()[:16]


def loader_esm(name: str, missing: str) -> str:
    """The ``_esm`` of widget module ``name``, or ``missing`` if the bundle was not built."""
    if not (_STATIC / f"{name}.js").is_file():
        return missing
    return _LOADER % {
        "name": json.dumps(name),
        "build": json.dumps(build_id()),
        "request": json.dumps(REQUEST),
    }


def serve_module(send: Callable[[dict[str, Any]], None], content: Any) -> bool:
    """Answer a loader's request for its module (True if ``content`` was one)."""
    if not isinstance(content, dict) or content.get("type") != REQUEST:
        return False
    name = content.get("name")
    if name not in MODULES:
        return True
    esm = (_STATIC / f"{name}.js").read_text(encoding="utf-8")
    css_path = _STATIC / f"{name}.css"
    css = css_path.read_text(encoding="utf-8") if css_path.is_file() else ""
    send({"type": REQUEST, "name": name, "esm": esm, "css": css})
    return True
