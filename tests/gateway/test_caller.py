"""UpstreamCaller: retries on the pool's keys, fallbacks, client faults, streams, the queue slot.

Every call goes through the real OpenAI provider to the fake upstream; failures are scripted
with the fake's knobs (``sequence`` for "fail, then succeed"; per-request knobs in the body).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chatgate.errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    UpstreamError,
)
from chatgate.gateway.caller import UpstreamCaller
from chatgate.gateway.keypool import KeyPool
from chatgate.gateway.queue import UpstreamQueue
from chatgate.gateway.router import Deployment
from chatgate.protocol.openai import ChunkBatch
from tests.conftest import FAKE_CONTENT
from tests.fakes.upstream import FakeUpstream
from tests.gateway.conftest import (
    DEAD_URL,
    KEY_A,
    KEY_B,
    MESSAGES,
    Upstreams,
    eventually,
    keys_used,
    settle,
    text_of,
)


def body(**knobs: Any) -> dict[str, Any]:
    return {"messages": MESSAGES, "fake": knobs} if knobs else {"messages": MESSAGES}


class Stage:
    """A caller over deployments, with their pools and queues and the errors it counted."""

    def __init__(
        self,
        deps: list[Deployment],
        retries: int = 2,
        concurrency: int | None = None,
        retry_unsafe: tuple[str, ...] = (),
    ):
        self.deps = deps
        self.errors: list[tuple[str, int | None]] = []
        self.pools = {d.provider_name: KeyPool(d.provider_name, d.provider.keys) for d in deps}
        self.queues = {d.provider_name: UpstreamQueue(d.provider_name, concurrency) for d in deps}
        self.caller = UpstreamCaller(
            self.pools,
            self.queues,
            retries=retries,
            backoff_base=0.0,
            on_error=lambda p, s: self.errors.append((p, s)),
            retry_unsafe=retry_unsafe,
        )

    def call(self, stream: bool, **knobs: Any) -> AsyncIterator[ChunkBatch]:
        return self.caller.call(self.deps, [body(**knobs)] * len(self.deps), stream)

    def key(self, provider: str = "p", i: int = 0) -> dict[str, Any]:
        return self.pools[provider].snapshot()[i]


async def collect(batches: AsyncIterator[ChunkBatch]) -> list[ChunkBatch]:
    return [batch async for batch in batches]


@pytest.mark.parametrize("stream", [False, True])
async def test_success_at_the_first_try(
    fake: FakeUpstream, upstreams: Upstreams, stream: bool
) -> None:
    stage = Stage([await upstreams.deployment("p", [KEY_A])])
    batches = await collect(stage.call(stream))
    if stream:
        assert text_of(batches)[0] == FAKE_CONTENT
        assert batches[-1][-1]["usage"]["completion_tokens"] == 24  # asked for, for accounting
    else:
        assert len(batches) == 1 and len(batches[0]) == 1  # a whole answer: one [completion]
        assert batches[0][0]["choices"][0]["message"]["content"] == FAKE_CONTENT
    assert keys_used(fake) == [KEY_A]
    assert fake.requests[-1]["body"]["model"] == "fake-model"
    assert (stage.key()["successes"], stage.key()["in_flight"]) == (1, 0)
    assert stage.errors == [] and stage.queues["p"].in_flight == 0


@pytest.mark.parametrize("status", [502, 503])
async def test_5xx_that_may_have_started_work_is_not_sent_again(
    fake: FakeUpstream, upstreams: Upstreams, status: int
) -> None:
    stage = Stage([await upstreams.deployment("p", [KEY_A])])
    fake.configure(sequence=[{"status": status}])  # no Retry-After: it may be working (billing)
    with pytest.raises(UpstreamError) as caught:
        await collect(stage.call(False))
    assert caught.value.upstream_status == status
    assert keys_used(fake) == [KEY_A]
    assert stage.errors == [("p", status)]
    assert stage.key()["state"] == "ok"


async def test_5xx_is_retried_on_the_same_key_where_the_provider_allows_it(
    fake: FakeUpstream, upstreams: Upstreams
) -> None:
    stage = Stage([await upstreams.deployment("p", [KEY_A])], retry_unsafe=("p",))
    fake.configure(sequence=[{"status": 503}, {"status": 502}])
    [[completion]] = await collect(stage.call(False))
    assert completion["choices"][0]["message"]["content"] == FAKE_CONTENT
    assert keys_used(fake) == [KEY_A] * 3
    assert stage.errors == [("p", 503), ("p", 502)]
    assert (stage.key()["state"], stage.key()["failures"], stage.key()["successes"]) == (
        "ok",  # the only key: an upstream hiccup must not rest it
        2,
        1,
    )


async def test_429_cools_the_key_and_the_retry_takes_another(
    fake: FakeUpstream, upstreams: Upstreams
) -> None:
    stage = Stage([await upstreams.deployment("p", [KEY_A, KEY_B])])
    fake.configure(sequence=[{"status": 429, "retry_after": 30}])
    batches = await collect(stage.call(True))
    assert text_of(batches)[0] == FAKE_CONTENT
    assert keys_used(fake) == [KEY_A, KEY_B]
    assert stage.key(i=0)["state"] == "cooling" and stage.key(i=0)["cooldown_remaining"] > 29
    await collect(stage.call(False))
    assert keys_used(fake)[-1] == KEY_B  # A rests for its Retry-After
    assert stage.errors == [("p", 429)]


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_is_disabled_and_the_retry_takes_another(
    fake: FakeUpstream, upstreams: Upstreams, status: int
) -> None:
    stage = Stage([await upstreams.deployment("p", [KEY_A, KEY_B])])
    fake.configure(sequence=[{"status": status}])
    await collect(stage.call(False))
    await collect(stage.call(False))
    assert keys_used(fake) == [KEY_A, KEY_B, KEY_B]
    assert stage.key(i=0)["state"] == "disabled"
    assert stage.errors == [("p", status)]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("status", "error", "shown"),
    [
        (400, InvalidRequestError, 400),
        (404, NotFoundError, 404),
        (413, PayloadTooLargeError, 413),
        (422, InvalidRequestError, 400),  # OpenAI's own clients know 400 for a bad request
    ],
)
async def test_a_client_fault_is_returned_at_once(
    fake: FakeUpstream,
    upstreams: Upstreams,
    status: int,
    error: type[GatewayError],
    shown: int,
    stream: bool,
) -> None:
    stage = Stage(
        [await upstreams.deployment("p", [KEY_A]), await upstreams.deployment("q", [KEY_B])]
    )
    fake.configure(status=status)
    with pytest.raises(error) as caught:
        await collect(stage.call(stream))
    assert caught.value.status == shown
    assert keys_used(fake) == [KEY_A]  # no retry, no fallback
    assert stage.errors == [("p", status)]
    key = stage.key()
    assert (key["state"], key["failures"], key["in_flight"]) == ("ok", 0, 0)  # the key worked


@pytest.mark.parametrize("broken", ["503", "dead"])
async def test_the_next_deployment_is_tried_when_the_first_keeps_failing(
    fake: FakeUpstream, upstreams: Upstreams, broken: str
) -> None:
    if broken == "dead":
        first = await upstreams.deployment("p", [KEY_A], model="m-first", url=DEAD_URL)
    else:
        first = await upstreams.deployment("p", [KEY_A], model="m-first")
        fake.configure(sequence=[{"status": 503}])
    stage = Stage([first, await upstreams.deployment("q", [KEY_B], model="m-second")])
    batches = await collect(stage.call(True))
    assert text_of(batches)[0] == FAKE_CONTENT
    if broken == "dead":  # never sent: the first try and two retries, then the fallback
        assert stage.errors == [("p", None)] * 3
    else:  # it may have started: not sent there again, straight to the fallback
        assert stage.errors == [("p", 503)]
    models = [r["body"]["model"] for r in fake.requests]
    assert models == (["m-second"] if broken == "dead" else ["m-first", "m-second"])


@pytest.mark.parametrize("verdict", ["auth_failed", "rate_limited"])
async def test_a_deployment_without_a_usable_key_is_skipped(
    fake: FakeUpstream, upstreams: Upstreams, verdict: str
) -> None:
    stage = Stage(
        [await upstreams.deployment("p", [KEY_A]), await upstreams.deployment("q", [KEY_B])]
    )
    stage.pools["p"].acquire().release(verdict, retry_after=60)  # type: ignore[arg-type]
    await collect(stage.call(False))
    assert keys_used(fake) == [KEY_B]
    assert stage.errors == []


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [(503, UpstreamError, 502), (429, RateLimitError, 429)],
)
async def test_when_everything_fails_the_client_gets_the_last_error(
    fake: FakeUpstream, upstreams: Upstreams, status: int, error: type[GatewayError], code: int
) -> None:
    stage = Stage([await upstreams.deployment("p", [KEY_A])], retries=1)
    fake.configure(status=status)
    with pytest.raises(error) as caught:
        await collect(stage.call(False))
    assert caught.value.status == code
    # A 503 without Retry-After is not sent again; a cooling key leaves nothing to retry.
    assert fake.count() == 1


async def test_an_error_after_the_first_batch_ends_the_stream(
    fake: FakeUpstream, upstreams: Upstreams
) -> None:
    stage = Stage(
        [await upstreams.deployment("p", [KEY_A]), await upstreams.deployment("q", [KEY_B])]
    )
    got: list[ChunkBatch] = []
    with pytest.raises(UpstreamError, match="fake error event"):
        async for batch in stage.call(True, error_event_after=2, chunk_delay_ms=5):
            got.append(batch)
    assert text_of(got)[0] == "tok0 tok1 "
    assert keys_used(fake) == [KEY_A]  # no retry, no fallback once the answer has begun
    assert stage.errors == [("p", None)]
    assert (stage.key()["successes"], stage.key()["failures"]) == (1, 0)  # accepted at once


async def test_an_empty_stream_is_an_error_retried_only_where_allowed(
    fake: FakeUpstream, upstreams: Upstreams
) -> None:
    fake.configure(sequence=[{"done_after": 0}])  # only [DONE]: the upstream did answer
    with pytest.raises(UpstreamError, match="empty stream"):
        await collect(Stage([await upstreams.deployment("p", [KEY_A])], retries=1).call(True))
    assert fake.count() == 1

    stage = Stage([await upstreams.deployment("p", [KEY_A])], retries=1, retry_unsafe=("p",))
    fake.configure(sequence=[{"done_after": 0}])
    assert text_of(await collect(stage.call(True)))[0] == FAKE_CONTENT
    assert stage.errors == [("p", None)]

    fake.configure(done_after=0)
    with pytest.raises(UpstreamError, match="empty stream"):
        await collect(stage.call(True))
    assert fake.count() == 5


async def test_the_queue_slot_is_held_for_the_whole_stream(
    fake: FakeUpstream, upstreams: Upstreams
) -> None:
    stage = Stage([await upstreams.deployment("p", [KEY_A])], concurrency=1)
    queue = stage.queues["p"]
    stream = stage.call(True, chunks=4, chunk_delay_ms=20)
    first = await anext(stream)
    assert queue.in_flight == 1
    other = asyncio.create_task(collect(stage.call(False)))
    await eventually(lambda: queue.depth == 1)
    rest = await collect(stream)
    assert text_of([first, *rest])[0] == "tok0 tok1 tok2 tok3 "
    assert len(await other) == 1
    assert (queue.in_flight, queue.depth) == (0, 0)
    assert fake.count() == 2


async def test_closing_the_stream_early_releases_key_and_slot(
    fake: FakeUpstream, upstreams: Upstreams
) -> None:
    stage = Stage([await upstreams.deployment("p", [KEY_A])], concurrency=1)
    stream = stage.call(True, chunks=10, chunk_delay_ms=50)
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    key = stage.key()
    assert (key["in_flight"], key["successes"], key["failures"], key["state"]) == (0, 1, 0, "ok")
    assert stage.queues["p"].in_flight == 0 and stage.errors == []
    await eventually(lambda: fake.cancelled == 1)  # the upstream connection was dropped


async def test_a_cancelled_call_releases_its_key_as_neutral(
    fake: FakeUpstream, upstreams: Upstreams
) -> None:
    stage = Stage([await upstreams.deployment("p", [KEY_A])], concurrency=1)
    task = asyncio.create_task(collect(stage.call(False, hang=True)))
    await eventually(lambda: fake.in_flight == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle()
    key = stage.key()
    assert (key["in_flight"], key["successes"], key["failures"], key["state"]) == (0, 0, 0, "ok")
    assert stage.queues["p"].in_flight == 0 and stage.errors == []
