"""The event → view-state reducer, on recorded runs of the test model."""

from __future__ import annotations

import copy
import json
import typing
from typing import Any

import pytest
from jupyter_helpers import FIXTURES, events, load, replay
from openai.types.beta import AssistantStreamEvent
from record_fixtures import OPS_FIXTURES, fold

from ipyassistant.jupyter.view_state import (
    BOUNDARY_EVENTS,
    HANDLED_EVENTS,
    IGNORED_EVENTS,
    apply_ops,
    coalesce,
    diff_event,
    empty_state,
    file_ids,
    item_from_message,
    items_from_step,
    reduce,
)

RECORDINGS = ["text", "stream_2000", "tool_round_trip", "code_interpreter", "failure", "cancel"]


def text_of(item: dict[str, Any]) -> str:
    return "".join(b["text"] for b in item["blocks"] if b["type"] == "text")


@pytest.mark.parametrize("name", RECORDINGS)
def test_applying_the_ops_to_the_old_state_gives_the_new_state(name: str) -> None:
    state = empty_state()
    for event in events(load(name)):
        before = copy.deepcopy(state)
        new, ops = reduce(state, event)
        assert state == before, "reduce modified its input"
        assert apply_ops(state, ops) == new
        assert state == before, "apply_ops modified its input"
        # Both are plain JSON: what the widget syncs and sends.
        assert json.loads(json.dumps(new)) == new
        assert json.loads(json.dumps(ops)) == ops
        state = new


@pytest.mark.parametrize("name", RECORDINGS)
def test_sdk_events_and_their_dicts_reduce_alike(name: str) -> None:
    assert replay(load(name), as_sdk=True) == replay(load(name))


@pytest.mark.parametrize("name", RECORDINGS)
def test_in_place_folding_matches_the_pure_reducer(name: str) -> None:
    """What the widget does (diff_event + apply_ops in place) is what reduce does."""
    live = empty_state()
    pure = empty_state()
    for event in events(load(name)):
        apply_ops(live, diff_event(live, event), in_place=True)
        pure, _ = reduce(pure, event)
    assert live == pure


@pytest.mark.parametrize("name", RECORDINGS)
def test_streamed_deltas_add_up_to_the_finished_objects(name: str) -> None:
    """Items built from deltas equal the items built from the completed messages and steps
    the server sent at the end (an independent path through the same objects)."""
    state, _ = replay(load(name))
    finished: dict[str, dict[str, Any]] = {}
    for event in events(load(name)):
        if event["event"] in ("thread.message.completed", "thread.message.incomplete"):
            item = item_from_message(event["data"])
            finished[item["id"]] = item
        elif event["event"] == "thread.run.step.completed":
            finished.update((item["id"], item) for item in items_from_step(event["data"]))
    shown = {item["id"]: item for item in state["items"] if item["id"] in finished}
    assert shown == finished


@pytest.mark.parametrize("name", OPS_FIXTURES)
def test_the_typescript_ops_fixtures_match_the_reducer(name: str) -> None:
    """tests/js replays NAME.ops.json; regenerate it with `record_fixtures.py --ops`."""
    batches, final = fold(load(name))
    saved = json.loads((FIXTURES / f"{name}.ops.json").read_text())
    assert saved == {"batches": batches, "final": final}


def test_a_text_reply() -> None:
    state, ops = replay(load("text"))
    user, reply = state["items"]
    assert (user["role"], text_of(user)) == ("user", "Hello there, **assistant**!")
    assert reply["role"] == "assistant"
    assert reply["status"] == "completed"
    assert text_of(reply) == "echo: Hello there, **assistant**!"
    run = state["run"]
    assert run["status"] == "completed"
    assert run["model"] == "test"
    assert run["usage"]["total_tokens"] > 0
    assert run["finished_at"] >= run["started_at"]
    assert run["error"] is None
    # The reply's text travels as appends, never as its whole text again.
    assert [op["op"] for op in ops].count("text") >= 3
    assert not [op for op in ops if op["op"] == "set" and "blocks" in op["fields"]]


def test_a_tool_round_trip() -> None:
    recording = load("tool_round_trip")
    first, _ = recording["streams"]
    state, _ = replay({**recording, "streams": [first]})
    assert state["run"]["status"] == "requires_action"
    calls = [item for item in state["items"] if item["kind"] == "tool_call"]
    assert [(c["name"], json.loads(c["arguments"]), c["status"], c["output"]) for c in calls] == [
        ("get_weather", {"city": "Paris"}, "requires_action", None),
        ("get_time", {"tz": "Mars/Olympus"}, "requires_action", None),
    ]

    state, _ = replay(recording)
    calls = [item for item in state["items"] if item["kind"] == "tool_call"]
    assert [(c["status"], c["output"]) for c in calls] == [
        ("completed", "sunny, 21 °C"),
        ("completed", "error: unknown timezone 'Mars/Olympus'"),
    ]
    assert [item["kind"] for item in state["items"]] == [
        "message",
        "tool_call",
        "tool_call",
        "message",
    ]
    assert "get_weather: sunny, 21 °C" in text_of(state["items"][-1])
    assert state["run"]["status"] == "completed"


def test_the_arguments_of_a_call_stream_as_appends() -> None:
    state = empty_state()
    appended: list[str] = []
    for event in events(load("tool_round_trip")):
        state, ops = reduce(state, event)
        appended += [op["text"] for op in ops if op["op"] == "append"]
    assert "".join(appended).count("Paris") == 1


