"""The cache across tenants: with keys required each client key has its own partition of the
cache and of single-flight (``cache.scope``), so no client learns what another asked or reads
its answer, and ``no-cache`` re-rolls only one's own; bad cache headers are a 400, and no TTL
outlives ``cache.max_ttl``."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chatgate.app import create_app
from chatgate.config import CacheConfig
from chatgate.gateway.auth import ANONYMOUS_IDENTITY, Identity
from chatgate.gateway.cache.keys import cache_key
from chatgate.gateway.caching import ResponseCache
from chatgate.gateway.path import RequestPath
from chatgate.gateway.ratelimit import Limit
from chatgate.protocol.openai import ChatRequest
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

ADMIN = "admin-key-for-cache-scope-tests"


@dataclass
class Keys:
    url: str
    a: str
    b: str


def _server(fake: FakeUpstream, tmp: Any, **cache: Any) -> Iterator[Keys]:
    config = gateway_config(
        fake.base_url,
        database={"url": f"sqlite+aiosqlite:///{tmp / 'db'}"},
        auth={"require_keys": True, "admin_key": ADMIN},
        cache={"enabled": True, "dir": str(tmp / "cache"), **cache},
    )
    with ServerThread(create_app(config)) as url:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        made = [
            httpx.post(url + "/admin/keys", json={"name": n}, headers=admin).json()["key"]
            for n in ("a", "b")
        ]
        yield Keys(url, *made)


@pytest.fixture(scope="module")
def keyed(fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    """Keys required and the default scope (per key)."""
    yield from _server(fake_server, tmp_path_factory.mktemp("scoped"))


def ask(url: str, key: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    headers["Authorization"] = f"Bearer {key}"
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def question() -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": str(uuid.uuid4())}]}


def test_one_key_cannot_see_anothers_cached_answer(keyed: Keys, fake: FakeUpstream) -> None:
    body = question()
    assert ask(keyed.url, keyed.a, body).headers["x-chatgate-cache"] == "miss"
    assert ask(keyed.url, keyed.a, body).headers["x-chatgate-cache"] == "hit"
    # B sends the very same prompt: it learns nothing (a miss) and gets its own answer.
    assert ask(keyed.url, keyed.b, body).headers["x-chatgate-cache"] == "miss"
    assert fake.count() == 2
    # B re-rolls its own entry; A's stays as it was.
    assert ask(keyed.url, keyed.b, body, **{"Cache-Control": "no-cache"}).status_code == 200
    assert fake.count() == 3
    assert ask(keyed.url, keyed.a, body).headers["x-chatgate-cache"] == "hit"
    assert fake.count() == 3


async def test_single_flight_is_per_key_too(keyed: Keys, fake: FakeUpstream) -> None:
    fake.configure(latency_ms=300)
    body = question()
    async with httpx.AsyncClient(base_url=keyed.url, timeout=30) as client:

        async def one(key: str) -> httpx.Response:
            return await client.post(
                "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            )

        replies = await asyncio.gather(one(keyed.a), one(keyed.b), one(keyed.a))
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert fake.count() == 2  # A's two share a flight; B's is its own


def test_global_scope_shares_on_purpose(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    fake_server.reset()
    for keys in _server(fake_server, tmp_path_factory.mktemp("global"), scope="global"):
        body = question()
        assert ask(keys.url, keys.a, body).headers["x-chatgate-cache"] == "miss"
        assert ask(keys.url, keys.b, body).headers["x-chatgate-cache"] == "hit"


@pytest.mark.parametrize("ttl", ["1e300", "inf", "nan", "-5", "0", "soon", "2592001"])
def test_bad_cache_ttl_is_400(keyed: Keys, fake: FakeUpstream, ttl: str) -> None:
    reply = ask(keyed.url, keyed.a, question(), **{"X-Chatgate-Cache-TTL": ttl})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == "X-Chatgate-Cache-TTL"
    assert "2.592e+06" in reply.json()["error"]["message"]  # the maximum, stated
    assert fake.count() == 0


def test_a_ttl_within_the_maximum_is_taken(keyed: Keys) -> None:
    reply = ask(keyed.url, keyed.a, question(), **{"X-Chatgate-Cache-TTL": "2592000"})
    assert reply.status_code == 200


def test_huge_ttl_cannot_turn_the_redis_tier_off(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Before: a TTL past Redis's PXAT range made its write fail and marked the shared tier
    down for every client."""
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    fake_server.reset()
    tmp = tmp_path_factory.mktemp("redis")
    config = gateway_config(
        fake_server.base_url,
        database={"url": f"sqlite+aiosqlite:///{tmp / 'db'}"},
        cache={"enabled": True, "memory_bytes": 0, "disk_bytes": 0},
        redis={"url": "redis://127.0.0.1:6379/0"},
    )
    with ServerThread(create_app(config)) as url:
        body = question()
        big = httpx.post(
            url + "/v1/chat/completions", json=body, headers={"X-Chatgate-Cache-TTL": "1e300"}
        )
        assert big.status_code == 400
        other = question()
        assert httpx.post(url + "/v1/chat/completions", json=other).status_code == 200
        deadline = time.monotonic() + 5
        while True:  # the write is in the background
            again = httpx.post(url + "/v1/chat/completions", json=other)
            if again.headers["x-chatgate-cache"] == "hit" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert again.headers["x-chatgate-cache"] == "hit"  # Redis still serves everyone


