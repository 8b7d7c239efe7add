"""``%%assistant`` and ``%assistant``: talk to assistants from notebook cells.

``%load_ext ipyassistant`` registers them, ``%unload_ext ipyassistant`` removes them::

    %%assistant [NAME] [options]        the cell's body is the message
    %assistant new | threads | history | use NAME | model NAME | config | fix

NAME is a variable holding an :class:`~ipyassistant.Assistant`; without it the cell talks to
the notebook's default assistant (or the one chosen with ``%assistant use``). Each assistant
keeps its conversation on its ``default_thread``, so cells continue it (and ``ai.say()`` in a
code cell continues the same one). Runs show as live views in a notebook and are printed in a
terminal, exactly as ``say()`` shows them. Defaults are traitlets of :class:`AssistantMagics`
(``%config AssistantMagics.format = "code"``, or ``c.AssistantMagics`` in a config file).
Bad options raise IPython's ``UsageError`` (a short message, no traceback); so do the client's
misuse errors (a busy thread, a function that cannot be a tool). Interrupting the kernel
cancels the run on the server, and its view says so; the cell ends with one line
("Interrupted: the run was cancelled."), still as a ``KeyboardInterrupt``, so "Run All" stops.

A failed run shows its error with a hint and a Retry button in its view. With
``raise_on_failure`` the cell also ends with a one-line ``RunFailedError``, so that "Run All"
stops there. Its default (None) means: raise when the notebook runs unattended (nbclient,
papermill, nbconvert ``--execute``, which send their cells with ``allow_stdin`` false), not
when a person runs the cell in JupyterLab, Notebook or VS Code.

``--file PATH`` (repeatable) attaches files for file search: they go into the thread's vector
store, and the run searches them. ``-c``/``--context`` (or ``%config AssistantMagics.context =
True``) lets the assistant see the kernel through the context tools of :mod:`.context`;
``%assistant fix`` asks it about the last error. ``AssistantMagics.approve`` is the approval policy of the magics' runs
(:mod:`ipyassistant.approval`).

Braces are left alone: IPython does not expand ``{var}`` or ``$var`` in these magics' lines
(instructions are Jinja templates), and the cell's body is expanded only with ``--expand``.
"""

from __future__ import annotations

import argparse
import contextlib
import keyword
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import openai
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from traitlets import Bool, Enum, Unicode, observe

from ..approval import POLICIES
from ..assistants import DEFAULT_HANDLER, Assistant, DefaultHandler
from ..exceptions import IpyassistantError
from ..runs import Run
from ..settings import note_model_in_views, take_model_note
from ..threads import Thread
from ..tools import Tool
from . import display as views
from .cell_outcome import end_failed_run, show_error, show_interrupted, show_text
from .cell_text import FENCE, expand_braces, extract_code, reply_text
from .context import fix_message, last_exception, with_context
from .display import in_notebook
from .failures import failure_hint, interrupted
from .magic_reports import Conversation, model_line, print_config, print_threads, show_history

if TYPE_CHECKING:
    from .widgets import RunView

_F = TypeVar("_F", bound=Callable[..., Any])


def _magic(marker: Callable[[str], Any], name: str) -> Callable[[_F], _F]:
    """``@cell_magic(name)`` / ``@line_magic(name)`` with a type checkers can apply.

    IPython 9 types the marker as returning ``_F | Callable[[_F], _F]``, a union no decorated
    function fits; this says which of the two it is when given a name.
    """
    return cast("Callable[[_F], _F]", marker(name))

__all__ = [
    "FORMATS",
    "AssistantMagics",
    "expand_braces",
    "extract_code",
    "load_ipython_extension",
    "reply_text",
    "unload_ipython_extension",
]

#: How ``%%assistant`` shows the reply (``-f``).
FORMATS = ("markdown", "text", "code")
#: The subcommands of ``%assistant``.
SUBCOMMANDS = ("new", "threads", "history", "use", "model", "config", "fix")
#: How to choose a model, printed by ``%assistant model``.
CHOOSE_MODEL = (
    "choose another with %assistant model NAME (openai:gpt-4o-mini, local, test, …; "
    "'default' goes back), or IPYASSISTANT_MODEL before the kernel starts"
)

def _parse(magic: Any, line: str) -> argparse.Namespace:
    """``parse_argstring``, then quotes taken off the values (``-i "Two words."``).

    IPython splits magic lines without removing quotes (``arg_split`` is not POSIX).
    """
    args = parse_argstring(magic, line)
    for name, value in vars(args).items():
        if (
            isinstance(value, str)
            and len(value) >= 2
            and value[0] == value[-1]
            and value[0] in "\"'"
        ):
            setattr(args, name, value[1:-1])
    return args


