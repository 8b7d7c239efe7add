"""``import ipyassistant`` stays cheap: the heavy parts load when used, and only then."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

import ipyassistant
from ipyassistant import _hooks, _warmup

HEAVY = ["fastapi", "sqlalchemy", "uvicorn", "rich", "anywidget", "ipywidgets", "jinja2"]


def _fresh(code: str, **env: str) -> object:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IPYASSISTANT_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_import_loads_neither_the_server_nor_the_widgets_nor_rich():
    loaded = _fresh(
        "import json, sys, threading, ipyassistant\n"
        f"print(json.dumps([[m for m in {HEAVY!r} if m in sys.modules],"
        " sorted(t.name for t in threading.enumerate())]))"
    )
    assert loaded == [[], ["MainThread"]]  # and a script starts nothing in the background


def test_every_public_name_resolves_in_a_fresh_process():
    resolved = _fresh(
        "import json, ipyassistant\n"
        "print(json.dumps({n: getattr(ipyassistant, n) is not None"
        " for n in ipyassistant.__all__}))"
    )
    assert resolved == dict.fromkeys(ipyassistant.__all__, True)


def test_dir_lists_the_public_names_before_they_load():
    names = _fresh("import json, ipyassistant\nprint(json.dumps(dir(ipyassistant)))")
    assert isinstance(names, list)
    assert set(ipyassistant.__all__) <= set(names)


def test_a_lazy_name_is_the_defining_module_s_object():
    from ipyassistant.assistants import Assistant
    from ipyassistant.tools import ENDRUN_TOKEN

    assert ipyassistant.Assistant is Assistant
    assert ipyassistant.ENDRUN_TOKEN is ENDRUN_TOKEN
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        ipyassistant.Nope  # noqa: B018


@pytest.fixture
def warm_ups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Pretend to be a kernel; record warm-ups instead of starting the server."""
    calls: list[str] = []

    def warm_up() -> None:
        calls.append(threading.current_thread().name)

    monkeypatch.setattr(_hooks, "in_notebook", lambda: True)
    monkeypatch.setattr(_warmup, "_warm_up", warm_up)
    monkeypatch.setattr(_warmup, "_thread", None)
    monkeypatch.delenv("IPYASSISTANT_BASE_URL", raising=False)
    yield calls
    if _warmup._thread is not None:
        _warmup._thread.join(5)


def test_a_kernel_warms_up_once_on_a_daemon_thread(warm_ups: list[str]):
    assert _warmup.start_in_kernel()
    assert _warmup.start_in_kernel()
    assert _warmup._thread is not None and _warmup._thread.daemon
    _warmup._thread.join(5)
    assert warm_ups == ["ipyassistant-warmup"]


def test_no_warm_up_for_another_server(warm_ups: list[str], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("IPYASSISTANT_BASE_URL", "http://127.0.0.1:9/v1")
    assert not _warmup.start_in_kernel()
    assert warm_ups == [] and _warmup._thread is None


def test_no_warm_up_outside_a_kernel(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_warmup, "_thread", None)
    monkeypatch.delenv("IPYASSISTANT_BASE_URL", raising=False)
    assert not _hooks.in_notebook()
    assert not _warmup.start_in_kernel()
    assert _warmup._thread is None
