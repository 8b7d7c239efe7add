"""The example notebooks, run in JupyterLab in Chromium: what a user of them sees.

The kernel runs the ``test`` model (see conftest.py), so every reply is known: ``echo: …`` for
plain text, a call of each function tool, the code of a fenced python block run by the code
interpreter. Screenshots of each stage go to ``artifacts/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from _lab import Lab, open_notebook, run_all_cells, wait_idle
from playwright.sync_api import Locator, Page, expect

ARTIFACTS = Path(__file__).parent / "artifacts"
#: Generous: two cores shared with other work, a code interpreter kernel to start.
LONG = 120_000


@pytest.fixture(autouse=True, scope="module")
def _no_news_toast(lab: Lab) -> None:
    """JupyterLab's "get notified about news?" toast would cover the panel's buttons."""
    setting = f"{lab.url}/lab/api/settings/@jupyterlab/apputils-extension:notification"
    response = httpx.put(
        setting, params={"token": lab.token}, json={"raw": '{"fetchNews": "false"}'}, timeout=30
    )
    response.raise_for_status()


def cells_of(lab: Lab, name: str) -> list[str]:
    """The sources of a notebook's cells, in order."""
    notebook = json.loads((lab.root / name).read_text())
    return [
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for cell in notebook["cells"]
    ]


def cell(page: Page, sources: list[str], *patterns: str) -> Locator:
    """The first notebook cell whose source matches every one of ``patterns`` (regexes)."""
    for index, source in enumerate(sources):
        if all(re.search(pattern, source, re.MULTILINE) for pattern in patterns):
            return page.locator(".jp-Notebook .jp-Cell").nth(index)
    raise AssertionError(f"no cell matches {patterns!r}")


def errors(page: Page) -> list[str]:
    """The tracebacks shown in the notebook (to say why a test failed)."""
    found = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    return [text[:2000] for text in found.all_inner_texts()]


