"""Robust under any input: what fuzzing and hand-made requests once broke, one test each.

Spec'd fields are kept, not dropped or crashed on; text that is not Unicode is refused with its
path and cannot break reads; nullability and types follow the spec; every 400 has a code; a
body over the limit is a 413 before it is read; an unexpected error is one logged 500 on a
connection that stays usable.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from http.client import HTTPConnection
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ipyassistant.server.schemas import ModifyAssistant
from ipyassistant.server.store import Store, Tx
from test_server_errors import error_of

pytestmark = pytest.mark.both_databases  # SQLite and PostgreSQL (conftest.py)


@pytest.fixture
def http(server) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}, timeout=30
    ) as c:
        yield c


def _raw(http: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return http.post(path, content=body, headers={"Content-Type": "application/json"})


# -- spec'd fields ------------------------------------------------------------------------


@pytest.mark.parametrize("effort", ["low", "max", None])
def test_reasoning_effort_is_kept_on_create_and_update(http, effort):
    created = http.post("/assistants", json={"model": "test", "reasoning_effort": "high"})
    assert created.json()["reasoning_effort"] == "high"
    updated = http.post(f"/assistants/{created.json()['id']}", json={"reasoning_effort": effort})
    assert updated.status_code == 200, updated.text
    assert updated.json()["reasoning_effort"] == effort
    assert http.get(f"/assistants/{created.json()['id']}").json()["reasoning_effort"] == effort


def test_every_assistant_field_a_request_can_set_is_on_the_object(http):
    assistant = http.post("/assistants", json={"model": "test"}).json()
    assert set(ModifyAssistant.model_fields) <= set(assistant)


# -- Unicode ------------------------------------------------------------------------------

CESU_SURROGATE = b"\xed\xa0\x80"  # U+D800 as UTF-8-style bytes: not UTF-8
ESCAPED_SURROGATE = b"\\ud800"


@pytest.mark.parametrize("surrogate", [CESU_SURROGATE, ESCAPED_SURROGATE])
def test_text_that_is_not_unicode_is_refused_with_its_path(http, surrogate):
    thread = http.post("/threads", json={}).json()["id"]
    assistant = http.post("/assistants", json={"model": "test"}).json()["id"]
    text = b'"a' + surrogate + b'b"'
    cases = [
        (f"/threads/{thread}/messages", b'{"role": "user", "content": ' + text + b"}", "content"),
        ("/threads", b'{"messages": [{"role": "user", "content": ' + text + b"}]}", "messages[0].content"),
        (
            "/threads/runs",
            b'{"assistant_id": "' + assistant.encode() + b'", "thread": {"messages": '
            b'[{"role": "user", "content": [{"type": "text", "text": ' + text + b"}]}]}}",
            "thread.messages[0].content[0].text",
        ),
        (f"/assistants/{assistant}", b'{"metadata": {"k": ' + text + b"}}", "metadata.k"),
        (f"/assistants/{assistant}", b'{"metadata": {' + text + b': "v"}}', "metadata"),
        ("/assistants", b'{"model": "test", "name": ' + text + b"}", "name"),
    ]
    for path, body, param in cases:
        error = error_of(_raw(http, path, body), 400, param=param, code="invalid_value")
        assert "Unicode" in error["message"]
    assert http.get(f"/threads/{thread}/messages").status_code == 200
    assert http.get(f"/assistants/{assistant}").status_code == 200
    assert http.get("/assistants", params={"limit": 1}).status_code == 200


def test_bytes_that_are_not_utf8_are_a_400(http):
    error_of(_raw(http, "/assistants", b'{"model": "\xff"}'), 400, code="invalid_json")


def test_text_stored_before_the_check_does_not_break_reads(server, http):
    assistant = http.post("/assistants", json={"model": "test"}).json()["id"]
    thread = http.post("/threads", json={"messages": [{"role": "user", "content": "x"}]}).json()["id"]

    async def poison(tx: Tx) -> None:
        obj = await tx.get("assistant", assistant)
        await tx.update("assistant", {**obj, "metadata": {"k": "\ud800"}})
        message = (await tx.thread_messages(thread))[0]
        await tx.update("message", {**message, "content": [{"type": "text", "text": {"value": "\udfff", "annotations": []}}]})

    async def write() -> None:
        store = Store.from_url(server.config.resolved_database_url)
        try:
            async with store.tx() as tx:
                await poison(tx)
        finally:
            await store.close()

    asyncio.run(write())
    for response in (
        http.get(f"/assistants/{assistant}"),
        http.get("/assistants", params={"limit": 1, "order": "desc"}),
        http.post(f"/assistants/{assistant}", json={"name": "renamed"}),
        http.get(f"/threads/{thread}/messages"),
    ):
        assert response.status_code == 200, response.text
        json.loads(response.content.decode("utf-8"))  # still UTF-8 and JSON
    assert http.get(f"/assistants/{assistant}").json()["metadata"] == {"k": "\ud800"}
    http.post(f"/assistants/{assistant}", json={"metadata": {}})  # leave the shared server clean


# -- nullability and types ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "param", "code"),
    [
        ("/assistants", {"model": "test", "tools": None}, "tools", "invalid_type"),
        ("/assistants", {"model": "test", "tool_resources": {"file_search": None}}, "tool_resources.file_search", "invalid_type"),
        ("/assistants", {"model": "test", "temperature": False}, "temperature", "invalid_type"),
        ("/assistants", {"model": "test", "top_p": False}, "top_p", "invalid_type"),
        ("/assistants", {"model": "test", "temperature": "1"}, "temperature", "invalid_type"),
        ("/assistants", {"model": "test", "temperature": 3}, "temperature", "integer_above_max_value"),
        ("/assistants", {"model": "test", "top_p": -0.5}, "top_p", "decimal_below_min_value"),
        ("/assistants", {"model": "test", "name": "x" * 257}, "name", "string_above_max_length"),
        (
            "/assistants",
            {"model": "test", "tool_resources": {"file_search": {"vector_stores": [{"file_ids": "f"}]}}},
            "tool_resources.file_search.vector_stores[0].file_ids",
            "invalid_type",
        ),
        (
            "/assistants",
            {"model": "test", "tool_resources": {"file_search": {"vector_store_ids": ["a"], "vector_stores": []}}},
            "tool_resources.file_search",
            "invalid_value",
        ),
        ("/threads", {"messages": None}, "messages", "invalid_type"),
        (
            "/threads",
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": ""}}]}]},
            "messages[0].content[0].image_url.url",
            "invalid_value",
        ),
        ("/threads", {"messages": []}, None, None),
    ],
)
def test_types_and_nullability_follow_the_spec(http, path, body, param, code):
    response = http.post(path, json=body)
    if param is None:
        assert response.status_code == 200, response.text
        return
    error = error_of(response, 400, param=param, code=code)
    assert param in error["message"]


def test_a_body_of_null_is_refused_and_no_body_is_an_empty_object(http):
    error_of(_raw(http, "/threads", b"null"), 400, code="invalid_type")
    assert http.post("/threads").status_code == 200
    assert http.post("/threads", content=b"", headers={"Content-Type": "application/json"}).status_code == 200


def test_expires_after_on_an_upload_is_refused_by_name(http):
    response = http.post(
        "/files",
        files={"file": ("a.txt", b"a")},
        data={"purpose": "assistants", "expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"},
    )
    error_of(response, 400, param="expires_after")
    error_of(
        http.post("/files", files={"file": ("a.txt", b"a")}, data={"purpose": "assistants", "colour": "x"}),
        400,
        param="colour",
        code="unknown_parameter",
    )


# -- error wording ------------------------------------------------------------------------


def test_an_empty_body_names_the_missing_parameter(http):
    error = error_of(_raw(http, "/assistants", b""), 400, param="model", code="missing_required_parameter")
    assert error["message"] == "Missing required parameter: 'model'."


def test_an_empty_key_is_named_not_none(http):
    error = error_of(http.post("/assistants", json={"model": "test", "": 1}), 400, code="unknown_parameter")
    assert "None" not in error["message"]


def test_every_validation_400_has_a_code(http):
    thread = http.post("/threads", json={}).json()["id"]
    for path, body in [
        ("/assistants", {"model": "test", "tools": [{"type": "retrieval"}]}),
        ("/assistants", {"model": "test", "response_format": "yaml"}),
        ("/assistants", {"model": "test", "metadata": {"a": 1}}),
        (f"/threads/{thread}/messages", {"role": "robot", "content": "x"}),
        (f"/threads/{thread}/runs", {"assistant_id": "a", "max_prompt_tokens": 1}),
    ]:
        assert error_of(http.post(path, json=body), 400)["code"], (path, body)
    assert error_of(http.get("/assistants", params={"limit": 0}), 400)["code"]


# -- limits and failures ------------------------------------------------------------------


def test_a_body_over_the_limit_is_a_413_before_it_is_read(make_server):
    server = make_server(max_request_mb=1)
    big = json.dumps({"role": "user", "content": "x" * (2 << 20)}).encode()
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}, timeout=30
    ) as c:
        thread = c.post("/threads", json={}).json()["id"]
        error_of(c.post(f"/threads/{thread}/messages", content=big), 413, code="request_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for i in range(0, len(big), 1 << 16):
                yield big[i : i + (1 << 16)]

        error_of(c.post(f"/threads/{thread}/messages", content=chunks()), 413, code="request_too_large")
        small = c.post(f"/threads/{thread}/messages", json={"role": "user", "content": "x"})
        assert small.status_code == 200
        # Uploads have their own limit.
        upload = c.post(
            "/files",
            files={"file": ("big.bin", b"\0" * (2 << 20))},
            data={"purpose": "assistants"},
        )
        assert upload.status_code == 200, upload.text


def test_an_unexpected_error_is_one_logged_500_on_a_connection_that_stays_open(
    server, monkeypatch, caplog
):
    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("boom")

    url = urlsplit(server.base_url)
    connection = HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"Authorization": f"Bearer {server.api_key}"}
    connection.request("GET", f"{url.path}/assistants", headers=headers)
    connection.getresponse().read()
    sock = connection.sock
    monkeypatch.setattr(Tx, "page_keys", broken)
    with caplog.at_level(logging.ERROR):
        connection.request("GET", f"{url.path}/assistants", headers=headers)
        response = connection.getresponse()
        body = json.loads(response.read())
    assert response.status == 500
    assert body["error"]["type"] == "server_error" and "RuntimeError" in body["error"]["message"]
    assert response.getheader("connection") != "close"
    monkeypatch.undo()
    connection.request("GET", f"{url.path}/assistants", headers=headers)
    assert connection.getresponse().status == 200
    assert connection.sock is sock  # the same connection, not a new one
    connection.close()
    tracebacks = [r for r in caplog.records if r.exc_info and "boom" in str(r.exc_info[1])]
    assert len(tracebacks) == 1
