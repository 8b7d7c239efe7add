"""Custom tools: give the assistant a Python function to call.

Marvin's example fetches Hacker News; this one works offline too: the test model calls the
tool with a ``data:`` URL. With a real model, ask "What's the top story on Hacker News?".
"""

import urllib.request

from ipyassistant import Assistant


# Define a custom tool function
def visit_url(url: str) -> str:
    """Fetch the content of a URL.

    Args:
        url: The address to fetch, e.g. https://news.ycombinator.com.
    """
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()[:2000]


# Integrate custom tools with the assistant
ai = Assistant(tools=[visit_url])
ai.say('/call visit_url {"url": "data:text/plain,Top story: Show HN: ipyassistant"}')
