"""Rate limits on the local and the real Redis backend: exact counts, true Retry-After, fallback."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import NoReturn

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from robustness.outage import RedisServer

from chatgate.errors import RateLimitError
from chatgate.gateway.ratelimit import (
    Backend,
    Charge,
    Limit,
    LocalBackend,
    RateLimited,
    RateLimiter,
    RedisBackend,
    Reservation,
    format_duration,
)

REDIS_URL = os.environ.get("CHATGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NO_KEY = Limit()

MakeBackend = Callable[..., Backend]


def unavailable(reason: str) -> NoReturn:
    """Skip, except on CI (CI=true), where a missing service is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


async def connect_or_skip() -> aioredis.Redis:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        unavailable(f"Redis is not reachable at {REDIS_URL} ({exc}); set CHATGATE_TEST_REDIS_URL")
    return client


async def remove_prefixed(client: aioredis.Redis, prefix: str) -> None:
    names = [n async for n in client.scan_iter(match=prefix + "*")]
    if names:
        await client.delete(*names)


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    """The real Redis; skipped when it is not running, except on CI (CI=true), where it fails."""
    client = await connect_or_skip()
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix of this test's own; whatever is left under it is removed afterwards."""
    prefix = f"chatgate:test:rl:{uuid.uuid4().hex}:"
    yield prefix
    await remove_prefixed(redis_client, prefix)


@pytest.fixture(params=["local", "redis"])
async def make_backend(request: pytest.FixtureRequest) -> AsyncIterator[MakeBackend]:
    """Builds backends of the parametrized kind; Redis ones share a prefix of this test's own."""
    made: list[Backend] = []
    prefix = f"chatgate:test:rl:{uuid.uuid4().hex}:"
    client = await connect_or_skip() if request.param == "redis" else None

    def make(**kwargs: object) -> Backend:
        backend: Backend
        if client is not None:
            backend = RedisBackend(REDIS_URL, prefix=prefix, **kwargs)  # type: ignore[arg-type]
        else:
            backend = LocalBackend(**kwargs)  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.close()
    if client is not None:
        await remove_prefixed(client, prefix)
        await client.aclose()


def limiter(make: MakeBackend, global_limit: Limit = NO_KEY) -> RateLimiter:
    return RateLimiter(make(), global_limit)


async def outcome(call: Awaitable[Reservation]) -> Reservation | RateLimited:
    try:
        return await call
    except RateLimited as exc:
        return exc


def header(headers: list[tuple[bytes, bytes]], name: str) -> str:
    values = [v.decode() for k, v in headers if k == name.encode()]
    assert len(values) == 1, (name, headers)
    return values[0]


# --- counts and Retry-After -----------------------------------------------------------------


async def test_n_per_minute_lets_exactly_n_through(make_backend: MakeBackend) -> None:
    rl = limiter(make_backend, Limit(rpm=5))
    for _ in range(5):
        await rl.reserve(None, NO_KEY, 0)
    with pytest.raises(RateLimited) as refused:
        await rl.reserve(None, NO_KEY, 0)
    err = refused.value
    assert isinstance(err, RateLimitError) and err.status == 429
    assert err.retry_after is not None and 11.9 < err.retry_after <= 12.0  # one request = 12 s
    assert err.headers()["Retry-After"] == "12"
    assert "requests per minute" in err.message and "all clients" in err.message


