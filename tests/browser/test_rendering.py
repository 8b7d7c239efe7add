"""Model-written markdown as JupyterLab draws its own: KaTeX math (with TeX that survived the
markdown pass), highlighted JavaScript and SQL, task lists, long words that wrap, tables; in
the view of a finished ``%%assistant`` cell and after the notebook is reopened.

The ``test`` model echoes the prompt, so the reply is the markdown written here.
"""

from __future__ import annotations

import nbformat
from _lab import Lab, open_notebook, run_all_cells, wait_idle
from playwright.sync_api import Locator, Page, expect
from test_notebooks import LONG, _no_news_toast, errors, shot  # noqa: F401  (its toast covers buttons)

NAME = "rendering.ipynb"
LONG_WORD = "x" * 400

PROMPT = rf"""%%assistant
Euler: $e^{{i\pi}}+1=0$ and $a_b\,c_d$.

$$\int_0^1 x\,dx = \frac{{1}}{{2}}$$

```javascript
const answer = 42; // a comment
```

```sql
SELECT name FROM users WHERE id = 1;
```

- [x] done
- [ ] to do

| a | b |
|---|---|
| 1 | 2 |

{LONG_WORD}
"""


def _check(reply: Locator) -> None:
    expect(reply.locator(".katex").first).to_be_visible(timeout=LONG)
    # Two inline formulas and a display one; their TeX came through the markdown pass whole.
    expect(reply.locator(".ipa-math .katex")).to_have_count(3)
    expect(reply.locator(".ipa-math-display .katex-display")).to_have_count(1)
    annotations = reply.locator("annotation").all_text_contents()
    assert "a_b\\,c_d" in annotations, annotations
    assert reply.locator(".katex-html").first.evaluate(
        "e => getComputedStyle(e).fontFamily"
    ), "KaTeX's styles are loaded"
    assert reply.locator(".katex .mord").first.evaluate(
        "e => getComputedStyle(e).fontFamily.includes('KaTeX')"
    ), "KaTeX's fonts are used"
    expect(reply.locator("code.language-javascript .hljs-keyword").first).to_have_text("const")
    expect(reply.locator("code.language-sql .hljs-keyword").first).to_have_text("SELECT")
    boxes = reply.locator("input[type=checkbox]")
    expect(boxes).to_have_count(2)
    assert [b.is_disabled() for b in boxes.all()] == [True, True]
    assert [b.is_checked() for b in boxes.all()] == [True, False]
    expect(reply.locator("table th")).to_have_count(2)
    # The long word wraps: nothing is wider than the message.
    wide = reply.evaluate("e => e.scrollWidth - e.clientWidth")
    assert wide <= 1, f"the reply overflows by {wide}px"


def test_math_code_task_lists_and_long_words(lab: Lab, page: Page) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("%load_ext ipyassistant"), nbformat.v4.new_code_cell(PROMPT)]
    nbformat.write(nb, lab.root / NAME)
    open_notebook(page, lab, NAME)
    run_all_cells(page)
    wait_idle(page, timeout=300)
    assert not errors(page), "\n\n".join(errors(page))
    reply = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".ipa-msg.ipa-role-assistant")
    expect(reply).to_contain_text("echo:", timeout=LONG)
    _check(reply)
    reply.scroll_into_view_if_needed()
    shot(page, "rendering-live")

    page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").click()
    expect(page.locator(".jp-mod-dirty")).to_have_count(0, timeout=30_000)
    open_notebook(page, lab, NAME)  # the page reloaded: the saved view draws the same
    reply = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".ipa-msg.ipa-role-assistant")
    _check(reply)
    shot(page, "rendering-reopened")
