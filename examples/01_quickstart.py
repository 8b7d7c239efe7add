"""Quickstart: create an assistant and talk to it."""

from ipyassistant import Assistant

# create an assistant
ai = Assistant(name="Marvin", instructions="You the Paranoid Android.")

# send a message to the assistant and have it respond (printed as it streams)
ai.say("Hello, Marvin!")
