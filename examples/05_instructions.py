"""Instructions steer the assistant; they are a Jinja template rendered with ``self_``."""

from ipyassistant import Assistant

ai = Assistant(instructions="Mention the word 'banana' as often as possible")
ai.say("Hello!")

# Instructions are templates: self_ is the assistant.
marvin = Assistant(
    name="Marvin",
    instructions="You are {{ self_.name }}{% if self_.tools %}, and you use tools{% endif %}.",
)
# The test model answers /instructions with the instructions it received.
marvin.say("/instructions")