@pytest.mark.parametrize("kind", ["requests", "tokens"])
async def test_retry_after_is_when_the_next_request_succeeds(
    make_backend: MakeBackend, kind: str
) -> None:
    # 60 rpm: one request a second (draining the bucket takes a few ms even over Redis on a
    # loaded machine, so most of that second is still to wait); 6000 tpm: 50 tokens every 500 ms.
    if kind == "requests":
        rl, cost = limiter(make_backend, Limit(rpm=60)), 0
        await asyncio.gather(*(rl.reserve(None, NO_KEY, 0) for _ in range(60)))
    else:
        rl, cost = limiter(make_backend, Limit(tpm=6000)), 50
        await rl.reserve(None, NO_KEY, 6000)
    with pytest.raises(RateLimited) as refused:
        await rl.reserve(None, NO_KEY, cost)
    started = time.monotonic()
    retry_after = refused.value.retry_after
    assert retry_after is not None and 0.25 < retry_after <= (1.0 if kind == "requests" else 0.5)
    assert kind in refused.value.message

    # A little before the promised time: still limited, and the new promise is the remainder.
    await asyncio.sleep(max(0.0, retry_after - 0.03 - (time.monotonic() - started)))
    early = await outcome(rl.reserve(None, NO_KEY, cost))
    assert isinstance(early, RateLimited)
    assert early.retry_after is not None and early.retry_after <= 0.03
    # Poll from there: the first success comes right at the promised time.
    for _ in range(1000):
        if isinstance(await outcome(rl.reserve(None, NO_KEY, cost)), Reservation):
            break
        await asyncio.sleep(0.002)
    late = time.monotonic() - started - retry_after
    assert -0.005 < late < 0.05


async def test_tokens_are_reconciled_after_the_call(make_backend: MakeBackend) -> None:
    rl = limiter(make_backend, Limit(rpm=100, tpm=1000))  # refill: 16.7 tokens/s, small here
    res = await rl.reserve(None, NO_KEY, 800)
    assert header(res.headers, "x-ratelimit-remaining-tokens") == "200"
    await rl.reconcile(res, 300)  # over-estimated by 500: given back
    res = await rl.reserve(None, NO_KEY, 0)
    assert 700 <= int(header(res.headers, "x-ratelimit-remaining-tokens")) <= 705
    # Requests are not refunded: two taken so far.
    assert header(res.headers, "x-ratelimit-remaining-requests") == "98"

    res = await rl.reserve(None, NO_KEY, 100)
    await rl.reconcile(res, 900)  # under-estimated by 800: charged, the bucket goes below zero
    with pytest.raises(RateLimited) as refused:
        await rl.reserve(None, NO_KEY, 1)
    # About 700 - 100 - 800 = -200 tokens: 201 tokens to go at 1000/min is ~12 s.
    assert refused.value.retry_after is not None and 11.5 < refused.value.retry_after < 12.1
    assert "tokens per minute" in refused.value.message
    assert header(refused.value.extra_headers, "x-ratelimit-remaining-tokens") == "0"


async def test_a_request_larger_than_the_bucket_is_admitted_when_full(
    make_backend: MakeBackend,
) -> None:
    rl = limiter(make_backend, Limit(tpm=1000))
    await rl.reserve(None, NO_KEY, 10)
    with pytest.raises(RateLimited) as refused:  # not full: waits until it is (0.6 s), no longer
        await rl.reserve(None, NO_KEY, 5000)
    assert refused.value.retry_after is not None and 0.5 < refused.value.retry_after <= 0.6
    await asyncio.sleep(refused.value.retry_after)
    res = await rl.reserve(None, NO_KEY, 5000)
    assert header(res.headers, "x-ratelimit-remaining-tokens") == "0"
    assert header(res.headers, "x-ratelimit-reset-tokens") == "5m0s"  # 4000 below zero + 1000
    with pytest.raises(RateLimited) as refused:
        await rl.reserve(None, NO_KEY, 1)
    assert refused.value.retry_after is not None and 240.0 <= refused.value.retry_after < 240.1


# --- global and per key ------------------------------------------------------------------


