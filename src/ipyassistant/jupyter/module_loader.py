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

# anywidget handles no comm message of a model until its `initialize` has returned (and gives
# up on a model whose `initialize` takes over 2 s), so `initialize` cannot wait for the kernel's
# reply: it asks, returns, and runs the module's own `initialize` once the module has come;
# `render` waits for that. The module's `initialize` asks the kernel for a snapshot, so the
# messages that came before it are not lost.
_LOADER = """\
const NAME = %(name)s, BUILD = %(build)s;
// anywidget imports the loader once per model: the kernel's module is kept for the page.
const FETCHED = (globalThis.__ipyassistantFetched ??= new Map());
const started = new Map();
function fromLab() {
  const lab = globalThis.__ipyassistant?.widgets;
  return lab && lab.build === BUILD && lab[NAME] ? lab[NAME] : undefined;
}
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
function kernelModule(model) {
  const key = `${NAME}:${BUILD}`;
  if (!FETCHED.has(key)) {
    const fetched = fromKernel(model);
    FETCHED.set(key, fetched);
    fetched.catch(() => FETCHED.delete(key));
  }
  return FETCHED.get(key);
}
export default {
  initialize(ctx) {
    const lab = fromLab();
    if (lab) return lab.initialize?.(ctx);
    let cleanup, disposed = false;
    const uid = ctx.model.get("_uid");
    const ready = kernelModule(ctx.model).then(async (widget) => {
      if (!disposed) cleanup = await widget.initialize?.(ctx);
      return widget;
    });
    started.set(uid, ready);
    return () => {
      disposed = true;
      if (started.get(uid) === ready) started.delete(uid);
      if (typeof cleanup === "function") cleanup();
    };
  },
  async render(ctx) {
    const widget = fromLab() ?? (await (started.get(ctx.model.get("_uid")) ?? kernelModule(ctx.model)));
    if (ctx.signal?.aborted) return;
    return widget.render(ctx);
  },
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
