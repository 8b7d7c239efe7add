"""The prompt builder: stored run, messages and steps in, a model request (or a reason) out."""

from __future__ import annotations

import base64
from typing import Any

from ipyassistant.server import objects
from ipyassistant.server.engine.prompt import (
    Context,
    Incomplete,
    build_request,
    data_url,
    tool_choice_name,
    user_image_files,
)
from ipyassistant.server.models.base import (
    CODE_INTERPRETER_FUNCTION,
    FILE_SEARCH_FUNCTION,
    ChatMessage,
    ModelRequest,
)

ASSISTANT = {"id": "asst_1", "model": "test"}
THREAD = "thread_1"
PNG = b"\x89PNG\r\n\x1a\n...."
JPEG = b"\xff\xd8\xff\xe0...."
GIF = b"GIF89a...."


def make_run(**options: Any) -> dict[str, Any]:
    tools = options.pop("tools", [])
    return objects.run_object(
        thread_id=THREAD,
        assistant=ASSISTANT,
        options=options,
        instructions=options.pop("instructions", "Be brief."),
        tools=tools,
        expires_at=0,
    )


def user(text: str, *extra: dict[str, Any]) -> dict[str, Any]:
    return objects.message_object(THREAD, "user", [objects.text_part(text), *extra])


def reply(run: dict[str, Any], text: str) -> dict[str, Any]:
    return objects.message_object(
        THREAD, "assistant", [objects.text_part(text)], assistant_id="asst_1", run_id=run["id"]
    )


def build(
    run: dict[str, Any],
    messages: list[dict[str, Any]],
    steps: list[dict[str, Any]] | None = None,
    *,
    note: str = "",
    first_call: bool = True,
    code_interpreter: bool = False,
    images: dict[str, bytes] | None = None,
) -> ModelRequest | Incomplete:
    # One token per message: budgets in these tests count messages.
    return build_request(
        run,
        Context(messages, steps or [], note),
        count_tokens=len,
        first_call=first_call,
        code_interpreter=code_interpreter,
        images=images or {},
    )


def request(*args: Any, **kwargs: Any) -> ModelRequest:
    result = build(*args, **kwargs)
    assert isinstance(result, ModelRequest)
    return result


def roles_and_texts(req: ModelRequest) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in req.messages]


def test_instructions_and_note_then_the_thread():
    run = make_run()
    req = request(run, [user("hi"), user("there")], note="Files: /data/a.csv")
    assert roles_and_texts(req) == [
        ("system", "Be brief.\n\nFiles: /data/a.csv"),
        ("user", "hi"),
        ("user", "there"),
    ]
    assert req.model == "test"
    assert req.tools == []
    assert req.tool_choice == "auto"
    assert req.response_format is None
    assert req.max_tokens is None


def test_no_instructions_no_system_message():
    run = make_run(instructions="")
    assert roles_and_texts(request(run, [user("hi")])) == [("user", "hi")]
    assert roles_and_texts(request(run, [user("hi")], note="n")) == [
        ("system", "n"),
        ("user", "hi"),
    ]


def test_the_provider_prefix_is_not_sent_as_the_model_name():
    assert request(make_run(model="openai:gpt-4o-mini"), [user("hi")]).model == "gpt-4o-mini"


def test_last_messages_truncation_keeps_the_newest():
    run = make_run(truncation_strategy={"type": "last_messages", "last_messages": 2})
    req = request(run, [user("1"), user("2"), user("3")])
    assert [m.content for m in req.messages[1:]] == ["2", "3"]


def test_auto_truncation_drops_the_oldest_until_the_prompt_fits():
    run = make_run(max_prompt_tokens=3)  # system + two messages
    req = request(run, [user("1"), user("2"), user("3"), user("4")])
    assert [m.content for m in req.messages[1:]] == ["3", "4"]


def test_a_prompt_that_cannot_fit_makes_the_run_incomplete():
    run = make_run(max_prompt_tokens=1)
    assert build(run, [user("1"), user("2")]) == Incomplete("max_prompt_tokens")
    # Without auto truncation, nothing is dropped.
    run = make_run(max_prompt_tokens=2, truncation_strategy={"type": "last_messages"})
    assert build(run, [user("1"), user("2")]) == Incomplete("max_prompt_tokens")


def test_completion_budget_is_what_the_run_has_not_used():
    run = make_run(max_completion_tokens=50)
    assert request(run, [user("hi")]).max_tokens == 50
    run["usage"] = {"prompt_tokens": 10, "completion_tokens": 30, "total_tokens": 40}
    assert request(run, [user("hi")]).max_tokens == 20
    run["usage"]["completion_tokens"] = 50
    assert build(run, [user("hi")]) == Incomplete("max_completion_tokens")


