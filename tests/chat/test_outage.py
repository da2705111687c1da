"""The web chat across a PostgreSQL outage: no answer is lost, no conversation stays blocked.

PostgreSQL is reached through a TCP proxy the test cuts (the server stopped) and restores.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from robustness.outage import TcpProxy

from chatgate.app import Gateway, create_app
from chatgate.chat.accounts import Accounts
from chatgate.chat.store import ConversationStore
from chatgate.storage import Database
from chatgate.storage.base import utcnow
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread
from tests.storage.conftest import PgServer, pg_address, pg_server, require_pg, through

__all__ = ["pg_server"]

PASSWORD = "correct horse battery"


@dataclass
class Chat:
    url: str
    direct: str  # the database, not through the proxy
    proxy: TcpProxy
    client: httpx.Client
    user_id: str
    app: Gateway


@pytest.fixture(scope="module")
def chat(fake_server: FakeUpstream, pg_server: PgServer | str) -> Iterator[Chat]:
    server = require_pg(pg_server)
    direct = asyncio.run(server.create_database())
    proxy = TcpProxy(*pg_address(server)).start()
    config = gateway_config(
        fake_server.base_url,
        database={"url": through(proxy.port, direct)},
        auth={"single_user": "off"},
        chat={"model_titles": False, "save_interval": 0.2},
    )
    app = create_app(config)
    thread = ServerThread(app)
    thread.start()
    try:
        name = f"u-{secrets.token_hex(4)}"

        async def user() -> str:
            async with Database(direct) as db:
                return (await Accounts(db, "off", True).create_user(name, PASSWORD)).id

        user_id = asyncio.run(user())
        client = httpx.Client(
            base_url=thread.base_url, headers={"X-Requested-With": "t"}, timeout=30
        )
        r = client.post("/api/auth/login", json={"name": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield Chat(thread.base_url, direct, proxy, client, user_id, app)
        client.close()
    finally:
        thread.stop()
        proxy.stop()
        asyncio.run(server.drop_database(direct))


def expected(chunks: int) -> str:
    return "".join(f"tok{i} " for i in range(chunks))


def conversation(chat: Chat) -> str:
    r = chat.client.post("/api/conversations", json={"model": "fake-model"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def message(chat: Chat, cid: str, mid: str) -> dict[str, Any] | None:
    """The stored message (None while the database does not answer: 503, as
    tests/api/test_unavailable.py checks)."""
    r = chat.client.get(f"/api/conversations/{cid}")
    if r.status_code >= 500:
        return None
    assert r.status_code == 200, r.text
    found = [m for m in r.json()["messages"] if m["id"] == mid]
    return found[0] if found else None


def settled(chat: Chat, cid: str, mid: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = message(chat, cid, mid)
        if found is not None and found["status"] != "streaming":
            return found
        assert time.monotonic() < deadline, f"still streaming: {found}"
        time.sleep(0.1)


def follow(chat: Chat, gid: str, events: list[dict[str, Any]]) -> None:
    with chat.client.stream("GET", f"/api/generations/{gid}/events") as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))


def test_an_answer_finished_during_an_outage_is_saved_when_the_database_returns(
    chat: Chat, fake: FakeUpstream
) -> None:
    fake.configure(chunks=20, chunk_delay_ms=100)  # a 2-second answer
    cid = conversation(chat)
    r = chat.client.post(f"/api/conversations/{cid}/messages", json={"content": "slowly"})
    assert r.status_code == 202, r.text
    started = r.json()
    events: list[dict[str, Any]] = []
    follower = threading.Thread(target=follow, args=(chat, started["generation_id"], events))
    follower.start()
    deadline = time.monotonic() + 10
    while sum(e["type"] == "delta" for e in events) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # a partial save of the first words
    chat.proxy.cut()
    try:
        time.sleep(3.5)  # the answer ends while the database is away
        partial = message(chat, cid, started["message_id"])
        assert partial is None  # 503 meanwhile
    finally:
        chat.proxy.restore()
    follower.join(10)
    # The follower got the whole answer from the live job, and its end.
    assert "".join(e.get("content", "") for e in events) == expected(20)
    assert events[-1]["type"] == "done" and events[-1]["status"] == "done"
    saved = settled(chat, cid, started["message_id"])
    assert saved["status"] == "done" and saved["content"] == expected(20)
    fake.configure(chunks=3, chunk_delay_ms=0)
    r = chat.client.post(
        f"/api/conversations/{cid}/messages",
        json={"content": "and then?", "parent_id": started["message_id"]},
    )
    assert r.status_code == 202, r.text  # the conversation goes on
    assert settled(chat, cid, r.json()["message_id"])["status"] == "done"


def orphan(chat: Chat, cid: str, age: float) -> tuple[str, str]:
    """An answer left 'streaming' by a process that is gone: (generation id, message id)."""
    gid, mid, parent = (
        f"g{secrets.token_hex(8)}",
        f"m{secrets.token_hex(8)}",
        f"m{secrets.token_hex(8)}",
    )
    then = utcnow() - timedelta(seconds=age)

    async def insert() -> None:
        async with Database(chat.direct) as db:
            store = ConversationStore(db)
            rows = [
                {"id": parent, "parent_id": None, "role": "user", "content": "hi"},
                {
                    "id": mid,
                    "parent_id": parent,
                    "role": "assistant",
                    "content": "the first words",
                    "status": "streaming",
                    "model": "fake-model",
                    "generation_id": gid,
                    "updated_at": then,
                },
            ]
            await store.add_messages(cid, rows, active_leaf=mid)
            await store.close()

    asyncio.run(insert())
    return gid, mid


def test_stop_closes_an_answer_nobody_writes(chat: Chat, fake: FakeUpstream) -> None:
    cid = conversation(chat)
    gid, _ = orphan(chat, cid, age=1)
    r = chat.client.post(f"/api/conversations/{cid}/messages", json={"content": "next"})
    assert r.status_code == 400 and "still being written" in r.text  # blocked, for now
    r = chat.client.post(f"/api/generations/{gid}/stop")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "stopped" and r.json()["content"] == "the first words"
    fake.configure(chunks=3)
    r = chat.client.post(f"/api/conversations/{cid}/messages", json={"content": "next"})
    assert r.status_code == 202, r.text


def test_a_sweep_closes_answers_of_a_gone_process_but_not_running_ones(
    chat: Chat, fake: FakeUpstream
) -> None:
    state = chat.app.runtime.state
    assert state is not None and state.chat is not None
    gens = state.chat.generations.saver
    gens.HEARTBEAT, gens.ORPHAN_AFTER, gens.SWEEP_EVERY = 0.3, 1.5, 0.2
    try:
        fake.configure(first_byte_ms=4000, chunks=2)  # a live answer, silent for 4 s
        cid = conversation(chat)
        r = chat.client.post(f"/api/conversations/{cid}/messages", json={"content": "wait"})
        live = r.json()["message_id"]
        other = conversation(chat)
        _, mid = orphan(chat, other, age=30)
        closed = settled(chat, other, mid, timeout=10)
        assert closed["status"] == "error" and closed["content"] == "the first words"
        time.sleep(2)  # past ORPHAN_AFTER: only the heartbeat keeps the live one open
        assert message(chat, cid, live)["status"] == "streaming"  # type: ignore[index]
        assert settled(chat, cid, live)["status"] == "done"
    finally:
        del gens.HEARTBEAT, gens.ORPHAN_AFTER, gens.SWEEP_EVERY
