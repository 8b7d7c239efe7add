"""The ``test`` model: offline, deterministic, and driven by directives in the user's message.

It reads the last user message, one directive a line:

- ``/call NAME {json}``: call function tool NAME with these arguments (several lines: parallel
  calls; the JSON is optional and defaults to ``{}``).
- a fenced ```` ```python ```` block, when the code interpreter is enabled: run that code.
- ``/search QUERY``: search the files for QUERY (the ``file_search`` tool).
- ``/stream N``: reply with N chunks ``"0 "``, ``"1 "``, … (one token each).
- ``/instructions``: reply with the exact instructions (system prompt) it received.
- ``/fail TEXT``: fail the run with TEXT as ``server_error``; ``/fail rate_limit TEXT`` fails it
  as ``rate_limit_exceeded``.
- ``/sleep SECONDS``: wait, then act on the rest of the message.

Without directives, with file search enabled, it searches with the message as the query;
else it calls every function tool that ``tool_choice`` allows, once, with small valid
arguments generated from the tool's JSON schema (``0``, ``"a"``, ``false``, the first enum
value, one list item); with no tools it replies ``echo: <message>`` word by word. Right after
a search that found something it replies ``From FILE_NAME: "<first sentence of the top
chunk>"`` and cites the quote (its double quotes made single); right after other tool results
it replies ``Tool results:`` and one line ``- NAME: OUTPUT`` per result.
With a ``json_schema`` response format it replies with JSON generated from the schema, with
``json_object`` it replies ``{"echo": "<message>"}``.

Tokens are counted as words and punctuation marks; ``max_tokens`` cuts the reply there with
finish reason ``length``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from .base import (
    CODE_INTERPRETER_FUNCTION,
    FILE_SEARCH_FUNCTION,
    ChatMessage,
    ModelError,
    ModelEvent,
    ModelProvider,
    ModelRequest,
)
from .registry import ModelRef, ProviderFactory
from .scripted import Call, ReplyItem, as_async, reply_events
from .search_results import marker, parse_results

__all__ = ["FACTORY", "TestModel", "example_from_schema"]

_DIRECTIVE = re.compile(r"^/(call|search|stream|instructions|fail|sleep)\b[ \t]*(.*)$")
_PYTHON_BLOCK = re.compile(r"```(?:python|py)[ \t]*\n(.*?)```", re.DOTALL)
_WORDS = re.compile(r"\s*\S+")
_SENTENCE = re.compile(r"(.+?[.!?])(?=\s|$)")
_DEFAULT_CODE = 'print("hello from the test model")'


@dataclass
class _Directives:
    calls: list[tuple[str, str]] = field(default_factory=list)
    search: str | None = None
    stream: int | None = None
    instructions: bool = False
    fail: str | None = None
    sleep: float = 0.0
    code: str | None = None
    text: str = ""


def _parse(message: str) -> _Directives:
    found = _Directives()
    code = _PYTHON_BLOCK.search(message)
    if code:
        found.code = code.group(1)
        message = message[: code.start()] + message[code.end() :]
    rest: list[str] = []
    for line in message.splitlines():
        match = _DIRECTIVE.match(line.strip())
        if not match:
            rest.append(line)
            continue
        name, arg = match.groups()
        arg = arg.strip()
        if name == "call":
            fn, _, args = arg.partition(" ")
            if not fn:
                raise ModelError("test model: /call needs a function name: /call NAME {json}")
            args = args.strip() or "{}"
            try:
                json.loads(args)
            except json.JSONDecodeError as exc:
                raise ModelError(
                    f"test model: the arguments of /call {fn} are not JSON: {exc}"
                ) from None
            found.calls.append((fn, args))
        elif name == "search":
            if not arg:
                raise ModelError("test model: /search needs a query: /search QUERY")
            found.search = arg
        elif name == "stream":
            try:
                found.stream = int(arg)
            except ValueError:
                raise ModelError(f"test model: /stream needs a whole number, got {arg!r}") from None
        elif name == "instructions":
            found.instructions = True
        elif name == "fail":
            found.fail = arg or "failure requested with /fail"
        elif name == "sleep":
            try:
                found.sleep = float(arg)
            except ValueError:
                raise ModelError(
                    f"test model: /sleep needs a number of seconds, got {arg!r}"
                ) from None
    found.text = "\n".join(rest).strip()
    return found


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    merged = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return _resolve(merged, root)


def example_from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A small value that validates against a JSON schema (the subset tools use)."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(o, root).get("type") != "null"]
            return example_from_schema((options or schema[key])[0], root)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(_resolve(part, root))
        return example_from_schema(merged, root)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {
            name: example_from_schema(props.get(name, {}), root)
            for name in schema.get("required", [])
        }
    if kind == "array":
        count = max(schema.get("minItems", 1), 1) if schema.get("maxItems", 1) else 0
        items = schema.get("items", {})
        return [example_from_schema(items, root) for _ in range(count)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        if "exclusiveMinimum" in schema:
            low += 1
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        value = max(0, low) if high is None or high > 0 else high - ("exclusiveMaximum" in schema)
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2024-01-01T00:00:00Z"
    if fmt == "date":
        return "2024-01-01"
    return "a" * max(schema.get("minLength", 1), 1)


class TestModel(ModelProvider):
    """The deterministic ``test`` model (see the module docstring for its directives)."""

    __test__ = False  # not a pytest test class

    def __init__(self, model: str = "test"):
        self.model = model

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        tail = _tool_results(request.messages)
        if tail:
            chunks = _words(_quote_search(tail) or _describe_results(tail))
            calls: list[tuple[str, str]] = []
        else:
            chunks, calls = await self._respond(request, _last_user_text(request.messages))
        reply: list[ReplyItem] = [*chunks, *(Call(name, args) for name, args in calls)]
        events = reply_events(
            as_async(reply), self.count_tokens(request.messages), request.max_tokens
        )
        async for event in events:
            yield event

    async def _respond(
        self, request: ModelRequest, message: str
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """The text chunks and tool calls answering ``message``."""
        d = _parse(message)
        if d.sleep:
            await asyncio.sleep(d.sleep)
        if d.fail is not None:
            code, _, text = d.fail.partition(" ")
            if code == "rate_limit":
                raise ModelError(
                    text or "rate limit requested with /fail", code="rate_limit_exceeded"
                )
            raise ModelError(d.fail)

        allowed = {t.name: t for t in request.tools_allowed()}
        forced = request.tool_choice not in ("auto", "none")
        if d.calls and allowed:
            unknown = [name for name, _ in d.calls if name not in allowed]
            if unknown:
                raise ModelError(
                    f"test model: /call names {', '.join(unknown)}, which this run does not allow; "
                    f"allowed tools: {', '.join(allowed) or 'none'}"
                )
            calls = d.calls if request.parallel_tool_calls else d.calls[:1]
            return [], calls
        if d.code is not None and CODE_INTERPRETER_FUNCTION in allowed:
            return [], [(CODE_INTERPRETER_FUNCTION, json.dumps({"code": d.code}))]
        if d.search is not None:
            if FILE_SEARCH_FUNCTION not in allowed:
                raise ModelError(
                    "test model: /search needs the file_search tool, which this run does not allow"
                )
            return [], [(FILE_SEARCH_FUNCTION, json.dumps({"query": d.search}))]
        if d.instructions:
            return [request.instructions], []
        if d.stream is not None:
            return [f"{i} " for i in range(d.stream)], []
        if FILE_SEARCH_FUNCTION in allowed:
            query = d.text or message.strip()
            return [], [(FILE_SEARCH_FUNCTION, json.dumps({"query": query}))]

        functions = [
            t
            for t in allowed.values()
            if t.name not in (CODE_INTERPRETER_FUNCTION, FILE_SEARCH_FUNCTION)
        ]
        if forced and not functions and CODE_INTERPRETER_FUNCTION in allowed:
            return [], [(CODE_INTERPRETER_FUNCTION, json.dumps({"code": _DEFAULT_CODE}))]
        if functions:
            chosen = functions if request.parallel_tool_calls else functions[:1]
            return [], [(t.name, json.dumps(example_from_schema(t.parameters))) for t in chosen]

        text = d.text or message.strip()
        fmt = (request.response_format or {}).get("type")
        if fmt == "json_schema":
            schema = request.response_format["json_schema"].get("schema") or {}  # type: ignore[index]
            return _words(json.dumps(example_from_schema(schema))), []
        if fmt == "json_object":
            return _words(json.dumps({"echo": text})), []
        return _words(f"echo: {text}"), []


def _describe_results(results: list[tuple[str, str]]) -> str:
    return "Tool results:\n" + "\n".join(f"- {name}: {out}" for name, out in results)


def _quote_search(results: list[tuple[str, str]]) -> str:
    """The reply quoting the top result of the first search that found something, or ``""``."""
    for name, output in results:
        found = parse_results(output) if name == FILE_SEARCH_FUNCTION else []
        if found:
            top = found[0]
            flat = " ".join(top.text.split()).replace('"', "'")
            sentence = _SENTENCE.match(flat)
            quote = sentence.group(1) if sentence else flat
            return f'From {top.file_name}: "{quote}"{marker(top.number, top.file_name)}'
    return ""


def _words(text: str) -> list[str]:
    return _WORDS.findall(text) or [text]


def _last_user_text(messages: list[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return ""


def _tool_results(messages: list[ChatMessage]) -> list[tuple[str, str]]:
    """The tool results at the end of the conversation, if it ends with some."""
    results: list[tuple[str, str]] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.append((message.name or "tool", message.content))
    return results[::-1]


class _TestFactory(ProviderFactory):
    """The ``test`` prefix: the one model string ``test``."""

    def examples(self) -> list[str]:
        return ["test"]

    def accepts(self, ref: ModelRef) -> bool:
        return ref.model == "test"

    def create(self, ref: ModelRef) -> ModelProvider:
        return TestModel()


#: How the registry makes ``test`` models.
FACTORY = _TestFactory()
