"""Assistant: fields, say(), instructions as templates, the four lifecycles, chat()."""

from __future__ import annotations

import openai
import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from ipyassistant import Assistant, CodeInterpreter, Run, Thread
from ipyassistant.assistants import Lifecycle
from ipyassistant.exceptions import InstructionsError, LifecycleError, MissingToolWarning
from ipyassistant.tools import FunctionTool


def roll_dice(n_dice: int) -> list[int]:
    """Roll dice (always sixes, for the tests).

    Args:
        n_dice: How many dice.
    """
    return [6] * n_dice


def text(message) -> str:
    return "".join(block.text.value for block in message.content if block.type == "text")


def assistant_ids(api: openai.OpenAI) -> set[str]:
    return {a.id for a in api.beta.assistants.list(limit=100)}


# -- fields ----------------------------------------------------------------------------------


def test_an_assistant_has_marvins_fields_with_defaults():
    ai = Assistant()
    assert (ai.name, ai.id, ai.description, ai.instructions, ai.model) == (
        "Assistant",
        None,
        None,
        None,
        None,
    )
    assert ai.tools == [] and ai.tool_resources is None and ai.metadata == {}
    assert ai.response_format is None and isinstance(ai.default_thread, Thread)
    assert ai.lifecycle is Lifecycle.LAZY
    assert "instructions" not in repr(Assistant(instructions="secret sauce"))


def test_the_created_assistant_carries_every_field(api):
    ai = Assistant(
        name="Marvin",
        description="a paranoid android",
        instructions="You are {{ self_.name }}.",
        model="test",
        tools=[CodeInterpreter, roll_dice],
        metadata={"team": "qa"},
        response_format="auto",
    )
    with ai:
        stored = api.beta.assistants.retrieve(ai.id)
    assert (stored.name, stored.description, stored.model) == (
        "Marvin",
        "a paranoid android",
        "test",
    )
    assert stored.instructions == "You are Marvin."
    assert stored.metadata == {"team": "qa"}
    assert [t.type for t in stored.tools] == ["code_interpreter", "function"]
    function = stored.tools[1].function
    assert function.name == "roll_dice" and function.description.startswith("Roll dice")
    assert function.parameters["properties"]["n_dice"] == {
        "description": "How many dice.",
        "type": "integer",
    }


def test_an_assistant_without_model_is_created_with_the_default_model(api, monkeypatch):
    monkeypatch.setenv("IPYASSISTANT_MODEL", "test")
    with Assistant() as ai:
        assert api.beta.assistants.retrieve(ai.id).model == "test"


# -- say ---------------------------------------------------------------------------------------


def test_say_posts_one_message_to_the_default_thread_and_runs():
    ai = Assistant()
    run = ai.say("hello", event_handler_class=None)
    assert isinstance(run, Run) and run.thread is ai.default_thread
    assert run.run.status == "completed"
    assert [text(m) for m in run.messages] == ["echo: hello"]
    assert [(m.role, text(m)) for m in ai.default_thread.get_messages()] == [
        ("user", "hello"),
        ("assistant", "echo: hello"),
    ]


def test_saying_again_continues_the_conversation():
    ai = Assistant()
    ai.say("Hi!", event_handler_class=None)
    ai.say("Bye!", event_handler_class=None)
    assert [text(m) for m in ai.default_thread.get_messages()] == [
        "Hi!",
        "echo: Hi!",
        "Bye!",
        "echo: Bye!",
    ]


def test_say_on_another_thread_leaves_the_default_thread_alone():
    ai = Assistant()
    other = Thread()
    ai.say("elsewhere", thread=other, event_handler_class=None)
    assert ai.default_thread.id is None
    assert [text(m) for m in other.get_messages()] == ["elsewhere", "echo: elsewhere"]


def test_clear_default_thread_starts_a_new_conversation():
    ai = Assistant()
    ai.say("first", event_handler_class=None)
    first = ai.default_thread
    ai.clear_default_thread()
    assert ai.default_thread is not first and ai.default_thread.id is None
    ai.say("second", event_handler_class=None)
    assert [text(m) for m in ai.default_thread.get_messages()] == ["second", "echo: second"]


