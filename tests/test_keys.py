"""People's keys: ``ipyassistant keys create/list/revoke``, what the database keeps of them, and
the 401s for keys that are unknown or revoked (at once, in every server on the database)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import httpx
import openai
import pytest

from _keys import keys_command, make_key
from _servers import RunningServer


def _client(running: RunningServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=running.base_url, api_key=key, max_retries=0)


def _rows(data_dir: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(data_dir / "ipyassistant.sqlite3") as db:
        return db.execute("SELECT * FROM api_keys ORDER BY seq").fetchall()


def _refused(client: openai.OpenAI, code: str) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        client.beta.assistants.list()
    assert info.value.code == code


# -- the command ------------------------------------------------------------------------------


def test_create_prints_the_key_once_and_only_the_key(tmp_path):
    status, out, err = keys_command(tmp_path, "create", "ada")
    assert status == 0
    key = out.strip()
    assert out == key + "\n"  # stdout is the key alone: KEY=$(ipyassistant keys create ada)
    assert key.startswith("ipa-") and len(key) >= 40
    assert "ada" in err and key not in err
    # Nothing shows it again.
    listed = keys_command(tmp_path, "list")[1]
    assert key not in listed and hashlib.sha256(key.encode()).hexdigest() not in listed
    assert keys_command(tmp_path, "create", "grace")[1].strip() != key


def test_list_shows_names_admin_and_dates_never_keys(tmp_path):
    ada = make_key(tmp_path, "ada")
    root = make_key(tmp_path, "root", admin=True)
    status, out, _ = keys_command(tmp_path, "list")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "ADMIN", "CREATED", "LAST", "USED", "REVOKED"]
    assert lines[1].split()[:2] == ["ada", "no"] and lines[2].split()[:2] == ["root", "yes"]
    assert lines[1].endswith("-")  # never used, not revoked
    for key in (ada, root):
        assert key not in out and key[4:12] not in out


def test_revoke_then_a_new_key_for_the_same_name(tmp_path):
    first = make_key(tmp_path, "ada")
    assert keys_command(tmp_path, "create", "ada")[0] == 1  # one live key a name
    status, _, err = keys_command(tmp_path, "revoke", "ada")
    assert status == 0 and "ada" in err
    assert keys_command(tmp_path, "revoke", "ada")[0] == 1  # nothing left to revoke
    second = make_key(tmp_path, "ada")
    assert second != first
    revoked, live = keys_command(tmp_path, "list")[1].splitlines()[1:]
    assert revoked.split()[0] == live.split()[0] == "ada"
    assert not revoked.endswith("-") and live.endswith("-")


def test_names_are_checked(tmp_path):
    for name in ("", ".dot", "a b", "x" * 65, "ünï"):
        status, out, err = keys_command(tmp_path, "create", name)
        assert status == 1 and out == "" and "invalid key name" in err


def test_the_database_keeps_only_a_hash(tmp_path):
    key = make_key(tmp_path, "ada")
    digest = hashlib.sha256(key.encode()).hexdigest()
    ((_seq, name, prefix, stored, admin, *_dates),) = _rows(tmp_path)
    assert (name, stored, prefix, admin) == ("ada", digest, digest[:16], 0)
    secret = key.encode()
    for path in tmp_path.rglob("*"):  # the database, its WAL, anything else
        if path.is_file():
            assert secret not in path.read_bytes() and secret[4:] not in path.read_bytes(), path


# -- requests ---------------------------------------------------------------------------------


def test_a_key_works_and_its_use_is_recorded(make_server, tmp_path):
    data_dir = tmp_path / "data"
    key = make_key(data_dir, "ada")
    running = make_server(data_dir=data_dir)
    with _client(running, key) as ada:
        made = ada.beta.assistants.create(model="test")
        assert [a.id for a in ada.beta.assistants.list()] == [made.id]
    ((*_, last_used, revoked),) = _rows(data_dir)
    assert last_used is not None and revoked is None


def test_unknown_and_revoked_keys_are_refused_at_once_by_every_server(make_server, tmp_path):
    data_dir = tmp_path / "data"
    key = make_key(data_dir, "ada")
    # Two servers on one database, as two processes behind a load balancer.
    servers = [make_server(data_dir=data_dir), make_server(data_dir=data_dir)]
    clients = [_client(running, key) for running in servers]
    for client in clients:
        client.beta.assistants.list()
    for running in servers:
        for wrong in ("ipa-unknown", key + "x", key[:-1], key.upper()):
            with _client(running, wrong) as stranger:
                _refused(stranger, "invalid_api_key")
    assert keys_command(data_dir, "revoke", "ada")[0] == 0
    for client in clients:  # the very next request, in each server
        _refused(client, "invalid_api_key")
        client.close()
    # The server's own key still works: it is the admin.
    servers[0].client().beta.assistants.list()


def test_a_server_without_its_own_key_is_closed_once_people_have_keys(make_server, tmp_path):
    data_dir = tmp_path / "data"
    running = make_server(data_dir=data_dir, api_key=None)
    with _client(running, "anything") as anyone:
        anyone.beta.assistants.list()  # no key of any kind: open, as before keys
        key = make_key(data_dir, "ada")
        _refused(anyone, "invalid_api_key")
    with _client(running, key) as ada:
        ada.beta.assistants.list()
    response = httpx.get(f"{running.base_url}/assistants", timeout=30)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
