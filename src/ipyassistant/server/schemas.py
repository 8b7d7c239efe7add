"""Request bodies, validated with pydantic before anything is written.

Unknown fields are refused (``extra="forbid"``), as OpenAI does, so that a typo is an error
rather than a setting silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "AssistantTool",
    "CreateAssistant",
    "CreateMessage",
    "CreateRun",
    "CreateThread",
    "CreateThreadAndRun",
    "ModifyAssistant",
    "ModifyMetadata",
    "ModifyThread",
    "SubmitToolOutputs",
]

MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(Request):
    type: Literal["function"]
    function: FunctionDefinition


class CodeInterpreterTool(Request):
    type: Literal["code_interpreter"]


class FileSearchTool(Request):
    type: Literal["file_search"]
    file_search: dict[str, Any] | None = None


AssistantTool = Annotated[
    FunctionTool | CodeInterpreterTool | FileSearchTool, Field(discriminator="type")
]
Tools = Annotated[list[AssistantTool], Field(max_length=128)]


class CodeInterpreterResources(Request):
    file_ids: Annotated[list[str], Field(max_length=20)] = []


class FileSearchResources(Request):
    vector_store_ids: Annotated[list[str], Field(max_length=1)] = []
    vector_stores: list[dict[str, Any]] | None = None


class ToolResources(Request):
    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None


# -- options ----------------------------------------------------------------------------


class JSONSchemaFormat(Request):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    schema_: Annotated[dict[str, Any] | None, Field(alias="schema")] = None
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


class ImageURLRef(Request):
    url: str
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
    tools: Tools | None = None
    tool_resources: ToolResources | None = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    top_p: Annotated[float | None, Field(ge=0, le=1)] = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None


class CreateAssistant(AssistantFields):
    model: str


class ModifyAssistant(AssistantFields):
    model: str | None = None


class CreateThread(WithMetadata):
    messages: list[CreateMessage] | None = None
    tool_resources: ToolResources | None = None


class ModifyThread(WithMetadata):
    tool_resources: ToolResources | None = None


class ModifyMetadata(WithMetadata):
    pass


class RunOptions(WithMetadata):
    model: str | None = None
    instructions: str | None = None
    tools: Tools | None = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    top_p: Annotated[float | None, Field(ge=0, le=1)] = None
    stream: bool | None = None
    max_prompt_tokens: Annotated[int | None, Field(ge=256)] = None
    max_completion_tokens: Annotated[int | None, Field(ge=256)] = None
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None


class CreateRun(RunOptions):
    assistant_id: str
    additional_instructions: str | None = None
    additional_messages: list[CreateMessage] | None = None


class CreateThreadAndRun(RunOptions):
    assistant_id: str
    thread: CreateThread | None = None
    tool_resources: ToolResources | None = None


class ToolOutput(Request):
    tool_call_id: str | None = None
    output: str | None = None


class SubmitToolOutputs(Request):
    tool_outputs: list[ToolOutput]
    stream: bool | None = None
