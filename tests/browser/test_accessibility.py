"""axe-core finds no serious or critical accessibility violation in a RunView (a ``%%assistant``
cell and a run with a code-interpreter call and its plot) or in a ChatPanel (with a turn), and
the parts a screen reader needs are there: the live region, the labelled chat box, named
buttons, images described by their context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from _lab import Lab, open_notebook, run_all_cells, wait_idle
from playwright.sync_api import Page, expect
from test_notebooks import LONG, _no_news_toast, errors, shot  # noqa: F401  (its toast covers buttons)
from test_reopen import PLOT

NAME = "accessibility.ipynb"
AXE = Path(__file__).resolve().parents[2] / "node_modules/axe-core/axe.min.js"


def _axe(page: Page, selector: str) -> list[dict[str, Any]]:
    """The serious and critical violations axe-core finds in the elements ``selector`` matches."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    results = page.evaluate(
        """async (selector) => {
            const include = Array.from(document.querySelectorAll(selector));
            if (!include.length) throw new Error('nothing matches ' + selector);
            const r = await axe.run({ include }, { resultTypes: ['violations'] });
            // The views were checked: their buttons' names, among others, passed.
            if (!r.passes.some((p) => p.id === 'button-name')) throw new Error('axe checked no button');
            return r.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map((n) => n.target.join(' ') + ': ' + n.failureSummary),
            }));
        }""",
        selector,
    )
    return [v for v in results if v["impact"] in ("serious", "critical")]


def test_views_have_no_serious_accessibility_violations(lab: Lab, page: Page) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext ipyassistant"),
        nbformat.v4.new_code_cell("%%assistant\nHello, **accessible** world"),
        nbformat.v4.new_code_cell(PLOT),
        nbformat.v4.new_code_cell("from ipyassistant.jupyter import ChatPanel\n\nChatPanel(Assistant())"),
    ]
    nbformat.write(nb, lab.root / NAME)
    open_notebook(page, lab, NAME)
    run_all_cells(page)
    wait_idle(page, timeout=300)
    assert not errors(page), "\n\n".join(errors(page))
    cells = page.locator(".jp-Notebook .jp-Cell")
    expect(cells.nth(1).locator(".ipa-msg.ipa-role-assistant")).to_contain_text("echo:", timeout=LONG)
    plot = cells.nth(2).locator("img.ipa-image").first
    expect(plot).to_be_visible(timeout=LONG)
    assert plot.get_attribute("alt").startswith("Plot from the code interpreter (file-")

    panel = page.get_by_test_id("ipa-chat")
    panel.scroll_into_view_if_needed()
    box = panel.get_by_role("textbox", name="Message to the assistant")
    expect(box).to_be_visible()
    box.fill("hello there")
    panel.get_by_role("button", name="Send", exact=True).click()
    expect(panel.get_by_test_id("ipa-chat-turn")).to_have_count(1, timeout=LONG)
    # The reply was said once it was finished, in the panel's polite live region.
    region = panel.locator("[aria-live='polite']")
    expect(region).to_contain_text("echo: hello there", timeout=10_000)
    expect(panel.get_by_role("button", name="Stop", exact=True)).to_be_attached()
    expect(page.get_by_role("button", name="Copy", exact=True).first).to_be_visible()
    expect(page.get_by_role("button", name="Insert into a new cell").first).to_be_visible()
    shot(page, "accessibility")

    for selector in (".jp-Notebook .ipa-run-view", ".jp-Notebook .ipa-chat"):
        found = _axe(page, selector)
        assert not found, "\n".join(f"{v['id']} ({v['impact']}): {v['help']}\n  " + "\n  ".join(v["nodes"]) for v in found)