async def test_key_and_global_limits_combine(make_backend: MakeBackend) -> None:
    rl = limiter(make_backend, Limit(rpm=5))
    three = Limit(rpm=3)
    for _ in range(3):
        await rl.reserve("a", three, 0)
    with pytest.raises(RateLimited) as refused:  # the key's limit comes first...
        await rl.reserve("a", three, 0)
    assert "your API key" in refused.value.message
    # ...and that refusal took nothing from the global bucket: exactly 2 left for other keys.
    await rl.reserve("b", three, 0)
    await rl.reserve(None, NO_KEY, 0)
    with pytest.raises(RateLimited) as refused:  # then the global one, across keys
        await rl.reserve("c", three, 0)
    assert "all clients" in refused.value.message
    assert header(refused.value.extra_headers, "x-ratelimit-remaining-requests") == "0"


async def test_all_or_none_across_kinds(make_backend: MakeBackend) -> None:
    rl = limiter(make_backend, Limit(tpm=100))
    key = Limit(rpm=10)
    res = await rl.reserve("a", key, 60)
    assert header(res.headers, "x-ratelimit-remaining-requests") == "9"
    with pytest.raises(RateLimited):  # the global tokens are short...
        await rl.reserve("a", key, 60)
    res = await rl.reserve("a", key, 10)  # ...so the key's request was not taken either
    assert header(res.headers, "x-ratelimit-remaining-requests") == "8"


@pytest.mark.parametrize(("global_rpm", "admitted"), [(100, 40), (30, 30)])
async def test_concurrent_requests_are_counted_exactly(
    make_backend: MakeBackend, global_rpm: int, admitted: int
) -> None:
    rl = limiter(make_backend, Limit(rpm=global_rpm))
    key = Limit(rpm=8)
    results = await asyncio.gather(*(outcome(rl.reserve(f"k{i % 5}", key, 0)) for i in range(100)))
    passed = [i % 5 for i, r in enumerate(results) if isinstance(r, Reservation)]
    assert len(passed) == admitted
    assert max(passed.count(k) for k in range(5)) <= 8


async def test_headers_show_the_most_restrictive_bucket_of_each_kind(
    make_backend: MakeBackend,
) -> None:
    rl = limiter(make_backend, Limit(rpm=60, tpm=6000))
    res = await rl.reserve("a", Limit(rpm=10, tpm=100_000), 600)
    assert res.headers == [
        (b"x-ratelimit-limit-requests", b"10"),  # the key's: 9 left of 10
        (b"x-ratelimit-remaining-requests", b"9"),
        (b"x-ratelimit-reset-requests", b"6s"),
        (b"x-ratelimit-limit-tokens", b"6000"),  # the global: 5400 left of 6000
        (b"x-ratelimit-remaining-tokens", b"5400"),
        (b"x-ratelimit-reset-tokens", b"6s"),
    ]
    only_requests = await RateLimiter(make_backend(), Limit(rpm=7)).reserve(None, NO_KEY, 5)
    assert [k for k, _ in only_requests.headers] == [
        b"x-ratelimit-limit-requests",
        b"x-ratelimit-remaining-requests",
        b"x-ratelimit-reset-requests",
    ]


async def test_the_429_carries_every_header(make_backend: MakeBackend) -> None:
    rl = limiter(make_backend, Limit(rpm=1, tpm=1000))
    await rl.reserve(None, NO_KEY, 10)
    with pytest.raises(RateLimited) as refused:
        await rl.reserve(None, NO_KEY, 10)
    headers = refused.value.headers()
    assert headers["Retry-After"] == "60"
    assert 59_900 < int(headers["retry-after-ms"]) <= 60_000
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] in ("1m0s", "59.999s", "59.998s")
    assert headers["x-ratelimit-remaining-tokens"] == "990"
    assert refused.value.to_body()["error"]["code"] == "rate_limit_exceeded"


async def test_no_limits_cost_nothing(make_backend: MakeBackend) -> None:
    rl = limiter(make_backend)
    for _ in range(100):
        res = await rl.reserve("a", NO_KEY, 10**9)
        assert res.headers == []
        await rl.reconcile(res, 5)


