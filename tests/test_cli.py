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