def test_say_passes_run_overrides_on():
    ai = Assistant(tools=[roll_dice])
    run = ai.say("just talk", tool_choice="none", event_handler_class=None)
    assert [text(m) for m in run.messages] == ["echo: just talk"]


# -- instructions ---------------------------------------------------------------------------


def test_instructions_are_a_jinja_template_rendered_with_self_():
    ai = Assistant(
        name="Marvin",
        tools=[roll_dice],
        instructions="You are {{ self_.name }}{% if self_.tools %} with {{ self_.tools | length }} tool{% endif %}.",
    )
    assert ai.get_instructions() == "You are Marvin with 1 tool."
    run = ai.say("/instructions", tool_choice="none", event_handler_class=None)
    assert text(run.messages[0]) == "You are Marvin with 1 tool."


def test_instructions_render_at_each_run():
    ai = Assistant(name="Marvin", instructions="Call me {{ self_.name }}.")
    with ai:
        ai.name = "Arthur"
        run = ai.say("/instructions", event_handler_class=None)
    assert text(run.messages[0]) == "Call me Arthur."


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ("You are {{ self_.nmae }}.", "nmae"),
        ("{% if self_.name %}unclosed", r"line 1"),
        ("{{ self_.__class__.__mro__ }}", "render"),
    ],
    ids=["undefined", "syntax", "sandbox"],
)
def test_a_template_error_is_raised_before_any_api_call(api, template, match):
    before = assistant_ids(api)
    ai = Assistant(instructions=template)
    with pytest.raises(InstructionsError, match=match):
        ai.say("hello", event_handler_class=None)
    assert ai.default_thread.id is None  # the message was not even posted
    assert assistant_ids(api) == before
    with pytest.raises(InstructionsError):
        ai.create()
    assert ai.id is None


# -- lifecycles -------------------------------------------------------------------------------


def test_lazy_lifecycle_creates_and_deletes_around_each_call(api):
    ai = Assistant()
    seen: list[str | None] = []

    def spy() -> str:
        """Report the assistant's id."""
        seen.append(ai.id)
        return "ok"

    ai.tools = [spy]  # validated on assignment, like at construction
    assert isinstance(ai.tools[0], FunctionTool)
    before = assistant_ids(api)
    ai.say("one", event_handler_class=None)
    ai.say("two", event_handler_class=None)
    assert ai.id is None and ai.lifecycle is Lifecycle.LAZY
    assert len(seen) == 2 and None not in seen and seen[0] != seen[1]
    assert assistant_ids(api) == before  # nothing left behind


def test_context_lifecycle_creates_once_and_deletes_at_the_outermost_exit(api):
    ai = Assistant()
    with ai:
        created = ai.id
        assert created in assistant_ids(api) and ai.lifecycle is Lifecycle.CONTEXT
        ai.say("hi", event_handler_class=None)
        with ai:
            ai.say("nested", event_handler_class=None)
            assert ai.id == created
        assert ai.id == created  # the inner exit keeps it
        ai.say("bye", event_handler_class=None)
        assert ai.id == created
    assert ai.id is None and ai.lifecycle is Lifecycle.LAZY
    assert created not in assistant_ids(api)


async def test_async_context_lifecycle(api):
    async with Assistant() as ai:
        created = ai.id
        run = await ai.say_async("hi", event_handler_class=None)
        assert run.run.assistant_id == created
    assert ai.id is None and created not in assistant_ids(api)


def test_manual_lifecycle_and_its_errors(api):
    ai = Assistant()
    with pytest.raises(LifecycleError, match="not been created"):
        ai.delete()
    assert ai.create() is ai and ai.lifecycle is Lifecycle.MANUAL
    created = ai.id
    with pytest.raises(LifecycleError, match="exists already"):
        ai.create()
    ai.say("hi", event_handler_class=None)
    with ai:
        pass
    assert ai.id == created  # neither a call nor a block deletes it
    ai.delete()
    assert ai.id is None and created not in assistant_ids(api)
    with pytest.raises(LifecycleError):
        ai.delete()


