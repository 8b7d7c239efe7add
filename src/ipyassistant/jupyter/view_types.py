"""The shapes of a view state and of the ops that change it, as TypedDicts.

A widget shows a run as a *view state*: plain JSON, small enough to sync and to save in a
notebook. :mod:`.view_state` folds stream events into it and returns the *ops* between two
states; the widget sends those ops to the browser instead of the state, so streaming text
costs bytes in proportion to the text, not its square. ``js/view_state.ts`` declares the same
shapes as TypeScript interfaces and applies the same ops: change both together.

State::

    {"run": RunInfo | None,       # the latest run shown (None before the first run event)
     "items": [Item, ...],        # in the order they appeared
     "error": ViewError | None}   # a stream-level ``error`` event (not a failed run)

An item is a ``message``, a ``tool_call`` (a function call), a ``code`` (a code-interpreter
call) or a ``file_search`` call, told apart by its ``kind``. The run's ``message_creation``
steps make no item: the message they create is the item. A text block's ``file_citation``
annotations are its ``citations``; the views number them and list their sources under the
message (:mod:`.sources` and ``js/sources.ts``), finding each cited chunk among the
``file_search`` results of the same state.

Ops (each names its target; an op for an unknown item is ignored by the browser, so a view
that missed the start of a stream heals at the next whole item or snapshot)::

    {"op": "run", "run": RunInfo}                        replace the run
    {"op": "error", "error": ViewError | None}           set the stream error
    {"op": "item", "item": Item}                         replace the item with this id, else append
    {"op": "set", "id", "fields": {...}}                 update some fields of an item
    {"op": "block", "id", "index", "block": Block}       set a message block (append at the end)
    {"op": "text", "id", "index", "text"}                append to a text or refusal block
    {"op": "append", "id", "field", "text"}              append to a string field of an item:
                                                         "arguments", "code" or "logs"
"""

from __future__ import annotations

from typing import Literal

from typing_extensions import NotRequired, TypedDict

__all__ = [
    "AppendOp",
    "Block",
    "BlockOp",
    "Citation",
    "CodeItem",
    "ErrorOp",
    "FileSearchItem",
    "ImageBlock",
    "ImageUrlBlock",
    "Item",
    "ItemFields",
    "ItemOp",
    "ItemStatus",
    "MessageItem",
    "Op",
    "RefusalBlock",
    "RunInfo",
    "RunOp",
    "SearchResult",
    "SetOp",
    "TextBlock",
    "TextOp",
    "ToolCallItem",
    "ToolItem",
    "Usage",
    "ViewError",
    "ViewState",
]

#: An item's status. A message is "in_progress", "completed" or "incomplete"; a tool call may
#: also be "requires_action" (the run waits for the client's output), "failed", "cancelled" or
#: "expired". Kept a ``str``, as in ``js/view_state.ts``: it is the server's status, passed on.
ItemStatus = str


class ViewError(TypedDict):
    """An error shown in the view: a run's ``last_error``, a step's, or the stream's."""

    code: str
    message: str


