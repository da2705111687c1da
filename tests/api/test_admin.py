"""The admin API (`/admin/keys`, `/users`, `/usage`, `/upstreams`) and `/ready`, on real
servers."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.exceptions import RedisError

from chatgate.app import create_app
from chatgate.chat.accounts import Accounts
from chatgate.config import Config
from chatgate.storage import Database, UsageRepository, UsageRow
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread
from tests.storage.conftest import PgServer, pg_server, require_pg

__all__ = ["pg_server"]  # the shared PostgreSQL fixture, used by name

ADMIN = "admin-secret-0123456789"
UPSTREAM_KEYS = (
    "sk-fake-upstream-key-0123456789",
    "sk-refused-key-0123456789",
    "sk-limited-key-0123456789",
    "fake-gigachat-credentials",
)
AUTH = {"authorization": f"Bearer {ADMIN}"}
REDIS_URL = os.environ.get("CHATGATE_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


def admin_config(fake_url: str, **extra: Any) -> Config:
    return gateway_config(
        fake_url,
        auth={"admin_key": ADMIN, "require_keys": True, "key_cache_ttl": 0},
        **extra,
    )


@pytest.fixture(scope="module")
def admin_url(fake_server: FakeUpstream) -> Iterator[str]:
    with ServerThread(create_app(admin_config(fake_server.base_url))) as url:
        yield url


def chat(
    url: str, key: str | None, model: str = "fake-model", content: str = "hi"
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def create_key(url: str, **body: Any) -> dict[str, Any]:
    resp = httpx.post(url + "/admin/keys", json={"name": "test", **body}, headers=AUTH)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


def assert_error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/keys"),
        ("POST", "/admin/keys"),
        ("DELETE", "/admin/keys/key_0000"),
        ("GET", "/admin/usage"),
        ("GET", "/admin/users"),
        ("GET", "/admin/users/u_0000"),
        ("PATCH", "/admin/users/u_0000"),
        ("GET", "/admin/upstreams"),
        ("GET", "/admin/cache"),
    ],
)
def test_admin_needs_the_admin_key(admin_url: str, method: str, path: str) -> None:
    body = {"name": "x"} if method == "POST" else {"rpm": 1} if method == "PATCH" else None
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": ADMIN}):
        resp = httpx.request(method, admin_url + path, json=body, headers=headers)
        assert assert_error(resp, 401)["type"] == "authentication_error"


def test_created_key_works_until_revoked(admin_url: str, fake: FakeUpstream) -> None:
    created = create_key(admin_url, rpm=1000, models=["fake-model"], expires_days=7)
    secret = created["key"]
    assert secret.startswith("sk-cg-") and secret.startswith(created["prefix"])
    assert created["active"] is True and created["revoked_at"] is None
    assert created["rpm"] == 1000 and created["models"] == ["fake-model"]
    expires = datetime.fromisoformat(created["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=1)

    assert chat(admin_url, secret).status_code == 200
    assert_error(chat(admin_url, None), 401)
    assert_error(chat(admin_url, "sk-cg-made-up"), 401)
    denied = assert_error(chat(admin_url, secret, model="pirate"), 403)
    assert denied["param"] == "model"

    revoked = httpx.delete(f"{admin_url}/admin/keys/{created['id']}", headers=AUTH)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["active"] is False and revoked.json()["revoked_at"]
    assert_error(chat(admin_url, secret), 401)  # at once: the cache was dropped
    missing = httpx.delete(admin_url + "/admin/keys/key_nosuchkey", headers=AUTH)
    assert assert_error(missing, 404)["param"] == "key_id"


def test_list_shows_keys_without_secrets(admin_url: str) -> None:
    created = create_key(admin_url, budget_tokens=5000)
    resp = httpx.get(admin_url + "/admin/keys", headers=AUTH)
    assert resp.status_code == 200
    assert created["key"] not in resp.text
    assert created["key"][len(created["prefix"]) :] not in resp.text
    records = {r["id"]: r for r in resp.json()["data"]}
    mine = records[created["id"]]
    assert "key" not in mine and "key_hash" not in mine
    assert mine["prefix"] == created["prefix"] and mine["budget_tokens"] == 5000
    one = httpx.get(f"{admin_url}/admin/keys/{created['id']}", headers=AUTH)
    assert one.json() == mine


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "x", "rpm": 0}, "rpm"),
        ({"name": ""}, "name"),
        ({}, "name"),
        ({"name": "x", "models": []}, "models"),
        ({"name": "x", "expires_days": -1}, "expires_days"),
        ({"name": "x", "surprise": 1}, "surprise"),
        ({"name": "x", "tpm": 24156185141591957504}, "tpm"),  # found by schemathesis: was a 500
        ({"name": "x", "rpm": 2**31}, "rpm"),
        ({"name": "x", "expires_days": 1.3e308}, "expires_days"),
    ],
)
def test_create_rejects_bad_bodies(admin_url: str, body: dict[str, Any], param: str) -> None:
    resp = httpx.post(admin_url + "/admin/keys", json=body, headers=AUTH)
    assert assert_error(resp, 400)["param"] == param


def test_usage_counts_the_tokens(admin_url: str, fake: FakeUpstream) -> None:
    created = create_key(admin_url)
    spent = 0
    for _ in range(2):
        resp = chat(admin_url, created["key"])
        assert resp.status_code == 200
        spent += resp.json()["usage"]["total_tokens"]
    assert spent > 0
    url = f"{admin_url}/admin/usage?key_id={created['id']}"
    deadline = time.monotonic() + 10
    while True:  # the request is recorded when its response ends: allow a moment
        report = httpx.get(url, headers=AUTH).json()
        if report["totals"] and report["totals"][0]["requests"] == 2:
            break
        assert time.monotonic() < deadline, report
        time.sleep(0.05)
    (total,) = report["totals"]
    assert total == {
        "key_id": created["id"],
        "name": "test",
        "requests": 2,
        "prompt_tokens": total["prompt_tokens"],
        "completion_tokens": total["completion_tokens"],
        "total_tokens": spent,
        "spend": {},  # fake-model has no price
        "saved": {},
    }
    (row,) = report["data"]
    assert row["model"] == "fake-model" and row["total_tokens"] == spent
    assert row["day"] == datetime.now(UTC).date().isoformat()
    key = httpx.get(f"{admin_url}/admin/keys/{created['id']}", headers=AUTH).json()
    assert key["tokens_used"] == spent

    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    later = httpx.get(f"{url}&since={tomorrow}", headers=AUTH).json()
    assert later["data"] == [] and later["totals"] == []
    everyone = httpx.get(admin_url + "/admin/usage", headers=AUTH).json()
    assert created["id"] in {t["key_id"] for t in everyone["totals"]}
    bad = httpx.get(admin_url + "/admin/usage?since=yesterday", headers=AUTH)
    assert assert_error(bad, 400)["param"] == "query.since"
    assert row["user_id"] is None  # made with a key, by no signed-in user
    assert {u["user_id"] for u in everyone["users"]} == {None}


@dataclass
class UsersServer:
    url: str
    db_url: str
    ann: str
    bob: str


PASSWORD = "correct horse battery"
TODAY = datetime.now(UTC).date()
LONG_AGO = date(2024, 1, 1)


async def _users_and_usage(db_url: str) -> tuple[str, str]:
    """Two users, and usage of the first (made straight in the database: this is about
    reporting it, not about which door records it)."""
    async with Database(db_url) as db:
        accounts = Accounts(db, "off", True)
        ann = await accounts.create_user("ann", PASSWORD, is_admin=True)
        bob = await accounts.create_user("bob", PASSWORD)
        await UsageRepository(db).add_batch(
            [
                UsageRow(None, "fake-model", 10, 20, requests=2, user_id=ann.id),
                UsageRow(None, "fake-reasoner", 1, 2, day=LONG_AGO, user_id=ann.id),
                UsageRow(None, "fake-model", 100, 0, day=LONG_AGO),
            ]
        )
    return ann.id, bob.id


@pytest.fixture(scope="module")
def users_server(fake_server: FakeUpstream) -> Iterator[UsersServer]:
    config = admin_config(fake_server.base_url)
    db_url = config.database.url
    with ServerThread(create_app(config)) as url:  # its start migrates the database
        ann, bob = asyncio.run(_users_and_usage(db_url))
        yield UsersServer(url, db_url, ann, bob)


def test_users_list_limits_and_all_time_usage(users_server: UsersServer) -> None:
    resp = httpx.get(users_server.url + "/admin/users", headers=AUTH)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "list"
    users = {u["name"]: u for u in body["data"]}
    assert set(users) >= {"ann", "bob"}
    ann = users["ann"]
    assert ann["id"] == users_server.ann and ann["is_admin"] is True and ann["implicit"] is False
    assert datetime.fromisoformat(ann["created_at"]).date() == TODAY
    assert ann["usage"] == {
        "requests": 3,
        "prompt_tokens": 11,
        "completion_tokens": 22,
        "total_tokens": 33,
    }
    assert ann["tokens_used"] == 33
    assert {k: ann[k] for k in ("rpm", "tpm", "budget_tokens", "models")} == dict.fromkeys(
        ("rpm", "tpm", "budget_tokens", "models")
    )
    bob = users["bob"]
    assert bob["usage"]["requests"] == 0 and bob["tokens_used"] == 0 and not bob["is_admin"]
    assert "password_hash" not in resp.text
    one = httpx.get(f"{users_server.url}/admin/users/{users_server.bob}", headers=AUTH)
    assert one.json() == bob


def test_patch_sets_and_clears_a_users_limits(users_server: UsersServer) -> None:
    url = f"{users_server.url}/admin/users/{users_server.bob}"
    limits = {"rpm": 30, "tpm": 5000, "budget_tokens": 100000, "models": ["fake-model", "local"]}
    resp = httpx.patch(url, json=limits, headers=AUTH)
    assert resp.status_code == 200, resp.text
    assert {k: resp.json()[k] for k in limits} == {**limits, "models": ["fake-model", "local"]}
    assert httpx.get(url, headers=AUTH).json() == resp.json()

    # null clears a limit; a field left out stays; nothing given changes nothing.
    cleared = httpx.patch(url, json={"rpm": None, "models": None}, headers=AUTH).json()
    assert (cleared["rpm"], cleared["tpm"], cleared["budget_tokens"], cleared["models"]) == (
        None,
        5000,
        100000,
        None,
    )
    assert httpx.patch(url, json={}, headers=AUTH).json() == cleared
    listed = httpx.get(users_server.url + "/admin/users", headers=AUTH).json()["data"]
    assert [u for u in listed if u["id"] == users_server.bob] == [cleared]
    httpx.patch(url, json={"tpm": None, "budget_tokens": None}, headers=AUTH)


def test_patch_an_unknown_user_is_404(users_server: UsersServer) -> None:
    resp = httpx.patch(users_server.url + "/admin/users/u_nobody", json={"rpm": 5}, headers=AUTH)
    error = assert_error(resp, 404)
    assert error["param"] == "user_id" and "u_nobody" in error["message"]
    missing = httpx.get(users_server.url + "/admin/users/u_nobody", headers=AUTH)
    assert assert_error(missing, 404)["param"] == "user_id"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"rpm": 0}, "rpm"),
        ({"tpm": 2**31}, "tpm"),
        ({"budget_tokens": 0}, "budget_tokens"),
        ({"budget_tokens": 2**63}, "budget_tokens"),
        ({"models": []}, "models"),
        ({"models": [""]}, "models"),
        ({"models": "fake-model"}, "models"),
        ({"tokens_used": 0}, "tokens_used"),  # the counter is not the admin's to set
        ({"name": "eve"}, "name"),
    ],
)
def test_patch_rejects_bad_bodies(
    users_server: UsersServer, body: dict[str, Any], param: str
) -> None:
    url = f"{users_server.url}/admin/users/{users_server.bob}"
    resp = httpx.patch(url, json=body, headers=AUTH)
    assert assert_error(resp, 400)["param"] == param
    assert httpx.get(url, headers=AUTH).json()["rpm"] is None


def test_usage_reports_users(users_server: UsersServer) -> None:
    report = httpx.get(users_server.url + "/admin/usage", headers=AUTH).json()
    users = {u["user_id"]: u for u in report["users"]}
    assert users[users_server.ann] == {
        "user_id": users_server.ann,
        "name": "ann",
        "requests": 3,
        "prompt_tokens": 11,
        "completion_tokens": 22,
        "total_tokens": 33,
        "spend": {},  # no prices
        "saved": {},
    }
    assert users[None]["name"] is None and users[None]["total_tokens"] == 100
    assert users_server.bob not in users  # no usage, no row
    # Rows carry the user; keyless rows of users and of no user alike have key_id None.
    assert {(r["user_id"], r["model"], r["day"]) for r in report["data"]} == {
        (users_server.ann, "fake-model", TODAY.isoformat()),
        (users_server.ann, "fake-reasoner", LONG_AGO.isoformat()),
        (None, "fake-model", LONG_AGO.isoformat()),
    }
    assert {r["key_id"] for r in report["data"]} == {None}
    (anonymous,) = report["totals"]
    assert anonymous["key_id"] is None and anonymous["total_tokens"] == 133

    recent = httpx.get(
        f"{users_server.url}/admin/usage?since={TODAY.isoformat()}", headers=AUTH
    ).json()
    assert [(u["user_id"], u["total_tokens"]) for u in recent["users"]] == [(users_server.ann, 30)]
    mine = httpx.get(
        f"{users_server.url}/admin/usage?user_id={users_server.ann}", headers=AUTH
    ).json()
    assert {r["user_id"] for r in mine["data"]} == {users_server.ann}
    assert [u["user_id"] for u in mine["users"]] == [users_server.ann]
    assert mine["totals"] == report["totals"]  # user_id narrows data and users only
    nobody = httpx.get(f"{users_server.url}/admin/usage?user_id=none", headers=AUTH).json()
    assert [(r["user_id"], r["total_tokens"]) for r in nobody["data"]] == [(None, 100)]
    assert [u["user_id"] for u in nobody["users"]] == [None]


def test_upstreams_show_masked_keys_only(admin_url: str) -> None:
    resp = httpx.get(admin_url + "/admin/upstreams", headers=AUTH)
    assert resp.status_code == 200
    for secret in UPSTREAM_KEYS:
        assert secret not in resp.text
    providers = {p["name"]: p for p in resp.json()["data"]}
    assert set(providers) >= {"fake", "slow", "dead", "giga"}
    fake = providers["fake"]
    assert fake["type"] == "openai" and fake["base_url"].endswith("/v1")
    (key,) = fake["keys"]
    assert key["key"] == "sk-…6789" and key["state"] == "ok"
    assert providers["giga"]["type"] == "gigachat" and len(providers["giga"]["keys"]) == 1
    assert providers["dead"]["keys"] == [] and providers["fake"]["queue"] is None


def test_upstreams_show_the_queue(fake_server: FakeUpstream) -> None:
    config = gateway_config(
        fake_server.base_url,
        providers={
            "q": {
                "type": "openai",
                "base_url": fake_server.base_url + "/v1",
                "api_keys": ["sk-queue-key-abcdefghijk"],
                "models": ["fake-model"],
                "max_concurrency": 2,
                "max_queue": 5,
            }
        },
        models={},
    )
    with ServerThread(create_app(config)) as url:
        data = httpx.get(url + "/admin/upstreams").json()["data"]  # no admin key: open
    (q,) = data
    assert q["queue"]["max_concurrency"] == 2 and q["queue"]["max_queue"] == 5
    assert q["queue"]["depth"] == 0 and "sk-queue-key-abcdefghijk" not in str(data)


def test_admin_docs_describe_the_bodies(admin_url: str) -> None:
    schema = httpx.get(admin_url + "/openapi.json").json()
    create = schema["components"]["schemas"]["KeyCreate"]
    assert set(create["properties"]) == {
        "name",
        "rpm",
        "tpm",
        "budget_tokens",
        "budget_cost",
        "models",
        "expires_days",
    }
    assert "/admin/usage" in schema["paths"] and "/admin/upstreams" in schema["paths"]
    update = schema["components"]["schemas"]["UserPolicyUpdate"]
    assert set(update["properties"]) == {"rpm", "tpm", "budget_tokens", "budget_cost", "models"}
    assert "patch" in schema["paths"]["/admin/users/{user_id}"]


def test_ready_reports_its_parts(admin_url: str) -> None:
    resp = httpx.get(admin_url + "/ready")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ready" and body["database"] == "ok"
    assert body["rate_limits"] == "local"
    assert body["cache"] == {"enabled": False, "tiers": []}
    assert "fake" in body["providers"] and "detail" not in body


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis at a database index of this test's own, emptied of chatgate's keys after."""
    url = redis.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs
    own = (
        f"redis://{url.get('host', '127.0.0.1')}:{url.get('port', 6379)}/{random.randrange(1, 16)}"
    )
    client = redis.Redis.from_url(own, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        client.close()
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is not reachable at {own} ({exc})")
        pytest.skip(f"Redis is not reachable at {own} ({exc})")
    try:
        yield own
    finally:
        for pattern in ("{chatgate:rl}:*", "chatgate:cache:*"):
            names = list(client.scan_iter(match=pattern))
            if names:
                client.delete(*names)
        client.close()


def _ready_with_redis(fake_url: str, redis_url: str, cache_dir: Path) -> tuple[int, dict[str, Any]]:
    config = gateway_config(
        fake_url,
        redis={"url": redis_url},
        rate_limits={"rpm": 100_000, "replicas": 2},
        cache={"enabled": True, "dir": str(cache_dir)},
    )
    with ServerThread(create_app(config)) as url:
        # limits are taken on a request: with Redis down, this is what finds out
        served = chat(url, None, content=f"ready {uuid.uuid4()}")
        ready = httpx.get(url + "/ready")
    assert served.status_code == 200  # with Redis down, local limits keep serving
    body: dict[str, Any] = ready.json()
    assert body["cache"] == {"enabled": True, "tiers": ["memory", "disk", "redis"]}
    return ready.status_code, body


def test_ready_with_redis(fake_server: FakeUpstream, redis_url: str, tmp_path: Path) -> None:
    status, body = _ready_with_redis(fake_server.base_url, redis_url, tmp_path)
    assert status == 200 and body["status"] == "ready" and body["rate_limits"] == "redis"


def test_ready_is_degraded_with_redis_down(fake_server: FakeUpstream, tmp_path: Path) -> None:
    down = f"redis://127.0.0.1:{_closed_port()}/0"
    status, body = _ready_with_redis(fake_server.base_url, down, tmp_path)
    assert status == 200 and body["status"] == "degraded"
    assert body["rate_limits"] == "local (redis down)" and body["database"] == "ok"
    assert "local rate limits" in body["detail"] and "/ 2 replicas" in body["detail"]


async def test_ready_is_503_when_the_database_is_gone(
    fake_server: FakeUpstream, pg_server: PgServer | str
) -> None:
    server = require_pg(pg_server)
    db_url = await server.create_database()
    config = gateway_config(fake_server.base_url, database={"url": db_url})
    with ServerThread(create_app(config)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            assert (await http.get("/ready")).status_code == 200
            await server.drop_database(db_url)  # WITH (FORCE): its connections are cut
            resp = await http.get("/ready")
            assert resp.status_code == 503
            body = resp.json()
            assert body["status"] == "unavailable" and body["database"] == "down"
            assert "database" in body["detail"]
            assert (await http.get("/health")).status_code == 200  # alive, just not ready
