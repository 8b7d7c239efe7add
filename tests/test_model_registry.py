"""Model strings: the one parser, the registry of prefixes, and providers imported only when used."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ipyassistant
from ipyassistant.server.errors import InvalidRequest
from ipyassistant.server.models import (
    ModelRef,
    available_models,
    check_model,
    parse_model,
    resolve_model,
)
from ipyassistant.server.models.test import TestModel

SOURCE = str(Path(ipyassistant.__file__).resolve().parents[1])


@pytest.mark.parametrize(
    ("model", "provider", "name", "request_model"),
    [
        ("test", "test", "", "test"),
        ("openai:gpt-4o-mini", "openai", "gpt-4o-mini", "gpt-4o-mini"),
        ("local", "local", "", "local"),
        ("local:/models/a.gguf", "local", "/models/a.gguf", "/models/a.gguf"),
        ("local:C:/models/a.gguf", "local", "C:/models/a.gguf", "C:/models/a.gguf"),
        ("function:echo", "function", "echo", "echo"),
        ("gpt-4", "gpt-4", "", "gpt-4"),
    ],
)
def test_parse_model(model: str, provider: str, name: str, request_model: str) -> None:
    ref = parse_model(model)
    assert ref == ModelRef(provider=provider, name=name, model=model)
    assert ref.request_model == request_model


def test_parsed_models_are_frozen() -> None:
    ref = parse_model("test")
    with pytest.raises(AttributeError):
        ref.name = "other"  # type: ignore[misc]


def test_resolve_gives_one_provider_per_model_string() -> None:
    provider = resolve_model("test")
    assert isinstance(provider, TestModel)
    assert resolve_model("test") is provider


@pytest.mark.parametrize("model", ["gpt-4", "openai:", "test:x", "function:nobody", "", ":x"])
def test_unknown_models_are_a_400_listing_what_is_available(model: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_model(model, param="assistant.model")
    error = info.value
    assert error.code == "model_not_found" and error.param == "assistant.model"
    assert error.message.startswith(f"The model {model!r} is not available. Available: test, openai:<model>")
    assert error.message.endswith(f"{', '.join(available_models())}.")


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "PYTHONPATH": SOURCE},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_resolving_test_imports_no_other_provider() -> None:
    out = _run(
        """
        import sys
        from ipyassistant.server.models import check_model, resolve_model
        check_model("test")
        resolve_model("test")
        prefix = "ipyassistant.server.models."
        print(sorted(m[len(prefix):] for m in sys.modules if m.startswith(prefix)))
        """
    )
    # search_results is not a provider: the search results' text, shared with the engine.
    assert out.strip() == "['base', 'registry', 'scripted', 'search_results', 'test']"


def test_each_prefix_imports_its_own_module_only() -> None:
    out = _run(
        """
        import sys
        from ipyassistant.server.models import check_model
        check_model("openai:gpt-4o-mini")
        print("ipyassistant.server.models.openai_compat" in sys.modules,
              "ipyassistant.server.models.local" in sys.modules)
        """
    )
    assert out.split() == ["True", "False"]


def test_the_local_package_imports_without_llama_cpp() -> None:
    out = _run(
        """
        import sys
        sys.modules["llama_cpp"] = None  # any import of llama_cpp now fails
        from ipyassistant.server.models.local import INSTALL_HINT, LocalModel, local_available
        from ipyassistant.server.models.local import checks, config, generation, grammar, prompt
        from ipyassistant.server.models import available_models, check_model
        print(local_available(), "local" in available_models())
        try:
            check_model("local")
        except Exception as exc:
            print(type(exc).__name__, INSTALL_HINT in exc.message)
        """
    )
    assert out.split() == ["False", "False", "InvalidRequest", "True"]
