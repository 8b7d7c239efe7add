"""Failed and interrupted runs: the hint, Retry, ``raise_on_failure`` and the one-line interrupt."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_helpers import kernel_env
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from ipyassistant.jupyter.failures import (
    INTERRUPTED,
    RunFailedError,
    failure_hint,
    interactive_execution,
    interrupted,
)
from ipyassistant.jupyter.magics import AssistantMagics

CELL_TIMEOUT = 240


def magics(shell: Any) -> AssistantMagics:
    found = shell.magics_manager.registry["AssistantMagics"]
    assert isinstance(found, AssistantMagics)
    return found


def test_each_kind_of_failure_has_its_hint() -> None:
    assert "wait" in failure_hint("rate_limit_exceeded", "slow down") and "Retry" in failure_hint(
        "rate_limit_exceeded", ""
    )
    assert "%assistant model NAME" in failure_hint("model_not_found", "The model 'x' ...")
    upstream = failure_hint(
        "server_error", "openai:gpt-4o at https://api.example/v1 answered 503: down"
    )
    assert "openai:gpt-4o at https://api.example/v1" in upstream


def test_an_interrupt_shows_one_line_and_stays_a_keyboard_interrupt() -> None:
    exc = interrupted()
    assert type(exc) is KeyboardInterrupt and "the run was cancelled" in str(exc)
    assert exc._render_traceback_() == [INTERRUPTED]  # type: ignore[attr-defined]


def test_only_requests_that_allow_stdin_are_interactive() -> None:
    class Kernel:
        def __init__(self, allow: bool) -> None:
            self.allow = allow

        def get_parent(self, channel: str) -> dict[str, Any]:
            return {"content": {"allow_stdin": self.allow}}

    class Shell:
        def __init__(self, allow: bool) -> None:
            self.kernel = Kernel(allow)

    assert interactive_execution(Shell(True))
    assert not interactive_execution(Shell(False))


def test_a_failed_run_raises_when_asked_and_offers_retry(ipython: Any, shown_views: list[Any]) -> None:
    views = shown_views
    magics(ipython).raise_on_failure = True
    with pytest.raises(RunFailedError, match=r"run_\w+: rate_limit_exceeded: too fast") as info:
        ipython.run_cell_magic("assistant", "", "/fail rate_limit too fast")
    assert "Retry" in info.value._render_traceback_()[1]
    (view,) = views
    assert view.retryable and view.live_state["run"]["status"] == "failed"
    assert not view.live_state["run"]["usage"]  # no "0 tokens" line

    # Retry says the message again into the same view (here the kernel loop is this one).
    async def retry() -> None:
        view._on_custom_message(view, {"type": "retry"}, [])
        assert view._retrying_task is not None
        await view._retrying_task

    asyncio.run(retry())
    assert view.live_state["run"]["status"] == "failed"  # the test model fails it again
    assert view.retryable

    magics(ipython).raise_on_failure = False
    ipython.run_cell_magic("assistant", "", "/fail rate_limit too fast")  # no exception


@pytest.mark.slow
def test_run_all_stops_at_a_failed_run_in_an_unattended_notebook(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext ipyassistant"),
        nbformat.v4.new_code_cell("%%assistant\n/fail rate_limit slow down"),
        nbformat.v4.new_code_cell("reached = True"),
    ]
    env = kernel_env(tmp_path / "data")
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT,
        startup_timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    with pytest.raises(CellExecutionError) as info:
        client.execute(env=env)
    assert "RunFailedError" in str(info.value) and "rate_limit_exceeded" in str(info.value)
    outputs = nb.cells[1].outputs
    (error,) = [o for o in outputs if o.output_type == "error"]
    assert error.ename == "RunFailedError"
    assert not any("magics.py" in line for line in error.traceback)  # one line, no traceback
    assert nb.cells[2].get("execution_count") is None  # Run All stopped there
