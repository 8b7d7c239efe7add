"""Driving JupyterLab from tests: open a notebook, run it, wait for the kernel."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Lab:
    url: str
    token: str
    root: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


def open_notebook(page: Any, lab: Lab, name: str) -> None:
    """Open a notebook and wait until its kernel is ready (accepting the kernel if asked)."""
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    select = page.locator(".jp-Dialog button:has-text('Select')")
    try:
        select.wait_for(timeout=5_000)
        select.click()
    except Exception:  # no dialog: the kernel was chosen from the notebook's metadata
        pass
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)


def run_all_cells(page: Any) -> None:
    """Run every cell of the open notebook through JupyterLab's own menu."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def wait_idle(page: Any, timeout: float = 120) -> None:
    """Wait until the kernel has run everything (the status shows Idle and no cell is queued)."""
    page.wait_for_function(
        """() => {
            const busy = document.querySelectorAll('.jp-InputPrompt');
            for (const p of busy) { if (p.textContent.includes('[*]')) return false; }
            const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
            return !status || status.getAttribute('data-status') === 'idle';
        }""",
        timeout=timeout * 1000,
    )
