"""Lifecycles: how long an assistant exists on the server."""

from ipyassistant import Assistant


def my_tool() -> str:
    """Say something useful."""
    return "useful"


# Lazy: created before each call and deleted right after.
ai = Assistant()
ai.say("hello!")
print("lazy: id after the call:", ai.id)

# Context: created when the block opens, deleted when it closes.
ai = Assistant()
with ai:
    ai.say("hi")
    ai.say("bye")
    print("context: id inside the block:", ai.id)
print("context: id after the block:", ai.id)

# Manual creation and deletion.
ai = Assistant()
ai.create()
ai.say("hi")
ai.delete()

# Loading from the API: pass the same custom tools as the original assistant.
ai = Assistant(tools=[my_tool])
ai.create()
ai_2 = Assistant(id=ai.id, tools=[my_tool])  # from a known id, with its parameters
ai_2.say("hi")
ai_3 = Assistant.load(id=ai.id, tools=[my_tool])  # everything else read from the server
ai_3.say("hi")
ai.delete()
