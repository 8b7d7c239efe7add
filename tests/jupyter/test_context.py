"""The kernel context tools, their budgets and redaction, ``%%assistant -c`` and ``%assistant fix``,
in a real IPython shell on the embedded test model."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ipyassistant import Assistant
from ipyassistant.jupyter import context, notebook_tools
from ipyassistant.jupyter.cell_text import reply_text
from ipyassistant.jupyter.context_budget import clip, redact, short_repr
from ipyassistant.jupyter.magics import AssistantMagics


class SlowRepr:
    def __repr__(self) -> str:
        time.sleep(30)
        return "never"


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class HugeRepr:
    def __repr__(self) -> str:
        return "x" * 5_000_000


def scale(values: list[float], factor: float = 2.0) -> list[float]:
    """Multiply each value by a factor."""
    return [v * factor for v in values]


@pytest.fixture
def shell(ipython: Any) -> Any:
    saved = dict(ipython.user_ns)
    ipython.user_ns.update(
        df=pd.DataFrame({"city": ["Oslo", "Rome", "Lima"], "temp": [4.5, 18.0, 19.5]}),
        grid=np.arange(12.0).reshape(3, 4),
        scale=scale,
        words=["a", "b", "c"],
        api_key="hunter2-is-my-password",
        note="use sk-abcdefghijklmnopqrstuvwx to connect",
        slow=SlowRepr(),
        hostile=RaisingRepr(),
        huge=HugeRepr(),
        np=np,
    )
    yield ipython
    ipython.user_ns.clear()
    ipython.user_ns.update(saved)


def test_list_variables_summarises_user_variables_only(shell: Any) -> None:
    listed = context.list_variables()
    assert "- df (DataFrame): shape (3, 2); columns city: " in listed and "temp: float64" in listed
    assert "- grid (ndarray): shape (3, 4); dtype float64" in listed
    assert "- scale (function): scale(values: list[float], factor: float = 2.0)" in listed
    assert "- words (list): len 3" in listed
    assert "- np " not in listed and "In (" not in listed and "get_ipython" not in listed


def test_secrets_are_never_sent(shell: Any) -> None:
    everything = context.list_variables() + context.describe_variable("api_key")
    everything += context.describe_variable("note") + context.context_note()
    assert "hunter2" not in everything and "sk-abcdef" not in everything
    assert "api_key (str): <redacted>" in everything and "use <redacted> to connect" in everything
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    assert redact(f"a ghp_{'a' * 36} and {jwt}") == "a <redacted> and <redacted>"
    shell.run_cell('db_password = "swordfish"', store_history=True)
    assert 'db_password = "<redacted>"' in context.recent_cells(1)


def test_describe_variable_on_a_dataframe_array_and_function(shell: Any) -> None:
    frame = context.describe_variable("df")
    assert "shape: (3, 2)" in frame and "- temp: float64" in frame
    assert "| 0 | 'Oslo' | 4.5 |" in frame  # head(5) as a Markdown table
    assert "statistics:" in frame and "| mean | 14.0 |" in frame
    array = context.describe_variable("grid")
    assert "dtype: float64" in array and "min: " in array and "max: " in array and "11.0" in array
    function = context.describe_variable("scale")
    assert "signature: scale(values: list[float], factor: float = 2.0)" in function
    assert "Multiply each value by a factor." in function


def test_an_unknown_name_lists_close_names(shell: Any) -> None:
    assert context.describe_variable("dff") == "No variable named 'dff' in the notebook. Close names: df."


def test_hostile_reprs_are_bounded_in_size_and_time(shell: Any) -> None:
    started = time.monotonic()
    slow = context.describe_variable("slow")
    assert time.monotonic() - started < 10
    assert "took longer than" in slow
    assert "RaisingRepr" in context.describe_variable("hostile")  # named, not raised
    assert len(context.describe_variable("huge")) < 2000
    assert len(short_repr("y" * 10_000, 50)) == 50


def test_every_output_stays_within_the_budget(shell: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPYASSISTANT_CONTEXT_CHARS", "300")
    shell.user_ns["many"] = {f"key{i}": i for i in range(500)}
    shell.user_ns.update({f"v{i}": i for i in range(100)})
    listed = context.list_variables()
    assert len(listed) <= 300 and "(cut: " in listed
    assert len(clip("z" * 1000)) == 300


def test_last_error_and_recent_cells(shell: Any) -> None:
    shell.run_cell("total = 10\nshare = total / 0", store_history=True)
    error = context.last_error()
    assert error.startswith("ZeroDivisionError: division by zero")
    assert "share = total / 0" in error and "The failing cell, In[" in error
    shell.run_cell("answer = 6 * 7\nanswer", store_history=True)
    cells = context.recent_cells(n=2)
    assert "share = total / 0" in cells and "answer = 6 * 7" in cells and "]: 42" in cells


def test_run_in_notebook_runs_in_the_users_namespace(shell: Any) -> None:
    output = context.run_in_notebook("made = len(words)\nprint('hello')\nmade * 2")
    assert shell.user_ns["made"] == 3
    assert "stdout:\nhello" in output and "result: 6" in output
    assert "error: ZeroDivisionError" in context.run_in_notebook("1 / 0")


def test_notebook_tools_have_the_names_and_run_in_notebook_needs_approval() -> None:
    tools = notebook_tools()
    assert [t.name for t in tools] == list(context.CONTEXT_TOOL_NAMES)
    assert [t.approve for t in tools] == [False, False, False, False, True]


# -- through the magics --------------------------------------------------------------------


def magics(shell: Any) -> AssistantMagics:
    return shell.magics_manager.registry["AssistantMagics"]


def replies(shell: Any, line: str, body: str) -> str:
    shell.run_cell_magic("assistant", f"{line} -q -o last_run", body)
    return reply_text(shell.user_ns.pop("last_run"))


def test_context_option_lets_the_model_call_each_tool(shell: Any) -> None:
    reply = replies(shell, "-c", '/call describe_variable {"name": "df"}\n/call list_variables')
    assert "- describe_variable: df: pandas" in reply and "| 0 | 'Oslo' | 4.5 |" in reply
    # Other tests' variables may be listed too (one shell for the session): df among them.
    assert "- df (DataFrame)" in reply.split("- list_variables: ", 1)[1]
    note = replies(shell, "--context", "/instructions")
    assert "list_variables" in note and "- grid (ndarray): shape (3, 4)" in note
    # Without -c the tools are not there.
    assert "list_variables" not in replies(shell, "", "/instructions")


def test_context_by_default_from_the_config(shell: Any) -> None:
    magics(shell).context = True
    assert "- df (DataFrame)" in replies(shell, "", "/call list_variables")


def test_run_in_notebook_is_denied_outside_a_cell_with_stdin_unless_always(shell: Any) -> None:
    reply = replies(shell, "-c", '/call run_in_notebook {"code": "created = 1"}')
    assert "Not run" in reply and "no one can answer" in reply and "created" not in shell.user_ns
    magics(shell).approve = "never"
    assert "approve='never'" in replies(shell, "-c", '/call run_in_notebook {"code": "created = 1"}')
    magics(shell).approve = "always"
    replies(shell, "-c", '/call run_in_notebook {"code": "created = 1"}')
    assert shell.user_ns["created"] == 1


def test_assistant_approve_wins_over_the_magics_config(shell: Any) -> None:
    shell.user_ns["careful"] = Assistant(approve="never")
    magics(shell).approve = "always"
    assert "approve='never'" in replies(shell, "careful -c", '/call run_in_notebook {"code": "x = 1"}')


def test_fix_says_the_error_its_cell_and_its_variables(shell: Any, capsys: Any) -> None:
    shell.run_cell("denominator = 0\nratio = len(words) / denominator", store_history=True)
    capsys.readouterr()
    shell.run_line_magic("assistant", "fix")
    run = magics(shell)._last_run
    assert run is not None and run.run.status == "completed"
    said = run.thread.get_messages(limit=2)[-2]
    text = said.content[0].text.value
    assert "ZeroDivisionError: division by zero" in text
    assert "ratio = len(words) / denominator" in text
    assert "- denominator (int): 0" in text and "- words (list): len 3" in text
    assert {t.name for t in run.effective_tools()} >= set(context.CONTEXT_TOOL_NAMES)
