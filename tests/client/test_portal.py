"""One background loop serves every sync call; sync twins mirror the async methods."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import threading

import pytest

import ipyassistant
from ipyassistant import Assistant, Run, Thread
from ipyassistant._portal import Portal, portal


def _portal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ipyassistant-portal"]


def test_sync_calls_share_one_long_lived_background_loop():
    thread = Thread()
    thread.add("one")
    loop = portal().loop
    thread.add("two")
    Thread().add("three")
    assert portal().loop is loop and loop.is_running()
    assert len(_portal_threads()) == 1
    assert [m.content[0].text.value for m in thread.get_messages()] == ["one", "two"]


async def test_sync_methods_work_inside_a_running_event_loop():
    # As in Jupyter: this thread is running an event loop while calling the sync API.
    running = asyncio.get_running_loop()
    ai = Assistant()
    run = ai.say("hello", event_handler_class=None)
    assert run.messages[-1].content[0].text.value == "echo: hello"
    assert portal().loop is not running


async def test_async_methods_run_on_the_portal_and_answer_the_caller():
    thread = Thread()
    message = await thread.add_async("hi")
    assert message.content[0].text.value == "hi"
    assert (await thread.get_messages_async())[0].id == message.id
    assert len(_portal_threads()) == 1


def test_a_sync_method_called_on_the_portal_loop_is_a_clear_error():
    thread = Thread()

    async def peek() -> str:
        thread.add("from inside")  # a sync call from the loop that would have to serve it
        return "unreachable"

    run = Assistant(tools=[peek]).say("go", thread=thread, event_handler_class=None)
    step = next(s for s in run.steps if s.step_details.type == "tool_calls")
    output = step.step_details.tool_calls[0].function.output
    assert "UsageError" in output and "peek_async" not in output and "_async twin" in output


def test_a_closed_portal_starts_again_on_next_use():
    own = Portal()
    loop = own.loop
    assert loop.is_running()
    own.close()
    assert loop.is_closed()
    assert own.call(asyncio.sleep(0, result=42)) == 42
    assert own.loop is not loop
    own.close()


def _public_async_methods():
    """(owner, name) for every public ``x_async`` of the package's classes and modules."""
    found = []
    for info in pkgutil.iter_modules(ipyassistant.__path__, "ipyassistant."):
        if info.name.split(".")[-1].startswith("_") or info.name.endswith((".server", ".cli")):
            continue
        module = importlib.import_module(info.name)
        owners = [module] + [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj) and obj.__module__ == module.__name__
        ]
        for owner in owners:
            for name in dir(owner):
                if not name.endswith("_async") or name.startswith("_"):
                    continue
                if owner is module and getattr(module, name).__module__ != module.__name__:
                    continue  # imported from elsewhere: checked where it is defined
                found.append((owner, name))
    return found


def test_the_classes_have_async_methods_to_check():
    owners = {owner for owner, _ in _public_async_methods()}
    assert {Assistant, Thread, Run} <= owners


@pytest.mark.parametrize(
    ("owner", "name"),
    _public_async_methods(),
    ids=lambda v: v if isinstance(v, str) else getattr(v, "__name__", repr(v)),
)
def test_every_async_method_has_a_sync_twin_with_the_same_signature_and_docstring(owner, name):
    async_method = getattr(owner, name)
    sync_method = getattr(owner, name.removesuffix("_async"), None)
    assert sync_method is not None, f"{owner.__name__}.{name} has no sync twin"
    assert inspect.iscoroutinefunction(async_method)
    assert not inspect.iscoroutinefunction(sync_method)
    assert inspect.signature(sync_method) == inspect.signature(async_method)
    assert inspect.getdoc(async_method), f"{owner.__name__}.{name} has no docstring"
    assert inspect.getdoc(sync_method) == inspect.getdoc(async_method)


def test_context_managers_come_in_both_flavours():
    for cls in (Assistant, Thread):
        for sync, asynchronous in (("__enter__", "__aenter__"), ("__exit__", "__aexit__")):
            assert callable(getattr(cls, sync)) and inspect.iscoroutinefunction(
                getattr(cls, asynchronous)
            )
