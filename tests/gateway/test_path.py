"""RequestPath / Exchange: admission order, estimates, the books closed once whatever happened.

Real stages throughout: keys and usage in SQLite, the local rate limiter on a clock that stands
still (so bucket levels are exact), the pipeline on the fake upstream, real metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from chatgate.errors import (
    ModelNotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
)
from chatgate.gateway.auth import Authenticator
from chatgate.gateway.cache import MemoryStore, TieredCache
from chatgate.gateway.cache.keys import cache_key
from chatgate.gateway.caching import ResponseCache
from chatgate.gateway.caller import UpstreamCaller
from chatgate.gateway.path import Exchange, RequestPath, estimate_tokens
from chatgate.gateway.pipeline import Pipeline
from chatgate.gateway.ratelimit import Limit, LocalBackend, RateLimiter
from chatgate.gateway.router import Router
from chatgate.gateway.usage import UsageRecorder
from chatgate.observability.metrics import Metrics
from chatgate.protocol.openai import ChatRequest, validate_chat_request
from chatgate.storage import ANONYMOUS, Database, KeyRepository, UsageRepository
from tests.fakes.upstream import FakeUpstream
from tests.gateway.conftest import MESSAGES, Upstreams, eventually

API = "stage_test"
ESTIMATE = len("hello there") // 4 + 512  # MESSAGES' prompt, and the default completion limit
PROMPT, COMPLETION = 2, 24  # what the fake reports for MESSAGES and its default answer


@pytest.fixture
def backend() -> str:
    return "sqlite"  # test_auth runs the storage stages on PostgreSQL as well


@dataclass
class Books:
    path: RequestPath
    keys: KeyRepository
    usage: UsageRepository

    def count(self, status: int = 200, cache: str = "bypass", stream: bool = False) -> float:
        labels = (API, "fake-model", str(status), cache, "true" if stream else "false")
        return self.path.metrics.requests.values.get(labels, 0)

    async def rows(self) -> list[Any]:
        await self.path.usage.flush()
        return await self.usage.query()


@pytest.fixture
async def books(db: Database, upstreams: Upstreams) -> AsyncIterator[Books]:
    router = Router()
    router.add(await upstreams.deployment("p"))
    pipeline = Pipeline(router, UpstreamCaller({}, {}, retries=0))
    auth = Authenticator(KeyRepository(db), require_keys=True, cache_ttl=60)
    limiter = RateLimiter(LocalBackend(clock=lambda: 1000.0), Limit())
    usage = UsageRecorder(UsageRepository(db), on_written=auth.written)
    path = RequestPath(auth, limiter, pipeline, usage, Metrics(), default_max_tokens=512)
    yield Books(path, KeyRepository(db), UsageRepository(db))
    if pipeline.cache is not None:
        await pipeline.cache.close()


def request(stream: bool = False, model: str = "fake-model", **body: Any) -> ChatRequest:
    return validate_chat_request({"model": model, "messages": MESSAGES, "stream": stream, **body})


async def run(exchange: Exchange, req: ChatRequest) -> None:
    """Admit, open and read the whole answer."""
    await exchange.admit(req)
    answer = await exchange.open()
    if answer.completion is None:
        async for _ in exchange:
            pass


def test_estimate_tokens() -> None:
    assert estimate_tokens(request(), 100) == 2 + 100
    assert estimate_tokens(request(max_tokens=50, n=3), 100) == 2 + 150
    assert estimate_tokens(request(max_completion_tokens=7, max_tokens=50), 100) == 2 + 7
    parts = [{"role": "user", "content": [{"type": "text", "text": "x" * 40}, {"type": "image"}]}]
    assert estimate_tokens(validate_chat_request({"model": "m", "messages": parts}), 0) == 10


async def test_admit_checks_the_model_then_the_budget_then_the_rate(books: Books) -> None:
    path, limit = books.path, Limit(rpm=1)
    wrong, wrong_secret = await books.keys.create("wrong", models=["x"], budget_tokens=1, rpm=1)
    poor, poor_secret = await books.keys.create("poor", budget_tokens=1, rpm=1)
    for key, secret, refusal in (
        (wrong, wrong_secret, PermissionDeniedError),
        (poor, poor_secret, QuotaExceededError),
    ):
        with pytest.raises(refusal):
            async with path.begin(API) as exchange:
                path.auth.spend(await exchange.authenticate(secret), 1)  # the budget is used up
                await exchange.admit(request())
        await path.limiter.reserve(key.id, limit, 0)  # the refusal took no request from its rpm
        with pytest.raises(RateLimitError):
            await path.limiter.reserve(key.id, limit, 0)
    assert books.count(403) == books.count(429) == 1

    busy, secret = await books.keys.create("busy", rpm=1)
    async with path.begin(API) as exchange:
        await exchange.authenticate(secret)
        await exchange.admit(request())
        assert (b"x-ratelimit-remaining-requests", b"0") in exchange.headers
    with pytest.raises(RateLimitError):
        async with path.begin(API) as exchange:
            await exchange.authenticate(secret)
            await exchange.admit(request())
    assert books.count(429) == 2
    assert [(row.key_id, row.requests) for row in await books.rows()] == [(busy.id, 1)]


@pytest.mark.parametrize("stream", [False, True])
async def test_usage_is_booked_on_the_key_and_the_reservation_reconciled(
    books: Books, stream: bool
) -> None:
    key, secret = await books.keys.create("alice", tpm=10_000, budget_tokens=PROMPT + COMPLETION)
    path = books.path
    async with path.begin(API) as exchange:
        identity = await exchange.authenticate(secret)
        await run(exchange, request(stream))
        assert (b"x-ratelimit-remaining-tokens", str(10_000 - ESTIMATE).encode()) in (
            exchange.headers
        )
    assert exchange.usage == (PROMPT, COMPLETION)
    with pytest.raises(QuotaExceededError):  # spent on its budget at once
        path.auth.check_budget(identity)
    [row] = await books.rows()
    assert (row.key_id, row.requests, row.prompt_tokens, row.completion_tokens) == (
        key.id,
        1,
        PROMPT,
        COMPLETION,
    )
    # The estimate was given back and the real cost taken: the next reservation shows it.
    reservation = await path.limiter.reserve(key.id, Limit(tpm=10_000), ESTIMATE, "key")
    left = 10_000 - PROMPT - COMPLETION - ESTIMATE
    assert (b"x-ratelimit-remaining-tokens", str(left).encode()) in reservation.headers
    assert books.count(stream=stream) == 1
    assert path.metrics.tokens.values[("fake-model", "completion")] == COMPLETION


async def test_usage_of_a_user_is_booked_on_the_user(books: Books) -> None:
    async with books.path.begin(API) as exchange:
        await exchange.as_user("u_1", "someone")
        await run(exchange, request())
    [row] = await books.rows()
    assert (row.key_id, row.user_id, row.prompt_tokens) == (ANONYMOUS, "u_1", PROMPT)


async def test_one_access_line_and_metrics_with_the_api_label(
    books: Books, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chatgate.access")
    key, secret = await books.keys.create("alice")
    async with books.path.begin(API, "req-1") as exchange:
        await exchange.authenticate(secret)
        await run(exchange, request(True))
        assert books.path.metrics.in_flight == 1
    [line] = [r for r in caplog.records if r.name == "chatgate.access"]
    logged = {k: getattr(line, k) for k in ("api", "request_id", "status", "key_id", "stream")}
    assert logged == {
        "api": API,
        "request_id": "req-1",
        "status": 200,
        "key_id": key.id,
        "stream": True,
    }
    assert books.count(stream=True) == 1 and books.path.metrics.in_flight == 0
    assert books.path.metrics.ttft.series[("fake-model",)][-1] > 0  # time to the first batch


async def test_a_cache_hit_books_no_tokens(books: Books) -> None:
    cache = books.path.pipeline.cache = ResponseCache(TieredCache([MemoryStore(1 << 20)]), 60)
    for _ in range(2):
        async with books.path.begin(API) as exchange:
            exchange.trust()
            await run(exchange, request())
        await eventually(lambda: cache.lookup(cache_key({"messages": MESSAGES}, "p/fake-model")))
    assert exchange.answer is not None and exchange.answer.cache == "hit"
    assert exchange.usage == (0, 0)
    [row] = await books.rows()
    assert (row.requests, row.prompt_tokens + row.completion_tokens) == (2, PROMPT + COMPLETION)
    assert books.count(cache="hit") == books.count(cache="miss") == 1


async def test_async_with_records_errors_cancellation_and_crashes(
    fake: FakeUpstream, books: Books, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chatgate.access")
    path = books.path
    with pytest.raises(ModelNotFoundError):
        async with path.begin(API) as exchange:
            exchange.trust()
            await run(exchange, request(model="nonexistent"))
    assert path.metrics.requests.values[(API, "other", "404", "bypass", "false")] == 1

    async def hanging() -> None:
        async with path.begin(API) as exchange:
            exchange.trust()
            await run(exchange, request(fake={"hang": True}))

    task = asyncio.create_task(hanging())
    await eventually(lambda: fake.in_flight == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert books.count(499) == 1

    with pytest.raises(RuntimeError):
        async with path.begin(API) as exchange:
            exchange.trust()
            await exchange.admit(request())
            raise RuntimeError("a door's bug")
    assert books.count(500) == 1
    errors = [getattr(r, "error", None) for r in caplog.records if r.name == "chatgate.access"]
    assert errors[1:] == ["client gone", "internal error (RuntimeError)"]
    assert "does not exist" in errors[0] and path.metrics.in_flight == 0


async def test_finish_runs_once(books: Books) -> None:
    path = books.path
    exchange = path.begin(API)
    exchange.trust()
    await run(exchange, request())
    await exchange.finish()
    await exchange.finish()
    async with exchange:
        pass
    assert books.count() == 1 and path.metrics.in_flight == 0
    [row] = await books.rows()
    assert row.requests == 1
