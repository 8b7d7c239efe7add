"""Extract from OpenAI's OpenAPI document the schemas the tests validate against.

The full document (about 3 MB of YAML) is not part of this repository; the tests carry
``assistants-schemas.json``: the component schemas named in :data:`ROOTS` and every schema
they reference, with descriptions, examples and vendor extensions dropped. Run it again on a
newer spec to regenerate the file::

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
)

#: Schema keywords that only document: dropped (property *names* are never touched).
_DOCUMENTATION = {"description", "example", "examples", "title", "deprecated"}
#: Keywords whose value is a map from names to schemas.
_SCHEMA_MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
#: Keywords whose value is data, not a schema: kept as they are.
_DATA = {"enum", "const", "default", "required"}
_PREFIX = "#/components/schemas/"


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


def references(node: Any) -> set[str]:
    """The component schema names that ``node`` refers to."""
    if isinstance(node, list):
        return set().union(*(references(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set()
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_PREFIX):
        found.add(ref.removeprefix(_PREFIX))
    for key, value in node.items():
        if key not in _DATA:
            found |= references(value)
    return found


def extract(spec: dict[str, Any], roots: tuple[str, ...] = ROOTS) -> dict[str, Any]:
    """The closure of ``roots`` under ``$ref`` in ``spec``, stripped, as an OpenAPI fragment."""
    schemas = spec["components"]["schemas"]
    missing = [name for name in roots if name not in schemas]
    if missing:
        raise SystemExit(f"the spec has no schema named {', '.join(missing)}")
    kept: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        kept[name] = strip(schemas[name])
        todo += sorted(references(schemas[name]) - kept.keys())
    info = spec.get("info", {})
    return {
        "openapi": spec.get("openapi"),
        "info": {
            "title": f"{info.get('title', 'OpenAI API')}: the schemas ipyassistant's tests use",
            "version": info.get("version"),
            "license": info.get("license"),
            "x-generated-by": "tests/spec/extract.py; regenerate rather than edit",
        },
        "components": {"schemas": dict(sorted(kept.items()))},
    }


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
    print(f"wrote {args.output} ({len(text):,} bytes, {len(json.loads(text)['components']['schemas'])} schemas)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
