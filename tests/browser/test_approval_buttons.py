"""Approving a tool call in JupyterLab: the card of ``run_in_notebook`` with Approve and Deny.

In a blocking ``%%assistant -c`` cell (the kernel busy running it) and in a ChatPanel, on the
``test`` model: Approve runs the code in the user's namespace (a later cell prints the variable
it set); Deny does not, and the model reads that the user declined.
"""

from __future__ import annotations

import nbformat
import pytest
from _lab import Lab, open_notebook, run_all_cells, wait_idle
from playwright.sync_api import Page, expect
from test_notebooks import LONG, _no_news_toast, errors  # noqa: F401  (its toast covers buttons)


def _write(lab: Lab, name: str, *sources: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, lab.root / name)


def _cell_call(name: str) -> str:
    return f'%%assistant -c\n/call run_in_notebook {{"code": "{name} = 41 + 1"}}'


def _printing(name: str) -> str:
    return f'print("{name}:", globals().get("{name}", "missing"))'


def test_approve_in_a_blocking_cell_runs_the_code(lab: Lab, page: Page) -> None:
    name = "approve_cell.ipynb"
    _write(lab, name, "%load_ext ipyassistant", _cell_call("approved_var"), _printing("approved_var"))
    open_notebook(page, lab, name)
    run_all_cells(page)
    cells = page.locator(".jp-Notebook .jp-Cell")
    card = cells.nth(1).get_by_test_id("ipa-approval")
    expect(card).to_contain_text("approved_var = 41 + 1", timeout=LONG)
    expect(card).to_contain_text("expires in")
    card.get_by_role("button", name="Approve", exact=True).click()
    wait_idle(page, timeout=120)
    assert not errors(page), "\n\n".join(errors(page))
    expect(cells.nth(2).locator(".jp-OutputArea-output")).to_contain_text("approved_var: 42")
    expect(cells.nth(1)).to_contain_text("Tool results")
    expect(cells.nth(1).get_by_test_id("ipa-approval")).to_have_count(0)


def test_deny_in_a_blocking_cell_runs_nothing_and_says_so(lab: Lab, page: Page) -> None:
    name = "deny_cell.ipynb"
    _write(lab, name, "%load_ext ipyassistant", _cell_call("denied_var"), _printing("denied_var"))
    open_notebook(page, lab, name)
    run_all_cells(page)
    cells = page.locator(".jp-Notebook .jp-Cell")
    card = cells.nth(1).get_by_test_id("ipa-approval")
    expect(card).to_contain_text("denied_var = 41 + 1", timeout=LONG)
    card.get_by_role("button", name="Deny", exact=True).click()
    wait_idle(page, timeout=120)
    assert not errors(page), "\n\n".join(errors(page))
    expect(cells.nth(2).locator(".jp-OutputArea-output")).to_contain_text("denied_var: missing")
    expect(cells.nth(1)).to_contain_text("the user declined")


@pytest.mark.parametrize(("button", "expected"), [("Approve", "panel_var: 42"), ("Deny", "panel_var: missing")])
def test_approve_or_deny_in_a_chat_panel(lab: Lab, page: Page, button: str, expected: str) -> None:
    name = f"{button.lower()}_panel.ipynb"
    _write(
        lab,
        name,
        "from ipyassistant import Assistant\nfrom ipyassistant.jupyter import ChatPanel\n\n"
        "ChatPanel(Assistant(), context=True)",
        "print('not yet')",
    )
    open_notebook(page, lab, name)
    run_all_cells(page)
    wait_idle(page, timeout=120)
    panel = page.get_by_test_id("ipa-chat")
    box = panel.get_by_test_id("ipa-chat-input")
    box.click()
    box.fill('/call run_in_notebook {"code": "panel_var = 41 + 1"}')
    box.press("Enter")
    card = panel.get_by_test_id("ipa-approval")
    expect(card).to_contain_text("panel_var = 41 + 1", timeout=LONG)
    card.get_by_role("button", name=button, exact=True).click()
    turn = panel.get_by_test_id("ipa-chat-turn").first
    expect(turn).to_contain_text("Tool results", timeout=LONG)
    if button == "Deny":
        expect(turn).to_contain_text("the user declined")
    expect(card).to_have_count(0)

    cells = page.locator(".jp-Notebook .jp-Cell")
    last = cells.nth(1)
    last.locator(".jp-InputArea-editor").click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(_printing("panel_var"))
    page.keyboard.press("Shift+Enter")
    expect(last.locator(".jp-OutputArea-output")).to_contain_text(expected, timeout=LONG)
    assert not errors(page), "\n\n".join(errors(page))
