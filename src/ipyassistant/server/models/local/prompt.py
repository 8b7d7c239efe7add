"""The prompt a local model reads: the conversation as role/content messages for a chat template.

Pure functions over plain data (no llama.cpp): the tools' description added to the system
message, the conversation flattened into messages any chat template accepts, and the fallback
for templates that refuse a system message. The template itself is applied by
:mod:`.generation`, with the GGUF file's own template.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..base import CODE_INTERPRETER_FUNCTION, ChatMessage, FunctionSpec, ModelError

__all__ = ["CHATML", "CONTENT_FREE", "REPLY_NOTE", "apply_template", "chat_messages", "tools_note"]

#: Used when a GGUF file carries no chat template.
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


#: User messages that say nothing: the baseline a request's effect is measured against.
CONTENT_FREE = ("N/A", "")

#: Appended to the system message: small models otherwise continue the conversation as a
#: script ("Dicey: …", "User: …") instead of answering it.
REPLY_NOTE = "Reply to the user's last message directly, as the assistant, in a few sentences."


def tools_note(tools: list[FunctionSpec], forced: bool) -> str:
    """The tools' description for the system message."""
    lines = ["# Tools", "", "You can call these tools:"]
    for spec in tools:
        description = f": {spec.description}" if spec.description else ""
        lines.append(f"- {spec.name}{description}")
        lines.append(f"  arguments (JSON schema): {json.dumps(spec.parameters)}")
    example = {"tool_calls": [{"name": tools[0].name, "arguments": {}}]}
    lines += [
        "",
        "To call tools, reply with only a JSON object like this one, with arguments that follow "
        f"the tool's schema: {json.dumps(example)}",
    ]
    if forced:
        lines.append("Call a tool now.")
    else:
        lines.append("Otherwise reply to the user in plain text.")
    return "\n".join(lines)


def chat_messages(messages: list[ChatMessage], tools_note: str) -> list[dict[str, str]]:
    """The conversation as role/content dicts that any chat template accepts.

    Tool calls become the JSON object the model is asked to write; tool results become user
    messages; messages of the same role in a row are merged (many templates insist that user
    and assistant alternate).
    """
    parts = [m.content for m in messages if m.role == "system" and m.content]
    system = "\n\n".join([*parts, REPLY_NOTE, *([tools_note] if tools_note else [])])
    chat: list[dict[str, str]] = [{"role": "system", "content": system}]
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "assistant":
            content = message.content
            if message.tool_calls:
                calls = [
                    {"name": call.name, "arguments": _loads_or_text(call.arguments)}
                    for call in message.tool_calls
                ]
                envelope = json.dumps({"tool_calls": calls})
                content = f"{content}\n{envelope}" if content else envelope
            role, text = "assistant", content
        elif message.role == "tool":
            name = message.name or CODE_INTERPRETER_FUNCTION
            role, text = "user", f"Result of the tool call {name}:\n{message.content}"
        else:
            role = "user"
            text = message.content
            if message.images:
                text += "\n[images omitted: this model reads text only]"
        if chat and chat[-1]["role"] == role and role != "system":
            chat[-1]["content"] += "\n\n" + text
        else:
            chat.append({"role": role, "content": text})
    return chat


def _loads_or_text(arguments: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return arguments




def apply_template(
    template: Callable[[list[dict[str, str]]], str], chat: list[dict[str, str]], model: str
) -> str:
    """The prompt: ``chat`` formatted by ``template`` (raises :class:`ModelError`).

    Some templates refuse a system message: then it is folded into the first user message.
    """
    try:
        return template(chat)
    except Exception as first:
        if not chat or chat[0]["role"] != "system":
            raise ModelError(
                f"{model}: the model's chat template cannot format this conversation: {first}"
            ) from None
        system, rest = chat[0]["content"], [dict(m) for m in chat[1:]]
        if rest and rest[0]["role"] == "user":
            rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
        else:
            rest.insert(0, {"role": "user", "content": system})
        try:
            return template(rest)
        except Exception as exc:
            raise ModelError(
                f"{model}: the model's chat template cannot format this conversation: {exc}"
            ) from None
