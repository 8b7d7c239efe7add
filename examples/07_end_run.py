"""Ending a run early: a tool raises EndRun, returns one, or returns ENDRUN_TOKEN."""

from ipyassistant import ENDRUN_TOKEN, Assistant, EndRun


# 1. raise the exception directly from the tool function
def finish_by_raising() -> None:
    """Declare the conversation over."""
    raise EndRun(data="The final result")


# 2. return the exception (e.g. when tools are wrapped in exception handlers)
def finish_by_returning() -> EndRun:
    """Declare the conversation over."""
    return EndRun(data="The final result")


# 3. return a special string (no data)
def finish_with_token() -> str:
    """Declare the conversation over."""
    return ENDRUN_TOKEN


for tool in (finish_by_raising, finish_by_returning, finish_with_token):
    ai = Assistant(tools=[tool])
    run = ai.say("We are done here.", event_handler_class=None)
    print(f"{tool.__name__}: run {run.run.status}, data={run.data!r}")