def shot(target: Page | Locator, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    target.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def run_notebook(page: Page, lab: Lab, name: str) -> list[str]:
    if not (lab.root / name).exists():
        pytest.fail(f"notebooks/{name} does not exist")
    sources = cells_of(lab, name)
    open_notebook(page, lab, name)
    run_all_cells(page)
    wait_idle(page, timeout=300)
    assert not errors(page), "\n\n".join(errors(page))
    return sources


def open_card(card: Locator) -> None:
    """Open a tool card (finished cards are closed) by clicking its summary, as a user would."""
    if card.get_attribute("open") is None:
        card.locator(":scope > summary").click()
    expect(card).to_have_attribute("open", "")


def test_quickstart_streams_calls_tools_and_plots(lab: Lab, page: Page) -> None:
    sources = run_notebook(page, lab, "quickstart.ipynb")

    # %%assistant: the reply, streamed into a RunView, and the run's status.
    magic = next(source for source in sources if source.startswith("%%assistant"))
    first_line = magic.split("\n", 2)[1].strip()  # the test model echoes the message
    said = cell(page, sources, r"^%%assistant").locator(".ipa-run-view")
    said.first.scroll_into_view_if_needed()
    reply = said.locator(".ipa-msg.ipa-role-assistant").first
    expect(reply).to_contain_text(f"echo: {first_line}", timeout=LONG)
    expect(said.locator(".ipa-run .ipa-badge").first).to_have_text("completed")
    shot(cell(page, sources, r"^%%assistant"), "quickstart-1-assistant-magic")

    # A function tool: its card shows the arguments the model sent and what the tool returned.
    dice = cell(page, sources, r"roll_dice", r"\.say\(")
    card = dice.locator("details.ipa-card.ipa-tool_call").first
    card.scroll_into_view_if_needed()
    expect(card.locator(".ipa-name")).to_have_text("roll_dice", timeout=LONG)
    open_card(card)
    sections = card.locator(".ipa-section")
    expect(sections.nth(0).locator(".ipa-label")).to_have_text("Arguments")
    arguments = json.loads(sections.nth(0).locator("code").inner_text())
    assert isinstance(arguments, dict) and arguments, arguments
    expect(sections.nth(1).locator(".ipa-label")).to_have_text("Output")
    output = sections.nth(1).locator("code").inner_text()
    assert output.strip(), "the tool's output is empty"
    expect(sections.nth(1)).to_be_visible()
    expect(dice.locator(".ipa-msg.ipa-role-assistant").last).to_contain_text("roll_dice")
    shot(dice, "quickstart-2-tool-call")

    # The code interpreter: its plot arrives as image bytes and the browser decodes them.
    plot = cell(page, sources, r"plt\.show\(\)")
    image = plot.locator(".ipa-code img.ipa-image").first
    image.scroll_into_view_if_needed()
    expect(image).to_be_visible(timeout=LONG)
    image.evaluate("img => img.decode()")
    width = image.evaluate("img => img.naturalWidth")
    assert width > 0, "the plot did not decode"
    card = plot.locator("details.ipa-code").first
    expect(card.locator(".ipa-badge").first).to_have_text("completed")
    shot(card, "quickstart-3-code-interpreter-plot")


def panel_send(box: Locator, text: str) -> None:
    box.click()
    box.fill(text)
    box.press("Enter")


def test_chat_panel_streams_a_reply_and_stop_cancels(lab: Lab, page: Page) -> None:
    run_notebook(page, lab, "chat_panel.ipynb")
    panel = page.get_by_test_id("ipa-chat")
    expect(panel).to_be_visible(timeout=LONG)
    panel.scroll_into_view_if_needed()
    box = panel.get_by_test_id("ipa-chat-input")
    stop = panel.get_by_test_id("ipa-chat-stop")
    turns = panel.get_by_test_id("ipa-chat-turn")
    expect(stop).to_be_disabled()
    executed = _execution_counts(page)

    # Shift+Enter is a new line in the box: nothing is sent, no cell runs.
    box.click()
    box.type("hello from")
    box.press("Shift+Enter")
    box.type("the browser")
    expect(box).to_have_value("hello from\nthe browser")
    expect(turns).to_have_count(0)

    # Enter sends; the reply streams into the panel while the kernel is idle.
    box.press("Enter")
    expect(box).to_have_value("")
    reply = panel.locator(".ipa-msg.ipa-role-assistant").last
    expect(reply).to_contain_text(re.compile(r"echo: hello from\s+the browser"), timeout=LONG)
    expect(turns).to_have_count(1, timeout=LONG)
    expect(turns.first.locator(".ipa-run .ipa-badge")).to_have_text("completed")
    assert _execution_counts(page) == executed, "a key in the chat box ran a cell"
    shot(panel, "chat_panel-1-streamed-reply")

    # A long run: Stop is enabled while it runs, and cancels it on the server.
    panel_send(box, "/sleep 30")
    live = panel.get_by_test_id("ipa-chat-live")
    expect(live.locator(".ipa-run .ipa-badge")).to_have_text("in progress", timeout=LONG)
    expect(stop).to_be_enabled()
    shot(panel, "chat_panel-2-running")
    stop.click()
    cancelled = turns.nth(1).locator(".ipa-run .ipa-badge")
    expect(cancelled).to_have_text("cancelled", timeout=10_000)
    expect(stop).to_be_disabled()
    shot(panel, "chat_panel-3-cancelled")

    # The thread is free again: the next message gets its reply.
    panel_send(box, "after the stop")
    expect(turns).to_have_count(3, timeout=LONG)
    expect(turns.nth(2).locator(".ipa-msg.ipa-role-assistant")).to_contain_text(
        "echo: after the stop"
    )
    shot(panel, "chat_panel-4-after-stop")

    # Saved and reloaded, the page builds the panel again from the kernel's synced state.
    page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").click()
    expect(page.locator(".jp-mod-dirty")).to_have_count(0, timeout=30_000)
    open_notebook(page, lab, "chat_panel.ipynb")
    panel = page.get_by_test_id("ipa-chat")
    expect(panel.get_by_test_id("ipa-chat-turn")).to_have_count(3, timeout=LONG)
    panel.scroll_into_view_if_needed()
    badges = panel.locator("[data-testid=ipa-chat-turn] > .ipa-run .ipa-badge")
    expect(badges).to_have_text(["completed", "cancelled", "completed"])
    shot(panel, "chat_panel-6-reloaded")


def test_chat_panel_sends_an_attached_file_to_the_code_interpreter(lab: Lab, page: Page) -> None:
    run_notebook(page, lab, "chat_panel.ipynb")
    panel = page.get_by_test_id("ipa-chat")
    expect(panel).to_be_visible(timeout=LONG)
    panel.scroll_into_view_if_needed()
    turns = panel.get_by_test_id("ipa-chat-turn")
    before = turns.count()
    content = "a,b\n1,2\n"
    panel.get_by_test_id("ipa-chat-file").set_input_files(
        files=[{"name": "data.csv", "mimeType": "text/csv", "buffer": content.encode()}]
    )
    expect(panel.get_by_test_id("ipa-chat-chip")).to_contain_text("data.csv")
    box = panel.get_by_test_id("ipa-chat-input")
    box.fill("```python\nprint(open('data.csv').read())\n```")
    box.press("Enter")
    expect(turns).to_have_count(before + 1, timeout=LONG)
    turn = turns.nth(before)
    expect(turn.locator(".ipa-msg.ipa-role-user")).to_contain_text("Attached: data.csv")
    expect(turn.locator(".ipa-code .ipa-logs")).to_have_text(content)
    expect(turn.locator(".ipa-run .ipa-badge")).to_have_text("completed")
    shot(panel, "chat_panel-5-attachment")


def test_file_search_answers_with_visible_citations(lab: Lab, page: Page) -> None:
    sources = run_notebook(page, lab, "file_search.ipynb")

    # The search: its query, and the passage found, opened as a user would.
    asked = cell(page, sources, r"^%%assistant librarian\nWhen does the harbour open")
    search = asked.locator("details.ipa-card.ipa-file_search").first
    search.scroll_into_view_if_needed()
    expect(search.locator(".ipa-query")).to_have_text("When does the harbour open?", timeout=LONG)
    open_card(search)
    result = search.locator(".ipa-result").first
    expect(result.locator(".ipa-result-file")).to_have_text("harbour.md")
    result.locator("summary").click()  # the passage's own disclosure
    expect(result.locator(".ipa-chunk-text")).to_contain_text("The harbour opens at six")

    # The reply quotes it; its marker is a link to the source under the reply.
    reply = asked.locator(".ipa-msg.ipa-role-assistant").last
    expect(reply).to_contain_text('From harbour.md: "The harbour opens at six in the morning."[1]')
    marker = reply.get_by_role("link", name="Source 1: harbour.md")
    expect(marker).to_have_text("[1]")
    source = reply.locator(".ipa-sources .ipa-source").first
    expect(source.locator(".ipa-source-file")).to_have_text("harbour.md")
    expect(source.locator(".ipa-source-quote")).to_contain_text("The harbour opens at six")
    marker.click()
    expect(source).to_be_focused()
    shot(asked, "file_search-1-cited-reply")

    # A file attached to the message is searched too.
    attached = cell(page, sources, r"--file meeting\.md")
    reply = attached.locator(".ipa-msg.ipa-role-assistant").last
    expect(reply).to_contain_text("From meeting.md", timeout=LONG)
    expect(reply.get_by_role("link", name="Source 1: meeting.md")).to_be_visible()
    shot(attached, "file_search-2-attached-file")


def _execution_counts(page: Page) -> list[Any]:
    return page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").all_inner_texts()
