"""The ``ipyassistant`` command as the README runs it: ``python -m ipyassistant``."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_demo_talks_to_an_assistant_on_the_embedded_server(tmp_path):
    env = {**os.environ, "IPYASSISTANT_DATA_DIR": str(tmp_path), "COLUMNS": "100"}
    result = subprocess.run(
        [sys.executable, "-m", "ipyassistant", "demo", "--model", "test", "Roll two dice, please"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # The test model calls the demo's tool, then quotes its result.
    assert "roll_dice" in result.stdout and "Tool results:" in result.stdout


def test_the_command_explains_itself():
    result = subprocess.run(
        [sys.executable, "-m", "ipyassistant", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "serve" in result.stdout and "demo" in result.stdout


def test_the_readmes_first_command_installs_extras_that_exist_and_opens_a_notebook_that_exists():
    import re
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    first = next(line for line in readme.split("```bash\n", 1)[1].splitlines() if line and not line.startswith("#"))
    extras = re.search(r'-e "\.\[([^\]]+)\]"', first)
    assert extras, first
    defined = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras.group(1).split(",")) <= defined.keys()
    opened = re.search(r"python -m jupyterlab (\S+)$", first)
    assert opened and (root / opened.group(1)).is_file(), first
    version = subprocess.run(
        [sys.executable, "-m", "jupyterlab", "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0 and version.stdout.strip()