def test_limits_are_positive() -> None:
    with pytest.raises(ValueError, match="rpm"):
        Limit(rpm=0)
    with pytest.raises(ValueError, match="tpm"):
        Limit(tpm=-5)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.0004, "1ms"), (0.02, "20ms"), (1, "1s"), (1.5, "1.5s"), (59.9991, "1m0s"),
     (360, "6m0s"), (3723.25, "1h2m3.25s")],
)  # fmt: skip
def test_reset_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# --- local backend ---------------------------------------------------------------------------


async def test_local_buckets_are_dropped_once_full_and_idle() -> None:
    now = [1000.0]
    backend = LocalBackend(sweep_interval=60, clock=lambda: now[0])
    rl = RateLimiter(backend, Limit(rpm=1000))
    for i in range(500):
        await rl.reserve(f"key{i}", Limit(rpm=10, tpm=100), 50)
    res = await rl.reserve("big", Limit(tpm=100), 10_000)  # 9,900 below zero: 99 minutes to full
    await rl.reconcile(res, 10_000)
    assert len(backend) == 1 + 500 * 2 + 1
    now[0] += 61
    await rl.reserve(None, NO_KEY, 0)  # sweeps
    assert len(backend) == 2  # the global bucket just used, and the one still below zero


# --- Redis: replicas, outages ----------------------------------------------------------------


