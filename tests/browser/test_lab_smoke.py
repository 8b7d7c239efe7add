"""JupyterLab itself works here: a notebook runs in the browser and its output renders."""

from __future__ import annotations

import json

from _lab import open_notebook, run_all_cells, wait_idle


def test_a_notebook_runs_in_jupyterlab(lab, page):
    cells = [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": "print(6 * 7)"}]
    notebook = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    (lab.root / "smoke.ipynb").write_text(json.dumps(notebook))
    open_notebook(page, lab, "smoke.ipynb")
    run_all_cells(page)
    page.wait_for_selector(".jp-OutputArea-output:has-text('42')", timeout=60_000)
    wait_idle(page)
