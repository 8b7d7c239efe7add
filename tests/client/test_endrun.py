"""EndRun: raised, returned, or ENDRUN_TOKEN ends the run, cancelled on the server."""

from __future__ import annotations

import pytest

from ipyassistant import ENDRUN_TOKEN, Assistant, EndRun, Thread


def raise_it() -> str:
    """End the run by raising."""
    raise EndRun(data={"result": "raised"})


def return_it() -> EndRun:
    """End the run by returning the exception."""
    return EndRun(data="returned")


def return_token() -> str:
    """End the run with the token."""
    return ENDRUN_TOKEN


async def raise_it_async() -> str:
    """End the run from an async tool."""
    raise EndRun(data=42)


@pytest.mark.parametrize(
    ("tool", "data"),
    [
        (raise_it, {"result": "raised"}),
        (return_it, "returned"),
        (return_token, None),
        (raise_it_async, 42),
    ],
    ids=["raise", "return", "token", "async"],
)
def test_a_tool_ends_the_run_and_control_returns_with_its_data(api, tool, data):
    thread = Thread()
    ai = Assistant(tools=[tool])
    run = ai.say("finish up", thread=thread, event_handler_class=None)
    assert run.run.status == "cancelled"
    assert api.beta.threads.runs.retrieve(run.run.id, thread_id=thread.id).status == "cancelled"
    assert run.data == data
    assert [s.status for s in run.steps] == ["cancelled"]
    # the thread is free: the conversation goes on
    after = ai.say("are you there?", thread=thread, tool_choice="none", event_handler_class=None)
    assert after.run.status == "completed"


async def test_endrun_from_the_async_api():
    run = await Assistant(tools=[return_it]).say_async("finish", event_handler_class=None)
    assert (run.run.status, run.data) == ("cancelled", "returned")


def test_endrun_ends_the_run_even_when_other_tools_answered():
    def harmless() -> str:
        """Do nothing much."""
        return "fine"

    run = Assistant(tools=[harmless, return_it]).say("both", event_handler_class=None)
    assert (run.run.status, run.data) == ("cancelled", "returned")
