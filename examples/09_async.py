"""Async support: async tools (also from the sync API) and the async API."""

import asyncio

from ipyassistant import Assistant


async def secret_message() -> str:
    """Tell the secret message."""
    await asyncio.sleep(0)
    return "The answer is 42"


# an async tool, called from the sync API
ai = Assistant(tools=[secret_message])
ai.say("What's the secret message?")


async def main() -> None:
    # the async API: every method has an _async twin, and `async with` manages the lifecycle
    async with Assistant() as ai:
        await ai.say_async("hi")


asyncio.run(main())
