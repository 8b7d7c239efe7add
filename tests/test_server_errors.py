"""Errors: real status codes and OpenAI's ``{"error": {message, type, param, code}}`` body.

Raw ``httpx`` requests where the SDK cannot send the mistake (malformed JSON, a missing
required field), the SDK and its exception classes everywhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from _wait import wait_until

pytestmark = pytest.mark.both_databases  # SQLite and PostgreSQL (conftest.py)


@pytest.fixture
def http(server) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}, timeout=30
    ) as c:
        yield c


@pytest.fixture
def anonymous(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        yield c


@pytest.fixture
def assistant(client):
    return client.beta.assistants.create(model="test")


def error_of(
    response: httpx.Response, status: int, *, param: Any = ..., code: Any = ...
) -> dict[str, Any]:
    """The ``error`` object of an OpenAI-shaped error response, after checking its shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body  # never FastAPI's {"detail": ...}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert error["param"] is None or isinstance(error["param"], str)
    assert error["code"] is None or isinstance(error["code"], str)
    if param is not ...:
        assert error["param"] == param, error
    if code is not ...:
        assert error["code"] == code, error
    return error


def sdk_error(
    exc: pytest.ExceptionInfo[openai.APIStatusError], status: int, **kwargs: Any
) -> dict[str, Any]:
    error = error_of(exc.value.response, status, **kwargs)
    assert (exc.value.code, exc.value.param, exc.value.type) == (
        error["code"],
        error["param"],
        error["type"],
    )
    return error


# -- 400: the request body --------------------------------------------------------------


def test_malformed_json_is_a_400(http):
    response = http.post(
        "/assistants", content=b'{"model": "test",', headers={"Content-Type": "application/json"}
    )
    error = error_of(response, 400, code="invalid_json")
    assert error["type"] == "invalid_request_error"


def test_a_body_that_is_not_an_object_is_a_400(http):
    error_of(http.post("/assistants", json=["model", "test"]), 400)
    error_of(http.post("/assistants", json="test"), 400)


def test_a_missing_required_field_names_it(http, client):
    error = error_of(http.post("/assistants", json={"name": "x"}), 400, param="model")
    assert "model" in error["message"]
    thread = client.beta.threads.create()
    error = error_of(
        http.post(f"/threads/{thread.id}/messages", json={"content": "x"}), 400, param="role"
    )
    assert "role" in error["message"]
    error_of(http.post(f"/threads/{thread.id}/runs", json={}), 400, param="assistant_id")
    error_of(
        http.post("/threads", json={"messages": [{"role": "user"}]}),
        400,
        param="messages[0].content",
    )


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/assistants",
            {"model": "test", "tools": [{"type": "function", "function": {}}]},
            "tools[0].function.name",
        ),
        ("/assistants", {"model": "test", "tools": [{"type": "retrieval"}]}, "tools[0]"),
        (
            "/assistants",
            {"model": "test", "response_format": {"type": "json_schema", "json_schema": {}}},
            "response_format.json_schema.name",
        ),
        ("/assistants", {"model": "test", "response_format": "yaml"}, "response_format"),
        ("/assistants", {"model": "test", "metadata": {"a": 1}}, "metadata.a"),
        (
            "/threads",
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
        ),
        ("/threads", {"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            "THREAD/messages",
            {
                "role": "user",
                "content": [
                    {"type": "image_file", "image_file": {"file_id": "f", "detail": "huge"}}
                ],
            },
            "content[0].image_file.detail",
        ),
        ("THREAD/messages", {"role": "user", "content": ["x"]}, "content[0]"),
        ("THREAD/messages", {"role": "user", "content": []}, "content"),
        (
            "THREAD/runs",
            {"assistant_id": "a", "tool_choice": {"type": "function", "function": {}}},
            "tool_choice.function.name",
        ),
        (
            "THREAD/runs",
            {"assistant_id": "a", "truncation_strategy": {"type": "sometimes"}},
            "truncation_strategy.type",
        ),
    ],
)
def test_a_nested_error_names_its_path_in_the_body(http, client, path, body, param):
    # Not pydantic's location, which adds union members and discriminator tags.
    path = path.replace("THREAD", f"/threads/{client.beta.threads.create().id}")
    error = error_of(http.post(path, json=body), 400, param=param)
    assert param in error["message"]


