"""ResponseCache: hit / miss / bypass, Cache-Control and TTL, what is never stored, bad entries.

Real tiers (memory over disk in tmp_path) and a real source: the caller and the OpenAI provider
on the fake upstream, so ``fake.count()`` says how many answers came from upstream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatgate.errors import UpstreamError
from chatgate.gateway.cache import DiskStore, MemoryStore, TieredCache
from chatgate.gateway.cache.entry import Entry
from chatgate.gateway.cache.keys import cache_key
from chatgate.gateway.caching import CacheStatus, ResponseCache
from chatgate.gateway.caller import UpstreamCaller
from chatgate.gateway.router import Deployment
from chatgate.protocol.openai import ChatRequest, ChunkBatch, validate_chat_request
from tests.conftest import FAKE_CONTENT
from tests.fakes.upstream import FakeUpstream
from tests.gateway.conftest import MESSAGES, Upstreams, eventually, settle, text_of

MiB = 1024 * 1024
KEY = cache_key({"messages": MESSAGES}, "p/fake-model")


@pytest.fixture
async def disk(tmp_path: Path) -> AsyncIterator[DiskStore]:
    store = DiskStore(tmp_path / "l2", 8 * MiB, cleanup_interval=3600)
    await store.start()
    yield store
    await store.close()


@pytest.fixture
def tiers(disk: DiskStore) -> TieredCache:
    return TieredCache([MemoryStore(MiB), disk])


@pytest.fixture
async def cache(tiers: TieredCache) -> AsyncIterator[ResponseCache]:
    cache = ResponseCache(tiers, ttl=3600)
    yield cache
    await cache.close()


@pytest.fixture
async def dep(upstreams: Upstreams) -> Deployment:
    return await upstreams.deployment("p")


def request(stream: bool = False, **knobs: Any) -> ChatRequest:
    """A request for the key ``KEY``; ``knobs`` (the fake's) change the answer, not the key."""
    body: dict[str, Any] = {"model": "fake-model", "messages": MESSAGES, "stream": stream}
    if knobs:
        body["fake"] = knobs
    return validate_chat_request(body)


async def open_(
    cache: ResponseCache, dep: Deployment, req: ChatRequest
) -> tuple[CacheStatus, AsyncIterator[ChunkBatch]]:
    caller = UpstreamCaller({}, {}, retries=0)
    return await cache.open(KEY, req, lambda: caller.call([dep], [req.body], req.stream))


async def answer(cache: ResponseCache, dep: Deployment, req: ChatRequest) -> tuple[str, str]:
    """(cache status, answer text) of ``req`` read to the end."""
    status, batches = await open_(cache, dep, req)
    got = [batch async for batch in batches]
    if req.stream:
        return status, text_of(got)[0]
    return status, got[0][0]["choices"][0]["message"]["content"]


async def stored(tiers: TieredCache) -> Entry | None:
    found = await tiers.get(KEY)
    return Entry.decode(found[0]) if found is not None else None


@pytest.mark.parametrize(("first", "then"), [(False, True), (True, False)])
async def test_a_miss_is_stored_and_then_served_in_either_kind(
    fake: FakeUpstream,
    cache: ResponseCache,
    tiers: TieredCache,
    dep: Deployment,
    first: bool,
    then: bool,
) -> None:
    assert await answer(cache, dep, request(first)) == ("miss", FAKE_CONTENT)
    entry = await eventually(lambda: stored(tiers))
    assert (entry.chunks is not None) == first  # the upstream's answer as it came
    assert await answer(cache, dep, request(then)) == ("hit", FAKE_CONTENT)
    assert fake.count() == 1


async def test_a_second_request_joins_the_flight_in_progress(
    fake: FakeUpstream, cache: ResponseCache, dep: Deployment
) -> None:
    req = request(True, chunks=4, chunk_delay_ms=20)
    status, first = await open_(cache, dep, req)
    batch = await anext(first)
    assert await answer(cache, dep, request(False)) == ("miss", "tok0 tok1 tok2 tok3 ")
    assert text_of([batch, *[b async for b in first]])[0] == "tok0 tok1 tok2 tok3 "
    assert status == "miss" and fake.count() == 1


def no_cache(**knobs: Any) -> ChatRequest:
    req = request(**knobs)
    req.cache_lookup = False
    return req


async def test_no_cache_skips_the_lookup_but_stores(
    fake: FakeUpstream, cache: ResponseCache, tiers: TieredCache, dep: Deployment
) -> None:
    await answer(cache, dep, request(content="old"))
    await eventually(lambda: stored(tiers))
    assert await answer(cache, dep, no_cache(content="new")) == ("bypass", "new")
    assert fake.count() == 2

    async def new_is_stored() -> bool:
        entry = await stored(tiers)
        message = entry.as_completion()["choices"][0]["message"] if entry else None
        return message == {"role": "assistant", "content": "new"}

    await eventually(new_is_stored)
    assert await answer(cache, dep, request()) == ("hit", "new")


async def test_no_cache_does_not_join_a_flight(
    fake: FakeUpstream, cache: ResponseCache, dep: Deployment
) -> None:
    _, flight = await open_(cache, dep, request(True, chunks=10, chunk_delay_ms=50))
    await anext(flight)  # a flight is in progress for KEY
    assert await answer(cache, dep, no_cache(content="own")) == ("bypass", "own")
    assert fake.count() == 2
    await flight.aclose()  # type: ignore[attr-defined]


async def test_no_store_answers_but_stores_nothing(
    fake: FakeUpstream, cache: ResponseCache, tiers: TieredCache, dep: Deployment
) -> None:
    req = request()
    req.cache_store = False
    assert await answer(cache, dep, req) == ("miss", FAKE_CONTENT)
    await settle()
    assert await stored(tiers) is None
    assert (await answer(cache, dep, request()))[0] == "miss" and fake.count() == 2


async def test_the_ttl_is_the_request_s_or_the_default(
    fake: FakeUpstream, cache: ResponseCache, tiers: TieredCache, dep: Deployment
) -> None:
    await answer(cache, dep, request())
    _, expires = await eventually(lambda: tiers.get(KEY))
    assert expires == pytest.approx(time.time() + 3600, abs=5)

    await tiers.delete(KEY)
    short = request()
    short.cache_ttl = 1.0
    assert (await answer(cache, dep, short))[0] == "miss"
    _, expires = await eventually(lambda: tiers.get(KEY))
    assert expires == pytest.approx(time.time() + 1.0, abs=0.5)
    assert (await answer(cache, dep, request()))[0] == "hit"
    await asyncio.sleep(1.1)
    assert (await answer(cache, dep, request()))[0] == "miss"
    assert fake.count() == 3


@pytest.mark.parametrize(
    ("stream", "knobs"),
    [
        (True, {"done_after": 3}),
        (True, {"error_event_after": 3}),
        (True, {"status": 500}),
        (False, {"status": 500}),
    ],
    ids=["stream-cut-short", "stream-failed", "stream-refused", "whole-refused"],
)
async def test_an_unfinished_or_failed_answer_is_never_stored(
    cache: ResponseCache, tiers: TieredCache, dep: Deployment, stream: bool, knobs: dict[str, Any]
) -> None:
    req = request(stream, **knobs)
    if "done_after" in knobs:  # ends cleanly: the client gets what there was
        assert (await answer(cache, dep, req))[1] == "tok0 tok1 tok2 "
    else:
        with pytest.raises(UpstreamError):
            await answer(cache, dep, req)
    await settle()
    assert await stored(tiers) is None


async def test_an_answer_its_client_left_is_not_stored(
    fake: FakeUpstream, cache: ResponseCache, tiers: TieredCache, dep: Deployment
) -> None:
    _, batches = await open_(cache, dep, request(True, chunks=10, chunk_delay_ms=30))
    await anext(batches)
    await batches.aclose()  # type: ignore[attr-defined]  # the only waiter: the flight ends
    await eventually(lambda: fake.cancelled == 1)
    await settle()
    assert await stored(tiers) is None and len(cache.flights) == 0


async def test_an_entry_that_does_not_decode_is_dropped_from_every_tier(
    cache: ResponseCache,
    tiers: TieredCache,
    disk: DiskStore,
    dep: Deployment,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="chatgate.gateway.caching")
    await disk.set(KEY, b'{"v": 999, "chunks": []}', time.time() + 60)
    assert await tiers.get(KEY) is not None  # read through, and copied into memory
    assert await cache.lookup(KEY) is None
    assert "does not decode" in caplog.text
    assert await tiers.stores[0].get(KEY) is None and await disk.get(KEY) is None
    assert await answer(cache, dep, request()) == ("miss", FAKE_CONTENT)


class FailingStore(MemoryStore):
    """A tier whose writes fail (the real ones log and carry on; this checks the stage's own
    guard, for a store that breaks that contract)."""

    async def set(self, key: bytes, value: bytes, expires_at: float) -> None:
        raise OSError("disk full")


async def test_a_failing_store_write_does_not_break_answers(
    fake: FakeUpstream, dep: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ResponseCache(TieredCache([FailingStore(MiB)]), ttl=3600)
    caplog.set_level(logging.ERROR, logger="chatgate.gateway.caching")
    for _ in range(2):
        assert await answer(cache, dep, request()) == ("miss", FAKE_CONTENT)
    await cache.close()
    assert caplog.text.count("cache: write failed") == 2
    assert fake.count() == 2
