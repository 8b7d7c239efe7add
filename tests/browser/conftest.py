"""A real JupyterLab, started by the tests, driven in Debian's Chromium by Playwright.

Playwright's own browser download is not used: ``CHROMIUM`` (default ``/usr/bin/chromium``)
must exist, which ``.ci/run`` ensures with apt-get. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _lab import Lab

from _serve_process import free_port
from _wait import wait_until

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"



def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Last in the session: Playwright's sync API keeps an event loop running in the main
    # thread while the browser is open, which async tests after it could not coexist with.
    items.sort(key=lambda item: "browser" in item.path.parts)
    # Outside CI a developer without Chromium skips these; in CI its absence is a failure.
    if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
        for item in items:
            if "browser" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"))


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lab")
    if NOTEBOOKS.exists():
        for notebook in NOTEBOOKS.glob("*.ipynb"):
            shutil.copy(notebook, root / notebook.name)
    port, token = free_port(), secrets.token_hex(16)
    home = tmp_path_factory.mktemp("home")
    # JupyterLab loads the extension built from the code under test (its data directory is
    # searched before the environment's).
    extension = Path(__file__).resolve().parents[2] / "src/ipyassistant/static/labextension"
    if extension.is_dir():
        (home / "data/labextensions").mkdir(parents=True)
        (home / "data/labextensions/ipyassistant-widgets").symlink_to(extension)
    env = {
        **os.environ,
        # The notebooks run offline on the test model, with their own data directory.
        "IPYASSISTANT_MODEL": "test",
        "IPYASSISTANT_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    env.pop("OPENAI_API_KEY", None)
    log = (root / "jupyter.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.disable_check_xsrf=True", "--allow-root",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def log_tail() -> str:
        log.close()
        return (root / "jupyter.log").read_text()[-3000:]

    def started() -> bool:
        if proc.poll() is not None:
            raise RuntimeError("JupyterLab did not start:\n" + log_tail())
        try:
            return httpx.get(f"{url}/api/status?token={token}", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(started, timeout=90, interval=0.2, message=lambda: "JupyterLab:\n" + log_tail())
    try:
        yield Lab(url, token, root)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
