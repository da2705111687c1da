"""Single-flight: late waiters, kinds served across, errors to all, cancel on the last leave.

The flights here run on a source the test feeds batch by batch (``Feed``) rather than on the
fake upstream: these are interleavings (who joins between which two batches, who leaves when)
that the fake's timing cannot pin down. The caching and pipeline tests run flights on the fake.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from chatgate.errors import GatewayError, UpstreamError
from chatgate.gateway.coalesce import Flight, Flights
from chatgate.protocol.openai import Chunk, ChunkBatch, make_chunk, make_completion
from tests.gateway.conftest import settle, text_of

_END = object()


def piece(text: str, finish: str | None = None) -> Chunk:
    return make_chunk("chatcmpl-1", "m", 0, {"content": text}, finish)


USAGE: Chunk = {"id": "chatcmpl-1", "choices": [], "usage": {"completion_tokens": 3}}


class Feed:
    """A flight's source whose batches, end and failure the test hands over one at a time."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.cancelled = False

    def put(self, *batches: ChunkBatch) -> None:
        for batch in batches:
            self.queue.put_nowait(batch)

    def end(self) -> None:
        self.queue.put_nowait(_END)

    def fail(self, exc: BaseException) -> None:
        self.queue.put_nowait(exc)

    async def run(self) -> AsyncGenerator[ChunkBatch, None]:
        try:
            while (item := await self.queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def flight_on(
    flights: Flights, stream: bool, key: bytes = b"k"
) -> tuple[Flight, Feed, list[Flight]]:
    ended: list[Flight] = []
    flight = flights.begin(key, stream, ended.append)
    feed = Feed()
    flight.start(feed.run())
    return flight, feed, ended


async def test_a_late_waiter_gets_what_came_so_far_in_one_batch_then_the_rest() -> None:
    flights = Flights()
    flight, feed, ended = flight_on(flights, stream=True)
    early = flight.follow(True)
    feed.put([piece("a")])
    assert await anext(early) == [piece("a")]
    feed.put([piece("b")], [piece("c")])
    await settle()
    late = flight.follow(True)
    assert await anext(late) == [piece("a"), piece("b"), piece("c")]
    assert await anext(early) == [piece("b"), piece("c")]
    feed.put([piece("d", "stop")])
    assert await anext(late) == await anext(early) == [piece("d", "stop")]
    feed.end()
    for waiter in (early, late):
        with pytest.raises(StopAsyncIteration):
            await anext(waiter)
    assert ended == [flight] and flights.get(b"k") is None and len(flights) == 0


async def test_a_whole_waiter_on_a_streamed_flight_gets_the_assembled_completion() -> None:
    flight, feed, _ = flight_on(Flights(), stream=True)
    waiter = asyncio.ensure_future(anext(flight.follow(False)))
    feed.put([piece("Hel")], [piece("lo", "stop")])
    await settle()
    assert not waiter.done()  # a whole answer waits for the end
    feed.put([USAGE])
    feed.end()
    [completion] = await waiter
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == "Hello"
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"] == {"completion_tokens": 3}


async def test_waiters_on_a_whole_flight_get_the_completion_or_its_chunks() -> None:
    flight, feed, _ = flight_on(Flights(), stream=False)
    whole, streamed = flight.follow(False), flight.follow(True)
    answer = make_completion("m", "Hello", usage={"completion_tokens": 1})
    feed.put([answer])
    feed.end()
    assert await anext(whole) == [answer]  # as it came
    chunks = await anext(streamed)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert text_of([chunks])[0] == "Hello"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, "stop"]
    assert chunks[-1]["usage"] == {"completion_tokens": 1}
    for waiter in (whole, streamed):
        with pytest.raises(StopAsyncIteration):
            await anext(waiter)


async def test_the_error_reaches_every_waiter() -> None:
    flight, feed, ended = flight_on(Flights(), stream=True)
    first, second = flight.follow(True), flight.follow(True)
    whole = asyncio.ensure_future(anext(flight.follow(False)))
    feed.put([piece("a")])
    assert await anext(first) == [piece("a")]
    error = UpstreamError("upstream broke")
    feed.fail(error)
    with pytest.raises(UpstreamError) as caught:
        await anext(first)
    assert caught.value is error
    assert await anext(second) == [piece("a")]  # what came before the error, then the error
    with pytest.raises(UpstreamError):
        await anext(second)
    with pytest.raises(UpstreamError):
        await whole
    assert flight.entry is None and ended == [flight]


async def test_the_upstream_is_cancelled_only_when_the_last_waiter_leaves() -> None:
    flights = Flights()
    flight, feed, ended = flight_on(flights, stream=True)
    leaving, staying = flight.follow(True), flight.follow(True)
    whole = asyncio.ensure_future(anext(flight.follow(False)))
    feed.put([piece("a")])
    assert await anext(leaving) == await anext(staying) == [piece("a")]
    await leaving.aclose()
    whole.cancel()
    await settle()
    assert not feed.cancelled and flight.waiters == 1
    feed.put([piece("b")])
    assert await anext(staying) == [piece("b")]  # the others' leaving changed nothing here
    await staying.aclose()
    await settle()
    assert feed.cancelled and flight.done and flight.entry is None
    assert ended == [flight] and len(flights) == 0


async def test_entry_only_for_a_flight_that_ended_well() -> None:
    streamed, feed, _ = flight_on(Flights(), stream=True)
    feed.put([piece("a")])
    await settle()
    assert streamed.entry is None  # still running
    feed.put([piece("b", "stop")])
    feed.end()
    await settle()
    assert streamed.entry is not None and streamed.entry.chunks == [piece("a"), piece("b", "stop")]

    whole, feed, _ = flight_on(Flights(), stream=False)
    answer = make_completion("m", "Hello")
    feed.put([answer])
    feed.end()
    await settle()
    assert whole.entry is not None and whole.entry.completion is answer

    empty, feed, _ = flight_on(Flights(), stream=False)
    waiter = empty.follow(False)
    feed.end()
    await settle()
    assert empty.done and empty.entry is None
    with pytest.raises(GatewayError, match="empty"):
        await anext(waiter)


async def test_cancel_all_ends_every_flight_and_tells_its_waiters() -> None:
    flights = Flights()
    one, feed_one, _ = flight_on(flights, stream=True, key=b"one")
    two, feed_two, _ = flight_on(flights, stream=False, key=b"two")
    streamed, whole = one.follow(True), asyncio.ensure_future(anext(two.follow(False)))
    feed_one.put([piece("a")])
    assert await anext(streamed) == [piece("a")]
    await flights.cancel_all()
    assert feed_one.cancelled and feed_two.cancelled and len(flights) == 0
    with pytest.raises(GatewayError, match="cancelled"):
        await anext(streamed)
    with pytest.raises(GatewayError, match="cancelled"):
        await whole


async def test_a_finished_flight_leaves_only_its_own_place() -> None:
    flights = Flights()
    old, old_feed, _ = flight_on(flights, stream=True)
    assert flights.get(b"k") is old
    new, new_feed, _ = flight_on(flights, stream=True)  # e.g. a no-cache request's own flight
    assert flights.get(b"k") is new
    old_feed.end()
    await settle()
    assert old.done and flights.get(b"k") is new and len(flights) == 1
    new_feed.end()
    await settle()
    assert flights.get(b"k") is None and len(flights) == 0
