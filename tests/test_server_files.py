"""The Files API: multipart upload, list, retrieve, download, delete; stored only in the data dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest


def _files_dir(server) -> Path:
    return Path(server.config.data_dir) / "files"


def _tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_upload_retrieve_download_delete(server, client):
    data = bytes(range(256)) * 40 + b"\x00end"
    uploaded = client.files.create(file=("data.bin", data), purpose="assistants")
    assert uploaded.id.startswith("file-") and uploaded.object == "file"
    assert (uploaded.filename, uploaded.bytes, uploaded.purpose) == (
        "data.bin",
        len(data),
        "assistants",
    )
    assert uploaded.status == "processed" and uploaded.created_at > 0

    stored = _files_dir(server) / uploaded.id
    assert stored.read_bytes() == data

    assert client.files.retrieve(uploaded.id) == uploaded
    assert client.files.content(uploaded.id).read() == data

    deleted = client.files.delete(uploaded.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (uploaded.id, "file", True)
    assert not stored.exists()
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(uploaded.id)
    assert uploaded.id not in {f.id for f in client.files.list()}


def test_an_empty_and_a_text_file(client):
    empty = client.files.create(file=("empty.txt", b""), purpose="user_data")
    assert empty.bytes == 0
    assert client.files.content(empty.id).read() == b""
    text = "héllo, wörld\n".encode()
    uploaded = client.files.create(file=("hello.txt", text), purpose="assistants")
    assert client.files.content(uploaded.id).read() == text
    assert client.files.content(uploaded.id).text == "héllo, wörld\n"


def test_upload_from_a_path(client, tmp_path):
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n1,2\n")
    uploaded = client.files.create(file=path, purpose="assistants")
    assert (uploaded.filename, uploaded.bytes) == ("report.csv", 8)
    assert client.files.content(uploaded.id).read() == b"a,b\n1,2\n"


def test_the_download_is_served_as_the_uploaded_name(server, client):
    uploaded = client.files.create(file=("plot.png", b"\x89PNG\r\n\x1a\n"), purpose="vision")
    response = httpx.get(
        f"{server.base_url}/files/{uploaded.id}/content",
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    assert response.status_code == 200 and response.content == b"\x89PNG\r\n\x1a\n"
    assert "plot.png" in response.headers["content-disposition"]


def test_list_with_a_purpose_filter(client):
    a = client.files.create(file=("a.txt", b"a"), purpose="assistants")
    b = client.files.create(file=("b.txt", b"b"), purpose="user_data")
    c = client.files.create(file=("c.txt", b"c"), purpose="assistants")
    everything = [f.id for f in client.files.list()]
    assert [i for i in everything if i in (a.id, b.id, c.id)] == [c.id, b.id, a.id]
    for f in client.files.list(purpose="assistants"):
        assert f.purpose == "assistants"
    assistants_files = [f.id for f in client.files.list(purpose="assistants")]
    assert a.id in assistants_files and c.id in assistants_files and b.id not in assistants_files
    user_files = [f.id for f in client.files.list(purpose="user_data")]
    assert b.id in user_files and a.id not in user_files


def test_list_pages_in_both_orders(make_server):
    server = make_server()
    with server.client() as client:
        ids = [
            client.files.create(file=(f"{i}.txt", b"x"), purpose="assistants").id for i in range(5)
        ]
        assert [f.id for f in client.files.list()] == ids[::-1]
        assert [f.id for f in client.files.list(order="asc")] == ids
        page = client.files.list(limit=2, order="asc")
        assert [f.id for f in page.data] == ids[:2] and page.has_more is True
        assert [f.id for f in client.files.list(limit=2, order="asc")] == ids  # auto-pagination
        page = client.files.list(limit=2, order="asc", after=ids[2])
        assert [f.id for f in page.data] == ids[3:] and page.has_more is False


@pytest.mark.parametrize("purpose", ["assistants_output", "images", "", "ASSISTANTS"])
def test_an_invalid_purpose_is_refused(server, client, purpose):
    before = _tree(_files_dir(server)) if _files_dir(server).exists() else set()
    with pytest.raises(openai.BadRequestError) as exc:
        client.files.create(file=("x.txt", b"x"), purpose=purpose)  # type: ignore[arg-type]
    assert exc.value.param == "purpose"
    assert exc.value.response.json()["error"]["type"] == "invalid_request_error"
    # Nothing was stored for the refused upload.
    after = _tree(_files_dir(server)) if _files_dir(server).exists() else set()
    assert after == before


def test_an_upload_without_a_file_or_purpose_is_a_400(server):
    headers = {"Authorization": f"Bearer {server.api_key}"}
    response = httpx.post(
        f"{server.base_url}/files", data={"purpose": "assistants"}, headers=headers
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "file"
    response = httpx.post(
        f"{server.base_url}/files", files={"file": ("a.txt", b"a")}, headers=headers
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "purpose"


@pytest.fixture
def nested_server(make_server, tmp_path: Path) -> Iterator[tuple[object, Path]]:
    """A server whose data dir is deep inside ``tmp_path``, so escapes would land in ``tmp_path``."""
    data_dir = tmp_path / "a" / "b" / "data"
    yield make_server(data_dir=data_dir), data_dir


@pytest.mark.parametrize(
    "filename",
    [
        "../../evil.txt",
        "../../../../../../../../tmp/evil.txt",
        "/tmp/evil.txt",
        "..\\..\\evil.txt",
        "files/../../evil.txt",
    ],
)
def test_a_filename_cannot_write_outside_the_data_dir(nested_server, tmp_path, filename):
    server, data_dir = nested_server
    with server.client() as client:
        uploaded = client.files.create(file=(filename, b"evil"), purpose="assistants")
        assert client.files.content(uploaded.id).read() == b"evil"
        # Only the last part of the client's path is kept, so downloads cannot escape either.
        assert uploaded.filename == "evil.txt"
    outside = {p for p in _tree(tmp_path) if data_dir not in p.parents and p != data_dir}
    assert outside == {tmp_path / "a", tmp_path / "a" / "b"}, outside
    stored = [p for p in _tree(data_dir / "files") if p.is_file()]
    assert stored == [data_dir / "files" / uploaded.id]
    assert not any("evil" in p.name for p in _tree(data_dir))
    assert not os.path.exists("/tmp/evil.txt") or Path("/tmp/evil.txt").read_bytes() != b"evil"


@pytest.mark.parametrize("limit", [0, 10_001])
def test_the_files_list_limit_is_1_to_10000(client, limit):
    with pytest.raises(openai.BadRequestError) as exc:
        client.files.list(limit=limit)
    assert exc.value.param == "limit"
    assert set(exc.value.response.json()["error"]) == {"message", "type", "param", "code"}
