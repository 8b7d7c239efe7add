"""``%%assistant`` and ``%assistant`` in a real IPython shell, on the embedded test model."""

from __future__ import annotations

import _thread
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from IPython.core.error import UsageError

from _wait import wait_until
from ipyassistant import Assistant, Run, Thread
from ipyassistant.jupyter import magics as magics_module
from ipyassistant.jupyter.cell_text import expand_braces, extract_code
from ipyassistant.jupyter.magics import CHOOSE_MODEL, AssistantMagics

DEADLINE = 20.0


def magics(shell: Any) -> AssistantMagics:
    found = shell.magics_manager.registry["AssistantMagics"]
    assert isinstance(found, AssistantMagics)
    return found


def cell(shell: Any, line: str, body: str) -> None:
    shell.run_cell_magic("assistant", line, body)


def messages(thread: Thread) -> list[tuple[str, str]]:
    return [
        (m.role, "".join(c.text.value for c in m.content if c.type == "text"))
        for m in thread.get_messages(limit=100)
    ]


@pytest.fixture
def api(client_env: None) -> Iterator[openai.OpenAI]:
    """A plain SDK client on the embedded server, to look behind the magics' back."""
    from ipyassistant.server import embedded

    server = embedded.start()
    with openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0) as sdk:
        yield sdk


# -- loading -----------------------------------------------------------------------------------


def test_load_ext_registers_the_magics_and_unload_removes_everything(ipython: Any) -> None:
    manager = ipython.magics_manager
    loaded = magics(ipython)
    assert "assistant" in manager.magics["cell"] and "assistant" in manager.magics["line"]
    assert loaded in ipython.configurables

    ipython.run_line_magic("unload_ext", "ipyassistant")
    assert "assistant" not in manager.magics["cell"]
    assert "assistant" not in manager.magics["line"]
    assert "AssistantMagics" not in manager.registry
    assert loaded not in ipython.configurables
    with pytest.raises(UsageError):
        ipython.run_cell_magic("assistant", "", "hello")

    ipython.run_line_magic("load_ext", "ipyassistant")
    assert magics(ipython) is not loaded  # a fresh instance, with fresh state


def test_the_extension_functions_import_lazily() -> None:
    import subprocess
    import sys

    import ipyassistant

    code = (
        "import sys, ipyassistant; "
        "assert callable(ipyassistant.load_ipython_extension); "
        "assert 'ipyassistant.jupyter.magics' not in sys.modules; "
        "assert 'IPython' not in sys.modules, 'importing ipyassistant imported IPython'"
    )
    source = str(Path(ipyassistant.__file__).parents[1])  # this checkout, whatever is installed
    env = {**os.environ, "PYTHONPATH": source}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=env)


def test_the_magics_document_their_options(ipython: Any) -> None:
    cell_help = ipython.magics_manager.magics["cell"]["assistant"].__doc__
    for option in ("--thread", "--new-thread", "--model", "--instructions", "--tools", "--out"):
        assert option in cell_help
    for option in ("--quiet", "--format", "--expand", "NAME"):
        assert option in cell_help
    line_help = ipython.magics_manager.magics["line"]["assistant"].__doc__
    for subcommand in ("new", "threads", "history", "use", "model", "config"):
        assert subcommand in line_help


# -- %%assistant ---------------------------------------------------------------------------


