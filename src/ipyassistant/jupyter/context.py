"""The kernel context tools: what an assistant may see of the notebook it runs in, and do there.

Five function tools, named so that any model (and the ``test`` model's ``/call``) can use them:

- ``list_variables()``: the user's variables, with their type and a one-line summary;
- ``describe_variable(name)``: one variable in detail (a DataFrame's columns, head and
  statistics, an array's shape and range, a function's signature and docstring, …);
- ``last_error()``: the kernel's last exception, its traceback and the failing cell;
- ``recent_cells(n=5)``: the last input cells with their results;
- ``run_in_notebook(code)``: run code in the user's namespace; **each call needs approval**.

:func:`notebook_tools` returns them; ``%%assistant -c``, ``ChatPanel(ai, context=True)`` and
``%assistant fix`` add them to a run, with :func:`context_note` in its instructions.

What is sent stays small and safe (:mod:`.context_budget`): every output is cut to
``IPYASSISTANT_CONTEXT_CHARS`` characters; reprs are bounded in size and in time (a
``__repr__`` that hangs is abandoned); values of variables whose names look like secrets, and
strings that look like credentials, are replaced by ``<redacted>``.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import inspect
import io
import linecache
import sys
import traceback
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..tools import FunctionTool, as_tools, tool
from .context_budget import bounded, clip, looks_secret, redact, short_repr

if TYPE_CHECKING:
    from ..assistants import Assistant

__all__ = [
    "CONTEXT_TOOL_NAMES",
    "context_note",
    "describe_variable",
    "fix_message",
    "last_error",
    "list_variables",
    "notebook_tools",
    "recent_cells",
    "run_in_notebook",
    "used_variables",
    "with_context",
]

#: The names of the context tools, in the order :func:`notebook_tools` returns them.
CONTEXT_TOOL_NAMES = (
    "list_variables",
    "describe_variable",
    "last_error",
    "recent_cells",
    "run_in_notebook",
)
#: Characters of a variable's summary in ``list_variables``.
SUMMARY_CHARS = 100
#: Characters of the repr shown by ``describe_variable``.
DESCRIBE_REPR_CHARS = 1500
#: Characters of one cell's source or result in ``recent_cells``.
CELL_CHARS = 1200
#: Characters of the variable list in a context-enabled run's instructions.
NOTE_CHARS = 2000


def _shell() -> Any:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("the notebook context tools need an IPython kernel")
    return shell


def user_variables(shell: Any = None) -> dict[str, Any]:
    """The user's variables: not ``_``-names, modules, or IPython's own names."""
    shell = shell or _shell()
    hidden = getattr(shell, "user_ns_hidden", {})
    return {
        name: value
        for name, value in shell.user_ns.items()
        if not name.startswith("_")
        and name not in hidden
        and not isinstance(value, types.ModuleType)
        and name not in ("In", "Out", "exit", "quit", "get_ipython")
    }


# -- summaries -----------------------------------------------------------------------------


def _module_of(value: Any) -> str:
    return (type(value).__module__ or "").split(".")[0]


def _is_frame(value: Any) -> bool:
    return _module_of(value) == "pandas" and type(value).__name__ in ("DataFrame", "Series")


def _is_array(value: Any) -> bool:
    return _module_of(value) == "numpy" and type(value).__name__ == "ndarray"


def _summarise(name: str, value: Any) -> str:
    if looks_secret(name):
        return "<redacted>"
    if _is_frame(value):
        if type(value).__name__ == "DataFrame":
            columns = ", ".join(f"{c}: {t}" for c, t in value.dtypes.astype(str).items())
            return f"shape {value.shape}; columns {columns}"
        return f"length {len(value)}; dtype {value.dtype}"
    if _is_array(value):
        return f"shape {value.shape}; dtype {value.dtype}"
    if inspect.isroutine(value) or inspect.isclass(value):
        return _signature(value)
    if isinstance(value, list | tuple | dict | set | frozenset):
        return f"len {len(value)}: {short_repr(value, SUMMARY_CHARS)}"
    return short_repr(value, SUMMARY_CHARS)


def _signature(value: Any) -> str:
    """``name(parameters) -> result``, its hints evaluated where they can be."""
    name = getattr(value, "__name__", type(value).__name__)
    for evaluate in (True, False):
        with contextlib.suppress(Exception):  # unresolvable hints, builtins without one
            return f"{name}{inspect.signature(value, eval_str=evaluate)}"
    return name


def summary(name: str, value: Any) -> str:
    """``value`` in one line (bounded in time; a secret's value is never shown)."""
    text = bounded(lambda: _summarise(name, value), what="summary")
    return redact(text.replace("\n", " "))[: SUMMARY_CHARS * 3]


def _variable_lines(variables: Mapping[str, Any]) -> list[str]:
    return [
        f"- {name} ({type(value).__name__}): {summary(name, value)}"
        for name, value in variables.items()
    ]


# -- the tools -----------------------------------------------------------------------------


def list_variables() -> str:
    """List the user's variables in the notebook: name, type and a one-line summary of each."""
    variables = user_variables()
    if not variables:
        return "The notebook has no variables yet."
    return clip("\n".join(_variable_lines(variables)))


def describe_variable(name: str) -> str:
    """Describe one variable of the notebook in detail.

    Args:
        name: The variable's name, as listed by list_variables.
    """
    variables = user_variables()
    if name not in variables:
        close = difflib.get_close_matches(name, list(variables), n=5, cutoff=0.5)
        hint = f" Close names: {', '.join(close)}." if close else ""
        known = "" if close else f" Its variables: {', '.join(sorted(variables)) or 'none'}."
        return clip(f"No variable named {name!r} in the notebook.{hint}{known}")
    value = variables[name]
    header = f"{name}: {type(value).__module__}.{type(value).__qualname__}"
    if looks_secret(name):
        return f"{header}\nvalue: <redacted> (its name looks like a secret: it is never sent)"
    body = bounded(lambda: _describe(value), what="description", seconds=5.0)
    return clip(redact(f"{header}\n{body}"))


def _describe(value: Any) -> str:
    if _is_frame(value):
        return _describe_frame(value)
    if _is_array(value):
        return _describe_array(value)
    if inspect.isroutine(value) or inspect.isclass(value):
        doc = inspect.getdoc(value) or "(no docstring)"
        return f"signature: {_signature(value)}\ndocstring:\n{doc[:DESCRIBE_REPR_CHARS]}"
    lines = []
    with contextlib.suppress(Exception):
        lines.append(f"len: {len(value)}")
    lines.append(f"repr: {short_repr(value, DESCRIBE_REPR_CHARS)}")
    return "\n".join(lines)


def _markdown_table(frame: Any) -> str:
    columns = [str(c) for c in frame.columns]
    rows = [
        [str(index), *(short_repr(cell, 40).replace("|", "\\|") for cell in row)]
        for index, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    ]
    head = ["", *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _describe_frame(value: Any) -> str:
    if type(value).__name__ == "Series":
        value = value.to_frame()
    parts = [f"shape: {value.shape}", "columns:"]
    parts += [f"- {column}: {dtype}" for column, dtype in value.dtypes.astype(str).items()]
    parts += ["head(5):", _markdown_table(value.head(5))]
    numeric = value.select_dtypes("number")
    if numeric.shape[1]:
        parts += ["statistics:", _markdown_table(numeric.describe())]
    return "\n".join(parts)


def _describe_array(value: Any) -> str:
    parts = [f"shape: {value.shape}", f"dtype: {value.dtype}"]
    if value.size and value.dtype.kind in "biuf":
        parts.append(f"min: {value.min()!r}, max: {value.max()!r}, mean: {value.mean()!r}")
    parts.append(f"repr: {short_repr(value, DESCRIBE_REPR_CHARS)}")
    return "\n".join(parts)


def _cell_name(shell: Any, filename: str) -> str | None:
    """``In[N]`` for a cell's code file name, None for any other file."""
    number = getattr(getattr(shell, "compile", None), "_filename_map", {}).get(filename)
    return None if number is None else f"In[{number}]"


def _failing_cell(shell: Any, error: BaseException) -> tuple[str, str] | None:
    """The name and source of the last user cell in ``error``'s traceback."""
    found = None
    for frame, _ in traceback.walk_tb(error.__traceback__):
        filename = frame.f_code.co_filename
        name = _cell_name(shell, filename)
        if name is not None:
            found = (name, "".join(linecache.getlines(filename)))
    return found


def _error_text(shell: Any, error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    # Drop IPython's own frames above the user's first cell.
    while (
        frames and _cell_name(shell, frames[0].filename) is None and "IPython" in frames[0].filename
    ):
        frames.pop(0)
    for frame in frames:
        frame.filename = _cell_name(shell, frame.filename) or frame.filename
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines += traceback.format_exception_only(type(error), error)
    return "".join(lines)


def last_exception() -> BaseException | None:
    """The last exception the kernel showed (None before the first)."""
    return getattr(sys, "last_value", None)


def last_error() -> str:
    """The last error in the notebook: its type, message, traceback and the failing cell."""
    shell = _shell()
    error = last_exception()
    if error is None:
        return "No error yet: no cell has raised an exception in this kernel."
    parts = [f"{type(error).__name__}: {error}", _error_text(shell, error)]
    cell = _failing_cell(shell, error)
    if cell is not None:
        parts.append(f"The failing cell, {cell[0]}:\n{cell[1]}")
    return clip(redact("\n".join(parts)))


def recent_cells(n: int = 5) -> str:
    """The last input cells of the notebook, oldest first, with their results.

    Args:
        n: How many cells (1 to 50).
    """
    shell = _shell()
    inputs: list[str] = list(shell.user_ns.get("In", []))
    outputs: Mapping[int, Any] = shell.user_ns.get("Out", {})
    current = getattr(shell, "execution_count", len(inputs))
    numbers = [i for i in range(1, min(len(inputs), current)) if inputs[i].strip()]
    chosen = numbers[-max(1, min(int(n), 50)) :]
    if not chosen:
        return "No cells have run yet."
    parts = []
    for number in chosen:
        source = inputs[number]
        if len(source) > CELL_CHARS:
            source = source[:CELL_CHARS] + "\n… (cell cut)"
        parts.append(f"In[{number}]:\n{source}")
        if number in outputs:
            parts.append(f"Out[{number}]: {short_repr(outputs[number], CELL_CHARS)}")
    return clip(redact("\n".join(parts)))


@tool(approve=True)
def run_in_notebook(code: str) -> str:
    """Run Python code in the user's notebook namespace (the user approves each call).

    Returns what it printed, the value of its last expression, or the error.

    Args:
        code: The Python code to run, as in a notebook cell.
    """
    shell = _shell()
    stdout, stderr = io.StringIO(), io.StringIO()
    result: Any = None
    error = ""
    try:
        tree = ast.parse(code, "<run_in_notebook>")
        last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        if last is not None:
            tree.body.pop()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            exec(compile(tree, "<run_in_notebook>", "exec"), shell.user_ns)
            if last is not None:
                expression = ast.Expression(last.value)
                result = eval(compile(expression, "<run_in_notebook>", "eval"), shell.user_ns)
    except Exception as exc:
        error = "".join(traceback.format_exception_only(type(exc), exc))
    parts = []
    if stdout.getvalue():
        parts.append(f"stdout:\n{stdout.getvalue()}")
    if stderr.getvalue():
        parts.append(f"stderr:\n{stderr.getvalue()}")
    if result is not None:
        parts.append(f"result: {short_repr(result, DESCRIBE_REPR_CHARS)}")
    if error:
        parts.append(f"error: {error}")
    return clip(redact("\n".join(parts) or "(done: no output)"))


def notebook_tools() -> list[FunctionTool]:
    """The kernel context tools: ``Assistant(tools=[*notebook_tools()])``."""
    found = as_tools([list_variables, describe_variable, last_error, recent_cells, run_in_notebook])
    return [t for t in found if isinstance(t, FunctionTool)]


def context_note() -> str:
    """A context-enabled run's instructions: the tools, and what the notebook holds now."""
    variables = user_variables()
    listing = "\n".join(_variable_lines(variables)) if variables else "(no variables yet)"
    if len(listing) > NOTE_CHARS:
        listing = listing[:NOTE_CHARS] + "\n… (more: call list_variables)"
    return (
        "You run inside the user's Jupyter notebook. Tools show you its kernel: "
        "list_variables, describe_variable(name), last_error, recent_cells(n) and "
        "run_in_notebook(code), which runs code in their namespace once they approve it. "
        f"The notebook's variables now:\n{redact(listing)}"
    )


def used_variables(source: str) -> dict[str, Any]:
    """The user's variables that ``source`` names (for ``%assistant fix``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    variables = user_variables()
    return {name: variables[name] for name in sorted(names) if name in variables}


def with_context(assistant: Assistant, run_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``run_kwargs`` of a run that sees the kernel: the context tools (those the run has not
    already) and :func:`context_note` appended to its additional instructions."""
    kwargs = dict(run_kwargs)
    extra = as_tools(kwargs.get("additional_tools") or [])
    base = kwargs.get("tools")
    present = {
        t.name
        for t in [*(assistant.tools if base is None else as_tools(base)), *extra]
        if isinstance(t, FunctionTool)
    }
    kwargs["additional_tools"] = [
        *extra,
        *(t for t in notebook_tools() if t.name not in present),
    ]
    note = context_note()
    before = kwargs.get("additional_instructions")
    kwargs["additional_instructions"] = note if not before else f"{before}\n\n{note}"
    return kwargs


def fix_message() -> str:
    """What ``%assistant fix`` says: the last error, its cell, and the variables it uses."""
    error = last_exception()
    cell = None if error is None else _failing_cell(_shell(), error)
    used = used_variables(cell[1]) if cell is not None else {}
    variables = "\n".join(_variable_lines(used)) or "(none of the notebook's variables)"
    return clip(
        "My last cell raised an error. Find its cause, and give me the corrected cell as one "
        "```python block. Use the notebook tools if you need more.\n\n"
        f"{last_error()}\n\nThe variables that cell uses:\n{variables}"
    )
