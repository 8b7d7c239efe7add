"""The front door: exactly these names, each importable, documented and listed in __all__."""

from __future__ import annotations

import ipyassistant
import ipyassistant.formatting

EXPECTED = {
    "ENDRUN_TOKEN",
    "Assistant",
    "CodeInterpreter",
    "EndRun",
    "FileSearch",
    "PrintHandler",
    "Run",
    "Thread",
    "__version__",
    "pprint_messages",
    "pprint_run",
    "pprint_steps",
    "tool",
}


def test_all_lists_exactly_the_public_api():
    assert set(ipyassistant.__all__) == EXPECTED

    # Sorted as isort (and ruff's RUF022) sort: constants, then classes, then the rest.
    def kind(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert ipyassistant.__all__ == sorted(ipyassistant.__all__, key=kind)


def test_every_exported_member_exists_and_is_documented():
    for name in ipyassistant.__all__:
        member = getattr(ipyassistant, name)
        if callable(member) and not isinstance(member, str):
            assert member.__doc__, f"{name} has no docstring"


def test_the_public_names_import_from_the_package():
    from ipyassistant import (  # noqa: F401
        ENDRUN_TOKEN,
        Assistant,
        CodeInterpreter,
        EndRun,
        FileSearch,
        PrintHandler,
        Run,
        Thread,
        pprint_messages,
        pprint_run,
        pprint_steps,
    )


def test_formatting_holds_the_pprint_functions():
    assert ipyassistant.pprint_run is ipyassistant.formatting.pprint_run
    assert ipyassistant.pprint_messages is ipyassistant.formatting.pprint_messages
    assert ipyassistant.pprint_steps is ipyassistant.formatting.pprint_steps
