"""What users expect from a chat UI, in JupyterLab on the ``test`` model: a message queued while
a reply streams comes back to the box on Stop; Retry runs a failed message again (in a
``%%assistant`` cell's view and in a ChatPanel); "Insert into a new cell" puts a reply's code
block into a new cell below; Esc in a running ``%%assistant`` view interrupts the kernel.
"""

from __future__ import annotations

import nbformat
from _lab import Lab, open_notebook, run_all_cells, wait_idle
from playwright.sync_api import Page, expect
from test_notebooks import LONG, _no_news_toast, errors  # noqa: F401  (its toast covers buttons)

PANEL = "from ipyassistant import Assistant\nfrom ipyassistant.jupyter import ChatPanel\n\nChatPanel(Assistant())"


def _write(lab: Lab, name: str, *sources: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, lab.root / name)


def _panel(lab: Lab, page: Page, name: str) -> tuple:
    _write(lab, name, PANEL)
    open_notebook(page, lab, name)
    run_all_cells(page)
    wait_idle(page, timeout=120)
    panel = page.get_by_test_id("ipa-chat")
    box = panel.get_by_test_id("ipa-chat-input")
    expect(box).to_be_enabled(timeout=LONG)
    return panel, box


def test_a_message_queued_while_a_reply_streams_comes_back_on_stop(lab: Lab, page: Page) -> None:
    panel, box = _panel(lab, page, "queued_stop.ipynb")
    box.click()
    box.fill("/sleep 30")
    box.press("Enter")
    stop = panel.get_by_role("button", name="Stop", exact=True)
    expect(stop).to_be_enabled(timeout=LONG)
    box.fill("the words typed meanwhile")
    box.press("Enter")
    expect(panel.get_by_test_id("ipa-chat-queued")).to_contain_text("the words typed meanwhile")
    expect(box).to_have_value("")
    stop.click()
    expect(box).to_have_value("the words typed meanwhile", timeout=30_000)
    expect(panel.get_by_test_id("ipa-chat-queued")).not_to_contain_text("the words typed meanwhile")
    assert not errors(page), "\n\n".join(errors(page))


def test_retry_runs_a_failed_cell_again(lab: Lab, page: Page) -> None:
    name = "retry_cell.ipynb"
    _write(lab, name, "%load_ext ipyassistant", "%%assistant\n/sleep 2\n/fail rate_limit slow down")
    open_notebook(page, lab, name)
    run_all_cells(page)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(1)
    hint = cell.get_by_test_id("ipa-status-hint")
    expect(hint).to_contain_text("rate-limiting", timeout=LONG)
    retry = cell.get_by_role("button", name="Retry", exact=True)
    expect(retry).to_be_visible(timeout=LONG)
    wait_idle(page, timeout=120)
    retry.click()
    # A second attempt: the view runs again (the hint goes while it sleeps), then fails again.
    expect(hint).to_have_count(0, timeout=30_000)
    expect(cell.locator(".ipa-status-state.ipa-active")).to_have_count(1, timeout=30_000)
    expect(hint).to_contain_text("rate-limiting", timeout=LONG)
    expect(cell.get_by_role("button", name="Retry", exact=True)).to_be_visible(timeout=LONG)


def test_retry_in_a_chat_panel_sends_the_failed_message_again(lab: Lab, page: Page) -> None:
    panel, box = _panel(lab, page, "retry_panel.ipynb")
    box.click()
    box.fill("/fail rate_limit slow down")
    box.press("Enter")
    turns = panel.get_by_test_id("ipa-chat-turn")
    expect(turns).to_have_count(1, timeout=LONG)
    expect(panel.get_by_test_id("ipa-status-hint")).to_contain_text("rate-limiting", timeout=LONG)
    panel.get_by_role("button", name="Retry", exact=True).click()
    expect(turns).to_have_count(2, timeout=LONG)
    expect(turns.nth(1)).to_contain_text("/fail rate_limit slow down")
    expect(panel.get_by_role("button", name="Retry", exact=True)).to_be_visible(timeout=LONG)
    assert not errors(page), "\n\n".join(errors(page))


def test_insert_puts_a_replys_code_block_into_a_new_cell_below(lab: Lab, page: Page) -> None:
    name = "insert_cell.ipynb"
    _write(lab, name, "%load_ext ipyassistant", "%%assistant\nThis prints:\n```js\nconsole.log(40 + 2)\n```")
    open_notebook(page, lab, name)
    run_all_cells(page)
    wait_idle(page, timeout=120)
    assert not errors(page), "\n\n".join(errors(page))
    cells = page.locator(".jp-Notebook .jp-Cell")
    expect(cells).to_have_count(2)
    reply = cells.nth(1).locator(".ipa-msg.ipa-role-assistant")
    expect(reply.locator("pre code")).to_contain_text("console.log(40 + 2)", timeout=LONG)
    reply.get_by_role("button", name="Insert into a new cell", exact=True).click()
    expect(cells).to_have_count(3, timeout=30_000)
    expect(cells.nth(2).locator(".jp-InputArea-editor")).to_contain_text("console.log(40 + 2)")


def test_escape_in_a_running_view_stops_the_run(lab: Lab, page: Page) -> None:
    name = "escape_cell.ipynb"
    _write(lab, name, "%load_ext ipyassistant", "%%assistant\n/sleep 30")
    open_notebook(page, lab, name)
    run_all_cells(page)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(1)
    stop = cell.get_by_role("button", name="Stop", exact=True)
    expect(stop).to_be_visible(timeout=LONG)
    stop.focus()
    page.keyboard.press("Escape")
    # The kernel is interrupted at once (not after the 30 s), and the cell says so in one line.
    wait_idle(page, timeout=10)
    expect(cell.locator(".jp-OutputArea")).to_contain_text("Interrupted: the run was cancelled.")
    expect(stop).to_have_count(0, timeout=LONG)  # the view ends too, not stuck at "starting…"


PLOT = '''from ipyassistant import Assistant, CodeInterpreter

Assistant(tools=[CodeInterpreter]).say("""Plot it:

```python
import matplotlib.pyplot as plt
import numpy as np

x = np.linspace(0, 2 * np.pi, 50)
plt.plot(x, np.sin(x))
plt.show()
```
""")'''


def test_a_plot_is_drawn_once_in_its_code_card(lab: Lab, page: Page) -> None:
    name = "plot_once.ipynb"
    _write(lab, name, PLOT)
    open_notebook(page, lab, name)
    run_all_cells(page)
    wait_idle(page, timeout=180)
    assert not errors(page), "\n\n".join(errors(page))
    cell = page.locator(".jp-Notebook .jp-Cell").first
    expect(cell).to_contain_text("Tool results", timeout=LONG)
    plot = cell.locator(".ipa-code img.ipa-image")
    expect(plot).to_have_count(1, timeout=LONG)
    file_id = plot.get_attribute("data-file-id")
    expect(cell.locator(f"[data-file-id='{file_id}']")).to_have_count(1)
