"""File search in the views: the search step's item, citations as numbered sources, the transcript.

The events are synthesized in the shape the API streams them (a ``tool_calls`` step with a
``file_search`` call, a reply whose text carries ``file_citation`` annotations).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from jupyter_helpers import FIXTURES
from record_fixtures import fold as fold_recording
from test_transcript import assert_inert

from ipyassistant.jupyter.sources import cite, excerpt, with_markers
from ipyassistant.jupyter.transcript import transcript_html
from ipyassistant.jupyter.view_state import apply_ops, empty_state, reduce
from ipyassistant.jupyter.view_types import Citation, ViewState

RUN = "run_1"
CHUNK_A = "The tide table says the harbour opens at six. Boats leave at seven."
CHUNK_B = "Lighthouse keepers log the weather at noon."
QUOTE = '"The tide table says the harbour opens at six."'
REPLY = f"From tides.md: {QUOTE}"


def step(status: str, results: list[dict[str, Any]] | None, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"ranking_options": {"ranker": "auto", "score_threshold": 0.0}}
    if results is not None:
        found["results"] = results
    found.update(extra)
    return {
        "id": "step_1",
        "object": "thread.run.step",
        "run_id": RUN,
        "status": status,
        "last_error": None,
        "step_details": {
            "type": "tool_calls",
            "tool_calls": [{"id": "fs_1", "type": "file_search", "file_search": found}],
        },
    }


def result(file_id: str, name: str, score: float, text: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {"file_id": file_id, "file_name": name, "score": score}
    if text is not None:
        found["content"] = [{"type": "text", "text": text}]
    return found


def annotation(text: str, start: int, file_id: str) -> dict[str, Any]:
    return {
        "type": "file_citation",
        "text": text,
        "start_index": start,
        "end_index": start + len(text),
        "file_citation": {"file_id": file_id},
    }


def message(status: str, text: str, annotations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "object": "thread.message",
        "run_id": RUN,
        "role": "assistant",
        "status": status,
        "content": [{"type": "text", "text": {"value": text, "annotations": annotations}}],
    }


def delta(text: str, annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"value": text}
    if annotations is not None:
        part["annotations"] = [{"index": i, **a} for i, a in enumerate(annotations)]
    return {"id": "msg_1", "delta": {"content": [{"index": 0, "type": "text", "text": part}]}}


RESULTS = [result("file-a", "tides.md", 0.91, CHUNK_A), result("file-b", "keepers.md", 0.42, CHUNK_B)]
CITED = annotation(QUOTE, REPLY.index(QUOTE), "file-a")


def conversation(content: bool = True) -> list[dict[str, Any]]:
    """A run that searches, then replies with one citation streamed as deltas."""
    results = RESULTS if content else [{**r, "content": None} for r in RESULTS]
    return [
        {"event": "thread.run.step.created", "data": step("in_progress", None)},
        {
            "event": "thread.run.step.delta",
            "data": {
                "id": "step_1",
                "delta": {
                    "step_details": {
                        "type": "tool_calls",
                        "tool_calls": [
                            {"index": 0, "id": "fs_1", "type": "file_search",
                             "file_search": {"query": "when does the harbour open"}}
                        ],
                    }
                },
            },
        },
        {
            "event": "thread.run.step.completed",
            "data": step("completed", results, query="when does the harbour open"),
        },
        {"event": "thread.message.created", "data": message("in_progress", "", [])},
        {"event": "thread.message.delta", "data": delta(REPLY[:20])},
        {"event": "thread.message.delta", "data": delta(REPLY[20:])},
        {"event": "thread.message.delta", "data": delta("", [CITED])},
        {"event": "thread.message.completed", "data": message("completed", REPLY, [CITED])},
    ]


QUESTION = {
    "id": "msg_0",
    "object": "thread.message",
    "run_id": None,
    "role": "user",
    "status": "completed",
    "content": [{"type": "text", "text": {"value": "When does the harbour open?", "annotations": []}}],
}


def recording() -> dict[str, Any]:
    """:func:`conversation` as a recording of tests/jupyter/fixtures (tests/js replays it)."""
    events = conversation()
    return {
        "name": "file_search",
        "description": "Synthesized: a file search step, then a reply citing one of its chunks.",
        "messages": [QUESTION],
        "streams": [{"events": events, "times": [0.01 * n for n in range(len(events))]}],
        "files": {},
    }


def write_fixtures() -> None:
    """Write file_search.json and its ops (``python tests/jupyter/test_file_search_views.py``)."""
    fixture = recording()
    (FIXTURES / "file_search.json").write_text(json.dumps(fixture, ensure_ascii=False) + "\n")
    batches, final = fold_recording(fixture)
    ops = {"batches": batches, "final": final}
    (FIXTURES / "file_search.ops.json").write_text(json.dumps(ops, ensure_ascii=False) + "\n")


def fold(events: list[dict[str, Any]]) -> tuple[ViewState, list[Any]]:
    state = empty_state()
    all_ops: list[Any] = []
    for event in events:
        before = copy.deepcopy(state)
        new, ops = reduce(state, event)
        assert state == before
        assert apply_ops(state, ops) == new
        assert json.loads(json.dumps(ops)) == ops
        all_ops.extend(ops)
        state = new
    return state, all_ops


def test_a_file_search_step_is_an_item_with_its_query_ranking_and_results() -> None:
    state, _ = fold(conversation()[:3])
    (item,) = state["items"]
    assert item == {
        "kind": "file_search",
        "id": "fs_1",
        "run_id": RUN,
        "step_id": "step_1",
        "index": 0,
        "query": "when does the harbour open",
        "ranker": "auto",
        "score_threshold": 0.0,
        "results": [
            {"file_id": "file-a", "file_name": "tides.md", "score": 0.91, "content": CHUNK_A},
            {"file_id": "file-b", "file_name": "keepers.md", "score": 0.42, "content": CHUNK_B},
        ],
        "status": "completed",
        "error": None,
    }


def test_the_query_streams_in_before_the_results() -> None:
    state, _ = fold(conversation()[:2])
    (item,) = state["items"]
    assert item["kind"] == "file_search"
    assert item["query"] == "when does the harbour open"
    assert item["results"] == [] and item["status"] == "in_progress"


def test_a_step_without_a_query_or_content_shows_what_it_has() -> None:
    state, _ = fold([{"event": "thread.run.step.completed", "data": step("completed", RESULTS[:1])}])
    (item,) = state["items"]
    assert item["kind"] == "file_search" and item["query"] is None
    state, _ = fold(
        [{"event": "thread.run.step.completed",
          "data": step("completed", [{"file_id": "file-a", "file_name": "tides.md", "score": 1}])}]
    )
    assert state["items"][0]["results"][0]["content"] is None  # type: ignore[typeddict-item]


def test_citations_arrive_with_the_text_and_with_the_finished_message() -> None:
    events = conversation()
    streamed, _ = fold(events[:-1])
    finished, _ = fold(events)
    for state in (streamed, finished):
        block = state["items"][-1]["blocks"][0]  # type: ignore[typeddict-item]
        assert block["text"] == REPLY
        assert block["citations"] == [
            {"text": QUOTE, "start": REPLY.index(QUOTE), "end": len(REPLY), "file_id": "file-a"}
        ]
    # What streamed is what the finished message says.
    assert streamed["items"][-1] == {**finished["items"][-1], "status": "in_progress"}


def test_file_path_annotations_are_not_citations() -> None:
    saved = {
        "type": "file_path",
        "text": "plot.png",
        "start_index": 0,
        "end_index": 8,
        "file_path": {"file_id": "file-p"},
    }
    state, _ = fold([{"event": "thread.message.completed", "data": message("completed", "plot.png", [saved])}])
    assert "citations" not in state["items"][0]["blocks"][0]


def test_sources_are_numbered_by_file_and_quote_and_quote_the_found_chunk() -> None:
    state, _ = fold(conversation())
    reply = state["items"][-1]
    assert reply["kind"] == "message"
    cited = cite(reply, state)
    assert [(s.number, s.file_name, s.quote) for s in cited.sources] == [(1, "tides.md", CHUNK_A)]
    assert cited.numbers == [[1]]


def test_without_the_chunks_the_annotation_text_is_the_quote_and_markers_quote_nothing() -> None:
    text = "Opens at six【4:0†tides.md】 and closes at nine【4:1†hours.md】."
    first, second = "【4:0†tides.md】", "【4:1†hours.md】"
    citations = [annotation(first, text.index(first), "file-a"), annotation(second, text.index(second), "file-z")]
    state, _ = fold(
        [*conversation(content=False)[:3],
         {"event": "thread.message.completed", "data": message("completed", text, citations)}]
    )
    cited = cite(state["items"][-1], state)  # type: ignore[arg-type]
    assert [(s.file_name, s.quote) for s in cited.sources] == [("tides.md", None), ("file-z", None)]
    block = state["items"][-1]["blocks"][0]  # type: ignore[typeddict-item]
    marked = with_markers(text, block["citations"], cited.numbers[0], lambda n: f"[{n}]")
    assert marked == "Opens at six[1] and closes at nine[2]."


def test_markers_follow_quoted_words_and_bad_offsets_go_to_the_end() -> None:
    citations: list[Citation] = [
        {"text": "six", "start": 9, "end": 12, "file_id": "f"},
        {"text": "?", "start": 50, "end": 60, "file_id": "g"},
    ]
    assert with_markers("Opens at six.", citations, [1, 2], lambda n: f"<{n}>") == "Opens at six<1>.<2>"


def test_a_quotations_number_follows_its_closing_quote_mark() -> None:
    text = 'From a.md: "Opens at six." Then “more”.'
    citations: list[Citation] = [
        {"text": "Opens at six.", "start": 12, "end": 25, "file_id": "f"},
        {"text": "more", "start": 33, "end": 37, "file_id": "g"},
    ]
    marked = with_markers(text, citations, [1, 2], lambda n: f"[{n}]")
    assert marked == 'From a.md: "Opens at six."[1] Then “more”[2].'


def test_the_transcript_keeps_the_search_and_links_markers_to_the_sources() -> None:
    state, _ = fold(conversation())
    html = transcript_html(state)
    assert_inert(html)
    assert "when does the harbour open" in html
    assert "tides.md · score 0.91" in html and "keepers.md · score 0.42" in html
    assert f"<pre>{CHUNK_B}</pre>" in html  # each chunk, in a details element
    assert 'href="#ipa-src-msg_1-1" aria-label="Source 1: tides.md">[1]</a>' in html
    assert 'id="ipa-src-msg_1-1"' in html and f"<blockquote>{CHUNK_A}</blockquote>" in html
    # The quoted words stay in the text, the number after them.
    assert "harbour opens at six.&quot;<sup" in html


def test_a_marker_in_code_stays_plain_text() -> None:
    text = "`code 【1†a.md】`"
    citation = annotation("【1†a.md】", text.index("【"), "file-a")
    state, _ = fold([{"event": "thread.message.completed", "data": message("completed", text, [citation])}])
    html = transcript_html(state)
    assert "<code>code [1]</code>" in html


def test_a_long_chunk_is_quoted_around_the_cited_words() -> None:
    chunk = "a" * 1000 + " the words " + "b" * 1000
    quoted = excerpt(chunk, "the words", limit=100)
    assert quoted.startswith("…") and quoted.endswith("…") and "the words" in quoted
    assert len(quoted) == 102
    assert excerpt(chunk, "missing", limit=10) == "a" * 10 + "…"
    assert excerpt("short", "x") == "short"


def test_the_typescript_fixture_is_what_the_reducer_makes_of_this_conversation() -> None:
    """tests/js/file_search.test.ts replays it; write it again with ``write_fixtures``."""
    assert json.loads((FIXTURES / "file_search.json").read_text()) == recording()
    batches, final = fold_recording(recording())
    saved = json.loads((FIXTURES / "file_search.ops.json").read_text())
    assert saved == {"batches": batches, "final": final}


if __name__ == "__main__":
    write_fixtures()