def test_the_code_interpreter_with_an_image() -> None:
    recording = load("code_interpreter")
    state, _ = replay(recording)
    _, code, reply = state["items"]
    assert code["kind"] == "code"
    assert code["code"].startswith("import matplotlib.pyplot as plt")
    assert code["logs"] == "plotted 3 points\n"
    assert code["status"] == "completed"
    (file_id,) = recording["files"]
    assert code["images"] == [file_id]
    # The image is also a block of the reply, though it never came as a delta.
    assert reply["blocks"][-1] == {"type": "image", "file_id": file_id}
    assert file_ids(state) == [file_id]


def test_a_failed_run() -> None:
    state, _ = replay(load("failure"))
    assert state["run"]["status"] == "failed"
    assert state["run"]["error"] == {"code": "server_error", "message": "the model fell over"}
    assert state["run"]["finished_at"] is not None


def test_a_cancelled_run() -> None:
    state, _ = replay(load("cancel"))
    assert state["run"]["status"] == "cancelled"
    assert [item["role"] for item in state["items"]] == ["user"]


def test_a_run_cancelled_mid_reply_leaves_nothing_in_progress() -> None:
    recorded = events(load("stream_2000"))
    halfway = next(i for i, e in enumerate(recorded) if e["event"] == "thread.message.delta") + 50
    state = empty_state()
    for event in recorded[:halfway]:
        state, _ = reduce(state, event)
    run = next(e["data"] for e in recorded if e["event"] == "thread.run.in_progress")
    state, ops = reduce(
        state, {"event": "thread.run.cancelled", "data": {**run, "status": "cancelled"}}
    )
    reply = state["items"][-1]
    assert reply["status"] == "incomplete"
    assert {"op": "set", "id": reply["id"], "fields": {"status": "incomplete"}} in ops
    assert state["run"]["status"] == "cancelled"


def test_a_stream_error_event_is_shown() -> None:
    state, ops = reduce(empty_state(), {"event": "error", "data": {"code": "x", "message": "bad"}})
    assert state["error"] == {"code": "x", "message": "bad"}
    assert ops == [{"op": "error", "error": {"code": "x", "message": "bad"}}]
    assert "error" in BOUNDARY_EVENTS


def test_a_delta_before_its_message_still_shows() -> None:
    event = {
        "event": "thread.message.delta",
        "data": {
            "id": "msg_1",
            "delta": {"content": [{"index": 0, "type": "text", "text": {"value": "hi"}}]},
        },
    }
    state, ops = reduce(empty_state(), event)
    assert [op["op"] for op in ops] == ["item"]
    assert text_of(state["items"][0]) == "hi"


def test_unknown_events_change_nothing() -> None:
    state = empty_state()
    assert reduce(state, {"event": "thread.created", "data": {"id": "thread_1"}}) == (state, [])
    assert reduce(state, {"event": "thread.something.new", "data": {}}) == (state, [])


def test_ops_for_unknown_items_are_ignored() -> None:
    state = empty_state()
    ops = [
        {"op": "text", "id": "nope", "index": 0, "text": "x"},
        {"op": "append", "id": "nope", "field": "code", "text": "x"},
        {"op": "set", "id": "nope", "fields": {"status": "completed"}},
        {"op": "block", "id": "nope", "index": 0, "block": {"type": "text", "text": ""}},
    ]
    assert apply_ops(state, ops) == state
    with pytest.raises(ValueError, match="unknown view-state op"):
        apply_ops(state, [{"op": "explode"}])


def test_coalescing_ops_keeps_their_effect_and_shrinks_them() -> None:
    state = empty_state()
    ops: list[Any] = []
    for event in events(load("stream_2000")):
        state, new = reduce(state, event)
        ops += new
    merged = coalesce(ops)
    assert apply_ops(empty_state(), merged) == apply_ops(empty_state(), ops) == state
    assert len(merged) < len(ops) / 100
    assert len(json.dumps(merged)) < len(json.dumps(ops)) / 10


def _members(union: Any) -> list[Any]:
    """The classes of a (possibly ``Annotated``) union type."""
    if typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    return list(typing.get_args(union))


def sdk_event_names() -> set[str]:
    """The ``event`` of every member of the SDK's ``AssistantStreamEvent`` union."""
    names: set[str] = set()
    for member in _members(AssistantStreamEvent):
        # The SDK's events are pydantic models; their ``event`` field is a one-value Literal.
        (literal,) = typing.get_args(member.model_fields["event"].annotation)
        names.add(literal)
    return names


def test_every_sdk_stream_event_is_folded_or_ignored_on_purpose() -> None:
    names = sdk_event_names()
    assert "thread.message.delta" in names and "error" in names  # the walk found the union
    unknown = names - HANDLED_EVENTS - IGNORED_EVENTS
    assert not unknown, f"handle these events in view_state, or add them to IGNORED_EVENTS: {unknown}"
    assert not HANDLED_EVENTS & IGNORED_EVENTS
    # Neither set names an event the SDK does not know (a typo would hide a real one).
    assert names >= HANDLED_EVENTS | IGNORED_EVENTS
    assert BOUNDARY_EVENTS <= HANDLED_EVENTS
