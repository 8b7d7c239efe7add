"""Validation of everything the server sends against the official OpenAPI spec.

The schemas come from OpenAI's OpenAPI document, extracted into ``spec/assistants-schemas.json``
by ``spec/extract.py`` (the repository carries what its tests need). Their legacy
``nullable: true`` is rewritten into JSON-Schema null types, then each payload is validated
with ``jsonschema`` against the schema its ``object`` field names. :class:`SpecRecorder` is
an ASGI middleware that validates every JSON body and every SSE event a server sends.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

SPEC_PATH = Path(__file__).resolve().parent / "spec" / "assistants-schemas.json"

_OBJECT_SCHEMAS = {
    "assistant": "AssistantObject",
    "assistant.deleted": "DeleteAssistantResponse",
    "thread": "ThreadObject",
    "thread.deleted": "DeleteThreadResponse",
    "thread.message": "MessageObject",
    "thread.message.deleted": "DeleteMessageResponse",
    "thread.message.delta": "MessageDeltaObject",
    "thread.run": "RunObject",
    "thread.run.step": "RunStepObject",
    "thread.run.step.delta": "RunStepDeltaObject",
    "file": "OpenAIFile",
    "vector_store": "VectorStoreObject",
    "vector_store.deleted": "DeleteVectorStoreResponse",
    "vector_store.file": "VectorStoreFileObject",
    "vector_store.file.deleted": "DeleteVectorStoreFileResponse",
    "vector_store.files_batch": "VectorStoreFileBatchObject",
    "vector_store.search_results.page": "VectorStoreSearchResultsPage",
    "vector_store.file_content.page": "VectorStoreFileContentResponse",
}
_LIST_SCHEMAS = {
    "assistant": "ListAssistantsResponse",
    "thread.message": "ListMessagesResponse",
    "thread.run": "ListRunsResponse",
    "thread.run.step": "ListRunStepsResponse",
    "file": "ListFilesResponse",
    "vector_store": "ListVectorStoresResponse",
    "vector_store.file": "ListVectorStoreFilesResponse",
}


def _null_type(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def rewrite_nullable(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` → JSON Schema, recursively."""
    if isinstance(node, list):
        return [rewrite_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: rewrite_nullable(value) for key, value in node.items()}
    # allOf: [{$ref: X}, {nullable: true}] makes the whole allOf nullable.
    members = node.get("allOf")
    if isinstance(members, list) and any(m == {"anyOf": [{}, {"type": "null"}]} for m in members):
        rest = [m for m in members if m != {"anyOf": [{}, {"type": "null"}]}]
        node = {k: v for k, v in node.items() if k != "allOf"}
        return _null_type({**node, "allOf": rest} if node else {"allOf": rest})
    if node.pop("nullable", False) is not True:
        return node
    kind = node.get("type")
    if isinstance(kind, str) and not any(k in node for k in ("$ref", "allOf", "anyOf", "oneOf")):
        node["type"] = [kind, "null"]
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
        return node
    return _null_type(node)


@functools.lru_cache(maxsize=1)
def _root() -> dict[str, Any]:
    spec = json.loads(SPEC_PATH.read_text())
    return {"components": {"schemas": rewrite_nullable(spec["components"]["schemas"])}}


@functools.cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    root = _root()
    if name not in root["components"]["schemas"]:
        raise KeyError(f"no schema {name!r} in the spec")
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", **root})


def schema_for(payload: Any) -> str | None:
    """The spec schema a response body should match, from its ``object`` field."""
    if not isinstance(payload, dict):
        return None
    if "error" in payload and "object" not in payload:
        return "ErrorResponse"
    kind = payload.get("object")
    if kind == "list":
        data = payload.get("data") or []
        inner = data[0].get("object") if data and isinstance(data[0], dict) else None
        return _LIST_SCHEMAS.get(inner or "", "ListAssistantsResponse")
    if kind == "file" and payload.get("deleted") is True:
        return "DeleteFileResponse"
    return _OBJECT_SCHEMAS.get(kind)  # type: ignore[arg-type]


def problems(payload: Any, schema: str) -> list[str]:
    """Every validation error of ``payload`` against spec schema ``schema``, as text."""
    return [
        f"{schema} at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
        for e in validator(schema).iter_errors(payload)
    ]


def check_body(payload: Any) -> list[str]:
    schema = schema_for(payload)
    if schema is None:
        return [f"no spec schema for a body with object={payload.get('object') if isinstance(payload, dict) else type(payload)}"]
    return problems(payload, schema)


def check_event(event: str, data: str) -> list[str]:
    if event == "done":
        return [] if data == "[DONE]" else [f"done event with data {data!r}"]
    payload = json.loads(data)
    found = problems({"event": event, "data": payload}, "AssistantStreamEvent")
    if found:
        # The oneOf error alone says little: add the errors against the data's own schema.
        found += check_body(payload)
    return [f"event {event}: {p}" for p in found]


def parse_sse(body: bytes) -> list[tuple[str, str]]:
    events = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields.get("event", ""), fields.get("data", "")))
    return events


class SpecRecorder:
    """ASGI middleware: validates every response body and SSE event; keeps the problems."""

    def __init__(self, app: Any):
        self.app = app
        self.problems: list[str] = []
        self.checked = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = {"type": "", "body": b"", "status": 0}
        where = f"{scope['method']} {scope['path']}"

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                state["type"] = headers.get(b"content-type", b"").decode()
                state["status"] = message["status"]
            elif message["type"] == "http.response.body":
                state["body"] += message.get("body", b"")
                if not message.get("more_body", False):
                    self._check(where, state)
            await send(message)

        await self.app(scope, receive, recording_send)

    def _check(self, where: str, state: dict[str, Any]) -> None:
        content_type, body = state["type"], state["body"]
        try:
            if content_type.startswith("text/event-stream"):
                events = parse_sse(body)
                if not events or events[-1] != ("done", "[DONE]"):
                    self.problems.append(f"{where}: stream does not end with done")
                for event, data in events:
                    self.checked += 1
                    self.problems += [f"{where}: {p}" for p in check_event(event, data)]
            elif content_type.startswith("application/json"):
                self.checked += 1
                self.problems += [f"{where} ({state['status']}): {p}" for p in check_body(json.loads(body))]
        except Exception as exc:  # a crash here is a finding, not a test error
            self.problems.append(f"{where}: could not check the response: {exc!r}")
