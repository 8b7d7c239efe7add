"""File search from the notebook: ``%%assistant --file``, ChatPanel's file picker, and a
history whose citations name their files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from jupyter_helpers import Comms
from test_chat_panel import send, settle

from ipyassistant import Assistant, CodeInterpreter, FileSearch, Thread
from ipyassistant.jupyter import ChatPanel
from ipyassistant.jupyter.chat_client import _name_cited_files
from ipyassistant.jupyter.view_types import ViewState

pytestmark = pytest.mark.usefixtures("client_env")


@pytest.fixture
def said(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``say`` is asked; the run goes on without the files (the arguments are the point)."""
    calls: list[dict[str, Any]] = []
    files = ("attachments", "code_interpreter_files")
    say, say_async = Assistant.say, Assistant.say_async

    def recorded(message: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        calls.append({"message": message, **kwargs})
        return {key: value for key, value in kwargs.items() if key not in files}

    async def fake_say_async(self: Assistant, message: str, **kwargs: Any) -> Any:
        return await say_async(self, message, **recorded(message, kwargs))

    def fake_say(self: Assistant, message: str, **kwargs: Any) -> Any:
        return say(self, message, **recorded(message, kwargs))

    monkeypatch.setattr(Assistant, "say_async", fake_say_async)
    monkeypatch.setattr(Assistant, "say", fake_say)
    return calls


def test_file_attaches_each_file_given(
    ipython: Any, said: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tides.md").write_text("The harbour opens at six.")
    (tmp_path / "two words.txt").write_text("x")
    ipython.run_cell_magic(
        "assistant", '--file tides.md --file "two words.txt" --file file-abc', "When?"
    )
    (call,) = said
    assert call["message"] == "When?"
    assert call["attachments"] == ["tides.md", "two words.txt", "file-abc"]
    ipython.run_cell_magic("assistant", "", "no files")
    assert "attachments" not in said[-1]


def test_file_names_a_missing_file(ipython: Any, said: list[dict[str, Any]]) -> None:
    with pytest.raises(UsageError, match=r"--file: no file 'nowhere\.md'"):
        ipython.run_cell_magic("assistant", "--file nowhere.md", "When?")
    assert said == []


def test_the_magic_documents_file(ipython: Any) -> None:
    assert "--file" in ipython.magics_manager.magics["cell"]["assistant"].__doc__


def test_the_file_picker_is_offered_for_file_search(comms: Comms) -> None:
    searching = ChatPanel(Assistant(tools=[FileSearch]), Thread())
    assert searching.attachments and searching.attach_title == "Attach files to search"
    both = ChatPanel(Assistant(tools=[FileSearch, CodeInterpreter]), Thread())
    assert both.attach_title == "Attach files to search and for the code interpreter"
    coding = ChatPanel(Assistant(tools=[CodeInterpreter]), Thread())
    assert coding.attach_title == "Attach files for the code interpreter"
    assert not ChatPanel(Assistant(), Thread()).attachments


async def test_picked_files_are_uploaded_and_attached_for_file_search(
    comms: Comms, said: list[dict[str, Any]], api: Any
) -> None:
    panel = ChatPanel(Assistant(tools=[FileSearch]), Thread())
    send(comms.of(panel), "what is in it?", {"tides.md": b"The harbour opens at six."})
    await settle(panel)
    (call,) = said
    (uploaded,) = call["attachments"]
    assert "code_interpreter_files" not in call
    assert api.files.retrieve(uploaded.id).filename == "tides.md"


async def test_files_picked_for_the_code_interpreter_stay_its_own(
    comms: Comms, said: list[dict[str, Any]]
) -> None:
    panel = ChatPanel(Assistant(tools=[CodeInterpreter]), Thread())
    send(comms.of(panel), "plot it", {"data.csv": b"a,b\n1,2\n"})
    await settle(panel)
    (call,) = said
    assert len(call["code_interpreter_files"]) == 1 and "attachments" not in call


def test_a_history_names_the_files_its_citations_cite(api: Any) -> None:
    uploaded = api.files.create(file=("tides.md", b"six"), purpose="assistants")
    citation = {"text": "【1†x】", "start": 0, "end": 5, "file_id": uploaded.id}
    gone = {"text": "【2†y】", "start": 5, "end": 10, "file_id": "file-gone"}
    state: ViewState = {
        "run": None,
        "error": None,
        "items": [
            {
                "kind": "message",
                "id": "msg_1",
                "run_id": "run_1",
                "role": "assistant",
                "status": "completed",
                "blocks": [{"type": "text", "text": "【1†x】【2†y】", "citations": [citation, gone]}],
            }
        ],
    }
    from ipyassistant._portal import portal

    portal().call(_name_cited_files(state))
    assert citation["file_name"] == "tides.md"
    assert "file_name" not in gone


@pytest.fixture
def api(client_env: None) -> Any:
    """A plain SDK client on the embedded server."""
    import openai

    from ipyassistant.server import embedded

    server = embedded.start()
    with openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0) as sdk:
        yield sdk



def test_a_real_run_folds_into_a_search_and_a_cited_reply(tmp_path: Path) -> None:
    """The events the server streams for file search, through the reducer and the transcript."""
    from openai import AsyncAssistantEventHandler

    from ipyassistant.jupyter.transcript import transcript_html
    from ipyassistant.jupyter.view_state import empty_state, reduce

    seen: list[Any] = []

    class Collect(AsyncAssistantEventHandler):
        async def on_event(self, event: Any) -> None:
            seen.append(event)

    (tmp_path / "tides.md").write_text("The harbour opens at six. Boats leave at seven.")
    (tmp_path / "keepers.txt").write_text("Ada Quill keeps the lighthouse log at noon.")
    files = [tmp_path / "tides.md", tmp_path / "keepers.txt"]
    with Assistant(tools=[FileSearch], files=files) as ai:
        ai.say("When does the harbour open?", event_handler_class=Collect)
    state = empty_state()
    for event in seen:
        state, _ = reduce(state, event)
    search, reply = (item for item in state["items"] if item["kind"] != "message" or item["role"] == "assistant")
    assert search["kind"] == "file_search" and search["status"] == "completed"
    assert search["query"] == "When does the harbour open?"
    assert search["results"][0]["file_name"] == "tides.md"
    assert search["results"][0]["content"] == "The harbour opens at six. Boats leave at seven."
    assert reply["kind"] == "message"
    (block,) = reply["blocks"]
    assert block["type"] == "text" and block["text"].startswith("From tides.md:")
    (citation,) = block.get("citations", [])
    assert block["text"][citation["start"] : citation["end"]] == citation["text"]
    html = transcript_html(state)
    assert 'aria-label="Source 1: tides.md">[1]</a>' in html
    assert "<blockquote>The harbour opens at six. Boats leave at seven.</blockquote>" in html
