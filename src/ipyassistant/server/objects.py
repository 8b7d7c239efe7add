"""The API objects as the wire protocol shapes them (plain dicts, every required key present).

Builders take what a request gave and fill in the rest, so that every object the server
stores and returns already validates against the spec's ``*Object`` schemas.
"""

from __future__ import annotations

from typing import Any

from .store import new_id, now

__all__ = [
    "assistant_object",
    "file_object",
    "message_delta",
    "message_object",
    "run_object",
    "step_delta",
    "step_object",
    "text_part",
    "thread_object",
]


def _dump(value: Any) -> Any:
    """Pydantic request models to plain JSON values (aliases, no unset ``None`` keys)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def tool_resources(value: Any) -> dict[str, Any]:
    resources = _dump(value) or {}
    return {k: v for k, v in resources.items() if v is not None}


def assistant_object(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": new_id("assistant"),
        "object": "assistant",
        "created_at": now(),
        "name": fields.get("name"),
        "description": fields.get("description"),
        "model": fields["model"],
        "instructions": fields.get("instructions"),
        "tools": _dump(fields.get("tools")) or [],
        "tool_resources": tool_resources(fields.get("tool_resources")),
        "metadata": fields.get("metadata") or {},
        "temperature": fields.get("temperature"),
        "top_p": fields.get("top_p"),
        "response_format": _dump(fields.get("response_format")) or "auto",
        "reasoning_effort": fields.get("reasoning_effort"),
    }


def thread_object(metadata: dict[str, str] | None, resources: Any) -> dict[str, Any]:
    return {
        "id": new_id("thread"),
        "object": "thread",
        "created_at": now(),
        "tool_resources": tool_resources(resources),
        "metadata": metadata or {},
    }


def text_part(value: str) -> dict[str, Any]:
    return {"type": "text", "text": {"value": value, "annotations": []}}


def message_object(
    thread_id: str,
    role: str,
    content: list[dict[str, Any]],
    *,
    status: str = "completed",
    assistant_id: str | None = None,
    run_id: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    created = now()
    return {
        "id": new_id("message"),
        "object": "thread.message",
        "created_at": created,
        "thread_id": thread_id,
        "status": status,
        "incomplete_details": None,
        "completed_at": created if status == "completed" else None,
        "incomplete_at": None,
        "role": role,
        "content": content,
        "assistant_id": assistant_id,
        "run_id": run_id,
        "attachments": attachments or [],
        "metadata": metadata or {},
    }


def user_content(content: str | list[Any]) -> list[dict[str, Any]]:
    """A create-message ``content`` (string or parts) as message content blocks."""
    if isinstance(content, str):
        return [text_part(content)]
    blocks = []
    for part in _dump(content):
        if part["type"] == "text":
            blocks.append(text_part(part["text"]))
        else:
            blocks.append(part)
    return blocks


def run_object(
    *,
    thread_id: str,
    assistant: dict[str, Any],
    options: dict[str, Any],
    instructions: str,
    tools: list[dict[str, Any]],
    expires_at: int,
) -> dict[str, Any]:
    """A new ``queued`` run: the request's options over the assistant's defaults."""

    def pick(key: str, default: Any = None) -> Any:
        value = options.get(key)
        if value is None:
            value = assistant.get(key)
        return _dump(value) if value is not None else default

    return {
        "id": new_id("run"),
        "object": "thread.run",
        "created_at": now(),
        "thread_id": thread_id,
        "assistant_id": assistant["id"],
        "status": "queued",
        "required_action": None,
        "last_error": None,
        "expires_at": expires_at,
        "started_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "model": options.get("model") or assistant["model"],
        "instructions": instructions,
        "tools": tools,
        "metadata": options.get("metadata") or {},
        "usage": None,
        "incomplete_details": None,
        "temperature": pick("temperature"),  # None: the model's own default
        "top_p": pick("top_p"),
        "max_prompt_tokens": options.get("max_prompt_tokens"),
        "max_completion_tokens": options.get("max_completion_tokens"),
        "truncation_strategy": _dump(options.get("truncation_strategy"))
        or {"type": "auto", "last_messages": None},
        "tool_choice": _dump(options.get("tool_choice")) or "auto",
        "parallel_tool_calls": options.get("parallel_tool_calls") is not False,
        "response_format": pick("response_format", "auto"),
        "reasoning_effort": pick("reasoning_effort"),
    }


def step_object(run: dict[str, Any], details: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": new_id("run_step"),
        "object": "thread.run.step",
        "created_at": now(),
        "assistant_id": run["assistant_id"],
        "thread_id": run["thread_id"],
        "run_id": run["id"],
        "type": details["type"],
        "status": "in_progress",
        "step_details": details,
        "last_error": None,
        "expired_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "metadata": {},
        "usage": None,
    }


def message_delta(message_id: str, index: int, value: str) -> dict[str, Any]:
    return {
        "id": message_id,
        "object": "thread.message.delta",
        "delta": {
            "content": [
                {"index": index, "type": "text", "text": {"value": value, "annotations": []}}
            ]
        },
    }


def step_delta(step_id: str, tool_call: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": step_id,
        "object": "thread.run.step.delta",
        "delta": {"step_details": {"type": "tool_calls", "tool_calls": [tool_call]}},
    }


def file_object(file_id: str, filename: str, size: int, purpose: str) -> dict[str, Any]:
    # No expires_at / status_details: the spec types them as integer / string (not nullable),
    # so a file that never expires and has no details leaves them out.
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": now(),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
    }