async def test_manual_lifecycle_async(api):
    ai = await Assistant().create_async()
    created = ai.id
    await ai.delete_async()
    assert created not in assistant_ids(api)


def test_an_assistant_given_an_id_is_used_and_never_deleted(api):
    original = Assistant(name="Dice", tools=[roll_dice]).create()
    try:
        same = Assistant(id=original.id, name="Dice", tools=[roll_dice])
        assert same.lifecycle is Lifecycle.LOADED
        run = same.say('/call roll_dice {"n_dice": 2}', event_handler_class=None)
        assert run.run.assistant_id == original.id
        with same:
            same.say("again", event_handler_class=None)
        assert same.id == original.id and original.id in assistant_ids(api)
    finally:
        original.delete()


def test_load_reads_the_assistant_and_takes_the_tools_given(api):
    original = Assistant(name="Dice", instructions="Roll well.", tools=[roll_dice]).create()
    try:
        loaded = Assistant.load(original.id, tools=[roll_dice])
        assert (loaded.id, loaded.name, loaded.instructions, loaded.model) == (
            original.id,
            "Dice",
            "Roll well.",
            "test",
        )
        assert loaded.lifecycle is Lifecycle.LOADED
        run = loaded.say('/call roll_dice {"n_dice": 2}', event_handler_class=None)
        assert text(run.messages[0]) == "Tool results:\n- roll_dice: [6,6]"
        assert original.id in assistant_ids(api)
    finally:
        original.delete()


def test_loading_without_the_function_tools_warns_that_they_cannot_be_called():
    original = Assistant(tools=[roll_dice, CodeInterpreter]).create()
    try:
        with pytest.warns(MissingToolWarning, match="roll_dice"):
            loaded = Assistant.load(original.id)
        tool = next(t for t in loaded.tools if isinstance(t, FunctionTool))
        assert tool.name == "roll_dice" and tool.function is None
        run = loaded.say('/call roll_dice {"n_dice": 1}', event_handler_class=None)
        assert "no Python function" in text(run.messages[0])
        assert run.run.status == "completed"
    finally:
        original.delete()


async def test_load_async_reads_the_assistant():
    original = await Assistant(name="Async").create_async()
    try:
        loaded = await Assistant.load_async(original.id)
        assert loaded.name == "Async" and loaded.id == original.id
    finally:
        await original.delete_async()


def test_load_of_an_unknown_id_is_the_sdks_not_found_error():
    with pytest.raises(openai.NotFoundError):
        Assistant.load("asst_does_not_exist")


# -- chat -------------------------------------------------------------------------------------


def test_chat_talks_until_exit_with_one_assistant(api):
    ai = Assistant()
    before = assistant_ids(api)
    with create_pipe_input() as keyboard, create_app_session(input=keyboard, output=DummyOutput()):
        keyboard.send_text("hello\n\nhow are you\nexit\n")
        ai.chat(event_handler_class=None)
    assert [text(m) for m in ai.default_thread.get_messages()] == [
        "hello",
        "echo: hello",
        "how are you",
        "echo: how are you",
    ]
    runs = api.beta.threads.runs.list(ai.default_thread.id)
    assert len({r.assistant_id for r in runs}) == 1  # created once for the conversation
    assert ai.id is None and assistant_ids(api) == before


async def test_chat_async_ends_at_end_of_input():
    ai = Assistant()
    thread = Thread()
    with create_pipe_input() as keyboard, create_app_session(input=keyboard, output=DummyOutput()):
        keyboard.send_text("hi there\n")
        keyboard.close()  # Ctrl-D
        await ai.chat_async(thread=thread, event_handler_class=None)
    assert [text(m) for m in thread.get_messages()] == ["hi there", "echo: hi there"]
