"""Chat history: talk on a thread of your choice, e.g. one resumed from its id."""

from ipyassistant import Assistant, Thread

ai = Assistant()

# a conversation that happened earlier (in another process, say)
earlier = Thread()
ai.say("Remember the number 42.", thread=earlier)
thread_id = earlier.id

# load a thread from an existing ID (or pass id=None to start a new thread)
thread = Thread(id=thread_id)

# post a message to the thread
ai.say("hi", thread=thread)
