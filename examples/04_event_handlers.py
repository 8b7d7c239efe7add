"""Event handlers and pretty-printing: choose what a run prints while it streams."""

from ipyassistant import Assistant, PrintHandler, Thread, pprint_run


def roll_die() -> int:
    """Roll one six-sided die."""
    return 4  # chosen by fair dice roll


ai = Assistant(tools=[roll_die])

# run the assistant without printing any messages...
run = ai.say("Hello!", event_handler_class=None)
# ...and find everything on the run
print(f"{len(run.messages)} message(s) and {len(run.steps)} step(s)")

# print only messages
run = ai.say("Hello!", event_handler_kwargs=dict(print_steps=False))

# print only actions (tool calls)
run = ai.say("Hello!", event_handler_kwargs=dict(print_messages=False))

# lower-level APIs print nothing unless asked to
thread = Thread()
thread.add("Roll a die, please.")
run = thread.run(ai, event_handler_class=PrintHandler)

# print a run after the fact
run = ai.say("Hello!", event_handler_class=None)
pprint_run(run)
