"""Tools: Python functions as function tools, the built-in tool specs, and ending a run early.

Any callable can be a tool. Its JSON schema comes from its signature, its type hints (pydantic
types, ``Optional``, ``Literal``, ``Enum``, lists, models, defaults) and its docstring (the
description, and one per parameter; Google, NumPy, reST and Epydoc styles). Every problem found
in a list of tools is reported at once, in one :class:`~ipyassistant.exceptions.ToolDefinitionError`.

When the model calls a tool, the arguments are validated against that schema before the call.
Invalid arguments, a missing function and exceptions raised by the tool become an error
*output*, which the model sees and may act on; the run goes on. Sync tools run in a worker
thread, so they never block the event loop; async tools run in the loop of the caller of the
async API (or in the portal's loop, for the sync API).

A tool ends its run by raising :class:`~ipyassistant.EndRun`, returning one, or returning
:data:`ENDRUN_TOKEN`. The :func:`tool` decorator renames a function's tool, replaces its
description, or makes each call wait for the user's approval (:mod:`ipyassistant.approval`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import re
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import docstring_parser
import pydantic
import pydantic_core
from pydantic import BaseModel, ConfigDict

from ._portal import Interrupt, caller_loop
from .exceptions import EndRun, ToolDefinitionError

__all__ = [
    "ENDRUN_TOKEN",
    "CodeInterpreter",
    "CodeInterpreterTool",
    "EndRun",
    "FileSearch",
    "FileSearchTool",
    "FunctionTool",
    "Tool",
    "as_tool",
    "as_tools",
    "function_tool",
    "output_text",
    "tool",
]

#: A tool that returns this string ends the run (like ``raise EndRun()``).
ENDRUN_TOKEN = "<|ENDRUN|>"

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SKIP_TITLES = frozenset({"default", "enum", "const", "examples"})


class Tool:
    """A tool as the Assistants API knows it; :meth:`spec` is its wire form."""

    def spec(self) -> dict[str, Any]:
        """The tool as sent in an assistant's or run's ``tools``."""
        raise NotImplementedError


@dataclass(frozen=True)
class CodeInterpreterTool(Tool):
    """The server's code interpreter: the assistant writes Python and reads its output."""

    def spec(self) -> dict[str, Any]:
        return {"type": "code_interpreter"}


@dataclass(frozen=True)
class FileSearchTool(Tool):
    """Search in the files of the assistant's or thread's vector stores."""

    max_num_results: int | None = None

    def spec(self) -> dict[str, Any]:
        if self.max_num_results is None:
            return {"type": "file_search"}
        return {"type": "file_search", "file_search": {"max_num_results": self.max_num_results}}


#: The code interpreter tool.
CodeInterpreter = CodeInterpreterTool()
#: The file search tool (needs a server with vector stores).
FileSearch = FileSearchTool()


@dataclass(frozen=True, eq=False)
class FunctionTool(Tool):
    """A function tool: its spec, and the Python function behind it (``None`` if unknown)."""

    name: str
    parameters: dict[str, Any]
    description: str = ""
    function: Callable[..., Any] | None = field(default=None, repr=False)
    _arguments: type[BaseModel] | None = field(default=None, repr=False)
    #: The parameters passed positionally (positional-only ones), in order.
    _positional: tuple[str, ...] = field(default=(), repr=False)
    #: Whether each call waits for the user's approval (see :mod:`ipyassistant.approval`).
    approve: bool = False

    def spec(self) -> dict[str, Any]:
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    async def invoke(self, arguments: str) -> str:
        """Validate the model's JSON ``arguments``, call the function, return its output text.

        Raises :class:`EndRun` when the tool ends the run; every other problem is returned as
        an error output for the model.
        """
        if self.function is None:
            return (
                f"Error: the tool {self.name!r} has no Python function in this process (its "
                "assistant was loaded without it), so it cannot be called."
            )
        try:
            args, kwargs = self.validate(arguments)
        except pydantic.ValidationError as exc:
            return f"Error: invalid arguments for {self.name}: {_describe(exc)}"
        try:
            result = await _call(self.function, args, kwargs)
        except EndRun:
            raise
        except KeyboardInterrupt:
            raise Interrupt from None
        except (Exception, SystemExit) as exc:  # SystemExit would stop the event loop
            return f"Error: {self.name} raised {type(exc).__name__}: {exc}"
        if isinstance(result, EndRun):
            raise result
        if isinstance(result, str) and result == ENDRUN_TOKEN:
            raise EndRun()
        return output_text(result)

    def validate(self, arguments: str) -> tuple[list[Any], dict[str, Any]]:
        """The call's positional and keyword arguments (raises ``pydantic.ValidationError``)."""
        assert self._arguments is not None
        model = self._arguments.model_validate_json(arguments.strip() or "{}")
        values = {
            f.alias or name: getattr(model, name) for name, f in type(model).model_fields.items()
        }
        args = [values.pop(name) for name in self._positional]
        return args, values

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> FunctionTool:
        """A tool known only by its spec (e.g. loaded from the server): it cannot be called."""
        fn = spec["function"]
        return cls(
            name=fn["name"],
            parameters=dict(fn.get("parameters") or {"type": "object", "properties": {}}),
            description=fn.get("description") or "",
        )


