"""Grammars (GBNF) for constrained decoding: tool calls and JSON replies, built from JSON schemas.

A reply to a request with tools is plain text or the JSON object
``{"tool_calls": [{"name": NAME, "arguments": {...}}]}`` whose arguments follow NAME's schema;
:func:`tool_grammar` writes the grammar that allows exactly that, and
:func:`response_format_grammar` the one for a ``json_object`` / ``json_schema`` reply. The
rules for each schema come from llama-cpp-python's schema converter, imported when a grammar
is built (this module itself imports without llama.cpp).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from ..base import FunctionSpec, ModelError

__all__ = ["MAX_PARALLEL_CALLS", "NO_CALL_GRAMMAR", "response_format_grammar", "tool_grammar"]

#: At most this many calls in one reply when parallel tool calls are allowed.
MAX_PARALLEL_CALLS = 8

_RULE_CHARS = re.compile(r"[^a-zA-Z0-9-]+")

#: Text that does not open a calls object: blanks, then any character but ``{``, then anything
#: (decoding goes on without the grammar after the first character; see
#: ``generation.Generation._decode_tools``).
_BLANKS = r'[ \t\n]{0,4}'
_TEXT = r'[^{ \t\n\x00] [^\x00]*'
#: A reply that is text only, for a model that might imitate the calls it sees in the
#: conversation after it was decided that it answers in text.
NO_CALL_GRAMMAR = f"root ::= {_BLANKS} {_TEXT}\n"


def _literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _prefix_defs(schema: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A copy of ``schema`` whose local definitions carry ``prefix``.

    The schema converter names a ``$ref`` rule after the definition's last path segment, so two
    tools that both define ``Item`` would share one rule: the prefix keeps them apart.
    """
    schema = copy.deepcopy(schema)
    renamed: dict[str, str] = {}
    for key in ("$defs", "definitions"):
        defs = schema.get(key)
        if isinstance(defs, dict):
            schema[key] = {f"{prefix}{name}": value for name, value in defs.items()}
            renamed.update({f"#/{key}/{name}": f"#/{key}/{prefix}{name}" for name in defs})

    def visit(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: renamed.get(v, v) if k == "$ref" and isinstance(v, str) else visit(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [visit(v) for v in node]
        return node

    return visit(schema)


def _schema_rules(
    schemas: list[tuple[str, dict[str, Any]]],
) -> tuple[dict[str, str], str]:
    """GBNF rules for JSON schemas: ``{name: rule}`` for each schema, and the rule text."""
    from llama_cpp.llama_grammar import SchemaConverter

    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    names: dict[str, str] = {}
    for i, (name, schema) in enumerate(schemas):
        prefix = f"s{i}-"
        resolved = converter.resolve_refs(_prefix_defs(schema, prefix), f"schema{i}")
        names[name] = converter.visit(resolved, f"{prefix}{_RULE_CHARS.sub('-', name)}")
    rules: dict[str, str] = converter._rules
    if "char" in rules:
        # The converter's string characters include raw control characters, which are not
        # JSON: require them escaped, so that whatever the grammar allows parses strictly.
        rules["char"] = (
            r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
        )
    return names, converter.format_grammar()


def tool_grammar(
    tools: list[FunctionSpec], *, forced: bool, parallel: bool
) -> tuple[str, dict[str, dict[str, Any]]]:
    """The grammar for a reply that is text or calls of ``tools``, and each tool's schema."""
    schemas = {spec.name: _object_schema(spec.parameters) for spec in tools}
    try:
        names, rules = _schema_rules(list(schemas.items()))
    except Exception as exc:  # the converter asserts on schemas it does not support
        raise ModelError(
            f"local model: cannot build a grammar for the tools' JSON schemas: {exc}"
        ) from None
    calls = []
    for i, spec in enumerate(tools):
        calls.append(f"call-{i}")
        head = _literal(f'{{"name": {json.dumps(spec.name)}, "arguments": ')
        rules += f'\ncall-{i} ::= {head} {names[spec.name]} "}}"'
    rules += f"\ncall ::= {' | '.join(calls)}"
    more = f' ("," " "? call){{0,{MAX_PARALLEL_CALLS - 1}}}' if parallel else ""
    opening = _literal('{"tool_calls": [')
    rules += f'\ncalls ::= {opening} call{more} "]}}"'
    # Unforced: blanks, then `{` and a calls object, or any other character and then free text
    # (decoded without the grammar; see generation.Generation._decode_tools).
    root = "root ::= calls" if forced else f"root ::= {_BLANKS} (calls | {_TEXT})"
    return f"{root}\n{rules}\n", schemas


def _object_schema(parameters: dict[str, Any]) -> dict[str, Any]:
    """A tool's parameters as an object schema (``{}`` means any object)."""
    schema = dict(parameters or {})
    if not schema or (schema.get("type") in (None, "object") and "properties" not in schema):
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
    return schema


def response_format_grammar(
    response_format: dict[str, Any] | None,
) -> tuple[str | None, dict[str, Any] | None]:
    """The grammar for a ``json_object`` / ``json_schema`` reply, and the schema to check."""
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        from llama_cpp.llama_grammar import JSON_GBNF

        return JSON_GBNF, {"type": "object"}
    if kind == "json_schema":
        assert response_format is not None
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
        try:
            names, rules = _schema_rules([("reply", schema)])
        except Exception as exc:
            raise ModelError(
                f"local model: cannot build a grammar for the response format's schema: {exc}"
            ) from None
        return f"root ::= {names['reply']}\n{rules}\n", schema
    return None, None