class Recording:
    def __init__(self) -> None:
        self.expiries: list[float] = []

    async def get(self, key: bytes) -> tuple[bytes, float] | None:
        return None

    async def set(self, key: bytes, value: bytes, expires_at: float) -> None:
        self.expiries.append(expires_at)

    async def delete(self, key: bytes) -> None:
        return None


async def test_the_cache_stage_bounds_any_ttl() -> None:
    """A door that forgot to check the header still cannot store past cache.max_ttl."""
    store = Recording()
    cache = ResponseCache(store, ttl=60, max_ttl=600)
    req = ChatRequest(body={"messages": []}, model="m", stream=False, cache_ttl=1e300)

    async def source() -> Any:
        yield [{"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}]}]

    _, answer = await cache.open(b"k" * 32, req, source)
    async for _ in answer:
        pass
    await cache.close()
    assert store.expiries and store.expiries[0] <= time.time() + 601


def test_partitions() -> None:
    key = Identity("key_1", "k", Limit(), None, None, 0)
    user = Identity(None, "u", Limit(), None, None, 0, user_id="u_1")

    def path(scope: Any) -> RequestPath:
        return RequestPath(None, None, None, None, None, cache_scope=scope)  # type: ignore[arg-type]

    assert path("global").partition(key) == ""
    assert path("key").partition(key) == "k:key_1" and path("key").partition(user) == "u:u_1"
    assert path("user").partition(user) == "u:u_1" and path("user").partition(key) == "k:key_1"
    assert path("key").partition(ANONYMOUS_IDENTITY) == ""
    body = {"messages": [{"role": "user", "content": "x"}]}
    assert cache_key(body, "p/m") == cache_key(body, "p/m", "")  # global keys as before
    assert cache_key(body, "p/m", partition="k:a") != cache_key(body, "p/m", partition="k:b")
    assert CacheConfig().resolved_scope(True) == "key"
    assert CacheConfig().resolved_scope(False) == "global"
    assert CacheConfig(scope="user").resolved_scope(True) == "user"


DOORS = [
    ("/v1/chat/completions", lambda q: q),
    ("/v1/responses", lambda q: {"model": q["model"], "input": q["messages"][0]["content"]}),
    ("/v1/messages", lambda q: {**q, "max_tokens": 16}),
    ("/api/chat", lambda q: {**q, "stream": False}),
]


@pytest.fixture(scope="module")
def short_ttl(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Keys]:
    """An operator's own ``cache.max_ttl`` below the absolute bound."""
    yield from _server(fake_server, tmp_path_factory.mktemp("short"), ttl=60, max_ttl=600)


@pytest.mark.parametrize(("path", "shape"), DOORS, ids=[d[0] for d in DOORS])
def test_every_door_refuses_a_ttl_past_the_operators_maximum(
    short_ttl: Keys, fake: FakeUpstream, path: str, shape: Any
) -> None:
    headers = {"Authorization": f"Bearer {short_ttl.a}", "X-Chatgate-Cache-TTL": "601"}
    reply = httpx.post(short_ttl.url + path, json=shape(question()), headers=headers, timeout=30)
    assert reply.status_code == 400, reply.text
    assert "600" in reply.text  # the operator's maximum, stated in the door's own shape
    assert fake.count() == 0
    headers["X-Chatgate-Cache-TTL"] = "600"
    reply = httpx.post(short_ttl.url + path, json=shape(question()), headers=headers, timeout=30)
    assert reply.status_code == 200, reply.text