async def test_two_replicas_share_one_limit_exactly(prefix: str) -> None:
    """Two backends with their own connections and event loops, in two threads, racing."""
    admitted: list[int] = []

    def replica() -> None:
        async def run() -> int:
            rl = RateLimiter(RedisBackend(REDIS_URL, replicas=2, prefix=prefix), Limit(rpm=1000))
            try:
                key = Limit(rpm=20)
                results = await asyncio.gather(
                    *(outcome(rl.reserve("k", key, 0)) for _ in range(40))
                )
                assert not rl.degraded
                return sum(isinstance(r, Reservation) for r in results)
            finally:
                await rl.close()

        admitted.append(asyncio.run(run()))

    threads = [threading.Thread(target=replica) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 2 and sum(admitted) == 20, admitted


async def test_other_replicas_see_a_reconcile_soon(prefix: str) -> None:
    one = RateLimiter(RedisBackend(REDIS_URL, prefix=prefix), Limit(tpm=1000))
    two = RateLimiter(RedisBackend(REDIS_URL, prefix=prefix), Limit(tpm=1000))
    try:
        await one.reconcile(await one.reserve(None, NO_KEY, 800), 300)
        await asyncio.sleep(RedisBackend.ADJUST_DELAY + 0.05)  # no take on `one` to ride with
        res = await two.reserve(None, NO_KEY, 0)
        assert 700 <= int(header(res.headers, "x-ratelimit-remaining-tokens")) <= 705
    finally:
        await one.close()
        await two.close()


async def test_buckets_expire_when_they_would_be_full(
    prefix: str, redis_client: aioredis.Redis
) -> None:
    rl = RateLimiter(RedisBackend(REDIS_URL, prefix=prefix), Limit(rpm=60, tpm=6000))
    try:
        await rl.reserve(None, NO_KEY, 0)  # a zero-token charge writes nothing
        assert await redis_client.exists(prefix + "g:t") == 0
        assert 1000 < await redis_client.pttl(prefix + "g:r") <= 2000  # full in 1 s, + 1 s slack
        fields = await redis_client.hgetall(prefix + "g:r")
        assert set(fields) == {b"tokens", b"ts"}
    finally:
        await rl.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_redis_unreachable_falls_back_to_local_limits_divided_by_replicas(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="chatgate.gateway.ratelimit")
    backend = RedisBackend(f"redis://127.0.0.1:{free_port()}/0", replicas=2, retry_after=0.05)
    rl = RateLimiter(backend, Limit(rpm=10))
    try:
        results = [await outcome(rl.reserve(None, NO_KEY, 0)) for _ in range(8)]
        assert [isinstance(r, Reservation) for r in results] == [True] * 5 + [False] * 3
        assert rl.degraded
        first = results[0]
        assert isinstance(first, Reservation)
        assert header(first.headers, "x-ratelimit-limit-requests") == "5"  # 10 / 2 replicas
        await asyncio.sleep(0.2)  # the probe keeps failing quietly
        assert rl.degraded
    finally:
        await rl.close()
    warnings = [r.getMessage() for r in caplog.records if "Redis failed" in r.getMessage()]
    assert len(warnings) == 1 and "divided by 2" in warnings[0]


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, on a free port, that the test may stop and restart."""
    try:
        server = RedisServer()
    except FileNotFoundError as exc:
        unavailable(str(exc))
    server.start()
    yield server
    server.stop()


async def test_redis_stopped_mid_test_then_back(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="chatgate.gateway.ratelimit")
    rl = RateLimiter(RedisBackend(own_redis.url, replicas=4, retry_after=0.05), Limit(rpm=40))
    try:
        for _ in range(30):  # through Redis: 10 left there
            await rl.reserve(None, NO_KEY, 0)
        assert not rl.degraded

        await asyncio.to_thread(own_redis.stop)
        results = [await outcome(rl.reserve(None, NO_KEY, 0)) for _ in range(12)]
        # Served all the same, by local buckets holding this replica's share of what was left
        # (10 / 4 replicas), not a fresh 40 / 4.
        assert [isinstance(r, Reservation) for r in results] == [True] * 2 + [False] * 10
        assert rl.degraded

        own_redis.start()  # a fresh, empty Redis: no buckets, no script loaded
        for _ in range(300):  # the probe runs every 50 ms
            if not rl.degraded:
                break
            await asyncio.sleep(0.01)
        assert not rl.degraded
        # Exact again, through Redis (the script is loaded again on NOSCRIPT), and not from a
        # full bucket: capped at what the local one left (times 4 replicas), a few at most.
        results = [await outcome(rl.reserve(None, NO_KEY, 0)) for _ in range(10)]
        served = sum(isinstance(r, Reservation) for r in results)
        assert 1 <= served <= 4, results
        assert not rl.degraded
    finally:
        await rl.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Redis failed" in m for m in messages) == 1
    assert sum("rate limits are shared again" in m for m in messages) == 1


@pytest.mark.parametrize("replicas", [1, 2])
async def test_an_outage_and_a_return_are_no_fresh_minute(
    own_redis: RedisServer, replicas: int
) -> None:
    """The limit is spent through Redis; Redis goes away and comes back empty: neither the
    local fallback nor the returned Redis lets another minute's worth through."""
    rl = RateLimiter(RedisBackend(own_redis.url, replicas, retry_after=0.05), Limit(rpm=10))
    try:
        assert all(
            [isinstance(await outcome(rl.reserve(None, NO_KEY, 0)), Reservation) for _ in range(10)]
        )
        await asyncio.to_thread(own_redis.stop)
        during = [await outcome(rl.reserve(None, NO_KEY, 0)) for _ in range(10)]
        assert rl.degraded
        assert sum(isinstance(r, Reservation) for r in during) == 0, during
        own_redis.start()
        for _ in range(300):
            if not rl.degraded:
                break
            await asyncio.sleep(0.01)
        assert not rl.degraded
        after = [await outcome(rl.reserve(None, NO_KEY, 0)) for _ in range(10)]
        assert sum(isinstance(r, Reservation) for r in after) <= 1, after
    finally:
        await rl.close()


async def test_adjust_goes_to_local_buckets_while_redis_is_down() -> None:
    backend = RedisBackend(f"redis://127.0.0.1:{free_port()}/0", replicas=1, retry_after=10)
    try:
        charge = [Charge("t", 100, 0)]
        await backend.adjust([Charge("t", 100, 150)])  # queued: fails over with the next call
        taken = await backend.take(charge)
        assert backend.degraded
        assert taken.levels[0] < -49 and taken.scale == 1.0
    finally:
        await backend.close()