def test_unknown_fields_are_refused(client):
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="test", extra_body={"colour": "blue"})
    assert "colour" in sdk_error(exc, 400, param="colour")["message"]
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.create(
            thread.id, role="user", content="x", extra_body={"file_ids": []}
        )
    sdk_error(exc, 400, param="file_ids")


def test_bad_enum_values_are_refused(client, assistant):
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.create(thread.id, role="system", content="x")  # type: ignore[arg-type]
    sdk_error(exc, 400, param="role")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.list(thread.id, order="sideways")  # type: ignore[arg-type]
    sdk_error(exc, 400, param="order")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="test", tools=[{"type": "retrieval"}])  # type: ignore[list-item]
    assert sdk_error(exc, 400)["param"].startswith("tools[0]")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread.id, assistant_id=assistant.id, tool_choice="sometimes"
        )  # type: ignore[arg-type]
    assert sdk_error(exc, 400)["param"].startswith("tool_choice")
    # Nothing was started by the refused run.
    assert client.beta.threads.runs.list(thread.id).data == []


def test_out_of_range_numbers_are_refused(client):
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="test", temperature=2.5)
    sdk_error(exc, 400, param="temperature")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="test", top_p=-0.1)
    sdk_error(exc, 400, param="top_p")


@pytest.mark.parametrize("limit", [0, 101, -1])
def test_list_limit_must_be_between_1_and_100(client, assistant, limit):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    calls = [
        lambda: client.beta.assistants.list(limit=limit),
        lambda: client.beta.threads.messages.list(thread.id, limit=limit),
        lambda: client.beta.threads.runs.list(thread.id, limit=limit),
        lambda: client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, limit=limit),
    ]
    for call in calls:
        with pytest.raises(openai.BadRequestError) as exc:
            call()
        assert "limit" in sdk_error(exc, 400, param="limit")["message"]


def test_list_limits_1_and_100_are_accepted(client):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    assert len(client.beta.threads.messages.list(thread.id, limit=1).data) == 1
    assert len(client.beta.threads.messages.list(thread.id, limit=100).data) == 1
    assert len(client.beta.assistants.list(limit=100).data) <= 100


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/assistants/asst_%00", 404),
        ("/threads/thread_%00x/messages", 404),
        ("/vector_stores/vs_%00/files", 404),
        ("/assistants?after=asst_%00", 400),
    ],
)
def test_an_id_holding_a_nul_is_not_found(http, path, status):
    """No id holds one; PostgreSQL's text cannot hold one at all (a 404, not a 500)."""
    response = http.get(path)
    assert response.status_code == status, response.text


def test_a_non_integer_limit_is_a_400(http, client):
    thread = client.beta.threads.create()
    error_of(
        http.get(f"/threads/{thread.id}/messages", params={"limit": "many"}), 400, param="limit"
    )


def test_an_unknown_cursor_is_a_400(client):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.list(thread.id, after="msg_doesnotexist")
    assert "msg_doesnotexist" in sdk_error(exc, 400, param="after")["message"]
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.messages.list(thread.id, before="msg_doesnotexist")
    sdk_error(exc, 400, param="before")


# -- metadata limits ----------------------------------------------------------------------

TOO_MANY_KEYS = {f"k{i}": "v" for i in range(17)}
LONG_KEY = {"k" * 65: "v"}
LONG_VALUE = {"k": "v" * 513}


