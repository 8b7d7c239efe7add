"""Isolation between people's keys, for every route of the API, through the openai SDK.

Alice and Bob have keys of their own; Root has an admin key, and the server's ``--api-key``
is an admin too. Everything Alice makes (an assistant, a thread with its messages, a run and
its steps, files, a vector store with its files and a batch) is, for Bob, exactly as absent
as an object that never existed: the same 404 with the same message, for every route that
names it, and for every body that refers to it. Lists never show it to him. The admins see it.

The route table is the server's own (its OpenAPI paths): a new route fails
:func:`test_every_route_is_covered` until it has a case here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from _keys import make_key
from _servers import RunningServer, server_config
from ipyassistant.server import ServerConfig, create_app

Ids = dict[str, str]
Call = Callable[[openai.OpenAI, Ids], Any]

DOC = "The comet Vettrana returns every 41 years and glows a pale green."


class World:
    """The server, a client for each person, and the ids of what Alice and Bob made."""

    def __init__(self, running: RunningServer, keys: dict[str, str]):
        self.running = running
        self.clients = {
            name: openai.OpenAI(base_url=running.base_url, api_key=key, max_retries=0)
            for name, key in keys.items()
        }
        self.alice: Ids = {}
        self.bob: Ids = {}

    def ids(self) -> Ids:
        """Alice's ids, and Bob's under ``bob_*`` names."""
        return {**self.alice, **{f"bob_{k}": v for k, v in self.bob.items()}}


def _make(client: openai.OpenAI) -> Ids:
    """An assistant, a thread with a message, a completed run, files and an indexed store."""
    file = client.files.create(file=("notes.txt", b"some notes\n"), purpose="assistants")
    doc = client.files.create(file=("comet.txt", DOC.encode()), purpose="assistants")
    other = client.files.create(file=("more.txt", DOC.encode()), purpose="assistants")
    assistant = client.beta.assistants.create(model="test", name="mine")
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(thread.id, role="user", content="hello")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "completed", run.last_error
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    store = client.vector_stores.create(name="mine")
    client.vector_stores.files.create_and_poll(doc.id, vector_store_id=store.id, poll_interval_ms=20)
    batch = client.vector_stores.file_batches.create_and_poll(
        store.id, file_ids=[other.id], poll_interval_ms=20
    )
    return {
        "asst": assistant.id,
        "thread": thread.id,
        "msg": message.id,
        "run": run.id,
        "step": step.id,
        "file": file.id,
        "doc": doc.id,
        "vs": store.id,
        "batch": batch.id,
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("isolation")
    keys = {
        "alice": make_key(data_dir, "alice"),
        "bob": make_key(data_dir, "bob"),
        "root": make_key(data_dir, "root", admin=True),
    }
    running = RunningServer(server_config(data_dir))
    keys["server"] = running.api_key
    made = World(running, keys)
    made.alice = _make(made.clients["alice"])
    made.bob = _make(made.clients["bob"])
    yield made
    for client in made.clients.values():
        client.close()
    running.stop()
    assert not running.recorder.problems, "\n".join(running.recorder.problems)


# -- routes that name one of Alice's objects ---------------------------------------------------

_TOOL_OUTPUT = [{"tool_call_id": "call_x", "output": "1"}]

#: For each route that names an object in its path: the call, with the ids it uses.
NAMED: dict[tuple[str, str], Call] = {
    ("GET", "/assistants/{assistant_id}"): lambda c, i: c.beta.assistants.retrieve(i["asst"]),
    ("POST", "/assistants/{assistant_id}"): lambda c, i: c.beta.assistants.update(i["asst"], name="x"),
    ("DELETE", "/assistants/{assistant_id}"): lambda c, i: c.beta.assistants.delete(i["asst"]),
    ("GET", "/threads/{thread_id}"): lambda c, i: c.beta.threads.retrieve(i["thread"]),
    ("POST", "/threads/{thread_id}"): lambda c, i: c.beta.threads.update(i["thread"], metadata={}),
    ("DELETE", "/threads/{thread_id}"): lambda c, i: c.beta.threads.delete(i["thread"]),
    ("POST", "/threads/{thread_id}/messages"): lambda c, i: c.beta.threads.messages.create(
        i["thread"], role="user", content="x"
    ),
    ("GET", "/threads/{thread_id}/messages"): lambda c, i: c.beta.threads.messages.list(i["thread"]),
    ("GET", "/threads/{thread_id}/messages/{message_id}"): lambda c, i: c.beta.threads.messages.retrieve(
        i["msg"], thread_id=i["thread"]
    ),
    ("POST", "/threads/{thread_id}/messages/{message_id}"): lambda c, i: c.beta.threads.messages.update(
        i["msg"], thread_id=i["thread"], metadata={}
    ),
    ("DELETE", "/threads/{thread_id}/messages/{message_id}"): lambda c, i: c.beta.threads.messages.delete(
        i["msg"], thread_id=i["thread"]
    ),
    ("POST", "/threads/{thread_id}/runs"): lambda c, i: c.beta.threads.runs.create(
        i["thread"], assistant_id=i["bob_asst"]
    ),
    ("GET", "/threads/{thread_id}/runs"): lambda c, i: c.beta.threads.runs.list(i["thread"]),
    ("GET", "/threads/{thread_id}/runs/{run_id}"): lambda c, i: c.beta.threads.runs.retrieve(
        i["run"], thread_id=i["thread"]
    ),
    ("POST", "/threads/{thread_id}/runs/{run_id}"): lambda c, i: c.beta.threads.runs.update(
        i["run"], thread_id=i["thread"], metadata={}
    ),
    ("POST", "/threads/{thread_id}/runs/{run_id}/cancel"): lambda c, i: c.beta.threads.runs.cancel(
        i["run"], thread_id=i["thread"]
    ),
    (
        "POST",
        "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
    ): lambda c, i: c.beta.threads.runs.submit_tool_outputs(
        i["run"], thread_id=i["thread"], tool_outputs=_TOOL_OUTPUT
    ),
    ("GET", "/threads/{thread_id}/runs/{run_id}/steps"): lambda c, i: c.beta.threads.runs.steps.list(
        i["run"], thread_id=i["thread"]
    ),
    (
        "GET",
        "/threads/{thread_id}/runs/{run_id}/steps/{step_id}",
    ): lambda c, i: c.beta.threads.runs.steps.retrieve(i["step"], thread_id=i["thread"], run_id=i["run"]),
    ("GET", "/files/{file_id}"): lambda c, i: c.files.retrieve(i["file"]),
    ("DELETE", "/files/{file_id}"): lambda c, i: c.files.delete(i["file"]),
    ("GET", "/files/{file_id}/content"): lambda c, i: c.files.content(i["file"]).read(),
    ("GET", "/vector_stores/{vector_store_id}"): lambda c, i: c.vector_stores.retrieve(i["vs"]),
    ("POST", "/vector_stores/{vector_store_id}"): lambda c, i: c.vector_stores.update(i["vs"], name="x"),
    ("DELETE", "/vector_stores/{vector_store_id}"): lambda c, i: c.vector_stores.delete(i["vs"]),
    ("POST", "/vector_stores/{vector_store_id}/search"): lambda c, i: c.vector_stores.search(
        i["vs"], query="comet"
    ),
    ("POST", "/vector_stores/{vector_store_id}/files"): lambda c, i: c.vector_stores.files.create(
        vector_store_id=i["vs"], file_id=i["bob_file"]
    ),
    ("GET", "/vector_stores/{vector_store_id}/files"): lambda c, i: c.vector_stores.files.list(i["vs"]),
    (
        "GET",
        "/vector_stores/{vector_store_id}/files/{file_id}",
    ): lambda c, i: c.vector_stores.files.retrieve(i["doc"], vector_store_id=i["vs"]),
    (
        "POST",
        "/vector_stores/{vector_store_id}/files/{file_id}",
    ): lambda c, i: c.vector_stores.files.update(i["doc"], vector_store_id=i["vs"], attributes={"a": "b"}),
    (
        "DELETE",
        "/vector_stores/{vector_store_id}/files/{file_id}",
    ): lambda c, i: c.vector_stores.files.delete(i["doc"], vector_store_id=i["vs"]),
    (
        "GET",
        "/vector_stores/{vector_store_id}/files/{file_id}/content",
    ): lambda c, i: list(c.vector_stores.files.content(i["doc"], vector_store_id=i["vs"])),
    (
        "POST",
        "/vector_stores/{vector_store_id}/file_batches",
    ): lambda c, i: c.vector_stores.file_batches.create(i["vs"], file_ids=[i["bob_file"]]),
    (
        "GET",
        "/vector_stores/{vector_store_id}/file_batches/{batch_id}",
    ): lambda c, i: c.vector_stores.file_batches.retrieve(i["batch"], vector_store_id=i["vs"]),
    (
        "POST",
        "/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel",
    ): lambda c, i: c.vector_stores.file_batches.cancel(i["batch"], vector_store_id=i["vs"]),
    (
        "GET",
        "/vector_stores/{vector_store_id}/file_batches/{batch_id}/files",
    ): lambda c, i: c.vector_stores.file_batches.list_files(i["batch"], vector_store_id=i["vs"]),
}

# -- routes that create, with a body that refers to one of Alice's objects --------------------


def _attach(file_id: str, tool: str = "file_search") -> list[dict[str, Any]]:
    return [{"file_id": file_id, "tools": [{"type": tool}]}]


#: For each route that creates: calls whose bodies refer to one of Alice's objects.
REFERRING: dict[tuple[str, str], list[Call]] = {
    ("POST", "/assistants"): [
        lambda c, i: c.beta.assistants.create(
            model="test", tool_resources={"file_search": {"vector_store_ids": [i["vs"]]}}
        ),
        lambda c, i: c.beta.assistants.create(
            model="test", tool_resources={"code_interpreter": {"file_ids": [i["file"]]}}
        ),
    ],
    ("POST", "/threads"): [
        lambda c, i: c.beta.threads.create(
            messages=[{"role": "user", "content": "x", "attachments": _attach(i["file"])}]
        ),
        lambda c, i: c.beta.threads.create(
            tool_resources={"file_search": {"vector_store_ids": [i["vs"]]}}
        ),
        lambda c, i: c.beta.threads.create(
            tool_resources={"code_interpreter": {"file_ids": [i["file"]]}}
        ),
        lambda c, i: c.beta.threads.create(
            tool_resources={"file_search": {"vector_stores": [{"file_ids": [i["file"]]}]}}
        ),
    ],
    ("POST", "/threads/runs"): [
        lambda c, i: c.beta.threads.create_and_run(assistant_id=i["asst"]),
        lambda c, i: c.beta.threads.create_and_run(
            assistant_id=i["bob_asst"],
            thread={"messages": [{"role": "user", "content": "x", "attachments": _attach(i["file"])}]},
        ),
    ],
    ("POST", "/files"): [],  # refers to nothing; what it makes is Bob's (see the lists)
    ("POST", "/vector_stores"): [
        lambda c, i: c.vector_stores.create(file_ids=[i["file"]]),
    ],
}

#: Routes of Bob's own objects whose bodies refer to one of Alice's (each also in NAMED).
REFERRING_NAMED: list[Call] = [
    lambda c, i: c.beta.threads.runs.create(i["bob_thread"], assistant_id=i["asst"]),
    lambda c, i: c.beta.threads.runs.create(
        i["bob_thread"],
        assistant_id=i["bob_asst"],
        additional_messages=[{"role": "user", "content": "x", "attachments": _attach(i["file"])}],
    ),
    lambda c, i: c.beta.threads.messages.create(
        i["bob_thread"], role="user", content="x", attachments=_attach(i["file"], "code_interpreter")
    ),
    lambda c, i: c.beta.threads.messages.create(
        i["bob_thread"], role="user", content=[{"type": "image_file", "image_file": {"file_id": i["file"]}}]
    ),
    lambda c, i: c.beta.threads.update(
        i["bob_thread"], tool_resources={"file_search": {"vector_store_ids": [i["vs"]]}}
    ),
    lambda c, i: c.beta.assistants.update(
        i["bob_asst"], tool_resources={"code_interpreter": {"file_ids": [i["file"]]}}
    ),
    lambda c, i: c.vector_stores.files.create(vector_store_id=i["bob_vs"], file_id=i["file"]),
    lambda c, i: c.vector_stores.file_batches.create(i["bob_vs"], file_ids=[i["doc"]]),
]

#: Lists of top-level objects: filtered, not refused.
LISTS = {
    ("GET", "/assistants"): (lambda c: c.beta.assistants.list(limit=100), "asst"),
    ("GET", "/files"): (lambda c: c.files.list(), "file"),
    ("GET", "/vector_stores"): (lambda c: c.vector_stores.list(limit=100), "vs"),
}


def _routes() -> set[tuple[str, str]]:
    app = create_app(ServerConfig(data_dir=Path("/nonexistent-isolation-test")))
    return {
        (method.upper(), path.removeprefix("/v1"))
        for path, methods in app.openapi()["paths"].items()
        if path.startswith("/v1/")
        for method in methods
    }


def test_every_route_is_covered():
    assert set(NAMED) | set(REFERRING) | set(LISTS) == _routes()


def _missing(ids: Ids) -> Ids:
    """The same ids, Alice's replaced by ids no object has (Bob's kept)."""
    return {
        k: v if k.startswith("bob_") else re.sub(r"[0-9a-f]{24}$", uuid.uuid4().hex[:24], v)
        for k, v in ids.items()
    }


def _refused(call: Call, client: openai.OpenAI, ids: Ids) -> dict[str, Any]:
    with pytest.raises(openai.NotFoundError) as info:
        call(client, ids)
    body = info.value.body
    assert isinstance(body, dict)
    return body


def _as_if_absent(world: World, call: Call) -> None:
    """Bob's call on Alice's ids fails exactly as on ids of nothing: 404, the same body."""
    bob = world.clients["bob"]
    ids = world.ids()
    seen = _refused(call, bob, ids)
    missing = _missing(ids)
    absent = _refused(call, bob, missing)
    for key, value in ids.items():
        absent = {
            k: v.replace(missing[key], value) if isinstance(v, str) else v for k, v in absent.items()
        }
    assert seen == absent


@pytest.mark.parametrize("route", sorted(NAMED), ids=" ".join)
def test_another_keys_object_is_absent(world, route):
    _as_if_absent(world, NAMED[route])


@pytest.mark.parametrize(
    "call",
    [call for calls in REFERRING.values() for call in calls] + REFERRING_NAMED,
)
def test_another_keys_object_cannot_be_referred_to(world, call):
    _as_if_absent(world, call)


@pytest.mark.parametrize("route", sorted(LISTS), ids=" ".join)
def test_lists_show_only_the_callers_objects(world, route):
    listed, kind = LISTS[route]

    def ids(name: str) -> set[str]:
        return {obj.id for obj in listed(world.clients[name])}

    alice, bob = world.alice[kind], world.bob[kind]
    assert alice in ids("alice") and bob not in ids("alice")
    assert bob in ids("bob") and alice not in ids("bob")
    for admin in ("root", "server"):
        assert {alice, bob} <= ids(admin)


_READS = sorted(route for route in NAMED if route[0] == "GET")


@pytest.mark.parametrize("admin", ["root", "server"])
@pytest.mark.parametrize("route", _READS, ids=" ".join)
def test_an_admin_sees_everyones_objects(world, route, admin):
    NAMED[route](world.clients[admin], world.ids())


def test_a_cursor_naming_another_keys_object_is_as_unknown(world):
    bob = world.clients["bob"]
    with pytest.raises(openai.BadRequestError) as info:
        bob.beta.assistants.list(after=world.alice["asst"])
    assert info.value.body["param"] == "after"  # type: ignore[index]


def test_what_runs_make_belongs_to_the_threads_owner(world):
    # Root (an admin) runs Alice's assistant on Alice's thread: the run, its reply and its
    # steps are Alice's, and a file_search attachment gives her thread a store of hers.
    root, alice, bob = (world.clients[n] for n in ("root", "alice", "bob"))
    thread = world.alice["thread"]
    root.beta.threads.messages.create(
        thread, role="user", content="see this", attachments=_attach(world.alice["doc"])
    )
    run = root.beta.threads.runs.create_and_poll(
        thread_id=thread, assistant_id=world.alice["asst"], poll_interval_ms=20
    )
    assert run.status == "completed", run.last_error
    assert alice.beta.threads.runs.retrieve(run.id, thread_id=thread).id == run.id
    steps = alice.beta.threads.runs.steps.list(run.id, thread_id=thread).data
    reply = steps[0].step_details.message_creation.message_id  # type: ignore[union-attr]
    assert alice.beta.threads.messages.retrieve(reply, thread_id=thread).role == "assistant"
    store_id = alice.beta.threads.retrieve(thread).tool_resources.file_search.vector_store_ids[0]  # type: ignore[union-attr]
    assert alice.vector_stores.retrieve(store_id).id == store_id
    with pytest.raises(openai.NotFoundError):
        bob.vector_stores.retrieve(store_id)


def test_files_a_run_saves_belong_to_the_threads_owner(world):
    # The code interpreter writes the files the code saves as Files API files: Alice's.
    alice, bob = world.clients["alice"], world.clients["bob"]
    coder = alice.beta.assistants.create(model="test", tools=[{"type": "code_interpreter"}])
    code = "import os\nos.makedirs('output', exist_ok=True)\nopen('output/a.txt', 'w').write('hi')"
    thread = alice.beta.threads.create(
        messages=[{"role": "user", "content": f"```python\n{code}\n```"}]
    )
    run = alice.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=coder.id, poll_interval_ms=20
    )
    assert run.status == "completed", run.last_error
    reply = alice.beta.threads.messages.list(thread.id, run_id=run.id).data[0].content[0]
    (file_id,) = {a.file_path.file_id for a in reply.text.annotations if a.type == "file_path"}  # type: ignore[union-attr]
    assert alice.files.content(file_id).read() == b"hi"
    assert file_id in {f.id for f in alice.files.list()}
    with pytest.raises(openai.NotFoundError):
        bob.files.content(file_id)
    assert file_id not in {f.id for f in bob.files.list()}


def test_deleting_a_file_takes_it_out_of_an_admins_store_too(world):
    alice, root = world.clients["alice"], world.clients["root"]
    file = alice.files.create(file=("gone.txt", DOC.encode()), purpose="assistants")
    store = root.vector_stores.create(file_ids=[file.id])
    assert alice.files.delete(file.id).deleted
    assert [f.id for f in root.vector_stores.files.list(store.id)] == []
