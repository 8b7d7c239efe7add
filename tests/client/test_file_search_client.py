"""File search in the client: attachments, an assistant's files and the wait for their indexing.

Attachments are checked on the embedded server. The vector store calls run against a small
fake of the SDK's ``files`` and ``vector_stores`` resources, which indexes on a schedule the
test sets, so that failures and slow indexing are deterministic.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import openai
import pydantic
import pytest
from openai.types import FileObject

import ipyassistant.assistants
from ipyassistant import Assistant, CodeInterpreter, FileSearch, Thread
from ipyassistant._files import attachment_tools, index_files, with_store
from ipyassistant.exceptions import FileIndexingError
from ipyassistant.runs import SEARCH_RESULTS_CONTENT, Run


def attachments_of(api, thread: Thread) -> list[dict[str, Any]]:
    (message,) = api.beta.threads.messages.list(thread.id).data
    return [a.model_dump(exclude_none=True) for a in message.attachments]


def test_attachments_are_uploaded_and_attached_for_file_search(api, tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\nThe harbour opens at six.\n")
    uploaded = api.files.create(file=("earlier.txt", b"earlier"), purpose="assistants")
    with Thread() as thread:
        thread.add("what do they say?", attachments=[notes, uploaded.id])
        found = attachments_of(api, thread)
        # The server put them in the thread's vector store.
        resources = api.beta.threads.retrieve(thread.id).tool_resources
        (store_id,) = resources.file_search.vector_store_ids
        in_store = {f.id for f in api.vector_stores.files.list(store_id).data}
    assert in_store == {a["file_id"] for a in found}
    assert [a["tools"] for a in found] == [[{"type": "file_search"}]] * 2
    assert found[1]["file_id"] == uploaded.id  # an id is attached as it is
    assert api.files.retrieve(found[0]["file_id"]).filename == "notes.md"


def test_attachments_may_be_for_both_tools_beside_code_interpreter_files(api, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    uploaded = FileObject.model_validate(
        api.files.create(file=("x.txt", b"x"), purpose="assistants").model_dump()
    )
    with Thread() as thread:
        thread.add(
            "look",
            code_interpreter_files=[data],
            attachments=[uploaded],
            attachment_tools=["file_search", "code_interpreter"],
        )
        found = attachments_of(api, thread)
    assert [a["tools"] for a in found] == [
        [{"type": "code_interpreter"}],
        [{"type": "file_search"}, {"type": "code_interpreter"}],
    ]
    assert found[1]["file_id"] == uploaded.id


def test_a_message_attachment_is_for_the_code_interpreter_too_when_the_run_has_it() -> None:
    assert attachment_tools([FileSearch]) == ["file_search"]
    assert attachment_tools([CodeInterpreter]) == ["file_search", "code_interpreter"]


def test_runs_with_file_search_ask_for_the_found_chunks() -> None:
    searching = Assistant(tools=[FileSearch])
    assert Run(Thread(), searching).request()["include"] == [SEARCH_RESULTS_CONTENT]
    assert "include" not in Run(Thread(), Assistant()).request()
    added = Run(Thread(), Assistant(), additional_tools=[FileSearch], include=[]).request()
    assert added["include"] == []  # what the caller asks for wins


def test_files_need_the_file_search_tool() -> None:
    with pytest.raises(pydantic.ValidationError, match="add it, Assistant"):
        Assistant(files=["notes.md"])


def test_the_store_is_added_to_the_tool_resources_given() -> None:
    given = {"code_interpreter": {"file_ids": ["file-1"]}, "file_search": {"vector_store_ids": ["vs_a"]}}
    assert with_store(given, "vs_b") == {
        "code_interpreter": {"file_ids": ["file-1"]},
        "file_search": {"vector_store_ids": ["vs_a", "vs_b"]},
    }
    assert given["file_search"] == {"vector_store_ids": ["vs_a"]}  # not changed in place
    assert with_store(None, "vs_b") == {"file_search": {"vector_store_ids": ["vs_b"]}}


# -- against a fake of the SDK's files and vector stores ------------------------------------


class FakeApi:
    """``files``, ``vector_stores`` and ``beta.assistants``, as far as the client uses them.

    ``outcomes`` says how each file (by name) ends: after how many listings, with which
    status and error; unknown names complete at the first listing.
    """

    def __init__(self, outcomes: dict[str, tuple[int, str, str | None]] | None = None) -> None:
        self.outcomes = outcomes or {}
        self.names: dict[str, str] = {}
        self.stores: dict[str, list[str]] = {}
        self.listings: dict[str, int] = {}
        self.assistants: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        ids = itertools.count(1)
        self.files = SimpleNamespace(
            create=self._upload, retrieve=self._retrieve, delete=self._delete_file
        )
        self.vector_stores = SimpleNamespace(
            create=self._create_store,
            delete=self._delete_store,
            files=SimpleNamespace(list=self._list),
        )
        self.beta = SimpleNamespace(
            assistants=SimpleNamespace(create=self._create_assistant, delete=self._delete_assistant)
        )
        self._next = lambda prefix: f"{prefix}{next(ids)}"

    async def _upload(self, *, file: Path, purpose: str) -> Any:
        file_id = self._next("file-")
        self.names[file_id] = Path(file).name
        return SimpleNamespace(id=file_id)

    async def _retrieve(self, file_id: str) -> Any:
        return SimpleNamespace(filename=self.names[file_id])

    async def _delete_file(self, file_id: str) -> None:
        self.deleted.append(file_id)

    async def _create_store(self, *, name: str, file_ids: list[str]) -> Any:
        store_id = self._next("vs_")
        self.stores[store_id] = list(file_ids)
        return SimpleNamespace(id=store_id)

    async def _delete_store(self, store_id: str) -> None:
        self.deleted.append(store_id)

    def _list(self, store_id: str, limit: int) -> AsyncIterator[Any]:
        listing = self.listings[store_id] = self.listings.get(store_id, 0) + 1

        async def files() -> AsyncIterator[Any]:
            for file_id in self.stores[store_id]:
                after, status, error = self.outcomes.get(self.names.get(file_id, ""), (1, "completed", None))
                done = listing >= after
                yield SimpleNamespace(
                    id=file_id,
                    status=status if done else "in_progress",
                    last_error=SimpleNamespace(code=status, message=error) if done and error else None,
                )

        return files()

    async def _create_assistant(self, **params: Any) -> Any:
        assistant_id = self._next("asst_")
        self.assistants[assistant_id] = params
        return SimpleNamespace(id=assistant_id)

    async def _delete_assistant(self, assistant_id: str) -> None:
        self.deleted.append(assistant_id)


def two_files(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "tides.md", tmp_path / "keepers.pdf"]
    for path in paths:
        path.write_text("text")
    return paths


def test_indexing_waits_until_every_file_is_done(tmp_path: Path) -> None:
    api = FakeApi({"keepers.pdf": (3, "completed", None)})
    indexed = asyncio.run(index_files(api, [*two_files(tmp_path), "file-given"], "files", 10))  # type: ignore[arg-type]
    assert api.listings[indexed.store_id] == 3
    assert api.stores[indexed.store_id] == ["file-1", "file-2", "file-given"]
    assert indexed.uploaded == ("file-1", "file-2")  # not the file given by its id
    assert api.deleted == []


def test_a_failed_file_is_named_with_its_error_and_nothing_is_left(tmp_path: Path) -> None:
    api = FakeApi({"keepers.pdf": (2, "failed", "keepers.pdf: the PDF has no text")})
    with pytest.raises(FileIndexingError) as caught:
        asyncio.run(index_files(api, two_files(tmp_path), "files", 10))  # type: ignore[arg-type]
    assert caught.value.failed == [("keepers.pdf", "failed", "keepers.pdf: the PDF has no text")]
    assert "- keepers.pdf: failed: keepers.pdf: the PDF has no text" in str(caught.value)
    assert sorted(api.deleted) == ["file-1", "file-2", "vs_3"]


def test_the_wait_is_bounded_and_names_the_files_still_indexing(tmp_path: Path) -> None:
    api = FakeApi({"keepers.pdf": (10**6, "completed", None)})
    with pytest.raises(FileIndexingError, match=r"still being indexed after 0.2 s: keepers.pdf") as caught:
        asyncio.run(index_files(api, two_files(tmp_path), "files", 0.2))  # type: ignore[arg-type]
    assert caught.value.pending == ["keepers.pdf"]
    assert "vs_3" in api.deleted


def test_an_assistant_with_files_has_a_store_while_it_exists(monkeypatch, tmp_path: Path) -> None:
    api = FakeApi()

    async def fake_client() -> FakeApi:
        return api

    monkeypatch.setattr(ipyassistant.assistants, "client", fake_client)
    ai = Assistant(name="Harbour", tools=[FileSearch], files=two_files(tmp_path), model="test")
    ai.create()
    (params,) = api.assistants.values()
    assert params["tool_resources"] == {"file_search": {"vector_store_ids": ["vs_3"]}}
    assert params["tools"] == [{"type": "file_search"}]
    assert ai.tool_resources is None  # the store is the server object's, not the definition's
    ai.delete()
    assert api.deleted == ["asst_4", "vs_3", "file-1", "file-2"]


# -- against the embedded server ---------------------------------------------------------------


def test_an_assistant_indexes_its_files_on_the_server_and_cleans_up(api, tmp_path: Path) -> None:
    paths = two_files(tmp_path)
    paths[1] = paths[1].with_suffix(".txt")
    paths[1].write_text("Lighthouse keepers log the weather at noon.")
    paths[0].write_text("The harbour opens at six.")
    ai = Assistant(tools=[FileSearch], files=paths)
    ai.create()
    try:
        stored = api.beta.assistants.retrieve(ai.id).tool_resources.file_search.vector_store_ids
        (store_id,) = stored
        files = api.vector_stores.files.list(store_id).data
        assert sorted(f.status for f in files) == ["completed", "completed"]
        names = sorted(api.files.retrieve(f.id).filename for f in files)
        assert names == ["keepers.txt", "tides.md"]
    finally:
        ai.delete()
    with pytest.raises(openai.NotFoundError):
        api.vector_stores.retrieve(store_id)
    for f in files:
        with pytest.raises(openai.NotFoundError):
            api.files.retrieve(f.id)


def test_a_file_the_server_cannot_index_is_named_with_its_error(api, tmp_path: Path) -> None:
    good, bad = tmp_path / "notes.md", tmp_path / "blob.xyz"
    good.write_text("notes")
    bad.write_bytes(b"\x00\x01binary")
    before = {s.id for s in api.vector_stores.list(limit=100).data}
    with pytest.raises(FileIndexingError) as caught:
        Assistant(tools=[FileSearch], files=[good, bad]).create()
    ((name, code, message),) = caught.value.failed
    assert (name, code) == ("blob.xyz", "unsupported_file") and "xyz" in message
    assert {s.id for s in api.vector_stores.list(limit=100).data} == before  # nothing left


def test_the_printed_step_shows_the_query_and_what_was_found(console) -> None:
    from openai.types.beta.threads.runs import RunStep

    from ipyassistant.formatting import step_panel

    step = RunStep.model_validate(
        {
            "id": "step_1", "object": "thread.run.step", "assistant_id": "asst_1",
            "thread_id": "thread_1", "run_id": "run_1", "type": "tool_calls",
            "status": "completed", "created_at": 0, "cancelled_at": None, "completed_at": 0,
            "expired_at": None, "failed_at": None, "last_error": None, "usage": None,
            "step_details": {
                "type": "tool_calls",
                "tool_calls": [{"id": "fs_1", "type": "file_search", "file_search": {
                    "query": "harbour hours",
                    "results": [{"file_id": "file-a", "file_name": "tides.md", "score": 0.914}],
                }}],
            },
        }
    )
    console.print(step_panel(step))
    printed = console.file.getvalue()
    assert "🔎 file search  harbour hours" in printed and "tides.md  score 0.91" in printed
