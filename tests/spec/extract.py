"""Extract from OpenAI's OpenAPI document what the tests validate and fuzz against.

The full document (about 3 MB of YAML) is not part of this repository; the tests carry
``assistants-schemas.json``: the operations the server implements (:data:`OPERATIONS`), the
component schemas named in :data:`ROOTS`, and every component (schema, response, parameter,
request body) either of them references, with descriptions, examples and vendor extensions
dropped. It is an OpenAPI document of its own: ``tests/test_fuzz.py`` fuzzes the server from
it. Run the script again on a newer spec to regenerate the file::

    python tests/spec/extract.py path/to/openai-openapi.yaml

The licence of the spec (MIT, OpenAI) is kept beside the output as ``LICENSE``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "assistants-schemas.json"

#: The schemas the tests validate bodies and events against (see ``tests/_spec.py``).
ROOTS = (
    "AssistantObject",
    "AssistantStreamEvent",
    "DeleteAssistantResponse",
    "DeleteFileResponse",
    "DeleteMessageResponse",
    "DeleteThreadResponse",
    "ErrorResponse",
    "ListAssistantsResponse",
    "ListFilesResponse",
    "ListMessagesResponse",
    "ListRunStepsResponse",
    "ListRunsResponse",
    "MessageDeltaObject",
    "MessageObject",
    "OpenAIFile",
    "RunObject",
    "RunStepDeltaObject",
    "RunStepObject",
    "ThreadObject",
    "DeleteVectorStoreFileResponse",
    "DeleteVectorStoreResponse",
    "ListVectorStoreFilesResponse",
    "ListVectorStoresResponse",
    "VectorStoreFileBatchObject",
    "VectorStoreFileContentResponse",
    "VectorStoreFileObject",
    "VectorStoreObject",
    "VectorStoreSearchResultsPage",
)

#: The operations the server implements (the routes of ``ipyassistant.server.app``).
OPERATIONS: dict[str, tuple[str, ...]] = {
    "/assistants": ("get", "post"),
    "/assistants/{assistant_id}": ("get", "post", "delete"),
    "/threads": ("post",),
    "/threads/runs": ("post",),
    "/threads/{thread_id}": ("get", "post", "delete"),
    "/threads/{thread_id}/messages": ("get", "post"),
    "/threads/{thread_id}/messages/{message_id}": ("get", "post", "delete"),
    "/threads/{thread_id}/runs": ("get", "post"),
    "/threads/{thread_id}/runs/{run_id}": ("get", "post"),
    "/threads/{thread_id}/runs/{run_id}/cancel": ("post",),
    "/threads/{thread_id}/runs/{run_id}/steps": ("get",),
    "/threads/{thread_id}/runs/{run_id}/steps/{step_id}": ("get",),
    "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs": ("post",),
    "/files": ("get", "post"),
    "/files/{file_id}": ("get", "delete"),
    "/files/{file_id}/content": ("get",),
    "/vector_stores": ("get", "post"),
    "/vector_stores/{vector_store_id}": ("get", "post", "delete"),
    "/vector_stores/{vector_store_id}/file_batches": ("post",),
    "/vector_stores/{vector_store_id}/file_batches/{batch_id}": ("get",),
    "/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel": ("post",),
    "/vector_stores/{vector_store_id}/file_batches/{batch_id}/files": ("get",),
    "/vector_stores/{vector_store_id}/files": ("get", "post"),
    "/vector_stores/{vector_store_id}/files/{file_id}": ("get", "post", "delete"),
    "/vector_stores/{vector_store_id}/files/{file_id}/content": ("get",),
    "/vector_stores/{vector_store_id}/search": ("post",),
}
#: What an operation keeps besides its parameters, body and responses.
_OPERATION_KEYS = ("operationId", "parameters", "requestBody", "responses", "security")

#: Schema keywords that only document: dropped (property *names* are never touched).
_DOCUMENTATION = {"description", "example", "examples", "title", "deprecated"}
#: Keywords whose value is a map from names to schemas.
_SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
#: Keywords whose value is data, not a schema: kept as they are.
_DATA = {"enum", "const", "default", "required"}
_PREFIX = "#/components/"


def strip(node: Any) -> Any:
    """A schema without its documentation keywords and ``x-`` extensions."""
    if isinstance(node, list):
        return [strip(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DOCUMENTATION or key.startswith("x-"):
            continue
        if key in _DATA:
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strip(schema) for name, schema in value.items()}
        else:
            out[key] = strip(value)
    return out


def component_refs(node: Any) -> set[tuple[str, str]]:
    """The components (kind, name) that ``node`` refers to: ``("schemas", "AssistantObject")``."""
    if isinstance(node, list):
        return set().union(*(component_refs(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set()
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_PREFIX):
        kind, _, name = ref.removeprefix(_PREFIX).partition("/")
        found.add((kind, name))
    for key, value in node.items():
        if key not in _DATA:
            found |= component_refs(value)
    return found


def references(node: Any) -> set[str]:
    """The component schema names that ``node`` refers to."""
    return {name for kind, name in component_refs(node) if kind == "schemas"}


def _operation(operation: dict[str, Any]) -> dict[str, Any]:
    """An operation stripped; responses keep their ``description``, which OpenAPI requires."""
    out = strip({key: operation[key] for key in _OPERATION_KEYS if key in operation})
    for status, response in out.get("responses", {}).items():
        if "$ref" not in response:
            response["description"] = operation["responses"][status].get("description", "")
    return out


def extract(
    spec: dict[str, Any],
    roots: tuple[str, ...] = ROOTS,
    operations: dict[str, tuple[str, ...]] = OPERATIONS,
) -> dict[str, Any]:
    """``operations`` and ``roots`` of ``spec`` with their closure under ``$ref``, stripped."""
    components = spec["components"]
    missing = [name for name in roots if name not in components["schemas"]]
    missing += [
        f"{method.upper()} {path}"
        for path, methods in operations.items()
        for method in methods
        if method not in spec.get("paths", {}).get(path, {})
    ]
    if missing:
        raise SystemExit(f"the spec has no {', '.join(missing)}")
    paths = {
        path: {method: _operation(spec["paths"][path][method]) for method in methods}
        for path, methods in operations.items()
    }
    kept: dict[str, dict[str, Any]] = {}
    todo = sorted({("schemas", name) for name in roots} | component_refs(paths))
    while todo:
        kind, name = todo.pop()
        if name in kept.get(kind, {}):
            continue
        node = components[kind][name]
        # Responses are not schemas: like operations, they keep their required description.
        kept.setdefault(kind, {})[name] = (
            {**strip(node), "description": node.get("description", "")}
            if kind == "responses"
            else strip(node)
        )
        todo += sorted(component_refs(node) - {(k, n) for k in kept for n in kept[k]})
    info = spec.get("info", {})
    fragment: dict[str, Any] = {
        "openapi": spec.get("openapi"),
        "info": {
            "title": f"{info.get('title', 'OpenAI API')}: the part ipyassistant's tests use",
            "version": info.get("version"),
            "license": info.get("license"),
            "x-generated-by": "tests/spec/extract.py; regenerate rather than edit",
        },
    }
    if "security" in spec:
        fragment["security"] = spec["security"]
        schemes = components.get("securitySchemes", {})
        kept["securitySchemes"] = {
            name: strip(schemes[name]) for item in spec["security"] for name in item
        }
    if paths:
        fragment["paths"] = paths
    fragment["components"] = {
        kind: dict(sorted(kept[kind].items())) for kind in sorted(kept)
    }
    return fragment


def render(fragment: dict[str, Any]) -> str:
    return json.dumps(fragment, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="OpenAI's openapi.yaml")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="fail if the output is not up to date")
    args = parser.parse_args(argv)
    with args.spec.open() as f:
        spec = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    text = render(extract(spec))
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run {' '.join(sys.argv)} without --check")
            return 1
        return 0
    args.output.write_text(text)
    fragment = json.loads(text)
    operations = sum(len(methods) for methods in fragment.get("paths", {}).values())
    schemas = len(fragment["components"]["schemas"])
    print(f"wrote {args.output} ({len(text):,} bytes, {operations} operations, {schemas} schemas)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
