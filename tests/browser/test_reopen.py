"""A notebook saved, its kernel shut down, and reopened with a new kernel (JupyterLab's default
settings: no saved widget state) still shows every conversation: the finished run's reply and
plot, and the ChatPanel's messages, drawn by the package's JupyterLab extension from the saved
output data. Screenshots of the reopened notebook, light and dark, go to ``artifacts/``.
"""

from __future__ import annotations

import json

import httpx
import nbformat
from _lab import Lab, open_notebook, run_all_cells, wait_idle
from playwright.sync_api import Page, expect
from test_notebooks import LONG, _no_news_toast, errors, shot  # noqa: F401  (its toast covers buttons)

NAME = "reopen.ipynb"

PLOT = '''from ipyassistant import Assistant, CodeInterpreter

analyst = Assistant(name="Analyst", tools=[CodeInterpreter])
run = analyst.say("""Plot it:

```python
import matplotlib.pyplot as plt
import numpy as np

x = np.linspace(0, 2 * np.pi, 50)
plt.plot(x, np.sin(x))
plt.show()
```
""")'''


def _write_notebook(lab: Lab) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext ipyassistant"),
        nbformat.v4.new_code_cell("%%assistant\nHello from before the restart"),
        nbformat.v4.new_code_cell(PLOT),
        nbformat.v4.new_code_cell("from ipyassistant.jupyter import ChatPanel\n\nChatPanel(Assistant())"),
    ]
    nbformat.write(nb, lab.root / NAME)


def _shut_down_kernels(lab: Lab) -> None:
    params = {"token": lab.token}
    sessions = httpx.get(f"{lab.url}/api/sessions", params=params, timeout=30).json()
    for session in sessions:
        httpx.delete(f"{lab.url}/api/sessions/{session['id']}", params=params, timeout=60)


def _set_theme(lab: Lab, theme: str) -> None:
    setting = f"{lab.url}/lab/api/settings/@jupyterlab/apputils-extension:themes"
    raw = json.dumps({"theme": theme})
    httpx.put(setting, params={"token": lab.token}, json={"raw": raw}, timeout=30).raise_for_status()


def test_a_reopened_notebook_with_a_new_kernel_shows_every_conversation(
    lab: Lab, page: Page
) -> None:
    _write_notebook(lab)
    open_notebook(page, lab, NAME)
    run_all_cells(page)
    wait_idle(page, timeout=300)
    assert not errors(page), "\n\n".join(errors(page))
    cells = page.locator(".jp-Notebook .jp-Cell")
    expect(cells.nth(2).locator("img.ipa-image").first).to_be_visible(timeout=LONG)

    panel = page.get_by_test_id("ipa-chat")
    panel.scroll_into_view_if_needed()
    box = panel.get_by_test_id("ipa-chat-input")
    box.click()
    box.fill("kept after the restart")
    box.press("Enter")
    expect(panel.get_by_test_id("ipa-chat-turn")).to_have_count(1, timeout=LONG)
    expect(panel.get_by_test_id("ipa-chat-turn").first).to_contain_text(
        "echo: kept after the restart"
    )

    page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").click()
    expect(page.locator(".jp-mod-dirty")).to_have_count(0, timeout=30_000)
    _shut_down_kernels(lab)

    open_notebook(page, lab, NAME)  # a new kernel; the page reloaded
    cells = page.locator(".jp-Notebook .jp-Cell")
    reply = cells.nth(1).locator(".ipa-msg.ipa-role-assistant")
    expect(reply).to_contain_text("echo: Hello from before the restart", timeout=LONG)
    plot = cells.nth(2).locator("img.ipa-image").first
    plot.scroll_into_view_if_needed()
    expect(plot).to_be_visible()
    assert plot.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    chat = cells.nth(3).get_by_test_id("ipa-chat")
    chat.scroll_into_view_if_needed()
    expect(chat.get_by_test_id("ipa-chat-turn")).to_have_count(1)
    expect(chat).to_contain_text("echo: kept after the restart")
    expect(chat.get_by_test_id("ipa-chat-disconnected")).to_contain_text("run this cell again")
    assert "model not found" not in page.locator(".jp-Notebook").inner_text()
    shot(page, "reopen-light")

    _set_theme(lab, "JupyterLab Dark")
    try:
        open_notebook(page, lab, NAME)
        expect(page.locator("body[data-jp-theme-light='false']")).to_have_count(1, timeout=30_000)
        reply = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".ipa-msg.ipa-role-assistant")
        expect(reply).to_contain_text("echo: Hello from before the restart", timeout=LONG)
        shot(page, "reopen-dark")
    finally:
        _set_theme(lab, "JupyterLab Light")


def _save_widget_state(lab: Lab, on: bool) -> None:
    """JupyterLab's "Save Widget State Automatically" (the widget manager's saveState)."""
    setting = f"{lab.url}/lab/api/settings/@jupyter-widgets/jupyterlab-manager:plugin"
    raw = json.dumps({"saveState": on})
    httpx.put(setting, params={"token": lab.token}, json={"raw": raw}, timeout=30).raise_for_status()


def test_with_widget_state_saved_the_notebook_stays_small_and_reopens(lab: Lab, page: Page) -> None:
    name = "saved_state.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext ipyassistant"),
        nbformat.v4.new_code_cell("%%assistant\nfirst small output"),
        nbformat.v4.new_code_cell("%%assistant\nsecond small output"),
        nbformat.v4.new_code_cell(
            "from ipyassistant import Assistant\nfrom ipyassistant.jupyter import ChatPanel\n\n"
            "ChatPanel(Assistant())"
        ),
    ]
    nbformat.write(nb, lab.root / name)
    _save_widget_state(lab, True)
    try:
        open_notebook(page, lab, name)
        run_all_cells(page)
        wait_idle(page, timeout=300)
        panel = page.get_by_test_id("ipa-chat")
        expect(panel).to_be_visible(timeout=LONG)
        cells = page.locator(".jp-Notebook .jp-Cell")
        expect(cells.nth(2)).to_contain_text("echo: second small output", timeout=LONG)
        page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").click()
        expect(page.locator(".jp-mod-dirty")).to_have_count(0, timeout=30_000)

        saved = (lab.root / name).read_bytes()
        assert b"application/vnd.jupyter.widget-state+json" in saved  # the setting took effect
        assert len(saved) < 60_000, f"{len(saved):,} bytes"

        _shut_down_kernels(lab)
        open_notebook(page, lab, name)
        cells = page.locator(".jp-Notebook .jp-Cell")
        expect(cells.nth(1)).to_contain_text("echo: first small output", timeout=LONG)
        expect(cells.nth(2)).to_contain_text("echo: second small output")
        chat = cells.nth(3).get_by_test_id("ipa-chat")
        expect(chat.get_by_test_id("ipa-chat-disconnected")).to_contain_text("run this cell again")
        assert "model not found" not in page.locator(".jp-Notebook").inner_text()
    finally:
        _save_widget_state(lab, False)
