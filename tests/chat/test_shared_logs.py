"""Two replicas sharing a database and Redis: a generation running on one is followed, resumed
and stopped through the other (its event log is mirrored in a Redis stream)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis

from chatgate.app import create_app
from tests.chat.conftest import ChatServer, _database, new_conversation, pg_server, send
from tests.chat.test_generations import deltas, expected, follow, text_of, wait_for
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread
from tests.storage.conftest import BACKENDS, PgServer

__all__ = ["pg_server"]

REDIS_URL = os.environ.get("CHATGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as exc:
        reason = f"Redis not reachable at {REDIS_URL} ({exc}); set CHATGATE_TEST_REDIS_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass
class Pair:
    one: ChatServer
    two: ChatServer


@pytest.fixture(scope="module", params=BACKENDS)
async def pair(
    request: pytest.FixtureRequest,
    fake_server: FakeUpstream,
    pg_server: PgServer | str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Pair]:
    redis_or_skip()
    backend = str(request.param)
    url, pg = await _database(backend, tmp_path_factory.mktemp("pair"), pg_server)
    config = gateway_config(
        fake_server.base_url,
        database={"url": url},
        redis={"url": REDIS_URL},
        auth={"single_user": "off"},
        chat={"model_titles": False, "save_interval": 0.2},
    )
    threads = [ServerThread(create_app(config)), ServerThread(create_app(config))]
    for thread in threads:
        await asyncio.to_thread(thread.start)
    try:
        one, two = (ChatServer(t.base_url, url, backend, t) for t in threads)
        yield Pair(one, two)
    finally:
        for thread in threads:
            await asyncio.to_thread(thread.stop)
        if pg is not None:
            await pg.drop_database(url)


@contextlib.contextmanager
def signed_in_both(pair: Pair) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """One user's clients of replica one and replica two (one session: one database)."""
    with (
        pair.one.signed_in(asyncio.run(pair.one.user())) as a,
        httpx.Client(base_url=pair.two.url, headers=a.headers, cookies=a.cookies, timeout=30) as b,
    ):
        yield a, b


def test_follow_and_resume_on_another_replica(pair: Pair, fake: FakeUpstream) -> None:
    fake.configure(chunks=40, chunk_delay_ms=15)
    with signed_in_both(pair) as (a, b):
        cid = new_conversation(a)["id"]
        gid = send(a, cid, "shared")["generation_id"]  # runs on replica one
        first = follow(b, gid, until=deltas(3))  # followed on replica two
        rest = follow(b, gid, last_event_id=first[-1][0])
        ids = [i for i, _ in first + rest]
        assert ids == list(range(1, len(ids) + 1))
        assert text_of(first + rest) == expected(40)
        assert follow(a, gid) == first + rest  # the same events as the owner serves


def test_stop_on_another_replica(pair: Pair, fake: FakeUpstream) -> None:
    fake.configure(chunks=300, chunk_delay_ms=20)
    with signed_in_both(pair) as (a, b):
        cid = new_conversation(a)["id"]
        gid = send(a, cid, "stop me elsewhere")["generation_id"]
        follow(b, gid, until=deltas(2))
        stopped = b.post(f"/api/generations/{gid}/stop").json()
        assert stopped["status"] == "stopped" and stopped["content"]
        wait_for(lambda: fake.cancelled == 1)
        assert follow(b, gid)[-1][1]["status"] == "stopped"
        with pair.two.signed_in(asyncio.run(pair.two.user())) as bob:
            assert bob.get(f"/api/generations/{gid}/events").status_code == 404
            assert bob.post(f"/api/generations/{gid}/stop").status_code == 404


def test_user_events_reach_a_tab_on_another_replica(pair: Pair) -> None:
    with signed_in_both(pair) as (a, b), b.stream("GET", "/api/events") as events:
        lines = events.iter_lines()
        assert next(lines) == "retry: 1000"  # listening on replica two from here on
        cid = new_conversation(a)["id"]  # made on replica one
        data = next(line for line in lines if line.startswith("data: "))
        assert json.loads(data[6:]) == {
            "type": "conversation", "action": "created", "conversation_id": cid,
        }  # fmt: skip
