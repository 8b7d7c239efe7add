"""Request bodies, validated with pydantic before anything is written.

The models follow the spec's request schemas strictly: unknown fields are refused
(``extra="forbid"``), as OpenAI does, so that a typo is an error rather than a setting silently
ignored; types are strict (``false`` is not a temperature, ``"1"`` not a number); and a field the
spec makes optional but not nullable may be left out, never sent as ``null`` (:data:`NotNull`).
Text is checked as Unicode before validation, for every body at once (see :mod:`.bodies`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "AssistantTool",
    "ChunkingStrategy",
    "CreateAssistant",
    "CreateMessage",
    "CreateRun",
    "CreateThread",
    "CreateThreadAndRun",
    "ModifyAssistant",
    "ModifyMetadata",
    "ModifyThread",
    "NewVectorStore",
    "ReasoningEffort",
    "SubmitToolOutputs",
]

MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _not_null(value: Any) -> Any:
    # Runs only on a value the request gave: a left-out field keeps its default.
    if value is None:
        raise PydanticCustomError("null_not_allowed", "null is not allowed; leave the parameter out")
    return value


#: Optional but not nullable: the field may be left out (its default is then ``None``), never
#: given as ``null``.
NotNull = AfterValidator(_not_null)

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


def _check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return value
    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"metadata can have at most {MAX_METADATA_KEYS} keys, got {len(value)}")
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise ValueError(
                f"metadata keys can be at most {MAX_METADATA_KEY_CHARS} characters: {key[:20]!r}…"
            )
        if len(item) > MAX_METADATA_VALUE_CHARS:
            raise ValueError(
                f"metadata values can be at most {MAX_METADATA_VALUE_CHARS} characters (key {key!r})"
            )
    return value


class WithMetadata(Request):
    metadata: dict[str, str] | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _check_metadata(value)


# -- tools ------------------------------------------------------------------------------


class FunctionDefinition(Request):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: Annotated[str | None, NotNull] = None
    parameters: Annotated[dict[str, Any] | None, NotNull] = None
    strict: bool | None = None


class FunctionTool(Request):
    type: Literal["function"]
    function: FunctionDefinition


class CodeInterpreterTool(Request):
    type: Literal["code_interpreter"]


class RankingOptions(Request):
    ranker: Literal["auto", "default_2024_08_21"] = "auto"
    score_threshold: Annotated[float, Field(ge=0, le=1)]


class FileSearchSettings(Request):
    max_num_results: Annotated[int | None, Field(ge=1, le=50), NotNull] = None
    ranking_options: Annotated[RankingOptions | None, NotNull] = None


class FileSearchTool(Request):
    type: Literal["file_search"]
    file_search: Annotated[FileSearchSettings | None, NotNull] = None


AssistantTool = Annotated[
    FunctionTool | CodeInterpreterTool | FileSearchTool, Field(discriminator="type")
]
Tools = Annotated[list[AssistantTool], Field(max_length=128)]
RunTools = Annotated[list[AssistantTool], Field(max_length=20)]


class CodeInterpreterResources(Request):
    file_ids: Annotated[list[str], Field(max_length=20)] = []


class AutoChunking(Request):
    type: Literal["auto"]


class StaticChunkingSizes(Request):
    max_chunk_size_tokens: Annotated[int, Field(ge=100, le=4096)]
    chunk_overlap_tokens: Annotated[int, Field(ge=0)]

    @field_validator("chunk_overlap_tokens")
    @classmethod
    def _at_most_half(cls, value: int, info: ValidationInfo) -> int:
        size = info.data.get("max_chunk_size_tokens")
        if size is not None and value > size // 2:
            raise ValueError(
                f"chunk_overlap_tokens must not exceed half of max_chunk_size_tokens ({size // 2})"
            )
        return value


class StaticChunking(Request):
    type: Literal["static"]
    static: StaticChunkingSizes


ChunkingStrategy = Annotated[AutoChunking | StaticChunking, Field(discriminator="type")]


class NewVectorStore(WithMetadata):
    file_ids: Annotated[list[str], Field(max_length=10_000)] = []
    chunking_strategy: Annotated[ChunkingStrategy | None, NotNull] = None


class FileSearchResources(Request):
    """Vector stores by id, or (when creating) new ones from files: one or the other."""

    vector_store_ids: Annotated[list[str] | None, Field(max_length=1), NotNull] = None
    vector_stores: Annotated[list[NewVectorStore] | None, Field(max_length=1), NotNull] = None

    @model_validator(mode="after")
    def _one_source(self) -> FileSearchResources:
        if (self.vector_store_ids is None) == (self.vector_stores is None):
            raise PydanticCustomError(
                "one_of", "give either vector_store_ids or vector_stores (one of them)"
            )
        return self


class ExistingFileSearchResources(Request):
    vector_store_ids: Annotated[list[str] | None, Field(max_length=1), NotNull] = None


class ToolResources(Request):
    """Tool resources as an object is modified or a run names them: existing stores only."""

    code_interpreter: Annotated[CodeInterpreterResources | None, NotNull] = None
    file_search: Annotated[ExistingFileSearchResources | None, NotNull] = None


class NewToolResources(ToolResources):
    """Tool resources as an assistant or a thread is created: new vector stores too."""

    file_search: Annotated[FileSearchResources | None, NotNull] = None  # type: ignore[assignment]


# -- options ----------------------------------------------------------------------------


class JSONSchemaFormat(Request):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: Annotated[str | None, NotNull] = None
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema"), NotNull] = None
    strict: bool | None = None


class ResponseFormatText(Request):
    type: Literal["text"]


class ResponseFormatJSONObject(Request):
    type: Literal["json_object"]


class ResponseFormatJSONSchema(Request):
    type: Literal["json_schema"]
    json_schema: JSONSchemaFormat


ResponseFormat = (
    Literal["auto"]
    | Annotated[
        ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema,
        Field(discriminator="type"),
    ]
)


class NamedFunction(Request):
    name: str


class ToolChoiceFunction(Request):
    type: Literal["function"]
    function: NamedFunction


class ToolChoiceBuiltin(Request):
    type: Literal["code_interpreter", "file_search"]


ToolChoice = Literal["none", "auto", "required"] | ToolChoiceFunction | ToolChoiceBuiltin


class TruncationStrategy(Request):
    type: Literal["auto", "last_messages"]
    last_messages: Annotated[int | None, Field(ge=1)] = None


# -- messages ---------------------------------------------------------------------------


class TextPart(Request):
    type: Literal["text"]
    text: str


class ImageFileRef(Request):
    file_id: str
    detail: Literal["auto", "low", "high"] = "auto"


class ImageFilePart(Request):
    type: Literal["image_file"]
    image_file: ImageFileRef


#: An absolute URI (RFC 3986: a scheme, a colon, then no spaces), as ``format: uri`` asks.
URI_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s\x00-\x1f\x7f]+$"


class ImageURLRef(Request):
    url: Annotated[str, Field(pattern=URI_PATTERN)]
    detail: Literal["auto", "low", "high"] = "auto"


class ImageURLPart(Request):
    type: Literal["image_url"]
    image_url: ImageURLRef


ContentPart = Annotated[TextPart | ImageFilePart | ImageURLPart, Field(discriminator="type")]


class AttachmentTool(Request):
    type: Literal["code_interpreter", "file_search"]


class Attachment(Request):
    file_id: str
    tools: list[AttachmentTool] = []


class CreateMessage(WithMetadata):
    role: Literal["user", "assistant"]
    content: str | Annotated[list[ContentPart], Field(min_length=1)]
    attachments: list[Attachment] | None = None


# -- objects ----------------------------------------------------------------------------


class AssistantFields(WithMetadata):
    name: Annotated[str | None, Field(max_length=256)] = None
    description: Annotated[str | None, Field(max_length=512)] = None
    instructions: Annotated[str | None, Field(max_length=256_000)] = None
    tools: Annotated[Tools | None, NotNull] = None
    tool_resources: ToolResources | None = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    top_p: Annotated[float | None, Field(ge=0, le=1)] = None
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None


class CreateAssistant(AssistantFields):
    model: str
    tool_resources: NewToolResources | None = None


class ModifyAssistant(AssistantFields):
    model: Annotated[str | None, NotNull] = None


class CreateThread(WithMetadata):
    messages: Annotated[list[CreateMessage] | None, NotNull] = None
    tool_resources: NewToolResources | None = None


class ModifyThread(WithMetadata):
    tool_resources: ToolResources | None = None


class ModifyMetadata(WithMetadata):
    pass


class RunOptions(WithMetadata):
    model: str | None = None
    instructions: str | None = None
    tools: RunTools | None = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    top_p: Annotated[float | None, Field(ge=0, le=1)] = None
    stream: bool | None = None
    max_prompt_tokens: Annotated[int | None, Field(ge=256)] = None
    max_completion_tokens: Annotated[int | None, Field(ge=256)] = None
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: Annotated[bool | None, NotNull] = None
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None


class CreateRun(RunOptions):
    assistant_id: str
    additional_instructions: str | None = None
    additional_messages: list[CreateMessage] | None = None


class CreateThreadAndRun(RunOptions):
    assistant_id: str
    thread: Annotated[CreateThread | None, NotNull] = None
    tool_resources: ToolResources | None = None


class ToolOutput(Request):
    tool_call_id: str | None = None
    output: str | None = None


class SubmitToolOutputs(Request):
    tool_outputs: list[ToolOutput]
    stream: bool | None = None
