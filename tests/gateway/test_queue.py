"""Upstream queue: the concurrency cap, FIFO order, 429 when full, 503 on timeout, no leaks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from chatgate.errors import RateLimitError, ServiceUnavailableError
from chatgate.gateway.queue import UpstreamQueue


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def hold(q: UpstreamQueue, gate: asyncio.Event) -> None:
    async with q.slot():
        await gate.wait()


async def test_cap_is_held_under_fifty_concurrent_tasks() -> None:
    q = UpstreamQueue("up", 5, max_queue=100, queue_timeout=5)
    running = peak = 0

    async def call(i: int) -> int:
        nonlocal running, peak
        async with q.slot():
            running += 1
            peak = max(peak, running)
            assert q.in_flight <= 5
            await asyncio.sleep(0.001 * (i % 3))
            running -= 1
        return i

    assert await asyncio.gather(*(call(i) for i in range(50))) == list(range(50))
    assert peak == 5
    assert (q.in_flight, q.depth) == (0, 0)


async def test_waiters_are_served_first_come_first_served() -> None:
    q = UpstreamQueue("up", 1, max_queue=20, queue_timeout=5)
    gate = asyncio.Event()
    holder = asyncio.create_task(hold(q, gate))
    await settle()
    order: list[int] = []

    async def call(i: int) -> None:
        async with q.slot():
            order.append(i)
            await asyncio.sleep(0)

    tasks = []
    for i in range(10):
        tasks.append(asyncio.create_task(call(i)))
        await settle()
    assert q.depth == 10
    # A newcomer while others wait must queue too, even at the instant a slot frees.
    gate.set()
    late = asyncio.create_task(call(99))
    await asyncio.gather(holder, late, *tasks)
    assert order == [*range(10), 99]


async def test_full_queue_is_refused_at_once_with_429() -> None:
    q = UpstreamQueue("deepseek", 1, max_queue=2, queue_timeout=5)
    gate = asyncio.Event()
    tasks = [asyncio.create_task(hold(q, gate)) for _ in range(3)]
    await settle()
    assert (q.in_flight, q.depth) == (1, 2)
    with pytest.raises(RateLimitError) as info:
        await asyncio.wait_for(q.acquire(), 0.05)  # refused, not waited
    err = info.value
    assert err.status == 429
    assert "deepseek" in err.message
    assert err.retry_after is not None and 0 < err.retry_after <= 5
    assert q.rejected == 1
    gate.set()
    await asyncio.gather(*tasks)
    assert (q.in_flight, q.depth) == (0, 0)


async def test_zero_queue_refuses_as_soon_as_slots_are_busy() -> None:
    q = UpstreamQueue("up", 1, max_queue=0, queue_timeout=5)
    await q.acquire()
    with pytest.raises(RateLimitError):
        await q.acquire()
    q.release()
    assert q.in_flight == 0


async def test_waiting_too_long_is_503_with_retry_after() -> None:
    q = UpstreamQueue("up", 1, max_queue=5, queue_timeout=0.05)
    gate = asyncio.Event()
    holder = asyncio.create_task(hold(q, gate))
    await settle()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(ServiceUnavailableError) as info:
        async with q.slot():
            pytest.fail("should not get a slot")
    assert 0.04 <= loop.time() - t0 < 0.5
    assert info.value.status == 503
    assert info.value.retry_after is not None and info.value.retry_after >= 1
    assert info.value.headers()["Retry-After"] == "1"
    assert (q.depth, q.in_flight, q.timed_out) == (0, 1, 1)
    gate.set()
    await holder
    assert q.in_flight == 0


async def test_cancelled_waiter_leaves_no_trace() -> None:
    q = UpstreamQueue("up", 1, max_queue=5, queue_timeout=5)
    gate = asyncio.Event()
    holder = asyncio.create_task(hold(q, gate))
    await settle()
    waiter = asyncio.create_task(q.acquire())
    await settle()
    assert q.depth == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (q.depth, q.in_flight) == (0, 1)
    gate.set()
    await holder
    assert (q.depth, q.in_flight) == (0, 0)
    await asyncio.wait_for(q.acquire(), 0.1)  # the slot is really free
    q.release()


async def test_waiter_cancelled_just_as_it_is_granted_passes_the_slot_on() -> None:
    q = UpstreamQueue("up", 1, max_queue=5, queue_timeout=5)
    await q.acquire()
    first = asyncio.create_task(q.acquire())
    second = asyncio.create_task(q.acquire())
    await settle()
    assert q.depth == 2
    q.release()  # hands the slot to `first`...
    first.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 0.1)  # so the slot went on to `second`
    assert (q.depth, q.in_flight) == (0, 1)
    q.release()
    assert q.in_flight == 0


async def test_slot_is_released_when_the_body_raises_or_is_cancelled() -> None:
    q = UpstreamQueue("up", 2, max_queue=5, queue_timeout=5)
    with pytest.raises(RuntimeError):
        async with q.slot():
            raise RuntimeError("upstream blew up")
    assert q.in_flight == 0
    gate = asyncio.Event()
    task = asyncio.create_task(hold(q, gate))
    await settle()
    assert q.in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert q.in_flight == 0


async def test_a_stream_holds_its_slot_until_it_is_closed() -> None:
    q = UpstreamQueue("up", 1, max_queue=5, queue_timeout=5)

    async def stream() -> AsyncGenerator[int, None]:
        async with q.slot():
            for i in range(3):
                yield i

    s = stream()
    assert await anext(s) == 0
    assert q.in_flight == 1
    assert await anext(s) == 1
    await s.aclose()  # the client left mid-stream
    assert q.in_flight == 0
    assert [i async for i in stream()] == [0, 1, 2]
    assert q.in_flight == 0


async def test_unlimited_mode_never_waits() -> None:
    q = UpstreamQueue("ollama", None, max_queue=0, queue_timeout=1)
    gate = asyncio.Event()
    tasks = [asyncio.create_task(hold(q, gate)) for _ in range(200)]
    await settle()
    assert (q.in_flight, q.depth) == (200, 0)
    gate.set()
    await asyncio.gather(*tasks)
    assert q.in_flight == 0
    assert q.snapshot()["max_concurrency"] is None


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        UpstreamQueue("up", 0, 1, 1)
    with pytest.raises(ValueError):
        UpstreamQueue("up", 1, -1, 1)
    with pytest.raises(ValueError):
        UpstreamQueue("up", 1, 1, 0)
