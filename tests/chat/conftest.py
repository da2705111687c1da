"""Chat fixtures: a running chatgate (real uvicorn in a thread) in front of the fake upstream,
on real SQLite and on a throwaway PostgreSQL database (skipped, or failed under CI=true, when
PostgreSQL is unreachable — the rule of tests/storage), and signed-in HTTP clients. A test
module can set ``CHAT_CONFIG`` (the ``chat`` section) and ``GATEWAY_CONFIG`` (other sections)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatgate.app import create_app
from chatgate.chat.accounts import Accounts
from chatgate.storage import Database
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread
from tests.storage.conftest import BACKENDS, PgServer, pg_server, require_pg

__all__ = ["pg_server"]

PASSWORD = "correct horse battery"
HEADERS = {"X-Requested-With": "chatgate-tests"}


@dataclass
class ChatServer:
    url: str
    db_url: str
    backend: str
    thread: ServerThread

    async def user(self, name: str | None = None, admin: bool = False) -> str:
        """A new user with PASSWORD (made straight in the database, as the CLI does)."""
        name = name or f"user-{secrets.token_hex(4)}"
        async with Database(self.db_url) as db:
            await Accounts(db, "off", True).create_user(name, PASSWORD, admin)
        return name

    def client(self, name: str | None = None) -> httpx.Client:
        """A client signed in as ``name`` (or anonymous)."""
        client = httpx.Client(base_url=self.url, headers=HEADERS, timeout=30)
        if name is not None:
            r = client.post("/api/auth/login", json={"name": name, "password": PASSWORD})
            assert r.status_code == 200, r.text
        return client

    @contextlib.contextmanager
    def signed_in(self, name: str) -> Iterator[httpx.Client]:
        client = self.client(name)
        try:
            yield client
        finally:
            client.close()

    def aclient(self, cookies: httpx.Cookies | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=HEADERS, timeout=30, cookies=cookies)


async def _database(backend: str, tmp: Path, pg: PgServer | str) -> tuple[str, Any]:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / 'chat.db'}", None
    server = require_pg(pg)
    url = await server.create_database()
    return url, server


@pytest.fixture(scope="module", params=BACKENDS)
async def chat_server(
    request: pytest.FixtureRequest,
    fake_server: FakeUpstream,
    pg_server: PgServer | str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ChatServer]:
    backend = str(request.param)
    url, pg = await _database(backend, tmp_path_factory.mktemp("chat"), pg_server)
    overrides = getattr(request.module, "CHAT_CONFIG", {})
    sections = dict(getattr(request.module, "GATEWAY_CONFIG", {}))
    auth = {"single_user": "off", **sections.pop("auth", {})}
    config = gateway_config(
        fake_server.base_url,
        **sections,
        database={"url": url},
        auth=auth,
        chat={"model_titles": False, "save_interval": 0.2, **overrides},
    )
    thread = ServerThread(create_app(config))
    await asyncio.to_thread(thread.start)
    try:
        yield ChatServer(thread.base_url, url, backend, thread)
    finally:
        await asyncio.to_thread(thread.stop)
        if pg is not None:
            await pg.drop_database(url)


@pytest.fixture
def alice(chat_server: ChatServer) -> Iterator[httpx.Client]:
    name = asyncio.run(chat_server.user())
    client = chat_server.client(name)
    try:
        yield client
    finally:
        client.close()


def new_conversation(client: httpx.Client, **values: Any) -> dict[str, Any]:
    r = client.post("/api/conversations", json={"model": "fake-model", **values})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def send(
    client: httpx.Client, cid: str, content: str | None = None, **extra: Any
) -> dict[str, Any]:
    body = {"content": content, **extra} if content is not None else extra
    r = client.post(f"/api/conversations/{cid}/messages", json=body)
    assert r.status_code == 202, r.text
    started: dict[str, Any] = r.json()
    return started


def wait_status(client: httpx.Client, cid: str, mid: str, timeout: float = 10) -> dict[str, Any]:
    """The message once it is no longer streaming."""
    deadline = time.monotonic() + timeout
    while True:
        conv = client.get(f"/api/conversations/{cid}").json()
        found = [m for m in conv["messages"] if m["id"] == mid]
        if found and found[0]["status"] != "streaming":
            message: dict[str, Any] = found[0]
            return message
        assert time.monotonic() < deadline, f"{mid} still streaming"
        time.sleep(0.05)


def sse_events(lines: list[str]) -> list[tuple[int | None, dict[str, Any]]]:
    import json

    out: list[tuple[int | None, dict[str, Any]]] = []
    event_id: int | None = None
    for line in lines:
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            out.append((event_id, json.loads(line[6:])))
            event_id = None
    return out
