"""Traffic control end to end through real HTTP: shared rate limits across processes, the true
Retry-After, upstream key failover and disabling, budgets, per-key limits, and Redis failing.

Real services: PostgreSQL (CHATGATE_TEST_POSTGRES_URL, else 127.0.0.1:5432 as postgres/root) and
Redis (CHATGATE_TEST_REDIS_URL, else 127.0.0.1:6379 with a database index of this run's own).
Unreachable: the tests that need them skip, or fail when CI=true. Each test that uses PostgreSQL
gets a throwaway `chatgate_traffic_<hex>` database, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import redis
import yaml
from aiohttp import web
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url

from chatgate.app import create_app
from chatgate.config import Config
from chatgate.storage import Database, KeyRepository, UsageRepository, upgrade
from tests.fakes.upstream import FakeServer, FakeUpstream
from tests.server import ServerThread

PG_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)
RL_PATTERN = "{chatgate:rl}:*"  # chatgate's rate-limit buckets in Redis
UPSTREAM_KEY = "sk-traffic-upstream-0123456789"
KEY_A = "sk-pool-key-A-0123456789-AAAA"
KEY_B = "sk-pool-key-B-0123456789-BBBB"
TIMEOUT = httpx.Timeout(30.0)
CHATGATE_SERVE = (sys.executable, "-m", "chatgate.cli", "serve")
START_TIMEOUT = 90.0


def unavailable(reason: str) -> None:
    """Skip, except on CI (CI=true), where a missing service is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true requires it)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def header(resp: httpx.Response, name: str) -> str | None:
    return resp.headers.get(name)


# ---- services ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
async def pg_admin() -> str:
    """A DSN that may create databases, or "!reason" when PostgreSQL is unreachable."""
    override = os.environ.get("CHATGATE_TEST_POSTGRES_URL")
    errors = []
    for dsn in (override,) if override else PG_CANDIDATES:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            errors.append(f"{make_url(dsn).render_as_string()}: {exc}")
            continue
        await conn.close()
        return dsn
    return "!PostgreSQL not reachable (" + "; ".join(errors) + ")"