def test_tool_choice_applies_to_the_first_call_only():
    run = make_run(tool_choice={"type": "function", "function": {"name": "lookup"}})
    assert request(run, [user("hi")]).tool_choice == "lookup"
    assert request(run, [user("hi")], first_call=False).tool_choice == "auto"


def test_tool_choice_names():
    assert tool_choice_name("required") == "required"
    assert tool_choice_name({"type": "function", "function": {"name": "f"}}) == "f"
    assert tool_choice_name({"type": "code_interpreter"}) == CODE_INTERPRETER_FUNCTION
    assert tool_choice_name({"type": "file_search"}) == FILE_SEARCH_FUNCTION


def test_function_tools_and_the_code_interpreter_function():
    tools = [
        {"type": "function", "function": {"name": "lookup", "description": "Find it."}},
        {"type": "code_interpreter"},
    ]
    run = make_run(tools=tools)
    specs = request(run, [user("hi")]).tools
    assert [(s.name, s.description, s.parameters) for s in specs] == [
        ("lookup", "Find it.", {"type": "object", "properties": {}})
    ]
    specs = request(run, [user("hi")], code_interpreter=True).tools
    assert [s.name for s in specs] == ["lookup", CODE_INTERPRETER_FUNCTION]
    assert specs[1].parameters["required"] == ["code"]


def test_response_format_only_when_not_text():
    assert request(make_run(), [user("hi")]).response_format is None  # "auto"
    text = make_run(response_format={"type": "text"})
    assert request(text, [user("hi")]).response_format is None
    json_object = make_run(response_format={"type": "json_object"})
    assert request(json_object, [user("hi")]).response_format == {"type": "json_object"}


def test_user_images_become_data_urls_by_their_bytes():
    blocks = [
        {"type": "image_file", "image_file": {"file_id": f, "detail": "auto"}}
        for f in ("file-png", "file-jpeg", "file-gif", "file-gone")
    ]
    url = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    run = make_run()
    messages = [user("look", *blocks, url)]
    assert user_image_files(run, messages) == ["file-png", "file-jpeg", "file-gif", "file-gone"]
    images = {"file-png": PNG, "file-jpeg": JPEG, "file-gif": GIF}
    (_, message) = request(run, messages, images=images).messages
    assert message.images == [
        f"data:image/png;base64,{base64.b64encode(PNG).decode()}",
        f"data:image/jpeg;base64,{base64.b64encode(JPEG).decode()}",
        f"data:image/gif;base64,{base64.b64encode(GIF).decode()}",
        "",  # unreadable
        "https://example.com/a.png",
    ]
    assert data_url(None) == ""


def test_assistant_images_are_not_sent_back():
    run = make_run()
    earlier = objects.message_object(
        THREAD,
        "assistant",
        [objects.text_part("a plot"), {"type": "image_file", "image_file": {"file_id": "f"}}],
        run_id="run_earlier",
    )
    assert user_image_files(run, [earlier]) == []
    (_, message) = request(run, [earlier]).messages
    assert message == ChatMessage("assistant", "a plot")


def test_the_runs_own_turns_are_replayed_from_its_steps():
    run = make_run(tools=[{"type": "function", "function": {"name": "lookup"}}])
    first = reply(run, "Let me look.")
    calls = objects.step_object(
        run,
        {
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": 1}', "output": "found"},
                },
                {
                    "id": "call_2",
                    "type": "code_interpreter",
                    "code_interpreter": {
                        "input": "print(1)",
                        "outputs": [
                            {"type": "logs", "logs": "1\n"},
                            {"type": "image", "image": {"file_id": "file-img"}},
                        ],
                    },
                },
                {
                    "id": "call_3",
                    "type": "code_interpreter",
                    "code_interpreter": {"input": "x = 1", "outputs": []},
                },
            ],
        },
    )
    said = objects.step_object(
        run, {"type": "message_creation", "message_creation": {"message_id": first["id"]}}
    )
    question = user("what is it?")
    req = request(run, [question, first], [said, calls], first_call=False)
    _system, asked, *own = req.messages
    assert (asked.role, asked.content) == ("user", "what is it?")  # not the run's own message
    assert own[0] == ChatMessage("assistant", "Let me look.")
    assert [(c.id, c.name, c.arguments) for c in own[1].tool_calls] == [
        ("call_1", "lookup", '{"q": 1}'),
        ("call_2", CODE_INTERPRETER_FUNCTION, '{"code": "print(1)"}'),
        ("call_3", CODE_INTERPRETER_FUNCTION, '{"code": "x = 1"}'),
    ]
    assert [(m.role, m.tool_call_id, m.name, m.content) for m in own[2:]] == [
        ("tool", "call_1", "lookup", "found"),
        ("tool", "call_2", CODE_INTERPRETER_FUNCTION, "1\n\n[image file-img shown to the user]"),
        ("tool", "call_3", CODE_INTERPRETER_FUNCTION, "(no output)"),
    ]
