"""Settings: the environment picks the server and the default model."""

from __future__ import annotations

import openai
import pytest

from ipyassistant import Assistant, Thread
from ipyassistant.server.models.local import local_available
from ipyassistant.settings import DEFAULT_MODEL, Settings, default_model


def test_the_default_model_follows_the_documented_order(monkeypatch):
    monkeypatch.delenv("IPYASSISTANT_MODEL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    # Without settings: the local model when its extra is installed, else the test model.
    assert default_model() == ("local" if local_available() else DEFAULT_MODEL)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert default_model() == "openai:gpt-4o-mini"
    monkeypatch.setenv("IPYASSISTANT_MODEL", "openai:gpt-4o-mini")
    assert default_model() == "openai:gpt-4o-mini"
    assert Settings.from_env().model == "openai:gpt-4o-mini"


def test_settings_read_the_connection_from_the_environment(monkeypatch):
    monkeypatch.delenv("IPYASSISTANT_BASE_URL", raising=False)
    monkeypatch.delenv("IPYASSISTANT_API_KEY", raising=False)
    assert Settings.from_env().connection == (None, None)  # None: the embedded server
    monkeypatch.setenv("IPYASSISTANT_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("IPYASSISTANT_API_KEY", "k")
    assert Settings.from_env().connection == ("http://127.0.0.1:9/v1", "k")


def test_base_url_and_api_key_point_the_client_at_any_server(server, monkeypatch):
    # ``server`` is another Assistants API server on loopback, whose every response the
    # shared fixtures check against the OpenAPI spec.
    monkeypatch.setenv("IPYASSISTANT_BASE_URL", server.base_url)
    monkeypatch.setenv("IPYASSISTANT_API_KEY", server.api_key)
    thread = Thread()
    run = Assistant(name="elsewhere").say("hi there", thread=thread, event_handler_class=None)
    with server.client() as other:
        assert other.beta.threads.retrieve(thread.id).id == thread.id
        assert [m.role for m in other.beta.threads.messages.list(thread.id)] == [
            "assistant",
            "user",
        ]
    assert run.run.status == "completed"

    monkeypatch.setenv("IPYASSISTANT_API_KEY", "wrong")
    with pytest.raises(openai.AuthenticationError):
        Thread().add("who am I?")
    monkeypatch.delenv("IPYASSISTANT_BASE_URL")
    monkeypatch.delenv("IPYASSISTANT_API_KEY")
    with pytest.raises(openai.NotFoundError):  # back on the embedded server, which lacks it
        Thread(id=thread.id).add("hello?")
