"""Two `chatgate serve` processes sharing one PostgreSQL database and one Redis.

A cache hit made on one replica is a hit on the other (the upstream is called once); a client key
created on one works on the other, and its revocation too; a key's rate limit is global.
Each replica has its own cache dir, so only the Redis tier can explain a shared hit.

PostgreSQL: a throwaway database, dropped afterwards. Redis: a random database number, and only
the chatgate keys this test created are deleted. Either unreachable: the test skips, or fails
when CI=true.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
import redis
from bench.procs import Service, ServiceError
from robustness.harness import chatgate_service, write_config
from sqlalchemy.engine import make_url

from tests.fakes.upstream import FakeUpstream
from tests.storage.conftest import PG_CANDIDATES, PgServer

ADMIN_KEY = "replica-test-admin-key-0123456789"
CHATGATE_KEYS = ("chatgate:cache:*", "{chatgate:rl}:*")


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires PostgreSQL and Redis")
    pytest.skip(reason)


def find_pg() -> PgServer:
    override = os.environ.get("CHATGATE_TEST_POSTGRES_URL")
    errors = []
    for dsn in (override,) if override else PG_CANDIDATES:

        async def probe(dsn: str = dsn) -> None:
            conn = await asyncpg.connect(dsn, timeout=3)
            await conn.close()

        try:
            asyncio.run(probe())
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            errors.append(f"{make_url(dsn).render_as_string()}: {exc}")
            continue
        return PgServer(dsn)
    unavailable("PostgreSQL not reachable (" + "; ".join(errors) + ")")
    raise AssertionError("unreachable")


def find_redis() -> tuple[str, redis.Redis]:
    base = os.environ.get("CHATGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    url = f"{base.rsplit('/', 1)[0]}/{random.randrange(1, 16)}"
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        unavailable(f"Redis not reachable at {url} ({exc}); set CHATGATE_TEST_REDIS_URL")
    return url, client


def chatgate_keys(client: redis.Redis) -> set[bytes]:
    return {k for pattern in CHATGATE_KEYS for k in client.scan_iter(match=pattern, count=1000)}


@pytest.fixture(scope="module")
def shared_pg() -> Iterator[str]:
    """A fresh PostgreSQL database (asyncpg URL), dropped afterwards."""
    server = find_pg()
    url = asyncio.run(server.create_database())
    try:
        yield make_url(url).set(drivername="postgresql+asyncpg").render_as_string(False)
    finally:
        asyncio.run(server.drop_database(url))


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[tuple[str, redis.Redis]]:
    """A Redis URL on a random database number; the chatgate keys created meanwhile are
    deleted afterwards (other tests may use the same number: nothing else is touched)."""
    url, client = find_redis()
    before = chatgate_keys(client)
    try:
        yield url, client
    finally:
        created = chatgate_keys(client) - before
        if created:
            client.delete(*created)
        client.close()


@dataclass
class Replica:
    service: Service

    @property
    def url(self) -> str:
        return self.service.base_url

    def chat(self, key: str | None, content: str, **extra: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        body = {"model": "fake-model", "messages": [{"role": "user", "content": content}]}
        return httpx.post(
            self.url + "/v1/chat/completions",
            json={**body, **extra},
            headers=headers,
            timeout=30,
            trust_env=False,
        )

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        return httpx.request(
            method, self.url + path, headers=headers, timeout=30, trust_env=False, **kwargs
        )


def start(tmp_path: Path, name: str, fake_url: str, pg_url: str, redis_url: str) -> Replica:
    config = {
        "discover_env": False,
        "local_model": False,
        "server": {"log_level": "warning", "drain_seconds": 1},
        "database": {"url": pg_url},
        "redis": {"url": redis_url},
        "cache": {"enabled": True, "dir": str(tmp_path / f"cache-{name}")},
        "auth": {"require_keys": True, "admin_key": ADMIN_KEY, "key_cache_ttl": 0},
        "providers": {
            "fake": {
                "type": "openai",
                "base_url": fake_url + "/v1",
                "api_keys": ["sk-fake-upstream-key-0123456789"],
                "models": ["fake-model"],
            }
        },
    }
    path = write_config(tmp_path / f"{name}.yaml", config)
    service = chatgate_service(tmp_path, path, name=f"replica-{name}")
    try:
        service.start(timeout=60)
    except ServiceError as exc:
        log = service.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        service.stop()
        pytest.fail(f"{exc}\n{log}")
    return Replica(service)


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
    fake_server: FakeUpstream,
    shared_pg: str,
    shared_redis: tuple[str, redis.Redis],
) -> Iterator[tuple[Replica, Replica]]:
    """Both replicas, shared by this module's tests (each test uses its own keys and prompts;
    the `fake` fixture resets the upstream's counters per test)."""
    tmp_path = tmp_path_factory.mktemp("replicas")
    # One after the other: the first migrates the fresh database, the second finds it current.
    first = start(tmp_path, "a", fake_server.base_url, shared_pg, shared_redis[0])
    try:
        second = start(tmp_path, "b", fake_server.base_url, shared_pg, shared_redis[0])
        try:
            yield first, second
        finally:
            second.service.stop()
    finally:
        first.service.stop()