def test_a_cell_says_its_body_and_the_conversation_continues_in_the_next_cell(
    ipython: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cell(ipython, "", "hello there")
    out = capsys.readouterr().out
    assert "echo: hello there" in out and "User" in out  # PrintHandler, outside a notebook
    thread = magics(ipython).current()[1].default_thread
    first_id = thread.id
    cell(ipython, "", "and again")
    assert thread.id == first_id
    assert messages(thread) == [
        ("user", "hello there"),
        ("assistant", "echo: hello there"),
        ("user", "and again"),
        ("assistant", "echo: and again"),
    ]


def test_name_talks_to_the_assistant_in_that_variable_on_its_own_thread(ipython: Any) -> None:
    ipython.user_ns["helper"] = helper = Assistant(name="Helper")
    cell(ipython, "helper -q", "one")
    cell(ipython, "-q helper", "two")
    assert [text for _, text in messages(helper.default_thread)] == [
        "one",
        "echo: one",
        "two",
        "echo: two",
    ]
    assert magics(ipython).default_assistant.default_thread.id is None  # untouched


def test_out_stores_the_run(ipython: Any) -> None:
    cell(ipython, "-q -o result", "store me")
    run = ipython.user_ns["result"]
    assert isinstance(run, Run) and run.run.status == "completed"
    assert run.messages[-1].content[0].text.value == "echo: store me"


def test_quiet_shows_nothing(ipython: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cell(ipython, "-q", "hush")
    assert "hush" not in capsys.readouterr().out


def test_format_text_prints_the_reply_as_plain_text(
    ipython: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cell(ipython, "-f text", "plain words")
    assert capsys.readouterr().out == "echo: plain words\n"
    cell(ipython, "-f text", "/fail boom")
    out = capsys.readouterr().out
    assert out.startswith("(the run ended failed: ") and "boom" in out


def test_format_code_puts_the_code_into_the_next_input(
    ipython: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ipython.rl_next_input = None
    cell(ipython, "-f code -q", "```\nx = 41 + 1\n```")
    assert ipython.rl_next_input == "x = 41 + 1"
    assert capsys.readouterr().out == ""


def test_format_code_shows_a_copy_box_in_a_notebook(
    ipython: Any, monkeypatch: pytest.MonkeyPatch, comms: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(magics_module, "in_notebook", lambda: True)
    shown: list[Any] = []
    monkeypatch.setattr(magics_module, "display", shown.append)
    cell(ipython, "-f code", "```python3\nprint('hi')\n```")
    (box,) = shown
    assert box.code == "print('hi')"
    data, _ = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/html"] == "<pre><code>print(&#x27;hi&#x27;)</code></pre>"


def test_extract_code_prefers_python_blocks_and_takes_bare_replies_whole() -> None:
    reply = "Install:\n```bash\npip install x\n```\nThen:\n```python\nimport x\n```\nand\n```\nx.go()\n```"
    assert extract_code(reply) == "import x\n\nx.go()"  # blocks apart by a blank line
    assert extract_code("```bash\nls\n```") == "ls"
    assert extract_code("  print(1)\n") == "print(1)"


def test_model_overrides_the_model_of_the_run(ipython: Any) -> None:
    # The assistant's own model would reach OpenAI (which the tests forbid): -m replaces it.
    ipython.user_ns["remote"] = Assistant(name="Remote", model="openai:gpt-4o-mini")
    cell(ipython, "remote -q -m test -o r", "hi")
    assert ipython.user_ns["r"].run.model == "test"
    assert ipython.user_ns["r"].run.status == "completed"


def test_the_magic_line_is_not_expanded_by_ipython(ipython: Any) -> None:
    ipython.user_ns["topic"] = "tides"
    cell(ipython, '-q -o r -i "About {topic} and $topic."', "/instructions")
    assert ipython.user_ns["r"].messages[-1].content[0].text.value == "About {topic} and $topic."


def test_instructions_replace_the_assistants_for_the_run(ipython: Any) -> None:
    cell(ipython, '-q -o r -i "Be brief, {{ self_.name }}."', "/instructions")
    assert ipython.user_ns["r"].messages[-1].content[0].text.value == "Be brief, {{ self_.name }}."


def test_tools_adds_functions_of_the_notebook_for_one_cell(ipython: Any) -> None:
    def double(x: int) -> int:
        """Double a number."""
        return 2 * x

    def negate(x: int) -> int:
        """Negate a number."""
        return -x

    ipython.user_ns.update(double=double, negate=negate)
    cell(ipython, "-q -o r -T double,negate", '/call double {"x": 21}\n/call negate {"x": 1}')
    reply = ipython.user_ns["r"].messages[-1].content[0].text.value
    assert reply == "Tool results:\n- double: 42\n- negate: -1"
    assert magics(ipython).default_assistant.tools == []  # only for that cell
    cell(ipython, "-q -o r", "no tools now")
    assert ipython.user_ns["r"].messages[-1].content[0].text.value == "echo: no tools now"


def test_thread_takes_a_thread_variable_an_id_or_a_variable_holding_an_id(ipython: Any) -> None:
    ipython.user_ns["chat"] = chat = Thread()
    cell(ipython, "-q -t chat", "first")
    assert chat.id is not None
    ipython.user_ns["chat_id"] = chat.id
    cell(ipython, "-q -t chat_id", "second")
    cell(ipython, f"-q -t {chat.id}", "third")
    assert [text for role, text in messages(chat) if role == "user"] == ["first", "second", "third"]
    assert magics(ipython).default_assistant.default_thread.id is None


def test_new_thread_starts_a_new_conversation(ipython: Any) -> None:
    cell(ipython, "-q", "old")
    old = magics(ipython).default_assistant.default_thread
    cell(ipython, "-q --new-thread", "new")
    new = magics(ipython).default_assistant.default_thread
    assert new is not old and new.id != old.id
    assert [text for _, text in messages(new)] == ["new", "echo: new"]
    assert len(messages(old)) == 2


def test_expand_substitutes_variables_and_double_braces_escape(ipython: Any) -> None:
    ipython.user_ns.update(topic="tides", count=3)
    cell(ipython, "-q -o r --expand", 'about {topic} x{count:02d} {{"json": 1}}')
    assert ipython.user_ns["r"].messages[-1].content[0].text.value == (
        'echo: about tides x03 {"json": 1}'
    )
    cell(ipython, "-q -o r", "about {topic} {{x}}")  # off by default: braces are safe
    assert ipython.user_ns["r"].messages[-1].content[0].text.value == "echo: about {topic} {{x}}"


def test_expand_substitutes_like_str_format() -> None:
    assert expand_braces("{a} {{a}} {b[k]}", {"a": 1, "b": {"k": "v"}}) == "1 {a} v"
    with pytest.raises(UsageError, match="no variable named 'missing'"):
        expand_braces("{missing}", {})
    with pytest.raises(UsageError, match="literal braces"):
        expand_braces("{", {})


@pytest.mark.parametrize(
    ("line", "body", "message"),
    [
        ("-f html", "hi", "invalid choice: 'html'"),
        ("--bogus", "hi", "unrecognized arguments: --bogus"),
        ("nobody", "hi", "no variable named 'nobody'"),
        ("number", "hi", "'number' is not an Assistant (type int)"),
        ("-o 1x", "hi", "-o needs a variable name, not '1x'"),
        ("-t nothing", "hi", "-t: no variable named 'nothing'"),
        ("-t number", "hi", "-t: 'number' is not a Thread or a thread id (type int)"),
        ("-T missing", "hi", "-T: no function named 'missing'"),
        ("-T number", "hi", "-T: 'number' is not a function (type int)"),
        ("-T ,", "hi", "-T needs function names"),
        ("-t thread_x --new-thread", "hi", "-t and --new-thread do not go together"),
        ("", "   \n", "needs a message"),
        ("--expand", "{undefined_name}", "--expand: no variable named 'undefined_name'"),
        ("-t thread_doesnotexist", "hi", "not found on the server"),
    ],
)
def test_bad_input_is_a_usage_error_without_traceback(
    ipython: Any, capsys: pytest.CaptureFixture[str], line: str, body: str, message: str
) -> None:
    ipython.user_ns["number"] = 7
    result = ipython.run_cell(f"%%assistant {line}\n{body}")
    assert isinstance(result.error_in_exec, UsageError)
    assert message in str(result.error_in_exec)
    captured = capsys.readouterr()
    assert "UsageError" in captured.err and "Traceback" not in captured.err + captured.out


def test_client_misuse_errors_become_usage_errors(
    ipython: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    magics(ipython).instructions = "{{ unclosed"  # (%config's own line would expand {{)
    result = ipython.run_cell("%%assistant -q\nhi")
    assert isinstance(result.error_in_exec, UsageError)  # the client's InstructionsError
    assert "Traceback" not in capsys.readouterr().err


# -- %config -----------------------------------------------------------------------------------


def test_defaults_are_traitlets_set_with_config(
    ipython: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ipython.run_line_magic("config", 'AssistantMagics.format = "text"')
    cell(ipython, "", "configured")
    assert capsys.readouterr().out == "echo: configured\n"

    ipython.run_line_magic("config", "AssistantMagics.quiet = True")
    cell(ipython, "-f markdown", "silent")
    assert "silent" not in capsys.readouterr().out
    ipython.run_line_magic("config", "AssistantMagics.quiet = False")

    ipython.user_ns["word"] = "expanded"
    ipython.run_line_magic("config", "AssistantMagics.expand = True")
    cell(ipython, "", "{word}")
    assert capsys.readouterr().out == "echo: expanded\n"
    cell(ipython, "--no-expand", "{word}")
    assert capsys.readouterr().out == "echo: {word}\n"

    ipython.run_line_magic("config", 'AssistantMagics.instructions = "Be kind."')
    ipython.run_line_magic("config", 'AssistantMagics.assistant_name = "Nb"')
    cell(ipython, "", "/instructions")
    assert capsys.readouterr().out == "Be kind.\n"
    assert magics(ipython).default_assistant.name == "Nb"

    ipython.run_line_magic("config", 'AssistantMagics.model = "openai:gpt-4o-mini"')
    cell(ipython, "-m test -o r", "overridden")
    assert ipython.user_ns["r"].run.model == "test"
    assert magics(ipython).model == "openai:gpt-4o-mini"
    assert ipython.run_line_magic("config", "AssistantMagics.format") == "text"


def test_config_validates_values(ipython: Any, caplog: pytest.LogCaptureFixture) -> None:
    ipython.run_line_magic("config", 'AssistantMagics.format = "html"')
    assert magics(ipython).format == "markdown"
    assert "'html'" in caplog.text


# -- %assistant ---------------------------------------------------------------------------


def test_new_threads_and_history(ipython: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cell(ipython, "-q", "remember me")
    first = magics(ipython).default_assistant.default_thread
    ipython.run_line_magic("assistant", "new")
    assert "new conversation" in capsys.readouterr().out
    second = magics(ipython).default_assistant.default_thread
    assert second is not first and second.id is None
    cell(ipython, "-q", "fresh start")

    ipython.run_line_magic("assistant", "threads")
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["assistant", "thread", "cells"]
    assert table[1].split() == ["Assistant", first.id, "1"]
    assert table[2].split() == ["*", "Assistant", second.id, "1"]

    ipython.run_line_magic("assistant", "history")
    history = capsys.readouterr().out
    assert "fresh start" in history and "echo: fresh start" in history
    assert "remember me" not in history


def test_history_of_an_assistant_or_a_thread(
    ipython: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ipython.user_ns["other"] = other = Assistant(name="Other")
    ipython.run_line_magic("assistant", "history other")
    assert capsys.readouterr().out == "No messages yet.\n"
    other.say("told other", event_handler_class=None)
    ipython.run_line_magic("assistant", "history other")
    assert "echo: told other" in capsys.readouterr().out
    ipython.run_line_magic("assistant", f"history {other.default_thread.id}")
    assert "echo: told other" in capsys.readouterr().out


def test_use_chooses_the_default_assistant_of_cells(
    ipython: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ipython.user_ns["poet"] = poet = Assistant(name="Poet")
    ipython.run_line_magic("assistant", "use poet")
    cell(ipython, "-q", "a verse")
    assert [t for _, t in messages(poet.default_thread)] == ["a verse", "echo: a verse"]
    ipython.run_line_magic("assistant", "threads")
    assert "poet" in capsys.readouterr().out
    ipython.run_line_magic("assistant", "use")
    cell(ipython, "-q", "back to the notebook's")
    assert len(messages(poet.default_thread)) == 2
    assert magics(ipython).default_assistant.default_thread.id is not None
    with pytest.raises(UsageError, match="no variable named 'ghost'"):
        ipython.run_line_magic("assistant", "use ghost")


def test_model_shows_and_sets_the_model_of_the_cells(
    ipython: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ipython.run_line_magic("assistant", "model")
    assert capsys.readouterr().out == f"model: test (the default model)\n{CHOOSE_MODEL}\n"
    ipython.run_line_magic("assistant", "model test")
    assert magics(ipython).model == "test"
    assert capsys.readouterr().out == "model: test (AssistantMagics.model)\n"
    ipython.run_line_magic("assistant", "model default")
    assert magics(ipython).model is None


def test_config_shows_the_settings(ipython: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ipython.run_line_magic("assistant", "config")
    out = capsys.readouterr().out
    for expected in (
        "format = 'markdown'",
        "expand = False",
        "model: test",
        "server: the embedded",
    ):
        assert expected in out
    assert "views: printed (not a notebook)" in out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "the following arguments are required: subcommand"),
        ("dance", "invalid choice: 'dance'"),
        ("use 3", "no variable named '3'"),
        ("history nothing_here", "history: no variable named 'nothing_here'"),
    ],
)
def test_bad_subcommands_are_usage_errors(
    ipython: Any, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    result = ipython.run_cell(f"%assistant {line}")
    assert isinstance(result.error_in_exec, UsageError)
    assert message in str(result.error_in_exec)
    assert "Traceback" not in capsys.readouterr().err


# -- interrupting ------------------------------------------------------------------------------


def newest_run(api: openai.OpenAI, thread_id: str) -> Any:
    page = api.beta.threads.runs.list(thread_id, limit=1)
    return page.data[0] if page.data else None


@pytest.mark.slow
def test_a_kernel_interrupt_cancels_the_run_and_the_view_says_so(
    ipython: Any,
    api: openai.OpenAI,
    monkeypatch: pytest.MonkeyPatch,
    comms: Any,
    shown_views: list[Any],
    ctrl_c_raises: None,
) -> None:
    # As in a notebook: the run streams into a RunView (displayed as text by this shell).
    views = shown_views
    thread = magics(ipython).default_assistant.default_thread

    def running() -> bool:
        run = newest_run(api, thread.id) if thread.id is not None else None
        return run is not None and run.status == "in_progress"

    def interrupt_when_running() -> None:
        wait_until(running, timeout=DEADLINE, message="the run to start")
        _thread.interrupt_main()

    watcher = threading.Thread(target=interrupt_when_running, daemon=True)
    watcher.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt, match="the run was cancelled"):
        cell(ipython, "", "/sleep 30\nslow")
    watcher.join()
    assert time.monotonic() - started < DEADLINE
    assert newest_run(api, thread.id).status == "cancelled"
    (view,) = views
    assert view.live_state["run"]["status"] == "cancelled"
    assert view.state["run"]["status"] == "cancelled"  # synced: a saved notebook keeps it

    cell(ipython, "-o after", "the next cell works")
    assert ipython.user_ns["after"].run.status == "completed"
    assert views[1].live_state["run"]["status"] == "completed"
