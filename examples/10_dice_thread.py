"""Running a thread: an assistant with a dice-rolling tool; two runs; all messages printed."""

import random

from ipyassistant import Assistant, Thread
from ipyassistant.formatting import pprint_messages


# write a function for the assistant to use
def roll_dice(n_dice: int) -> list[int]:
    """Roll dice.

    Args:
        n_dice: How many six-sided dice to roll.
    """
    return [random.randint(1, 6) for _ in range(n_dice)]


ai = Assistant(tools=[roll_dice])

# create a thread - you could pass an ID to resume a conversation
thread = Thread()

# add a user message to the thread
thread.add("Hello!")

# run the thread with the AI to produce a response
thread.run(ai)

# post two more user messages (the test model acts on the last one; a real model on both)
thread.add("Please roll two dice")
thread.add('Actually--roll five dice\n/call roll_dice {"n_dice": 5}')

# run the thread again to generate a new response
thread.run(ai)

# see all the messages in the thread
messages = thread.get_messages()
pprint_messages(messages)