def create_key(replica: Replica, **limits: Any) -> tuple[str, str]:
    resp = replica.admin("POST", "/admin/keys", json={"name": "replica-test", **limits})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"], resp.json()["key"]


def wait_for_redis_entry(client: redis.Redis, before: set[bytes], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if {k for k in chatgate_keys(client) - before if k.startswith(b"chatgate:cache:")}:
            return
        time.sleep(0.02)
    pytest.fail("the first replica stored no cache entry in Redis")


def test_cache_hit_on_one_replica_is_a_hit_on_the_other(
    replicas: tuple[Replica, Replica],
    fake: FakeUpstream,
    shared_redis: tuple[str, redis.Redis],
) -> None:
    a, b = replicas
    _, key = create_key(a)
    before = chatgate_keys(shared_redis[1])
    prompt = f"shared cache {uuid.uuid4()}"

    first = a.chat(key, prompt)
    assert first.status_code == 200, first.text
    assert first.headers["x-chatgate-cache"] == "miss"
    wait_for_redis_entry(shared_redis[1], before)

    second = b.chat(key, prompt)
    assert second.status_code == 200, second.text
    assert second.headers["x-chatgate-cache"] == "hit"
    assert second.json()["choices"] == first.json()["choices"]
    # A streamed request on the second replica replays the same entry.
    streamed = b.chat(key, prompt, stream=True)
    assert streamed.headers["x-chatgate-cache"] == "hit"
    assert streamed.text.rstrip().endswith("data: [DONE]")
    assert fake.count() == 1


def test_key_created_on_one_replica_works_on_the_other(
    replicas: tuple[Replica, Replica], fake: FakeUpstream
) -> None:
    a, b = replicas
    assert b.chat(None, "no key").status_code == 401
    key_id, key = create_key(a)
    for replica in (a, b):
        resp = replica.chat(key, f"key check {uuid.uuid4()}")
        assert resp.status_code == 200, resp.text
    assert b.admin("GET", f"/admin/keys/{key_id}").json()["active"] is True

    assert a.admin("DELETE", f"/admin/keys/{key_id}").status_code == 200
    refused = b.chat(key, f"revoked {uuid.uuid4()}")  # key_cache_ttl 0: at once
    assert refused.status_code == 401, refused.text
    assert set(refused.json()["error"]) == {"message", "type", "param", "code"}


def test_rate_limit_is_global_across_replicas(
    replicas: tuple[Replica, Replica], fake: FakeUpstream
) -> None:
    a, b = replicas
    _, key = create_key(b, rpm=3)
    statuses = [r.chat(key, f"limit {uuid.uuid4()}").status_code for r in (a, b, a)]
    assert statuses == [200, 200, 200]
    for replica in (b, a):
        refused = replica.chat(key, f"limit {uuid.uuid4()}")
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1
    assert fake.count() == 3