@pytest.mark.parametrize(
    "metadata",
    [TOO_MANY_KEYS, LONG_KEY, LONG_VALUE],
    ids=["17 keys", "65-char key", "513-char value"],
)
def test_metadata_limits(client, assistant, metadata):
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(thread.id, role="user", content="x")
    calls = [
        lambda: client.beta.assistants.create(model="test", metadata=metadata),
        lambda: client.beta.assistants.update(assistant.id, metadata=metadata),
        lambda: client.beta.threads.create(metadata=metadata),
        lambda: client.beta.threads.update(thread.id, metadata=metadata),
        lambda: client.beta.threads.messages.create(
            thread.id, role="user", content="x", metadata=metadata
        ),
        lambda: client.beta.threads.messages.update(
            message.id, thread_id=thread.id, metadata=metadata
        ),
        lambda: client.beta.threads.runs.create(
            thread.id, assistant_id=assistant.id, metadata=metadata
        ),
    ]
    for call in calls:
        with pytest.raises(openai.BadRequestError) as exc:
            call()
        assert "metadata" in sdk_error(exc, 400, param="metadata")["message"]
    # Nothing was written by the refused requests.
    assert client.beta.assistants.retrieve(assistant.id).metadata == {}
    assert client.beta.threads.retrieve(thread.id).metadata == {}
    assert [m.id for m in client.beta.threads.messages.list(thread.id)] == [message.id]
    assert client.beta.threads.runs.list(thread.id).data == []


def test_metadata_at_the_limits_is_accepted(client):
    metadata = {f"k{i:02d}" + "x" * 61: "v" * 512 for i in range(16)}
    assert all(len(k) == 64 for k in metadata)
    assert client.beta.assistants.create(model="test", metadata=metadata).metadata == metadata
    assert client.beta.threads.create(metadata=metadata).metadata == metadata


# -- models and tools ---------------------------------------------------------------------


def test_an_unknown_model_is_a_400_that_lists_the_available_ones(client, assistant):
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="gpt-imaginary")
    error = sdk_error(exc, 400, param="model")
    assert "gpt-imaginary" in error["message"] and "test" in error["message"]
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.update(assistant.id, model="gpt-imaginary")
    sdk_error(exc, 400, param="model")
    assert client.beta.assistants.retrieve(assistant.id).model == "test"
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(thread.id, assistant_id=assistant.id, model="gpt-imaginary")
    sdk_error(exc, 400, param="model")
    assert client.beta.threads.runs.list(thread.id).data == []


def test_the_file_search_tool_is_accepted_but_unknown_vector_stores_are_404s(client, assistant):
    created = client.beta.assistants.create(model="test", tools=[{"type": "file_search"}])
    assert [t.type for t in created.tools] == ["file_search"]
    updated = client.beta.assistants.update(
        assistant.id, tools=[{"type": "code_interpreter"}, {"type": "file_search"}]
    )
    assert [t.type for t in updated.tools] == ["code_interpreter", "file_search"]
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.assistants.create(
            model="test",
            tools=[{"type": "file_search"}],
            tool_resources={"file_search": {"vector_store_ids": ["vs_nope"]}},
        )
    assert "vs_nope" in sdk_error(
        exc, 404, param="tool_resources.file_search.vector_store_ids[0]"
    )["message"]
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.create(tool_resources={"file_search": {"vector_store_ids": ["vs_nope"]}})
    sdk_error(exc, 404, param="tool_resources.file_search.vector_store_ids[0]")
    thread = client.beta.threads.create()
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.threads.update(
            thread.id, tool_resources={"file_search": {"vector_store_ids": ["vs_nope"]}}
        )
    sdk_error(exc, 404, param="tool_resources.file_search.vector_store_ids[0]")
    assert client.beta.threads.retrieve(thread.id).tool_resources.file_search is None


def test_duplicate_function_names_are_refused(client):
    tool = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
    }
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="test", tools=[tool, tool])
    sdk_error(exc, 400, param="tools[1].function.name")


def test_tool_choice_must_name_one_of_the_runs_tools(client, assistant):
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread.id,
            assistant_id=assistant.id,
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    sdk_error(exc, 400, param="tool_choice")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.threads.runs.create(
            thread.id, assistant_id=assistant.id, tool_choice={"type": "code_interpreter"}
        )
    sdk_error(exc, 400, param="tool_choice")
    # The refused runs did not take the thread's lock.
    client.beta.threads.messages.create(thread.id, role="user", content="still usable")


# -- 401 ----------------------------------------------------------------------------------


