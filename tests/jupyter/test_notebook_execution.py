"""The notebooks in notebooks/ run, offline on the test model, in a real kernel (nbclient).

Each runs in a fresh ``python3`` kernel with ``IPYASSISTANT_MODEL=test`` and a data folder of its
own; the kernel imports this checkout's ipyassistant (``PYTHONPATH``), whatever is installed.
"""

from __future__ import annotations

import copy
import json
import queue
import re
from collections.abc import Callable
from html import unescape
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from jupyter_helpers import kernel_env
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from _wait import wait_until
from ipyassistant.server.models.local import local_available
from ipyassistant.server.models.local.loop_guard import distinct_ngram_ratio

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
VIEW_MIME = "application/vnd.ipyassistant.view+json"
#: Seconds one cell may take (a code interpreter kernel starting on a busy machine).
CELL_TIMEOUT = 240

Execute = Callable[[Path], Any]


@pytest.fixture(scope="module")
def execute(tmp_path_factory: pytest.TempPathFactory) -> Execute:
    """Execute a notebook once per test module (in its own folder); returns the notebook."""
    done: dict[Path, Any] = {}

    def run(path: Path) -> Any:
        if path not in done:
            work = tmp_path_factory.mktemp(path.stem)
            nb = nbformat.read(path, as_version=4)
            client = NotebookClient(
                nb,
                kernel_name="python3",
                timeout=CELL_TIMEOUT,
                startup_timeout=120,
                resources={"metadata": {"path": str(work)}},
            )
            client.execute(env=kernel_env(work / "data"))
            done[path] = nb
        return copy.deepcopy(done[path])

    return run


def assistant_replies(html: str) -> list[str]:
    """The text of each assistant message in a view's static transcript."""
    found = re.findall(r'<div class="ipa-msg ipa-assistant"><div class="ipa-role">assistant</div>(.*?)</div>', html, re.S)
    return [unescape(re.sub(r"<[^>]+>", " ", block)).strip() for block in found]


def outputs(nb: Any) -> list[dict[str, Any]]:
    return [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]


def test_there_are_notebooks() -> None:
    names = {path.name for path in PATHS}
    expected = {
        "quickstart.ipynb",
        "tools_and_endrun.ipynb",
        "code_interpreter.ipynb",
        "threads_and_lifecycle.ipynb",
        "file_search.ipynb",
    }
    assert expected <= names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebooks_are_saved_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    assert "widgets" not in nb.metadata


@pytest.mark.parametrize(
    "path",
    [pytest.param(path, marks=pytest.mark.slow, id=path.stem) for path in PATHS],
)
def test_a_notebook_runs_without_errors(execute: Execute, path: Path) -> None:
    nb = execute(path)  # nbclient raises CellExecutionError at the first failing cell
    for cell in nb.cells:
        # A cell tagged raises-exception fails on purpose (nbclient lets it).
        if cell.cell_type != "code" or "raises-exception" in cell.metadata.get("tags", []):
            continue
        for output in cell.outputs:
            assert output["output_type"] != "error", output
            if output["output_type"] == "stream":
                assert "Traceback" not in output["text"], output["text"]


def test_the_quickstart_has_the_cells_the_browser_test_relies_on() -> None:
    nb = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4)
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown"
    assert code[0] == "%load_ext ipyassistant"
    assert code[1] == "%assistant model"  # which model the notebook runs on, and how to choose
    assert code[2].startswith("%%assistant\n")
    assert "def roll_dice(" in code[3] and "tools=[roll_dice]" in code[3]
    assert 'say("Roll two dice")' in code[3]
    assert "tools=[CodeInterpreter]" in code[4] and "```python" in code[4]
    assert "np.sin(x)" in code[4] and "plt.show()" in code[4]
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "IPYASSISTANT_MODEL" in cell.source:
            break
    else:
        pytest.fail("the quickstart does not say how to switch to a real model")


@pytest.mark.slow
def test_the_executed_quickstart_keeps_each_finished_view_without_a_widget(
    execute: Execute,
) -> None:
    nb = execute(NOTEBOOKS / "quickstart.ipynb")
    # Each live view was replaced, under its display id, by what renders without a kernel.
    assert not [o for o in outputs(nb) if WIDGET_VIEW in o.get("data", {})]
    views = [o for o in outputs(nb) if VIEW_MIME in o.get("data", {})]
    assert len(views) == 3  # the %%assistant cell, the dice and the plot
    for view in views:
        assert "ipa-transcript" in view["data"]["text/html"]
        assert view["data"][VIEW_MIME]["states"][0]["run"]["status"] == "completed"
    reply, dice, plot = (view["data"]["text/html"] for view in views)
    assert "echo: Hello! What can you do?" in reply
    assert assistant_replies(reply) == ["echo: Hello! What can you do?"]
    assert "roll_dice" in dice and "Tool results:" in dice
    assert 'src="data:image/png;base64,' in plot
    assert views[2]["data"][VIEW_MIME]["images"]  # the plot's bytes, for the extension


