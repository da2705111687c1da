"""Stored responses on SQLite and PostgreSQL: saved behind the request, read only by their
owner (from memory until written, then from the database, by any replica), deleted, swept once
expired."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import pytest
from robustness.outage import TcpProxy
from sqlalchemy import func, select

from chatgate.storage import Database, ResponseRepository, StoredResponse
from chatgate.storage.base import utcnow

DAY = 86400.0


async def test_a_saved_response_is_read_back_by_its_owner_only(db: Database) -> None:
    repo = ResponseRepository(db, retention=DAY, miss_retry=0)
    try:
        repo.save("resp_1", "k:key_a", "m", None, '[{"x":1}]', '{"id":"resp_1"}')
        found = await repo.get("resp_1", "k:key_a")
        assert found is not None
        assert (found.response, found.input) == ('{"id":"resp_1"}', '[{"x":1}]')
        assert await repo.get("resp_1", "k:key_b") is None
        assert await repo.get("resp_1", "") is None  # anonymous callers own only their own
        assert await repo.get("resp_2", "k:key_a") is None
        assert not await repo.delete("resp_1", "k:key_b")
        assert await repo.delete("resp_1", "k:key_a")
        assert await repo.get("resp_1", "k:key_a") is None
        assert not await repo.delete("resp_1", "k:key_a")
    finally:
        await repo.close()


async def test_expired_responses_are_invisible_then_swept(db: Database) -> None:
    repo = ResponseRepository(db, retention=60, miss_retry=0)
    try:
        old = utcnow() - timedelta(seconds=120)
        repo.save("resp_old", "", "m", None, "[]", "{}", now=old)
        repo.save("resp_new", "", "m", "resp_old", "[]", "{}")
        assert await repo.get("resp_old", "") is None
        await repo.flush()
        assert await repo.sweep(batch=1) == 1
        assert await repo.sweep() == 0
        assert await repo.get("resp_new", "") is not None
        later = utcnow() + timedelta(seconds=61)
        assert await repo.get("resp_new", "", now=later) is None
        assert await repo.sweep(now=later) == 1
    finally:
        await repo.close()


async def test_the_periodic_sweep_runs_in_the_background(db: Database) -> None:
    repo = ResponseRepository(db, retention=60, sweep_interval=0.05, miss_retry=0)
    repo.save("resp_old", "", "m", None, "[]", "{}", now=utcnow() - timedelta(hours=1))
    await repo.flush()
    assert await rows(db) == 1
    repo.start()
    try:
        for _ in range(200):
            if await rows(db) == 0:
                break
            await asyncio.sleep(0.02)
        assert await rows(db) == 0
    finally:
        await repo.close()


async def rows(db: Database) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(StoredResponse)) or 0)


async def test_concurrent_saves_all_land(db: Database) -> None:
    repo = ResponseRepository(db, retention=DAY, miss_retry=0)
    try:
        for i in range(200):
            repo.save(f"resp_{i}", "", "m", None, "[]", f'{{"n":{i}}}')
    finally:
        await repo.close()  # writes what is queued
    assert await rows(db) == 200
    again = ResponseRepository(db, retention=DAY, miss_retry=0)
    found = await asyncio.gather(*(again.get(f"resp_{i}", "") for i in range(200)))
    assert [f.response if f else None for f in found] == [f'{{"n":{i}}}' for i in range(200)]


async def test_another_replica_finds_a_response_committed_after_its_first_look(
    db: Database,
) -> None:
    here = ResponseRepository(db, retention=DAY, flush_interval=0.15)
    there = ResponseRepository(db, retention=DAY)  # looks again 3 flush intervals later
    try:
        here.save("resp_1", "k:a", "m", None, "[]", "{}")
        assert await here.get("resp_1", "k:a") is not None  # from memory, not written yet
        assert await rows(db) == 0
        assert await there.get("resp_1", "k:a") is not None  # missed once, then found
        assert await there.get("resp_1", "k:b") is None
    finally:
        await here.close()


async def test_a_delete_waits_for_the_insert(db: Database) -> None:
    repo = ResponseRepository(db, retention=DAY, flush_interval=0.1, miss_retry=0)
    try:
        repo.save("resp_1", "k:a", "m", None, "[]", "{}")
        assert not await repo.delete("resp_1", "k:b")
        assert await repo.delete("resp_1", "k:a")
        assert await repo.get("resp_1", "k:a") is None
    finally:
        await repo.close()
    assert await rows(db) == 0


async def test_responses_saved_during_an_outage_are_written_when_the_database_returns(
    proxied_db: tuple[TcpProxy, Database], caplog: pytest.LogCaptureFixture
) -> None:
    proxy, db = proxied_db
    caplog.set_level(logging.WARNING, logger="chatgate.storage.responses")
    repo = ResponseRepository(db, retention=DAY, flush_interval=0.01, miss_retry=0)
    try:
        proxy.cut()
        for i in range(30):
            repo.save(f"resp_{i}", "k:a", "m", None, "[]", f'{{"n":{i}}}')
        await asyncio.sleep(1.0)  # several refused tries
        found = await repo.get("resp_7", "k:a")  # served from memory meanwhile
        assert found is not None and found.response == '{"n":7}'
        proxy.restore()
        async with asyncio.timeout(10):
            await repo.flush()
    finally:
        await repo.close()
    assert await rows(db) == 30
    messages = [r.getMessage() for r in caplog.records if r.name == "chatgate.storage.responses"]
    assert sum("keeping 30" in m for m in messages) == 1, messages
    assert sum("the database is back" in m for m in messages) == 1, messages
    assert not any(r.exc_info for r in caplog.records)  # no traceback per try


async def test_a_stop_during_an_outage_gives_up_after_its_grace(
    proxied_db: tuple[TcpProxy, Database], caplog: pytest.LogCaptureFixture
) -> None:
    proxy, db = proxied_db
    repo = ResponseRepository(db, retention=DAY, flush_interval=0.01, close_grace=0.5)
    proxy.cut()
    repo.save("resp_1", "", "m", None, "[]", "{}")
    started = time.monotonic()
    await repo.close()
    assert 0.4 < time.monotonic() - started < 3
    proxy.restore()
    assert any("could not be written before the stop" in r.getMessage() for r in caplog.records)


async def test_the_kept_queue_is_bounded(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    repo = ResponseRepository(db, retention=DAY, max_kept=5, miss_retry=0)
    try:
        for i in range(8):  # saved before the writer's first batch: three too many
            repo.save(f"resp_{i}", "", "m", None, "[]", "{}")
        assert await repo.get("resp_0", "") is None  # the oldest went
        assert await repo.get("resp_7", "") is not None
    finally:
        await repo.close()
    assert await rows(db) == 5
    assert sum("dropped 1 stored responses" in r.getMessage() for r in caplog.records) == 3
