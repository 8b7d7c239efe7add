"""A notebook saved with its widget state stays small: each widget's ``_esm`` is a small
loader and its ``_css`` empty (the JupyterLab extension or the kernel gives the module), so
three small outputs do not carry the bundle three times.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from jupyter_helpers import kernel_env
from nbclient import NotebookClient

import ipyassistant
from ipyassistant.jupyter.module_loader import REQUEST, build_id, loader_esm, serve_module

STATIC = Path(ipyassistant.__file__).resolve().parent / "static"


def test_the_loader_is_small_and_names_its_module_and_build() -> None:
    esm = loader_esm("run_view", "missing")
    if not (STATIC / "run_view.js").is_file():
        assert esm == "missing"
        return
    assert len(esm) < 2500
    assert '"run_view"' in esm and json.dumps(build_id()) in esm


def test_the_kernel_serves_the_module_and_its_css() -> None:
    sent: list[dict[str, object]] = []
    assert serve_module(sent.append, {"type": "snapshot?"}) is False
    assert serve_module(sent.append, {"type": REQUEST, "name": "../../etc/passwd"}) is True
    assert sent == []
    if not (STATIC / "chat_panel.js").is_file():
        return
    assert serve_module(sent.append, {"type": REQUEST, "name": "chat_panel"}) is True
    (reply,) = sent
    assert reply["name"] == "chat_panel"
    assert reply["esm"] == (STATIC / "chat_panel.js").read_text()
    assert "katex" in str(reply["css"]).lower()


def test_a_notebook_saved_with_widget_state_stays_under_60_kb(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext ipyassistant"),
        nbformat.v4.new_code_cell("%%assistant\nHello"),
        nbformat.v4.new_code_cell("%%assistant\nAnd again"),
        nbformat.v4.new_code_cell(
            "from ipyassistant import Assistant\nfrom ipyassistant.jupyter import ChatPanel\n\n"
            "ChatPanel(Assistant())"
        ),
    ]
    env = kernel_env(tmp_path / "data")
    client = NotebookClient(
        nb, timeout=240, kernel_name="python3", store_widget_state=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env=env)
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    views = [m for m in state.values() if m["model_name"] == "AnyModel"]
    assert len(views) >= 1, "the ChatPanel's state was saved"
    for model in views:
        assert len(model["state"]["_esm"]) < 2500, "a loader, not the bundle"
        assert not model["state"].get("_css")
    size = path.stat().st_size
    assert size < 60_000, f"{size} bytes"
