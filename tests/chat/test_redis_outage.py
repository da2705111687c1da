"""The web chat with Redis stopped or hung (SIGSTOP): every action stays fast, answers are
served, ``/ready`` says what fell back, each outage is logged once, and all recovers by itself.

Redis is a private ``redis-server`` of this module's own (never the shared one).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from robustness.outage import RedisServer

from chatgate.app import create_app
from chatgate.chat.accounts import Accounts
from chatgate.storage import Database
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

PASSWORD = "correct horse battery"
FAST = 1.0  # seconds: the most any action may take, the first one after the outage included
QUICK = 0.3  # seconds: what the actions after it take (Redis is skipped)


@dataclass
class Chat:
    url: str
    redis: RedisServer
    client: httpx.Client


@pytest.fixture
def chat(fake: FakeUpstream, tmp_path: Path) -> Iterator[Chat]:
    try:
        redis = RedisServer().start()
    except FileNotFoundError:
        pytest.skip("redis-server is not installed")
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    config = gateway_config(
        fake.base_url,
        database={"url": db_url},
        redis={"url": redis.url},
        rate_limits={"rpm": 10_000},
        auth={"single_user": "off"},
        chat={"model_titles": False, "save_interval": 0.2},
    )
    thread = ServerThread(create_app(config))
    thread.start()
    try:
        name = f"u-{secrets.token_hex(4)}"

        async def user() -> None:
            async with Database(db_url) as db:
                await Accounts(db, "off", True).create_user(name, PASSWORD)

        asyncio.run(user())
        client = httpx.Client(
            base_url=thread.base_url, headers={"X-Requested-With": "t"}, timeout=30
        )
        assert client.post("/api/auth/login", json={"name": name, "password": PASSWORD}).is_success
        yield Chat(thread.base_url, redis, client)
        client.close()
    finally:
        thread.stop()
        redis.stop()


def timed(action: Any) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    resp = action()
    return time.perf_counter() - started, resp


def chat_actions(chat: Chat) -> list[float]:
    """Create a conversation, send a message, follow its answer to the end: their durations."""
    took, r = timed(lambda: chat.client.post("/api/conversations", json={"model": "fake-model"}))
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    took_send, r = timed(
        lambda: chat.client.post(f"/api/conversations/{cid}/messages", json={"content": "hi"})
    )
    assert r.status_code == 202, r.text
    started = time.perf_counter()
    events = []
    with chat.client.stream("GET", r.json()["events_url"]) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["type"] == "done" and events[-1]["status"] == "done", events[-1]
    return [took, took_send, time.perf_counter() - started]


def wait_ready(chat: Chat, want: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = chat.client.get("/ready").json()
        if body["status"] == want:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


@pytest.mark.parametrize("outage", ["frozen", "stopped"])
def test_chat_stays_fast_while_redis_is_away_and_recovers(
    chat: Chat, fake: FakeUpstream, outage: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.configure(chunks=5)
    assert max(chat_actions(chat)) < FAST  # warm: connections made
    caplog.set_level(logging.WARNING)
    if outage == "frozen":
        chat.redis.freeze()
    else:
        chat.redis.stop()
    try:
        first = chat_actions(chat)
        print(f"Redis {outage}: first create/send/follow took {first}")
        assert max(first) < FAST, first
        for _ in range(3):
            later = chat_actions(chat)
            print(f"Redis {outage}: then {later}")
            assert max(later) < QUICK, later
        time.sleep(2.5)  # the probes keep failing, quietly
        body = wait_ready(chat, "degraded")
        assert body["redis"]["chat"] == "down" and body["redis"]["rate_limits"] == "down"
        assert "chat events" in body["detail"]
    finally:
        if outage == "frozen":
            chat.redis.thaw()
        else:
            chat.redis.start()
    body = wait_ready(chat, "ready")
    assert body["redis"] == {"rate_limits": "ok", "chat": "ok"}
    assert max(chat_actions(chat)) < FAST
    failed = [r.getMessage() for r in caplog.records if "Redis failed" in r.getMessage()]
    assert len(failed) == 2, failed  # once for the rate limits, once for the chat's channels
    back = [r.getMessage() for r in caplog.records if "back" in r.getMessage()]
    assert back, [r.getMessage() for r in caplog.records]