def test_a_missing_key_is_a_401(anonymous):
    error = error_of(anonymous.get("/assistants"), 401, code="missing_api_key")
    assert error["type"] == "invalid_request_error"
    error_of(anonymous.post("/threads", json={}), 401)
    error_of(anonymous.get("/assistants", headers={"Authorization": "Bearer"}), 401)
    error_of(anonymous.get("/assistants", headers={"Authorization": "Basic c2stdGVzdC1rZXk="}), 401)


def test_a_wrong_key_is_a_401(server, client):
    assistant = client.beta.assistants.create(model="test")
    with openai.OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError) as exc:
            wrong.beta.assistants.retrieve(assistant.id)
        sdk_error(exc, 401, code="invalid_api_key")
        with pytest.raises(openai.AuthenticationError):
            wrong.beta.assistants.delete(assistant.id)
        with pytest.raises(openai.AuthenticationError):
            wrong.beta.assistants.create(model="test")
    assert client.beta.assistants.retrieve(assistant.id).id == assistant.id


def test_a_key_that_only_starts_like_the_right_one_is_refused(server, anonymous):
    for key in (server.api_key + "x", server.api_key[:-1], server.api_key.upper()):
        error_of(
            anonymous.get("/assistants", headers={"Authorization": f"Bearer {key}"}),
            401,
            code="invalid_api_key",
        )


def test_authentication_comes_before_reading_the_body(anonymous):
    # An unauthenticated caller learns nothing about the request: 401, whatever the body.
    headers = {"Content-Type": "application/json"}
    error_of(anonymous.post("/assistants", content=b"{not json", headers=headers), 401)
    error_of(anonymous.post("/assistants", json={"unknown": 1}), 401)
    error_of(anonymous.get("/assistants", params={"limit": 0}), 401)
    wrong = {**headers, "Authorization": "Bearer sk-wrong"}
    error_of(
        anonymous.post("/assistants", content=b"{not json", headers=wrong),
        401,
        code="invalid_api_key",
    )


# -- 404 ----------------------------------------------------------------------------------


def _not_found(call: Any, object_id: str, param: Any = ...) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        call()
    error = sdk_error(exc, 404, param=param)
    assert object_id in error["message"]


