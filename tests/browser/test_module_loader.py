"""The widgets' small loader: in JupyterLab it takes the module from the extension; when the
extension is of another build (or absent, as in VS Code) the kernel sends the module and its
CSS, and the widget works the same.
"""

from __future__ import annotations

import nbformat
from _lab import Lab, open_notebook, run_all_cells, wait_idle
from playwright.sync_api import Page, expect
from test_notebooks import LONG, _no_news_toast, errors  # noqa: F401  (its toast covers buttons)

NAME = "module_loader.ipynb"


def test_a_widget_loads_its_module_from_the_kernel_without_a_matching_extension(
    lab: Lab, page: Page
) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext ipyassistant"),
        nbformat.v4.new_code_cell(
            "from ipyassistant import Assistant\nfrom ipyassistant.jupyter import ChatPanel\n\n"
            "ChatPanel(Assistant())"
        ),
    ]
    nbformat.write(nb, lab.root / NAME)
    open_notebook(page, lab, NAME)
    # As if the extension came from another version of the package.
    page.evaluate("() => { window.__ipyassistant.widgets.build = 'another build'; }")
    run_all_cells(page)
    wait_idle(page, timeout=300)
    assert not errors(page), "\n\n".join(errors(page))
    panel = page.get_by_test_id("ipa-chat")
    box = panel.get_by_test_id("ipa-chat-input")
    expect(box).to_be_visible(timeout=LONG)
    box.fill("from the kernel's module")
    box.press("Enter")
    expect(panel.get_by_test_id("ipa-chat-turn").first).to_contain_text(
        "echo: from the kernel's module", timeout=LONG
    )
    expect(page.locator("style[data-ipa-module='chat_panel']")).to_have_count(1)
