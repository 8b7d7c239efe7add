"""Talking: each say() continues the conversation on the assistant's default thread."""

from ipyassistant import Assistant

ai = Assistant()

ai.say("Hi!")
ai.say("Bye!")

# the whole conversation is on the default thread
print(f"{len(ai.default_thread.get_messages())} messages on {ai.default_thread.id}")