@pytest.mark.slow
def test_the_file_search_notebook_answers_from_its_files_with_visible_citations(
    execute: Execute,
) -> None:
    nb = execute(NOTEBOOKS / "file_search.ipynb")
    views = [o["data"]["text/html"] for o in outputs(nb) if VIEW_MIME in o.get("data", {})]
    assert len(views) == 4  # three %%assistant cells, then the thread
    harbour, lighthouse, meeting, thread = views
    for html, name, words in [
        (harbour, "harbour.md", "opens at six"),
        (lighthouse, "lighthouse.txt", "Ada Quill"),
        (meeting, "meeting.md", "paint the lighthouse red"),
    ]:
        assert "File search (completed)" in html and f"{name} · score" in html
        (reply,) = assistant_replies(html)
        assert reply.startswith(f"From {name}:") and words in reply, reply
        # The marker links to the source, which names the file and quotes the passage.
        assert f'aria-label="Source 1: {name}">[1]</a>' in html
        sources = html[html.index('<ol class="ipa-sources"') :]
        assert name in sources and words in sources
    assert thread.count('class="ipa-sources"') == 4  # each reply, the one said in code too
    said = "".join(o.get("text", "") for o in outputs(nb) if o["output_type"] == "stream")
    assert "cites file-" in said and "found harbour.md (score" in said


@pytest.mark.slow
def test_every_assistant_output_says_where_it_came_from(execute: Execute) -> None:
    nb = execute(NOTEBOOKS / "quickstart.ipynb")
    views = [o for o in outputs(nb) if VIEW_MIME in o.get("data", {})]
    assert len(views) == 3
    for view in views:
        about = view["metadata"]["ipyassistant"]
        assert about["run"].startswith("run_") and about["thread"].startswith("thread_")
        assert about["assistant"].startswith("asst_") and about["model"] == "test"
    assert len({view["metadata"]["ipyassistant"]["run"] for view in views}) == 3


@pytest.mark.slow
@pytest.mark.skipif(not local_available(), reason="the 'local' extra (llama.cpp and the bundled model) is not installed")
def test_the_quickstart_on_the_local_model_gives_short_replies_that_do_not_loop(tmp_path: Path) -> None:
    """The README's first command opens this notebook on the bundled model: it must talk sense."""
    nb = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=CELL_TIMEOUT, startup_timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env=kernel_env(tmp_path / "data", model="local"))
    transcripts = [o["data"]["text/html"] for o in outputs(nb) if VIEW_MIME in o.get("data", {})]
    assert len(transcripts) == 3
    said = "".join(o.get("text", "") for o in outputs(nb) if o["output_type"] == "stream")
    assert "model: local (the default model)" in said
    for html in transcripts:
        assert "max_completion_tokens" not in html and "incomplete" not in html
        for reply in assistant_replies(html):
            assert distinct_ngram_ratio(reply.split()) >= 0.6, reply


@pytest.mark.slow
def test_the_quickstart_exported_to_html_shows_the_reply_and_the_plot(execute: Execute) -> None:
    nb = execute(NOTEBOOKS / "quickstart.ipynb")
    # As saved by JupyterLab by default (and as GitHub shows it): without widget state, so
    # nbconvert falls back to each view's static text/html.
    nb.metadata.pop("widgets", None)
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert "echo: Hello! What can you do?" in html
    assert "Tool call <code>roll_dice</code> (completed)" in html
    assert '<img alt="file-' in html and 'src="data:image/png;base64,' in html



