"""A generation's event log: followers get every event once, in order, wherever they join;
a quiet log sends keep-alives; a follower that goes away disturbs nobody."""

from __future__ import annotations

import asyncio

from chatgate.chat.joblog import JobLog, LogEvent


async def collect(log: JobLog, after: int = 0, keepalive: float = 15.0) -> list[int]:
    seqs: list[int] = []
    async for batch in log.follow(after, keepalive):
        seqs += [e.seq for e in batch]
    return seqs


async def test_followers_get_every_event_once_in_order() -> None:
    log = JobLog("g1")
    early = asyncio.create_task(collect(log))
    await asyncio.sleep(0)
    for i in range(3):
        log.append({"type": "delta", "content": str(i)})
        await asyncio.sleep(0)
    late = asyncio.create_task(collect(log, after=2))
    log.append({"type": "delta", "content": "3"})
    log.append({"type": "delta", "content": "4"})
    log.finish()
    assert await early == [1, 2, 3, 4, 5]
    assert await late == [3, 4, 5]
    assert await collect(log) == [1, 2, 3, 4, 5]  # a finished log is replayed whole


async def test_a_quiet_log_sends_keep_alives() -> None:
    log = JobLog("g2")
    batches: list[list[LogEvent]] = []

    async def follow() -> None:
        async for batch in log.follow(0, keepalive=0.02):
            batches.append(batch)
            if len(batches) == 2:
                log.append({"type": "delta", "content": "x"})
            if len(batches) == 3:
                log.finish()

    await asyncio.wait_for(follow(), 10)
    assert [len(b) for b in batches] == [0, 0, 1]


async def test_a_cancelled_follower_disturbs_nobody() -> None:
    log = JobLog("g3")
    leaving = asyncio.create_task(collect(log))
    staying = asyncio.create_task(collect(log))
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.sleep(0)
    log.append({"type": "delta", "content": "a"})
    log.finish()
    assert await staying == [1]
    assert leaving.cancelled()