async def _pg_admin_exec(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def pg_database(pg_admin: str) -> AsyncIterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped afterwards."""
    if pg_admin.startswith("!"):
        unavailable(pg_admin[1:] + "; set CHATGATE_TEST_POSTGRES_URL or start PostgreSQL")
    name = f"chatgate_traffic_{secrets.token_hex(6)}"
    await _pg_admin_exec(pg_admin, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(pg_admin).set(database=name).render_as_string(hide_password=False)
    finally:
        await _pg_admin_exec(pg_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pg_url(pg_admin: str) -> AsyncIterator[str]:
    async with pg_database(pg_admin) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_admin: str
) -> AsyncIterator[str]:
    """An empty database of each backend, migrated to head (keys can be created in it)."""
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'chatgate.db'}"
        else:
            url = await stack.enter_async_context(pg_database(pg_admin))
        await upgrade(url)
        yield url


def _remove_rl_keys(client: redis.Redis) -> None:
    names = list(client.scan_iter(match=RL_PATTERN, count=1000))
    if names:
        client.delete(*names)


@pytest.fixture(scope="session")
def shared_redis_base() -> str:
    """The shared Redis URL: the env override as is, else a database index of this run's own
    (chatgate's bucket names are fixed, so other runs and suites must not share our index)."""
    override = os.environ.get("CHATGATE_TEST_REDIS_URL")
    return override or f"redis://127.0.0.1:6379/{random.randrange(1, 16)}"


@pytest.fixture
def shared_redis(shared_redis_base: str) -> Iterator[str]:
    """The real shared Redis, with no chatgate rate-limit buckets before and after the test."""
    client = redis.Redis.from_url(shared_redis_base, socket_connect_timeout=2, socket_timeout=5)
    try:
        try:
            client.ping()
        except (RedisError, OSError) as exc:
            unavailable(f"Redis is not reachable at {shared_redis_base} ({exc})")
        _remove_rl_keys(client)
        yield shared_redis_base
        _remove_rl_keys(client)
    finally:
        client.close()


class OwnRedis:
    """A redis-server of this test's own on a free port, which the test may kill."""

    def __init__(self, tmp_path: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [
                binary or "redis-server",
                *("--bind", "127.0.0.1", "--port", str(self.port), "--save", ""),
                *("--appendonly", "no", "--daemonize", "no", "--dir", str(tmp_path)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"redis-server exited at start ({self.proc.returncode})")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        self.kill()
        pytest.fail("redis-server did not start in 15 s")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    try:
        yield server
    finally:
        server.kill()


# ---- an upstream that treats keys differently ------------------------------------------------
class KeyedServer(FakeServer):
    """The fake upstream, plus per-key refusals: ``refuse[key] = (status, retry_after, seconds)``
    answers that status to that key (seconds None: always; else for that long from the first
    refusal, as a key whose upstream quota refills would). ``log`` holds (monotonic time, key,
    status) of every chat request, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: dict[str, tuple[int, float | None, float | None]] = {}
        self.refusing_until: dict[str, float] = {}
        self.log: list[tuple[float, str, int]] = []

    def _refusal(self, request: web.Request) -> tuple[str, web.Response | None]:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        rule = self.refuse.get(key)
        if rule is None:
            return key, None
        status, retry_after, seconds = rule
        now = time.monotonic()
        if seconds is not None:
            until = self.refusing_until.setdefault(key, now + seconds)
            if now >= until:
                return key, None
        body = {"error": {"message": f"fake {status}", "type": "x", "param": None, "code": None}}
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        resp = web.Response(
            status=status,
            body=orjson.dumps(body),
            content_type="application/json",
            headers=headers,
        )
        return key, resp

    async def openai_chat(self, request: web.Request) -> web.StreamResponse:
        key, refusal = self._refusal(request)
        if refusal is not None:
            await request.read()
            self.log.append((time.monotonic(), key, refusal.status))
            return refusal
        resp = await super().openai_chat(request)
        self.log.append((time.monotonic(), key, resp.status))
        return resp

    async def openai_models(self, request: web.Request) -> web.Response:
        # A key the upstream refuses fails any revival check (a model listing) too.
        _, refusal = self._refusal(request)
        return refusal if refusal is not None else await super().openai_models(request)


@pytest.fixture
def keyed() -> Iterator[tuple[FakeUpstream, KeyedServer]]:
    upstream = FakeUpstream()
    server = upstream.server = KeyedServer()
    with upstream:
        yield upstream, server


# ---- gateways ---------------------------------------------------------------------------------
def config_data(fake_url: str, tmp_path: Path, *, keys: list[str] | None = None) -> dict[str, Any]:
    return {
        "discover_env": False,
        "local_model": False,
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"},
        "providers": {
            "fake": {
                "type": "openai",
                "base_url": fake_url + "/v1",
                "api_keys": keys or [UPSTREAM_KEY],
                "models": ["fake-model", "fake-reasoner"],
            }
        },
    }


@contextlib.contextmanager
def gateway(data: dict[str, Any]) -> Iterator[str]:
    """chatgate in this process (its own server thread and event loop); yields its base URL."""
    with ServerThread(create_app(Config.model_validate(data))) as url:
        yield url


class Proc:
    """``chatgate serve`` as a real process, its output in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATGATE_")}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*CHATGATE_SERVE, "--config", str(config), "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"chatgate exited early ({self.proc.returncode}):\n{self.output()}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(self.url + "/ready", timeout=2)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
        pytest.fail(f"chatgate did not become ready in {START_TIMEOUT} s:\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def body(content: str = "hi", model: str = "fake-model", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


async def chat(
    client: httpx.AsyncClient, url: str, key: str | None = None, **kwargs: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return await client.post(url + "/v1/chat/completions", json=body(**kwargs), headers=headers)


def retry_wait(resp: httpx.Response) -> float:
    """The wait a 429 asks for in seconds: retry-after-ms when given, else Retry-After."""
    ms = header(resp, "retry-after-ms")
    if ms is not None:
        return int(ms) / 1000
    return float(resp.headers["retry-after"])


def assert_rate_limited(
    resp: httpx.Response, limit: int, code: str = "rate_limit_exceeded"
) -> None:
    assert resp.status_code == 429, resp.text
    err = resp.json()["error"]
    assert err["code"] == code and err["type"] == "rate_limit_error", err
    retry_after = resp.headers.get("retry-after")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1, retry_after
    ms = header(resp, "retry-after-ms")
    if ms is not None:  # whole seconds, rounded up from the precise wait
        assert int(retry_after) == max(1, math.ceil(int(ms) / 1000)), (retry_after, ms)
    assert header(resp, "x-ratelimit-limit-requests") == str(limit)
    assert header(resp, "x-ratelimit-remaining-requests") == "0"
    assert header(resp, "x-ratelimit-reset-requests"), resp.headers


# ---- 1. two processes, one Redis, one PostgreSQL ----------------------------------------------
async def test_two_processes_sharing_redis_let_exactly_the_limit_through(
    tmp_path: Path, fake: FakeUpstream, shared_redis: str, pg_url: str
) -> None:
    n = 20
    data = config_data(fake.base_url, tmp_path)
    data["database"] = {"url": pg_url}
    data["redis"] = {"url": shared_redis}
    data["rate_limits"] = {"rpm": n}
    config = tmp_path / "chatgate.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    # Both start at once on an empty database: migrations must serialise themselves.
    procs = [Proc(config, tmp_path / f"chatgate-{i}.log") for i in range(2)]
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            await asyncio.gather(*(p.wait_ready(client) for p in procs))
            started = time.monotonic()
            results = []
            for i in range(2 * n):
                resp = await chat(client, procs[i % 2].url)
                results.append((i % 2, resp))
            elapsed = time.monotonic() - started
    finally:
        for p in procs:
            p.stop()
    ok = [(who, r) for who, r in results if r.status_code == 200]
    refused = [r for _, r in results if r.status_code != 200]
    # Buckets refill continuously (n per minute): a slow run earns that much more, no more.
    extra = math.floor(elapsed * n / 60)
    assert n <= len(ok) <= n + extra, (len(ok), elapsed, [r.status_code for _, r in results])
    if extra == 0:  # under 60 / n seconds: nothing refilled, so exactly n
        assert len(ok) == n
    assert {who for who, _ in ok} == {0, 1}, "both processes served"
    assert fake.count() == len(ok), "only admitted requests reach the upstream"
    # One shared bucket: what is left only goes down, whichever process answered.
    remaining = [int(r.headers["x-ratelimit-remaining-requests"]) for _, r in ok]
    assert remaining[0] == n - 1
    if extra == 0:
        assert all(a >= b for a, b in itertools.pairwise(remaining)), remaining
    assert all(r.headers["x-ratelimit-limit-requests"] == str(n) for _, r in ok)
    for resp in refused:
        assert_rate_limited(resp, n)
        assert 0 < retry_wait(resp) <= 60 / n + 0.01  # at most one request's refill away


# ---- 2. Retry-After is true ------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["local", "redis"])
async def test_retry_after_is_when_the_next_request_succeeds(
    tmp_path: Path, fake: FakeUpstream, backend: str, request: pytest.FixtureRequest
) -> None:
    rpm = 30  # one request every 2 s
    period = 60 / rpm
    data = config_data(fake.base_url, tmp_path)
    data["rate_limits"] = {"rpm": rpm}
    if backend == "redis":
        data["redis"] = {"url": request.getfixturevalue("shared_redis")}
    with gateway(data) as url:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            for _ in range(rpm * 3):
                first = await chat(client, url)
                if first.status_code == 429:
                    break
            assert_rate_limited(first, rpm)
            # Waiting what the 429 says is enough.
            await asyncio.sleep(retry_wait(first) + 0.1)
            assert (await chat(client, url)).status_code == 200
            # That took the only token: the next 429 waits a whole period.
            refused = await chat(client, url)
            t_refused = time.monotonic()
            assert_rate_limited(refused, rpm)
            wait = retry_wait(refused)
            assert period - 0.6 <= wait <= period + 0.01, wait
            whole = int(refused.headers["retry-after"])
            assert whole == math.ceil(wait)
            # Well before that moment: still refused, and promising the same moment.
            await asyncio.sleep(max(0.0, wait - 0.8))
            early = await chat(client, url)
            t_early = time.monotonic()
            assert_rate_limited(early, rpm)
            assert abs((t_early + retry_wait(early)) - (t_refused + wait)) <= 0.5
            # Retry-After (whole seconds, rounded up) later: admitted, within a second of the
            # precise moment.
            await asyncio.sleep(max(0.0, t_refused + whole - time.monotonic()))
            ok = await chat(client, url)
            assert ok.status_code == 200, ok.text
            assert time.monotonic() - (t_refused + wait) < 1.5


@pytest.mark.parametrize("backend", ["local", "redis"])
async def test_token_limit_reserves_the_estimate_and_reconciles_with_real_usage(
    tmp_path: Path, fake: FakeUpstream, backend: str, request: pytest.FixtureRequest
) -> None:
    # Each request reserves len("hi") // 4 + max_tokens = 0 + 500 tokens, then really uses
    # 1 + 24 = 25: the difference is given back. A request needs 500 tokens left in the bucket,
    # so with 1000 per minute the 21st request is the first refused (1000 - 20 * 25 = 500 is
    # still enough; 475 is not). Without reconciling, only 2 would pass.
    tpm, used, reserve = 1000, 25, 500
    data = config_data(fake.base_url, tmp_path)
    data["rate_limits"] = {"tpm": tpm}
    if backend == "redis":
        data["redis"] = {"url": request.getfixturevalue("shared_redis")}
    with gateway(data) as url:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            started = time.monotonic()
            results = []
            while len(results) < 40:
                results.append(await chat(client, url, max_tokens=reserve))
                if results[-1].status_code != 200:
                    break
            elapsed = time.monotonic() - started
    served = [r for r in results if r.status_code == 200]
    exact = (tpm - reserve) // used + 1
    extra = math.ceil(elapsed * tpm / 60 / used)  # refill while the test ran
    assert exact <= len(served) <= exact + extra, (len(served), elapsed)
    assert served[0].headers["x-ratelimit-limit-tokens"] == str(tpm)
    assert int(served[0].headers["x-ratelimit-remaining-tokens"]) == tpm - reserve
    refused = results[-1]
    assert refused.status_code == 429, refused.text
    assert refused.headers["x-ratelimit-limit-tokens"] == str(tpm)
    assert "tokens per minute" in refused.json()["error"]["message"]
    assert 0 < retry_wait(refused) <= (reserve - (tpm - exact * used)) * 60 / tpm + 0.01


# ---- 3. key failover on 429 -------------------------------------------------------------------
async def test_upstream_429_moves_traffic_to_the_other_key_and_back_after_the_cooldown(
    tmp_path: Path, keyed: tuple[FakeUpstream, KeyedServer]
) -> None:
    upstream, server = keyed
    cooldown = 2.0
    server.refuse[KEY_A] = (429, cooldown, cooldown)  # A's upstream quota is out for 2 s
    data = config_data(upstream.base_url, tmp_path, keys=[KEY_A, KEY_B])
    with gateway(data) as url:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            first = await chat(client, url)
            assert first.status_code == 200, first.text  # retried on B before answering
            assert [(k, s) for _, k, s in server.log] == [(KEY_A, 429), (KEY_B, 200)]
            t_429 = server.log[0][0]
            for _ in range(6):
                assert (await chat(client, url)).status_code == 200
            during = [(t, k) for t, k, _ in server.log[2:]]
            assert all(k == KEY_B for t, k in during if t < t_429 + cooldown), server.log
            assert any(t < t_429 + cooldown for t, _ in during), "B served during the cooldown"
            await asyncio.sleep(max(0.0, t_429 + cooldown + 0.3 - time.monotonic()))
            seen = len(server.log)
            for _ in range(6):
                assert (await chat(client, url)).status_code == 200
    after = server.log[seen:]
    assert after[0][1:] == (KEY_A, 200), "the key back from cooldown is tried first"
    assert {k for _, k, _ in after} == {KEY_A, KEY_B}, after
    assert all(s == 200 for _, _, s in after)
    # A was never used while it cooled (its 429 said 2 s).
    uses_of_a = [t for t, k, _ in server.log[1:] if k == KEY_A]
    assert uses_of_a and min(uses_of_a) >= t_429 + cooldown


async def test_every_key_rate_limited_answers_429_with_the_upstreams_retry_after(
    tmp_path: Path, keyed: tuple[FakeUpstream, KeyedServer]
) -> None:
    upstream, server = keyed
    server.refuse[KEY_A] = (429, 7, None)
    server.refuse[KEY_B] = (429, 7, None)
    data = config_data(upstream.base_url, tmp_path, keys=[KEY_A, KEY_B])
    with gateway(data) as url:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            resp = await chat(client, url)
            again = await chat(client, url)
    assert resp.status_code == 429, resp.text
    assert resp.json()["error"]["type"] == "rate_limit_error"
    assert 6 <= int(resp.headers["retry-after"]) <= 7
    # Each key was tried once; while both cool, nothing more goes upstream.
    assert sorted(k for _, k, _ in server.log) == [KEY_A, KEY_B]
    assert again.status_code == 429 and 1 <= int(again.headers["retry-after"]) <= 7


# ---- 4. a key answering 401 is disabled --------------------------------------------------------
async def test_a_key_the_upstream_rejects_is_disabled(
    tmp_path: Path, keyed: tuple[FakeUpstream, KeyedServer]
) -> None:
    upstream, server = keyed
    server.refuse[KEY_A] = (401, None, None)
    data = config_data(upstream.base_url, tmp_path, keys=[KEY_A, KEY_B])
    with gateway(data) as url:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            statuses = [(await chat(client, url)).status_code for _ in range(10)]
            await asyncio.sleep(1.0)  # time for any (failing) revival check
            statuses += [(await chat(client, url)).status_code for _ in range(5)]
    assert statuses == [200] * 15
    counts = {KEY_A: 0, KEY_B: 0}
    for _, k, _ in server.log:
        counts[k] += 1
    assert counts == {KEY_A: 1, KEY_B: 15}, counts
    assert server.log[0][1:] == (KEY_A, 401)


async def test_admin_upstreams_shows_the_disabled_key_masked(
    tmp_path: Path, keyed: tuple[FakeUpstream, KeyedServer]
) -> None:
    upstream, server = keyed
    server.refuse[KEY_A] = (401, None, None)
    data = config_data(upstream.base_url, tmp_path, keys=[KEY_A, KEY_B])
    with gateway(data) as url:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            assert (await chat(client, url)).status_code == 200
            admin = await client.get(url + "/admin/upstreams")
    if admin.status_code == 404:
        pytest.skip("/admin/upstreams is not implemented (404)")
    assert admin.status_code == 200, admin.text
    assert KEY_A not in admin.text and KEY_B not in admin.text, "keys must be masked"
    entries = _dicts_with(admin.json(), "state")
    states = {str(e.get("key")): e["state"] for e in entries}
    disabled = [k for k, s in states.items() if s == "disabled"]
    assert len(disabled) == 1 and disabled[0].endswith(KEY_A[-4:]), states
    assert [s for k, s in states.items() if k.endswith(KEY_B[-4:])] == ["ok"], states


def _dicts_with(node: Any, field: str) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if field in node else []
        for value in node.values():
            found += _dicts_with(value, field)
        return found
    if isinstance(node, list):
        return [d for item in node for d in _dicts_with(item, field)]
    return []


# ---- 5. budgets -------------------------------------------------------------------------------
async def test_budget_runs_out_at_the_right_token_count(
    tmp_path: Path, fake: FakeUpstream, db_url: str
) -> None:
    # The fake counts len(content) // 4 prompt tokens and one completion token per content
    # piece (24 by default): 40 characters cost 10 + 24 = 34 tokens a request.
    content = "x" * 40
    per_request, budget = 34, 100  # used before each request: 0, 34, 68 → 3 admitted, then 102
    database = Database(db_url)
    await database.connect()
    try:
        keys = KeyRepository(database)
        capped, capped_secret = await keys.create("capped", budget_tokens=budget)
        _, free_secret = await keys.create("free")
        data = config_data(fake.base_url, tmp_path)
        data["database"] = {"url": db_url}
        data["auth"] = {"require_keys": True}
        with gateway(data) as url:
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                results = []
                for i in range(6):
                    stream = i == 1  # a streamed answer counts its usage too
                    resp = await chat(client, url, capped_secret, content=content, stream=stream)
                    results.append(resp)
                    if resp.status_code == 200 and not stream:
                        assert resp.json()["usage"]["total_tokens"] == per_request
                other = await chat(client, url, free_secret, content=content)
        statuses = [r.status_code for r in results]
        admitted = math.ceil(budget / per_request)
        assert statuses == [200] * admitted + [429] * (6 - admitted), statuses
        assert "[DONE]" in results[1].text
        for resp in results[admitted:]:
            err = resp.json()["error"]
            assert err["code"] == "insufficient_quota", err
            assert err["type"] == "insufficient_quota", err
        assert (
            f"{admitted * per_request} of {budget}" in results[admitted].json()["error"]["message"]
        )
        assert other.status_code == 200, "another key is not affected"
        assert fake.count() == admitted + 1
        # The gateway stopped: its last usage batch is written.
        record = await keys.get(capped.id)
        assert record is not None and record.tokens_used == admitted * per_request
        rows = await UsageRepository(database).query(key_id=capped.id)
        assert [(r.model, r.requests, r.prompt_tokens, r.completion_tokens) for r in rows] == [
            ("fake-model", admitted, 10 * admitted, 24 * admitted)
        ]
    finally:
        await database.close()


async def test_budget_holds_when_the_key_is_read_again_before_usage_is_written(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chatgate.db'}"
    await upgrade(url)
    database = Database(url)
    await database.connect()
    try:
        _, secret = await KeyRepository(database).create("capped", budget_tokens=100)
    finally:
        await database.close()
    data = config_data(fake.base_url, tmp_path)
    data["database"] = {"url": url}
    data["auth"] = {"require_keys": True, "key_cache_ttl": 0}  # every request reads the key
    with gateway(data) as gw:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            statuses = [
                (await chat(client, gw, secret, content="x" * 40)).status_code for _ in range(6)
            ]
    assert statuses == [200, 200, 200, 429, 429, 429]  # 34 tokens each, as above


# ---- 6. Redis stopped mid-test ------------------------------------------------------------------
async def test_redis_stopped_mid_test_falls_back_to_local_limits(
    tmp_path: Path, fake: FakeUpstream, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    n, replicas = 20, 2
    data = config_data(fake.base_url, tmp_path)
    data["redis"] = {"url": own_redis.url}
    data["rate_limits"] = {"rpm": n, "replicas": replicas}
    caplog.set_level("WARNING")
    with gateway(data) as url:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            before = [await chat(client, url) for _ in range(3)]
            assert [r.status_code for r in before] == [200] * 3
            assert before[-1].headers["x-ratelimit-limit-requests"] == str(n)
            assert before[-1].headers["x-ratelimit-remaining-requests"] == str(n - 3)
            own_redis.kill()
            started = time.monotonic()
            first = await chat(client, url)
            first_latency = time.monotonic() - started
            after = [first]
            while after[-1].status_code == 200 and len(after) < 2 * n:
                after.append(await chat(client, url))
            elapsed = time.monotonic() - started
    local = n // replicas
    served = [r for r in after if r.status_code == 200]
    # Local buckets start from this replica's share of what Redis had left (17 / 2), not full,
    # and refill at limit / replicas per minute.
    left = (n - 3) / replicas
    assert math.floor(left) <= len(served) <= math.floor(left + elapsed * local / 60), len(served)
    assert first_latency < 5, "a dead Redis must not stall requests"
    assert served[0].headers["x-ratelimit-limit-requests"] == str(local)
    assert_rate_limited(after[-1], local)
    messages = [r.getMessage() for r in caplog.records]
    warnings = [
        m
        for m in messages
        if "Redis failed while taking tokens" in m and "rate limits are enforced" in m
    ]
    assert len(warnings) == 1 and f"divided by {replicas}" in warnings[0], warnings


async def test_ready_reports_degraded_rate_limits_while_redis_is_down(
    tmp_path: Path, fake: FakeUpstream, own_redis: OwnRedis
) -> None:
    data = config_data(fake.base_url, tmp_path)
    data["redis"] = {"url": own_redis.url}
    data["rate_limits"] = {"rpm": 100, "replicas": 2}
    with gateway(data) as url:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            healthy = await client.get(url + "/ready")
            own_redis.kill()
            assert (await chat(client, url)).status_code == 200  # notices Redis is gone
            ready = await client.get(url + "/ready")
    assert healthy.status_code == 200 and healthy.json()["status"] == "ready", healthy.text
    assert ready.status_code == 200, ready.text  # degraded, still serving
    if "degraded" not in ready.text.lower():
        pytest.skip(f"/ready does not report the Redis fallback: {ready.text}")
    assert ready.json()["status"] == "degraded", ready.text


# ---- 7. per-key allow-list and rpm ------------------------------------------------------------
async def test_per_key_model_allow_list_and_rpm(
    tmp_path: Path, fake: FakeUpstream, db_url: str
) -> None:
    database = Database(db_url)
    await database.connect()
    try:
        keys = KeyRepository(database)
        _, limited = await keys.create("limited", rpm=3, models=["fake-model"])
        _, other = await keys.create("other")
    finally:
        await database.close()
    data = config_data(fake.base_url, tmp_path)
    data["database"] = {"url": db_url}
    data["auth"] = {"require_keys": True}
    with gateway(data) as url:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            missing = await chat(client, url)
            wrong = await chat(client, url, "sk-cg-" + "x" * 40)
            forbidden = [await chat(client, url, limited, model="fake-reasoner") for _ in range(4)]
            allowed = [await chat(client, url, limited) for _ in range(4)]
            others = [await chat(client, url, other, model=m) for m in ("fake-reasoner",) * 4]
    assert missing.status_code == 401 and wrong.status_code == 401
    for resp in forbidden:
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["code"] == "model_not_allowed"
    # Refused requests spent nothing of the key's rpm: 3 admitted, then 429 for this key only.
    assert [r.status_code for r in allowed] == [200, 200, 200, 429]
    assert_rate_limited(allowed[-1], 3)
    assert "your API key" in allowed[-1].json()["error"]["message"]
    assert 1 <= int(allowed[-1].headers["retry-after"]) <= 20
    assert [r.status_code for r in others] == [200] * 4
    assert fake.count() == 3 + 4