@pytest.mark.slow
def test_interrupting_a_cell_in_a_real_kernel_cancels_the_run(tmp_path: Path) -> None:
    manager, client = start_new_kernel(
        kernel_name="python3", startup_timeout=120, env=kernel_env(tmp_path / "data")
    )
    try:
        client.execute_interactive("%load_ext ipyassistant", timeout=60)
        msg_id = client.execute("%%assistant\n/sleep 30\nslow")
        seen: dict[str, Any] = {"in_progress": False, "idle": False, "transcript": ""}

        def read() -> None:
            """Take the cell's next IOPub message (waiting up to a second); note what it says."""
            try:
                msg = client.get_iopub_msg(timeout=1)
            except queue.Empty:
                return
            kind, content = msg["msg_type"], msg["content"]
            # The view's patches say when the run is in progress.
            if kind == "comm_msg" and '"in_progress"' in json.dumps(content):
                seen["in_progress"] = True
            elif kind in ("display_data", "update_display_data") and "text/html" in content["data"]:
                seen["transcript"] = content["data"]["text/html"]
            elif (
                kind == "status"
                and content["execution_state"] == "idle"
                and msg["parent_header"].get("msg_id") == msg_id
            ):
                seen["idle"] = True  # the cell is over

        def saw(*keys: str) -> Callable[[], bool]:
            def step() -> bool:
                read()
                return any(seen[key] for key in keys)

            return step

        wait_until(saw("in_progress", "idle"), timeout=CELL_TIMEOUT, interval=0, message="the run")
        assert seen["in_progress"], "the run never showed as in progress"
        manager.interrupt_kernel()  # as a user would, once the run shows as in progress
        # The cell ends soon after: not the model's 30 s.
        wait_until(saw("idle"), timeout=20, interval=0, message="the cell to end, interrupted")
        transcript = seen["transcript"]
        reply = client.get_shell_msg(timeout=30)["content"]
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
        assert "run cancelled" in transcript  # the view's static transcript says so

        said: list[str] = []

        def collect(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                said.append(msg["content"]["text"])

        after = client.execute_interactive(
            "%%assistant -f text\nstill here?", timeout=CELL_TIMEOUT, output_hook=collect
        )
        assert after["content"]["status"] == "ok"
        assert "echo: still here?" in "".join(said)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def stream_text(cell: Any) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_the_context_notebook_uses_each_tool_and_asks_before_running_code(execute: Execute) -> None:
    nb = execute(NOTEBOOKS / "notebook_context.ipynb")
    text = {cell.id: stream_text(cell) for cell in nb.cells if cell.cell_type == "code"}
    by_id = {cell.id: cell for cell in nb.cells}
    assert "- list_variables: - df (DataFrame): shape (3, 2)" in text["context-4"]
    assert "api_key (str): <redacted>" in text["context-4"]
    assert "not-for-the-model" not in json.dumps([c.outputs for c in nb.cells[3:] if c.cell_type == "code"])
    assert "| 0 | 'Oslo' | 4.5 |" in text["context-5"]
    assert "/call describe_variable" in text["context-6"]  # recent_cells saw the cells above
    assert "No error yet" in text["context-8"]
    # Under nbclient the kernel executes without stdin: the call is denied at once, saying why.
    assert "Not run" in text["context-10"] and "without stdin" in text["context-10"]
    assert by_id["context-11"].outputs[0]["data"]["text/plain"] == "False"
    assert "- run_in_notebook: " in text["context-14"] and "Not run" not in text["context-14"]
    assert "Name: temp" in by_id["context-15"].outputs[0]["data"]["text/plain"]
    assert "run_in_notebook" in by_id["context-18"].outputs[0]["data"]["text/plain"]
    # The plain-words question reaches the context tools; the error cell raises on purpose and
    # %assistant fix sends the error, the cell and its variables.
    assert "list_variables" in json.dumps(by_id["context-ask"].outputs)
    assert by_id["context-error"].outputs[0]["ename"] == "ZeroDivisionError"
    assert "ZeroDivisionError" in json.dumps(by_id["context-fix"].outputs)


def test_assistant_fix_after_a_zero_division_error_in_a_real_kernel(tmp_path: Path) -> None:
    cells = [
        "%load_ext ipyassistant",
        "rates = {'Oslo': 0}",
        "growth = 10 / rates['Oslo']",
        "%assistant fix",
        "%%assistant -c -f text\n/call last_error",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.cells[2].metadata["tags"] = ["raises-exception"]
    client = NotebookClient(
        nb, kernel_name="python3", timeout=CELL_TIMEOUT, startup_timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env=kernel_env(tmp_path / "data"))
    assert nb.cells[2].outputs[0]["ename"] == "ZeroDivisionError"
    fixed = nb.cells[3].outputs
    assert fixed and not any(o.output_type == "error" for o in fixed)
    said = stream_text(nb.cells[4])
    assert "ZeroDivisionError: division by zero" in said and "growth = 10 / rates['Oslo']" in said