def _variable(value: str, option: str) -> str:
    if not value.isidentifier() or keyword.iskeyword(value):
        raise UsageError(f"{option} needs a variable name, not {value!r}")
    return value


def _files(values: list[str]) -> list[str]:
    """The ``--file`` values: paths that exist (quotes taken off), or file ids (``file-…``)."""
    files = []
    for value in values:
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        path = Path(value).expanduser()
        if path.is_file():
            files.append(str(path))
        elif value.startswith("file-"):
            files.append(value)
        else:
            raise UsageError(f"--file: no file {value!r} (a path, or the id of an uploaded file)")
    return files


@magics_class
class AssistantMagics(Magics):
    """The ``%%assistant`` cell magic and the ``%assistant`` line magic (see the module)."""

    assistant_name = Unicode("Assistant", help="The name of the notebook's default assistant.").tag(
        config=True
    )
    instructions = Unicode(
        None, allow_none=True, help="The instructions of the notebook's default assistant."
    ).tag(config=True)
    model = Unicode(
        None,
        allow_none=True,
        help="The model of %%assistant runs (None: the assistant's, else the default model).",
    ).tag(config=True)
    format = Enum(
        FORMATS, default_value="markdown", help="How %%assistant shows the reply (-f)."
    ).tag(config=True)
    expand = Bool(False, help="Expand {var} in every %%assistant cell (--expand).").tag(config=True)
    quiet = Bool(False, help="Show nothing while %%assistant runs (-q).").tag(config=True)
    raise_on_failure = Bool(
        None,
        allow_none=True,
        help="End the cell with RunFailedError when its run fails, so that Run All stops. "
        "None: when the notebook runs unattended (nbclient, papermill: execute requests with "
        "allow_stdin false), not when a person runs the cell.",
    ).tag(config=True)
    context = Bool(False, help="Give every %%assistant run the kernel context tools (-c).").tag(
        config=True
    )
    approve = Enum(
        POLICIES,
        None,
        allow_none=True,
        help="Whether tool calls that need approval ask (None: IPYASSISTANT_APPROVE, else ask).",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._default: Assistant | None = None
        #: The assistant chosen with ``%assistant use``, and its label.
        self._chosen: tuple[str, Assistant] | None = None
        self._conversations: list[Conversation] = []
        #: Threads named by id (``-t thread_…``), one object per id.
        self._by_id: dict[str, Thread] = {}
        #: The run of the last ``%%assistant`` cell (``%assistant fix`` offers its code).
        self._last_run: Run | None = None

    # -- the notebook's state ----------------------------------------------------------------

    @property
    def default_assistant(self) -> Assistant:
        """The notebook's default assistant (created on first use from the traits)."""
        if self._default is None:
            self._default = Assistant(name=self.assistant_name, instructions=self.instructions)
        return self._default

    @observe("assistant_name", "instructions")
    def _update_default(self, change: Mapping[str, Any]) -> None:
        if self._default is None:
            return
        if change["name"] == "assistant_name":
            self._default.name = change["new"]
        else:
            self._default.instructions = change["new"]

    def current(self) -> tuple[str, Assistant]:
        """The label and assistant that a cell without NAME talks to."""
        if self._chosen is not None:
            return self._chosen
        return self.assistant_name, self.default_assistant

    def _namespace(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    def _assistant(self, name: str | None) -> tuple[str, Assistant]:
        if name is None:
            return self.current()
        namespace = self._namespace()
        if name not in namespace:
            raise UsageError(f"no variable named {name!r}: NAME is a variable holding an Assistant")
        found = namespace[name]
        if not isinstance(found, Assistant):
            raise UsageError(f"{name!r} is not an Assistant (type {type(found).__name__})")
        return name, found

    def _thread(self, value: str, option: str = "-t") -> Thread:
        """A thread from ``-t``: a variable holding a Thread or an id, or an id itself."""
        namespace = self._namespace()
        found: Any = namespace.get(value, value) if value.isidentifier() else value
        if isinstance(found, Thread):
            return found
        if isinstance(found, str) and found.startswith("thread_"):
            return self._by_id.setdefault(found, Thread(id=found))
        if value in namespace:
            raise UsageError(
                f"{option}: {value!r} is not a Thread or a thread id (type {type(found).__name__})"
            )
        raise UsageError(
            f"{option}: no variable named {value!r}, and it is no thread id (thread_…)"
        )

    def _tools(self, names: str) -> list[Any]:
        namespace = self._namespace()
        tools = []
        for name in (part.strip() for part in names.split(",")):
            if not name:
                continue
            if name not in namespace:
                raise UsageError(f"-T: no function named {name!r} in the notebook")
            tool = namespace[name]
            if not (callable(tool) or isinstance(tool, Tool)):
                raise UsageError(f"-T: {name!r} is not a function (type {type(tool).__name__})")
            tools.append(tool)
        if not tools:
            raise UsageError("-T needs function names: -T f,g")
        return tools

    def _record(self, label: str, thread: Thread, cells: int = 0) -> None:
        for conversation in self._conversations:
            if conversation.thread is thread:
                conversation.cells += cells
                return
        self._conversations.append(Conversation(label, thread, cells))

    # -- %%assistant -------------------------------------------------------------------------

    @magic_arguments(name="%assistant")
    @argument(
        "name",
        nargs="?",
        metavar="NAME",
        help="A variable holding an Assistant (default: the notebook's assistant).",
    )
    @argument(
        "-t", "--thread", metavar="VAR_OR_ID", help="Talk on this thread (a variable or an id)."
    )
    @argument(
        "--new-thread", action="store_true", help="Start a new conversation with this message."
    )
    @argument("-m", "--model", help="The model of this run.")
    @argument(
        "-i", "--instructions", help="The instructions of this run (they replace the assistant's)."
    )
    @argument("-T", "--tools", metavar="f,g", help="Functions of the notebook to add as tools.")
    @argument(
        "-c",
        "--context",
        action="store_const",
        const=True,
        help="Let the assistant see the kernel: its variables, last error and recent cells.",
    )
    @argument(
        "--file",
        dest="files",
        action="append",
        metavar="PATH",
        help="Attach this file for file search (repeatable): it goes into the thread's vector "
        "store, and the assistant searches it (a file id, file-…, attaches an uploaded file).",
    )
    @argument("-o", "--out", metavar="VAR", help="Store the Run in this variable.")
    @argument("-q", "--quiet", action="store_const", const=True, help="Show nothing while it runs.")
    @argument(
        "-f",
        "--format",
        choices=FORMATS,
        help="markdown: the live view; text: the reply as plain text; code: the reply's code "
        "in a new cell and a box with a copy button.",
    )
    @argument(
        "--expand",
        action="store_const",
        const=True,
        help="Replace {var} with variables of the notebook ({{ and }} are literal braces).",
    )
    @argument("--no-expand", dest="expand", action="store_const", const=False, help="Do not.")
    @no_var_expand
    @_magic(cell_magic, "assistant")
    def assistant_cell(self, line: str, cell: str) -> None:
        """Say the cell's body to an assistant and show the run."""
        args = _parse(self.assistant_cell, line)
        label, assistant = self._assistant(args.name)
        out = None if args.out is None else _variable(args.out, "-o")
        if args.thread is not None and args.new_thread:
            raise UsageError("-t and --new-thread do not go together: choose one thread")
        expand = self.expand if args.expand is None else args.expand
        message = expand_braces(cell, self._namespace()) if expand else cell
        if not message.strip():
            raise UsageError("%%assistant needs a message: write it in the cell, below the magic")
        run_kwargs: dict[str, Any] = {}
        model = args.model or self.model
        if model:
            run_kwargs["model"] = model
        if args.instructions is not None:
            run_kwargs["instructions"] = args.instructions
        if args.tools is not None:
            run_kwargs["additional_tools"] = self._tools(args.tools)
        if self.approve is not None and assistant.approve is None:
            run_kwargs["approve"] = self.approve
        if args.context or (args.context is None and self.context):
            run_kwargs = with_context(assistant, run_kwargs)
        if args.new_thread:
            assistant.clear_default_thread()
        thread = assistant.default_thread if args.thread is None else self._thread(args.thread)
        quiet = self.quiet if args.quiet is None else args.quiet
        fmt = args.format or self.format
        handler: DefaultHandler | None = None if quiet or fmt == "text" else DEFAULT_HANDLER

        attachments = _files(args.files or [])

        self._record(label, thread, cells=1)
        say_kwargs: dict[str, Any] = {"event_handler_class": handler}
        chosen = views.notebook_handler(None) if handler is DEFAULT_HANDLER else None
        view: RunView | None = None
        if chosen is not None:  # in a notebook: the view is on screen before the first event
            say_kwargs = {"event_handler_class": chosen[0], "event_handler_kwargs": chosen[1]}
            view = chosen[1]["view"]
        if attachments:
            say_kwargs["attachments"] = attachments
        try:
            run = assistant.say(message, thread=thread, **say_kwargs, **run_kwargs)
        except KeyboardInterrupt:
            # Re-raised, so that "run all" stops here; the run was cancelled on the server.
            show_interrupted(view)
            raise interrupted() from None
        except IpyassistantError as exc:
            show_error(view, exc)
            raise UsageError(str(exc)) from None
        except openai.APIStatusError as exc:
            show_error(view, exc)
            code = exc.code if isinstance(exc.code, str) else None
            if isinstance(exc, openai.NotFoundError) and code != "model_not_found":
                raise UsageError(f"not found on the server: {exc.message}") from None
            if code == "model_not_found" or exc.status_code == 400:
                raise UsageError(f"{exc.message}\n{failure_hint(code, exc.message)}") from None
            raise

        self._last_run = run
        if out is not None:
            self._namespace()[out] = run
        if fmt == "text" and not quiet:
            show_text(run)
        elif fmt == "code":
            self._show_code(run, quiet)
        note = take_model_note()
        if note and fmt == "text" and not quiet:
            print(note)  # no view to show it in
        end_failed_run(
            run, view, message, thread, run_kwargs, self.raise_on_failure, self.shell
        )

    def _show_code(self, run: Run, quiet: bool) -> None:
        code = extract_code(reply_text(run))
        if not code:
            if not quiet:
                print("(the reply holds no code)")
            return
        if self.shell is not None:
            self.shell.set_next_input(code, replace=False)
        if not quiet and in_notebook():
            from .code_box import CodeBox

            display(CodeBox(code, note="Code from the reply (also in a new cell below)"))

    # -- %assistant --------------------------------------------------------------------------

    @magic_arguments(name="assistant")
    @argument(
        "subcommand",
        choices=SUBCOMMANDS,
        help="new [NAME]: a new conversation; threads: this notebook's threads; history [NAME]: "
        "the conversation so far; use [NAME]: talk to NAME by default (no NAME: the notebook's "
        "assistant); model [NAME]: show or set the model of %%%%assistant runs ('default' "
        "resets it); config: the settings; fix [NAME]: ask about the last error (with the "
        "context tools), and put the corrected cell below.",
    )
    @argument("value", nargs="?", metavar="NAME")
    @no_var_expand
    @_magic(line_magic, "assistant")
    def assistant_line(self, line: str) -> None:
        """Manage the notebook's conversations with assistants."""
        args = _parse(self.assistant_line, line)
        command: str = args.subcommand
        value: str | None = args.value
        if command == "new":
            label, assistant = self._assistant(value)
            assistant.clear_default_thread()
            self._record(label, assistant.default_thread)
            print(f"{label}: a new conversation starts with the next message.")
        elif command == "threads":
            print_threads(self._conversations, self.current()[1])
        elif command == "history":
            self._history(value)
        elif command == "use":
            if value is None:
                self._chosen = None
                print(f"%%assistant talks to the notebook's assistant ({self.assistant_name}).")
            else:
                self._chosen = self._assistant(value)
                print(f"%%assistant talks to {value} from now on.")
        elif command == "model":
            if value is not None:
                self.model = None if value == "default" else value
            label, assistant = self.current()
            print(f"model: {model_line(self.model, assistant)}")
            if value is None:
                print(CHOOSE_MODEL)
        elif command == "fix":
            self._fix(value)
        else:
            label, assistant = self.current()
            print_config(self, label, assistant, chosen=self._chosen is not None)

    def _fix(self, name: str | None) -> None:
        """Say the last error, its cell and its variables, context on; offer the fixed cell."""
        if last_exception() is None:
            print("No error to fix: no cell has raised an exception in this kernel.")
            return
        self._last_run = None
        self.assistant_cell(f"{name or ''} --context", fix_message())
        run = self._last_run
        if run is not None and FENCE.search(reply_text(run)):
            self._show_code(run, quiet=False)

    def _history(self, value: str | None) -> None:
        if value is None:
            thread = self.current()[1].default_thread
        elif isinstance(self._namespace().get(value), Assistant):
            thread = self._assistant(value)[1].default_thread
        else:
            thread = self._thread(value, "history")
        show_history(thread)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics with ``ipython`` (``%load_ext ipyassistant``)."""
    if in_notebook():
        note_model_in_views()
    ipython.register_magics(AssistantMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """Remove what :func:`load_ipython_extension` added (``%unload_ext ipyassistant``)."""
    manager = ipython.magics_manager
    magics = manager.registry.pop(AssistantMagics.__name__, None)
    if magics is None:
        return
    for kind, table in magics.magics.items():
        for name, method in table.items():
            if manager.magics[kind].get(name) == method:
                del manager.magics[kind][name]
    with contextlib.suppress(ValueError):
        ipython.configurables.remove(magics)
