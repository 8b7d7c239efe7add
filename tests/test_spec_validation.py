"""The conformance check itself (``tests/_spec.py``): it must reject what the spec rejects.

If the validator were too lenient (a nullable rewrite that accepts anything, a recorder that
never looks at a body), every conformance test would pass silently; these tests pin it down.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import jsonschema
import pytest

from _spec import (
    SpecRecorder,
    _root,
    check_body,
    check_event,
    parse_sse,
    problems,
    rewrite_nullable,
    schema_for,
)


def _valid(schema: dict[str, Any], value: Any, defs: dict[str, Any] | None = None) -> bool:
    root = {"$defs": defs or {}, **schema}
    return jsonschema.Draft202012Validator(root).is_valid(value)


# -- the nullable rewrite -----------------------------------------------------------------


def test_nullable_with_a_type_becomes_a_type_list():
    rewritten = rewrite_nullable({"type": "string", "nullable": True})
    assert rewritten == {"type": ["string", "null"]}
    assert _valid(rewritten, None) and _valid(rewritten, "x")
    assert not _valid(rewritten, 3)


def test_nullable_false_is_dropped_and_stays_not_nullable():
    rewritten = rewrite_nullable({"type": "integer", "nullable": False})
    assert rewritten == {"type": "integer"}
    assert not _valid(rewritten, None)


def test_nullable_enum_admits_null_but_no_other_value():
    rewritten = rewrite_nullable({"type": "string", "enum": ["a", "b"], "nullable": True})
    assert rewritten["type"] == ["string", "null"]
    assert rewritten["enum"] == ["a", "b", None]
    assert _valid(rewritten, None) and _valid(rewritten, "a")
    assert not _valid(rewritten, "c")


def test_nullable_beside_a_ref_wraps_the_ref():
    defs = {
        "Thing": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
    }
    rewritten = rewrite_nullable({"$ref": "#/$defs/Thing", "nullable": True})
    assert rewritten == {"anyOf": [{"$ref": "#/$defs/Thing"}, {"type": "null"}]}
    assert _valid(rewritten, None, defs) and _valid(rewritten, {"id": "x"}, defs)
    assert not _valid(rewritten, {}, defs)
    assert not _valid(rewritten, "x", defs)


def test_all_of_ref_and_nullable_makes_the_whole_all_of_nullable():
    defs = {"Thing": {"type": "object", "required": ["id"]}}
    node = {"description": "d", "allOf": [{"$ref": "#/$defs/Thing"}, {"nullable": True}]}
    rewritten = rewrite_nullable(node)
    assert rewritten == {
        "anyOf": [{"description": "d", "allOf": [{"$ref": "#/$defs/Thing"}]}, {"type": "null"}]
    }
    assert _valid(rewritten, None, defs) and _valid(rewritten, {"id": 1}, defs)
    assert not _valid(rewritten, {"other": 1}, defs)


def test_the_rewrite_is_recursive_and_does_not_touch_its_input():
    node = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "nullable": True},
            "b": {"type": "array", "items": {"type": "integer", "nullable": True}},
        },
    }
    before = copy.deepcopy(node)
    rewritten = rewrite_nullable(node)
    assert node == before
    assert rewritten["properties"]["a"]["type"] == ["string", "null"]
    assert rewritten["properties"]["b"]["items"]["type"] == ["integer", "null"]
    assert _valid(rewritten, {"a": None, "b": [1, None]})
    assert not _valid(rewritten, {"a": 1})


def test_no_nullable_is_left_in_the_rewritten_spec():
    leftovers: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if "nullable" in node and not isinstance(node.get("nullable"), dict):
                leftovers.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(_root()["components"]["schemas"], "#/components/schemas")
    # A property *named* nullable would be a dict; a leftover keyword is a bool.
    assert leftovers == []


# -- bodies -------------------------------------------------------------------------------

RUN: dict[str, Any] = {
    "id": "run_abc",
    "object": "thread.run",
    "created_at": 1700000000,
    "thread_id": "thread_abc",
    "assistant_id": "asst_abc",
    "status": "completed",
    "required_action": None,
    "last_error": None,
    "expires_at": None,
    "started_at": 1700000000,
    "cancelled_at": None,
    "failed_at": None,
    "completed_at": 1700000001,
    "incomplete_details": None,
    "model": "test",
    "instructions": "",
    "tools": [],
    "metadata": {},
    "usage": {"completion_tokens": 3, "prompt_tokens": 5, "total_tokens": 8},
    "temperature": 1.0,
    "top_p": 1.0,
    "max_prompt_tokens": None,
    "max_completion_tokens": None,
    "truncation_strategy": {"type": "auto", "last_messages": None},
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "response_format": "auto",
}


def test_a_valid_run_passes():
    assert problems(RUN, "RunObject") == []
    assert check_body(RUN) == []


def test_a_run_without_status_is_a_problem():
    broken = {k: v for k, v in RUN.items() if k != "status"}
    found = problems(broken, "RunObject")
    assert found and any("status" in p for p in found)


def test_a_run_with_an_unknown_status_is_a_problem():
    found = check_body({**RUN, "status": "sleeping"})
    assert found and any("status" in p and "sleeping" in p for p in found)


def test_a_null_where_the_spec_allows_none_is_a_problem():
    assert check_body({**RUN, "thread_id": None})
    assert check_body({**RUN, "tools": None})


def test_nullable_fields_of_the_run_accept_null_and_check_their_shape():
    # required_action and last_error are nullable objects: null passes, a wrong shape does not.
    assert check_body({**RUN, "required_action": None, "last_error": None}) == []
    assert check_body({**RUN, "last_error": {"code": "server_error"}})
    assert check_body({**RUN, "last_error": {"code": "no_such_code", "message": "x"}})


def test_schema_for_picks_the_schema_from_the_object_field():
    assert schema_for(RUN) == "RunObject"
    assert schema_for({"error": {"message": "m"}}) == "ErrorResponse"
    assert (
        schema_for({"object": "list", "data": [{"object": "thread.message"}]})
        == "ListMessagesResponse"
    )
    assert (
        schema_for({"object": "list", "data": [{"object": "thread.run.step"}]})
        == "ListRunStepsResponse"
    )
    assert schema_for({"object": "file", "deleted": True}) == "DeleteFileResponse"
    assert schema_for({"object": "file"}) == "OpenAIFile"
    assert schema_for({"object": "something.else"}) is None
    assert schema_for([1, 2]) is None


def test_bodies_without_a_known_schema_are_problems():
    assert check_body({"object": "something.else"})
    assert check_body([RUN])
    assert check_body({"detail": "Not Found"})  # FastAPI's error shape is not the spec's


def test_error_bodies_are_checked():
    good = {"error": {"message": "m", "type": "invalid_request_error", "param": None, "code": None}}
    assert check_body(good) == []
    assert check_body({"error": {"message": "m"}})  # type, param, code are required


def test_list_bodies_are_checked_item_by_item():
    good = {
        "object": "list",
        "data": [RUN],
        "first_id": "run_abc",
        "last_id": "run_abc",
        "has_more": False,
    }
    assert check_body(good) == []
    assert check_body({**good, "data": [{**RUN, "status": "sleeping"}]})
    assert check_body({k: v for k, v in good.items() if k != "has_more"})


# -- events -------------------------------------------------------------------------------


def test_a_good_event_passes():
    assert check_event("thread.run.created", json.dumps(RUN)) == []
    assert check_event("done", "[DONE]") == []


def test_bad_events_are_problems():
    broken = {k: v for k, v in RUN.items() if k != "status"}
    assert check_event("thread.run.created", json.dumps(broken))
    assert check_event("thread.run.completed", json.dumps({**RUN, "status": "sleeping"}))
    # A well-formed run under an event name that carries messages.
    assert check_event("thread.message.created", json.dumps(RUN))
    assert check_event("thread.run.exploded", json.dumps(RUN))
    assert check_event("done", "{}")


def test_parse_sse_reads_the_framing():
    body = f"event: thread.run.created\ndata: {json.dumps(RUN)}\n\nevent: done\ndata: [DONE]\n\n".encode()
    assert parse_sse(body) == [("thread.run.created", json.dumps(RUN)), ("done", "[DONE]")]


# -- the recorder -------------------------------------------------------------------------


def _app(content_type: str, body: bytes, status: int = 200) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type.encode())],
            }
        )
        # Two chunks: the recorder must check the whole body, not the first chunk.
        await send({"type": "http.response.body", "body": body[:5], "more_body": True})
        await send({"type": "http.response.body", "body": body[5:]})

    return app


async def _get(recorder: SpecRecorder, path: str = "/v1/things") -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=recorder), base_url="http://t"
    ) as http:
        return await http.get(path)


async def test_the_recorder_accepts_a_good_body():
    recorder = SpecRecorder(_app("application/json", json.dumps(RUN).encode()))
    response = await _get(recorder)
    assert response.json() == RUN
    assert recorder.checked == 1 and recorder.problems == []


async def test_the_recorder_reports_a_bad_body():
    recorder = SpecRecorder(_app("application/json", json.dumps({**RUN, "status": "x"}).encode()))
    await _get(recorder)
    assert recorder.checked == 1
    assert recorder.problems and "GET /v1/things (200)" in recorder.problems[0]


async def test_the_recorder_reports_a_body_it_cannot_parse():
    recorder = SpecRecorder(_app("application/json", b"not json at all"))
    await _get(recorder)
    assert recorder.problems and "could not check" in recorder.problems[0]


async def test_the_recorder_checks_every_event_and_the_end_of_a_stream():
    good = f"event: thread.run.created\ndata: {json.dumps(RUN)}\n\nevent: done\ndata: [DONE]\n\n"
    recorder = SpecRecorder(_app("text/event-stream", good.encode()))
    await _get(recorder)
    assert recorder.checked == 2 and recorder.problems == []

    unfinished = f"event: thread.run.created\ndata: {json.dumps({**RUN, 'status': 'x'})}\n\n"
    recorder = SpecRecorder(_app("text/event-stream", unfinished.encode()))
    await _get(recorder)
    assert any("does not end with done" in p for p in recorder.problems)
    assert any("event thread.run.created" in p for p in recorder.problems)


async def test_the_recorder_only_checks_the_api():
    recorder = SpecRecorder(_app("application/json", b'{"status": "ok"}'))
    await _get(recorder, "/health")
    assert recorder.checked == 0 and recorder.problems == []


def test_the_session_server_checks_what_it_sends(server, client):
    before = server.recorder.checked
    assistant = client.beta.assistants.create(model="test")
    client.beta.assistants.retrieve(assistant.id)
    client.beta.assistants.list(limit=1)
    assert server.recorder.checked >= before + 3


def test_the_session_server_records_problems(server, client):
    # The server's own bodies are all valid, so feed a broken one through the check the
    # middleware runs on each response: it must land in the list the autouse fixture reads.
    before = len(server.recorder.problems)
    server.recorder._check(
        "GET /v1/fake",
        {"type": "application/json", "body": b'{"object": "thread.run"}', "status": 200},
    )
    assert len(server.recorder.problems) > before
    server.recorder.problems.clear()  # not a finding about the server


@pytest.mark.parametrize(
    "name",
    [
        "AssistantObject",
        "ThreadObject",
        "MessageObject",
        "RunObject",
        "RunStepObject",
        "ErrorResponse",
    ],
)
def test_the_spec_has_the_schemas_the_server_is_checked_against(name):
    assert problems({}, name), f"an empty object must not validate as {name}"