class Usage(TypedDict):
    """The tokens a run used."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class RunInfo(TypedDict):
    """What the view shows of a run. Times are unix seconds."""

    id: str
    thread_id: str | None
    assistant_id: str | None
    model: str | None
    status: str
    created_at: int | None
    started_at: int | None
    finished_at: int | None
    usage: Usage | None
    #: The run's ``last_error``.
    error: ViewError | None


class Citation(TypedDict):
    """A ``file_citation`` annotation of a text block: the span it covers and the file cited."""

    #: The annotated text: a marker the model wrote (``【4:0†notes.md】``) or the quoted words.
    text: str
    #: Character offsets of ``text`` in the block's text.
    start: int
    end: int
    file_id: str
    #: The file's name when known without a search step (a thread's history looks it up).
    file_name: NotRequired[str]


class TextBlock(TypedDict):
    type: Literal["text"]
    text: str
    #: Its ``file_citation`` annotations, in order (absent when it has none).
    citations: NotRequired[list[Citation]]


class RefusalBlock(TypedDict):
    type: Literal["refusal"]
    text: str


class ImageBlock(TypedDict):
    type: Literal["image"]
    file_id: str


class ImageUrlBlock(TypedDict):
    type: Literal["image_url"]
    url: str


#: One part of a message's content.
Block = TextBlock | RefusalBlock | ImageBlock | ImageUrlBlock


class MessageItem(TypedDict):
    """A message of the thread, its content as blocks."""

    kind: Literal["message"]
    id: str
    run_id: str | None
    role: str
    status: ItemStatus
    blocks: list[Block]


class ToolCallItem(TypedDict):
    """A function call (or a ``file_search``), with its arguments and, once given, output."""

    kind: Literal["tool_call"]
    id: str
    run_id: str | None
    #: None for a call shown from the run's ``required_action`` alone (never streamed as a step).
    step_id: str | None
    #: The call's place among its step's tool calls.
    index: int
    name: str
    arguments: str
    output: str | None
    status: ItemStatus
    error: ViewError | None


class CodeItem(TypedDict):
    """A code-interpreter call: the code, its logs, and the file ids of the images it made."""

    kind: Literal["code"]
    id: str
    run_id: str | None
    step_id: str | None
    index: int
    code: str
    logs: str
    images: list[str]
    status: ItemStatus
    error: ViewError | None


class SearchResult(TypedDict):
    """One chunk a file search found: its file, its score (0 to 1) and, when asked, its text."""

    file_id: str
    file_name: str
    score: float
    #: The chunk's text; None unless the run asked for it
    #: (``include[]=step_details.tool_calls[*].file_search.results[*].content``).
    content: str | None


class FileSearchItem(TypedDict):
    """A ``file_search`` call: what was searched, how results were ranked, and what was found."""

    kind: Literal["file_search"]
    id: str
    run_id: str | None
    step_id: str | None
    index: int
    #: The query, when the server says it (``file_search.query``, an extension of the API's
    #: step object, which has no query field).
    query: str | None
    #: ``ranking_options``: the ranker and the score threshold (None until the server says).
    ranker: str | None
    score_threshold: float | None
    #: Best first; empty until the call is done.
    results: list[SearchResult]
    status: ItemStatus
    error: ViewError | None


#: The items a run step's tool calls make.
ToolItem = ToolCallItem | CodeItem | FileSearchItem
#: One thing the view shows, in the order they appeared.
Item = MessageItem | ToolCallItem | CodeItem | FileSearchItem


class ViewState(TypedDict):
    """Everything a view shows of one run (or a thread's transcript); plain JSON."""

    run: RunInfo | None
    items: list[Item]
    #: A stream-level ``error`` event (not a failed run).
    error: ViewError | None


class ItemFields(TypedDict, total=False):
    """Some fields of an item, as a ``set`` op changes them (any kind's fields but ``kind``)."""

    id: str
    run_id: str | None
    role: str
    status: ItemStatus
    blocks: list[Block]
    step_id: str | None
    index: int
    name: str
    arguments: str
    output: str | None
    code: str
    logs: str
    images: list[str]
    query: str | None
    ranker: str | None
    score_threshold: float | None
    results: list[SearchResult]
    error: ViewError | None


class RunOp(TypedDict):
    """Replace the run."""

    op: Literal["run"]
    run: RunInfo


class ErrorOp(TypedDict):
    """Set (or clear) the stream error."""

    op: Literal["error"]
    error: ViewError | None


class ItemOp(TypedDict):
    """Replace the item with this item's id, else append it."""

    op: Literal["item"]
    item: Item


class SetOp(TypedDict):
    """Update some fields of an item."""

    op: Literal["set"]
    id: str
    fields: ItemFields


class BlockOp(TypedDict):
    """Set a message's block ``index`` (append it when ``index`` is the end)."""

    op: Literal["block"]
    id: str
    index: int
    block: Block


class TextOp(TypedDict):
    """Append to the text of a message's text or refusal block."""

    op: Literal["text"]
    id: str
    index: int
    text: str


class AppendOp(TypedDict):
    """Append to a string field of a tool call or code item."""

    op: Literal["append"]
    id: str
    field: Literal["arguments", "code", "logs"]
    text: str


#: One patch op; plain JSON.
Op = RunOp | ErrorOp | ItemOp | SetOp | BlockOp | TextOp | AppendOp