async def _call(function: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    # A callable object may have an async __call__.
    if inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        type(function).__call__
    ):
        return await _await_in_caller_loop(function(*args, **kwargs))
    result = await asyncio.to_thread(function, *args, **kwargs)
    if inspect.isawaitable(result):
        result = await _await_in_caller_loop(result)
    return result


async def _await_in_caller_loop(awaitable: Awaitable[Any]) -> Any:
    loop = caller_loop()
    if loop is None:
        return await awaitable

    async def wait() -> Any:
        return await awaitable

    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(wait(), loop))


def output_text(value: Any) -> str:
    """A tool's return value as the text the model reads: strings as they are, else JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return pydantic_core.to_json(value, fallback=str).decode()


def _describe(exc: pydantic.ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


# -- schemas -------------------------------------------------------------------------------

#: The attribute where :func:`tool` leaves its overrides on a function.
_OVERRIDES = "__ipyassistant_tool__"


def tool(
    function: Callable[..., Any] | None = None,
    *,
    approve: bool = False,
    name: str | None = None,
    description: str | None = None,
) -> Any:
    """Mark a function as a tool with a ``name`` or ``description`` of its own, or one whose
    every call waits for the user's approval (``approve=True``).

    ``@tool`` and ``@tool(approve=True, name="search")`` both work; the function stays a plain
    function (callable as before), and becomes this tool wherever it is given as one.
    """

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        overrides = {"approve": approve, "name": name, "description": description}
        try:
            setattr(fn, _OVERRIDES, overrides)
        except (AttributeError, TypeError) as exc:
            raise ToolDefinitionError([f"{fn!r}: @tool needs a function: {exc}"]) from None
        with contextlib.suppress(TypeError):  # built before it was marked: build it again
            _cache.pop(fn, None)
        return fn

    return mark if function is None else mark(function)


_cache: weakref.WeakKeyDictionary[Callable[..., Any], FunctionTool] = weakref.WeakKeyDictionary()


def function_tool(function: Callable[..., Any]) -> FunctionTool:
    """The function tool for ``function`` (raises ToolDefinitionError listing every problem)."""
    try:
        return _cache[function]
    except (KeyError, TypeError):
        pass
    problems: list[str] = []
    tool = _build(function, problems)
    if problems or tool is None:
        raise ToolDefinitionError(problems)
    with contextlib.suppress(TypeError):  # not weak-referenceable: built again next time
        _cache[function] = tool
    return tool


def _build(function: Callable[..., Any], problems: list[str]) -> FunctionTool | None:
    name = getattr(function, "__name__", None) or type(function).__name__
    found = len(problems)
    if not _NAME.fullmatch(name):
        problems.append(
            f"{name!r}: a tool name has 1-64 letters, digits, '_' or '-'; "
            "give the function a name (def, not lambda)"
        )
    try:
        signature = inspect.signature(function, eval_str=True)
    except (NameError, SyntaxError) as exc:
        problems.append(f"{name}: its type hints do not resolve: {exc}")
        return None
    except (TypeError, ValueError) as exc:
        problems.append(f"{name}: it has no inspectable signature: {exc}")
        return None

    doc = docstring_parser.parse(inspect.getdoc(function) or "")
    described = {p.arg_name: p.description for p in doc.params if p.description}
    fields: dict[str, Any] = {}
    positional: list[str] = []
    for index, param in enumerate(signature.parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            star = "*" if param.kind is param.VAR_POSITIONAL else "**"
            problems.append(f"{name}: {star}{param.name} cannot be a tool parameter; name each one")
            continue
        if param.kind is param.POSITIONAL_ONLY:
            positional.append(param.name)
        annotation = Any if param.annotation is param.empty else param.annotation
        default = ... if param.default is param.empty else param.default
        # Fields are named p0, p1, … with the real names as aliases, so that a parameter may
        # be called ``json`` or ``schema`` without shadowing BaseModel's attributes.
        fields[f"p{index}"] = (
            annotation,
            pydantic.Field(default, alias=param.name, description=described.get(param.name)),
        )
    if len(problems) > found:
        return None
    try:
        arguments = pydantic.create_model(
            f"{name}_arguments",
            __config__=ConfigDict(extra="forbid", populate_by_name=False),
            **fields,
        )
        schema = arguments.model_json_schema(by_alias=True)
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticInvalidForJsonSchema) as exc:
        problems.append(f"{name}: a parameter's type has no JSON schema: {exc.message}")
        return None
    except pydantic.PydanticUserError as exc:
        problems.append(f"{name}: {exc.message}")
        return None
    description = "\n\n".join(
        part for part in (doc.short_description, doc.long_description) if part
    )
    built = FunctionTool(
        name=name,
        parameters=_without_titles(schema),
        description=description,
        function=function,
        _arguments=arguments,
        _positional=tuple(positional),
    )
    return _overridden(built, getattr(function, _OVERRIDES, None), problems)


def _overridden(
    built: FunctionTool, overrides: Mapping[str, Any] | None, problems: list[str]
) -> FunctionTool | None:
    """``built`` with what :func:`tool` said of its function (its name, description, approval)."""
    if not overrides:
        return built
    name = overrides.get("name") or built.name
    if not _NAME.fullmatch(name):
        problems.append(f"{name!r}: a tool name has 1-64 letters, digits, '_' or '-'")
        return None
    description = overrides.get("description")
    return dataclasses.replace(
        built,
        name=name,
        description=built.description if description is None else description,
        approve=bool(overrides.get("approve")),
    )


def _without_titles(schema: Any) -> Any:
    """The schema without pydantic's generated ``title`` annotations (noise for a model)."""
    if isinstance(schema, list):
        return [_without_titles(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    cleaned: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "properties" and isinstance(value, dict):
            cleaned[key] = {prop: _without_titles(sub) for prop, sub in value.items()}
        elif key in _SKIP_TITLES:
            cleaned[key] = value
        else:
            cleaned[key] = _without_titles(value)
    return cleaned


# -- normalising -----------------------------------------------------------------------------


def as_tool(tool: Any) -> Tool:
    """A :class:`Tool` from a tool, a callable, a spec dict or an SDK tool object."""
    return as_tools([tool])[0]


def as_tools(tools: Iterable[Any]) -> list[Tool]:
    """:func:`as_tool` for each; raises one ToolDefinitionError listing every problem."""
    problems: list[str] = []
    result: list[Tool] = []
    for tool in tools:
        converted = _convert(tool, problems)
        if converted is not None:
            result.append(converted)
    names: dict[str, int] = {}
    for tool in result:
        if isinstance(tool, FunctionTool):
            names[tool.name] = names.get(tool.name, 0) + 1
    problems += [
        f"{name}: {count} tools have this name" for name, count in names.items() if count > 1
    ]
    if problems:
        raise ToolDefinitionError(problems)
    return result


def _convert(tool: Any, problems: list[str]) -> Tool | None:
    if isinstance(tool, Tool):
        return tool
    if isinstance(tool, BaseModel):  # an SDK tool object, e.g. from a retrieved assistant
        tool = tool.model_dump(exclude_none=True)
    if isinstance(tool, Mapping):
        kind = tool.get("type")
        if kind == "code_interpreter":
            return CodeInterpreter
        if kind == "file_search":
            options = tool.get("file_search") or {}
            return FileSearchTool(max_num_results=options.get("max_num_results"))
        if kind == "function" and isinstance(tool.get("function"), Mapping):
            return FunctionTool.from_spec(tool)
        problems.append(
            f"{dict(tool)!r}: not a tool spec (type code_interpreter, file_search or function)"
        )
        return None
    if callable(tool):
        try:
            return function_tool(tool)
        except ToolDefinitionError as exc:
            problems.extend(exc.problems)
            return None
    problems.append(f"{tool!r}: a tool is a function, a Tool, or a tool spec dict")
    return None