def test_unknown_ids_are_404s(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    a, t, m, r, s, f = "asst_nope", "thread_nope", "msg_nope", "run_nope", "step_nope", "file-nope"
    beta = client.beta
    _not_found(lambda: beta.assistants.retrieve(a), a)
    _not_found(lambda: beta.assistants.update(a, name="x"), a)
    _not_found(lambda: beta.assistants.delete(a), a)
    _not_found(lambda: beta.threads.retrieve(t), t)
    _not_found(lambda: beta.threads.update(t, metadata={}), t)
    _not_found(lambda: beta.threads.delete(t), t)
    _not_found(lambda: beta.threads.messages.create(t, role="user", content="x"), t)
    _not_found(lambda: beta.threads.messages.list(t), t)
    _not_found(lambda: beta.threads.messages.retrieve(m, thread_id=thread.id), m)
    _not_found(lambda: beta.threads.messages.update(m, thread_id=thread.id, metadata={}), m)
    _not_found(lambda: beta.threads.messages.delete(m, thread_id=thread.id), m)
    _not_found(lambda: beta.threads.runs.create(t, assistant_id=assistant.id), t)
    _not_found(lambda: beta.threads.runs.list(t), t)
    _not_found(lambda: beta.threads.runs.retrieve(r, thread_id=thread.id), r)
    _not_found(lambda: beta.threads.runs.update(r, thread_id=thread.id, metadata={}), r)
    _not_found(lambda: beta.threads.runs.cancel(r, thread_id=thread.id), r)
    _not_found(
        lambda: beta.threads.runs.submit_tool_outputs(r, thread_id=thread.id, tool_outputs=[]), r
    )
    _not_found(lambda: beta.threads.runs.steps.list(r, thread_id=thread.id), r)
    _not_found(lambda: beta.threads.runs.steps.retrieve(s, thread_id=thread.id, run_id=run.id), s)
    _not_found(lambda: client.files.retrieve(f), f)
    _not_found(lambda: client.files.delete(f), f)
    _not_found(lambda: client.files.content(f), f)


def test_unknown_ids_in_a_body_name_the_param(client):
    thread = client.beta.threads.create()
    _not_found(
        lambda: client.beta.threads.runs.create(thread.id, assistant_id="asst_nope"),
        "asst_nope",
        "assistant_id",
    )
    _not_found(
        lambda: client.beta.threads.messages.create(
            thread.id,
            role="user",
            content="x",
            attachments=[{"file_id": "file-nope", "tools": [{"type": "code_interpreter"}]}],
        ),
        "file-nope",
        "attachments[0].file_id",
    )
    _not_found(
        lambda: client.beta.threads.messages.create(
            thread.id,
            role="user",
            content=[{"type": "image_file", "image_file": {"file_id": "file-nope"}}],
        ),
        "file-nope",
        "content[0].image_file.file_id",
    )
    _not_found(
        lambda: client.beta.threads.create(
            messages=[{"role": "user", "content": "x", "attachments": [{"file_id": "file-nope"}]}]
        ),
        "file-nope",
        "messages[0].attachments[0].file_id",
    )
    # The refused requests wrote nothing: no message, no run, no lock.
    assert client.beta.threads.messages.list(thread.id).data == []
    assert client.beta.threads.runs.list(thread.id).data == []


def test_unknown_urls_are_404s(http):
    for method, path in [
        ("GET", "/nope"),
        ("POST", "/threads/thread_x/nope"),
        ("GET", "/assistants/asst_x/extra/parts"),
        ("GET", "/vector_stores/vs_x/nope"),
    ]:
        error = error_of(http.request(method, path), 404)
        assert path in error["message"]
    error_of(http.get(str(http.base_url).replace("/v1/", "/nowhere")), 404)


def test_a_wrong_method_is_a_405_in_the_error_shape(http):
    error_of(http.put("/assistants", json={}), 405)
    error_of(http.patch("/threads/thread_x", json={}), 405)


# -- a thread with an active run ----------------------------------------------------------


def test_a_busy_thread_refuses_messages_and_runs_naming_the_active_run(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "/sleep 5\nhello"}])
    run = client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    try:
        assert run.status == "queued"
        with pytest.raises(openai.BadRequestError) as exc:
            client.beta.threads.messages.create(thread.id, role="user", content="more")
        error = sdk_error(exc, 400, code="thread_locked")
        assert run.id in error["message"]
        with pytest.raises(openai.BadRequestError) as exc:
            client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
        assert run.id in sdk_error(exc, 400, code="thread_locked")["message"]
        with pytest.raises(openai.BadRequestError) as exc:
            client.beta.threads.runs.create(thread.id, assistant_id=assistant.id, stream=True)
        assert run.id in sdk_error(exc, 400)["message"]
        with pytest.raises(openai.BadRequestError) as exc:
            client.beta.threads.delete(thread.id)
        assert run.id in sdk_error(exc, 400)["message"]
        first = client.beta.threads.messages.list(thread.id).data[0]
        with pytest.raises(openai.BadRequestError) as exc:
            client.beta.threads.messages.delete(first.id, thread_id=thread.id)
        assert run.id in sdk_error(exc, 400)["message"]
        # The refusals wrote nothing.
        assert [r.id for r in client.beta.threads.runs.list(thread.id)] == [run.id]
        assert [m.role for m in client.beta.threads.messages.list(thread.id)] == ["user"]
        # Reading and updating metadata stay possible.
        client.beta.threads.update(thread.id, metadata={"busy": "yes"})
        assert client.beta.threads.runs.update(
            run.id, thread_id=thread.id, metadata={"k": "v"}
        ).metadata == {"k": "v"}
    finally:
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
        wait_until(
            lambda: (
                client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "cancelled"
            ),
            message="the run to be cancelled",
        )
    # Once the run is over, the thread takes messages again.
    client.beta.threads.messages.create(thread.id, role="user", content="after")
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).metadata == {"k": "v"}
