"""Importing an export that carries files, on SQLite and PostgreSQL: the import has its own body
limit (``files.import_max_bytes``, not ``server.max_body_bytes``), counted while reading; the
files land in the importer's quota, checked for all of them before any is stored."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from robustness.rawhttp import request

from chatgate.files.config import FilesConfig
from tests.api.test_files import upload
from tests.chat.conftest import (
    ChatServer,
    alice,
    chat_server,
    new_conversation,
    pg_server,
    send,
    wait_status,
)
from tests.memory import PeakRss

__all__ = ["alice", "chat_server", "pg_server"]

MIB = 1024 * 1024
BODY_LIMIT = 1 * MIB  # the generic JSON cap: a 3 MiB file's export is far past it
IMPORT_LIMIT = 6 * MIB
QUOTA = 8 * MIB
GATEWAY_CONFIG: dict[str, Any] = {
    "server": {"max_body_bytes": BODY_LIMIT},
    "files": {
        "max_bytes": 4 * MIB,
        "max_image_bytes": 4 * MIB,
        "quota_bytes": QUOTA,
        "import_max_bytes": IMPORT_LIMIT,
        "dir": tempfile.mkdtemp(prefix="chatgate-import-"),
    },
    "models": {"gpt-4o-mini": {"provider": "fake", "model": "fake-model"}},
}
IMAGE = b"\x89PNG\r\n\x1a\n" + os.urandom(3 * MIB)  # a PNG as far as the type check goes


@pytest.fixture
def bob(chat_server: ChatServer) -> Iterator[httpx.Client]:
    with chat_server.signed_in(asyncio.run(chat_server.user())) as client:
        yield client


@pytest.fixture
def export(alice: httpx.Client) -> dict[str, Any]:
    made = upload(alice, "big.png", IMAGE, "image/png")
    conv = new_conversation(alice, model="gpt-4o-mini")
    started = send(alice, conv["id"], "Describe it", attachments=[made["id"]])
    wait_status(alice, conv["id"], started["message_id"])
    exported: dict[str, Any] = alice.get(f"/api/conversations/{conv['id']}/export").json()
    return exported


def test_an_export_with_a_3_mib_file_imports_as_another_user(
    export: dict[str, Any], bob: httpx.Client
) -> None:
    body = httpx.Request("POST", "/", json=export).content
    assert BODY_LIMIT < len(body) < IMPORT_LIMIT  # refused by the generic cap before
    with PeakRss() as memory:
        r = bob.post("/api/conversations/import", content=body, timeout=60,
                     headers={"Content-Type": "application/json"})  # fmt: skip
    print(f"import of {len(body) >> 10} KiB: RSS +{memory.grew >> 10} KiB at the peak")
    assert r.status_code == 201, r.text
    user = next(m for m in r.json()["messages"] if m["role"] == "user")
    [attached] = user["attachments"]
    assert attached["id"] != export["files"][0]["id"] and attached["size"] == len(IMAGE)
    assert bob.get(f"/api/files/{attached['id']}/content").content == IMAGE
    assert bob.get("/api/files").json()["used"] == len(IMAGE)  # counted against bob's quota
    # Another user's JSON route keeps the generic cap.
    r = bob.post("/api/conversations", json={"title": "x" * (BODY_LIMIT + 1)})
    assert r.status_code == 413


def test_an_import_past_the_quota_stores_nothing(export: dict[str, Any], bob: httpx.Client) -> None:
    for _ in range(2):  # 6 MiB of an 8 MiB quota
        assert bob.post("/api/conversations/import", json=export, timeout=60).status_code == 201
    before = bob.get("/api/files").json()
    r = bob.post("/api/conversations/import", json=export, timeout=60)
    assert r.status_code == 413 and r.json()["error"]["code"] == "quota_exceeded", r.text
    after = bob.get("/api/files").json()
    assert after["used"] == before["used"] == 2 * len(IMAGE)
    assert len(after["files"]) == 2
    assert len(bob.get("/api/conversations").json()["data"]) == 2  # no third conversation


def test_an_import_over_its_limit_is_413_while_it_streams(
    chat_server: ChatServer, bob: httpx.Client
) -> None:
    """8x the import limit, chunked (nothing declared): 413 once the limit is passed, the rest
    not read; the server (this process) grows by about the limit at most, not the body."""
    total = 8 * IMPORT_LIMIT
    piece = b'{"files": [{"data": "' + b"A" * (64 * 1024 - 21)
    headers = {"content-type": "application/json", "x-requested-with": "t",
               "cookie": f"chatgate_session={bob.cookies['chatgate_session']}"}  # fmt: skip
    with PeakRss(every=0.005) as memory:
        chunks = (piece for _ in range(total // len(piece)))
        path = "/api/conversations/import"
        reply = asyncio.run(request(chat_server.url, "POST", path, headers=headers, chunks=chunks))
    assert reply.status == 413 and reply.code == "request_too_large", reply
    assert reply.sent < total // 2, "the server read on past the limit"
    grew = memory.grew
    print(
        f"import of {total >> 20} MiB refused after {reply.sent >> 10} KiB; RSS +{grew >> 10} KiB"
    )
    assert grew < 3 * IMPORT_LIMIT, f"grew by {grew >> 20} MiB"
    # A declared length over the limit is refused before a byte is read.
    r = bob.post("/api/conversations/import", content=b"{" + b" " * IMPORT_LIMIT + b"}",
                 headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 413 and str(IMPORT_LIMIT) in r.json()["error"]["message"]
    assert bob.get("/api/conversations").json()["data"] == []


def test_default_import_limit_follows_the_file_limits() -> None:
    files = FilesConfig(max_bytes=20 * MIB, quota_bytes=500 * MIB)
    assert files.import_limit(8 * MIB) == 40 * MIB * 4 // 3 + MIB  # two largest uploads
    small = FilesConfig(max_bytes=20 * MIB, quota_bytes=30 * MIB)
    assert small.import_limit(8 * MIB) == 30 * MIB * 4 // 3 + MIB  # no more than the quota
    tiny = FilesConfig(max_bytes=1024 * 1024, quota_bytes=1024 * 1024)
    assert tiny.import_limit(8 * MIB) == 8 * MIB  # never below the generic cap
    assert FilesConfig(import_max_bytes=5 * MIB).import_limit(8 * MIB) == 5 * MIB
