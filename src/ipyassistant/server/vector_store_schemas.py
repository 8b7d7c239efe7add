"""Request bodies of the ``/vector_stores`` endpoints, validated as strictly as :mod:`.schemas`.

Beyond the spec, a store takes one extra field, ``embedding_model`` (the SDK sends it with
``extra_body``): the embedder its chunks are embedded with, e.g. ``"openai:nomic-embed-text"``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .schemas import ChunkingStrategy, NotNull, Request, WithMetadata

__all__ = [
    "Attributes",
    "CompoundFilter",
    "CreateFileBatch",
    "CreateVectorStore",
    "CreateVectorStoreFile",
    "ExpiresAfter",
    "ModifyVectorStore",
    "SearchVectorStore",
    "UpdateFileAttributes",
]

MAX_ATTRIBUTES = 16

AttributeValue = Annotated[str, Field(max_length=512)] | float | bool


def _check_attributes(value: dict[str, AttributeValue] | None) -> dict[str, AttributeValue] | None:
    if value is None:
        return value
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"attributes can have at most {MAX_ATTRIBUTES} keys, got {len(value)}")
    for key in value:
        if len(key) > 64:
            raise ValueError(f"attribute keys can be at most 64 characters: {key[:20]!r}…")
    return value


#: A file's attributes: what search filters compare (strings, numbers, booleans).
Attributes = dict[str, AttributeValue] | None


class ExpiresAfter(Request):
    anchor: Literal["last_active_at"]
    days: Annotated[int, Field(ge=1, le=365)]


EmbeddingModel = Annotated[str | None, Field(min_length=1, max_length=200), NotNull]


class CreateVectorStore(WithMetadata):
    name: Annotated[str | None, Field(max_length=256), NotNull] = None
    description: Annotated[str | None, Field(max_length=512), NotNull] = None
    file_ids: Annotated[list[str], Field(max_length=500)] = []
    expires_after: Annotated[ExpiresAfter | None, NotNull] = None
    chunking_strategy: Annotated[ChunkingStrategy | None, NotNull] = None
    embedding_model: EmbeddingModel = None


class ModifyVectorStore(WithMetadata):
    name: Annotated[str | None, Field(max_length=256)] = None
    expires_after: ExpiresAfter | None = None
    embedding_model: EmbeddingModel = None


class WithAttributes(Request):
    attributes: Attributes = None

    @field_validator("attributes")
    @classmethod
    def _attributes(
        cls, value: dict[str, AttributeValue] | None
    ) -> dict[str, AttributeValue] | None:
        return _check_attributes(value)


class CreateVectorStoreFile(WithAttributes):
    file_id: str
    chunking_strategy: Annotated[ChunkingStrategy | None, NotNull] = None


class UpdateFileAttributes(WithAttributes):
    attributes: Attributes


class CreateFileBatch(WithAttributes):
    """Files by id (``file_ids``, sharing the batch's settings) or each with its own (``files``)."""

    file_ids: Annotated[list[str] | None, Field(min_length=1, max_length=2000), NotNull] = None
    files: Annotated[
        list[CreateVectorStoreFile] | None, Field(min_length=1, max_length=2000), NotNull
    ] = None
    chunking_strategy: Annotated[ChunkingStrategy | None, NotNull] = None

    @model_validator(mode="after")
    def _one_source(self) -> CreateFileBatch:
        if (self.file_ids is None) == (self.files is None):
            raise PydanticCustomError("one_of", "give either file_ids or files (one of them)")
        return self


# -- search -------------------------------------------------------------------------------


class ComparisonFilter(Request):
    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    key: str
    value: str | float | bool | list[str | float]


class CompoundFilter(Request):
    type: Literal["and", "or"]
    filters: list[ComparisonFilter | CompoundFilter]


class SearchRanking(Request):
    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.0


class SearchVectorStore(Request):
    query: str | Annotated[list[str], Field(min_length=1, max_length=10)]
    rewrite_query: bool = False
    max_num_results: Annotated[int, Field(ge=1, le=50)] = 10
    filters: Annotated[ComparisonFilter | CompoundFilter | None, NotNull] = None
    ranking_options: Annotated[SearchRanking | None, NotNull] = None
