"""DiskStore against the real disk: persistence, expiry, checksums, recovery, cleanup, the bound."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import sqlite3
import time
from pathlib import Path

import pytest

from chatgate.gateway.cache.disk import DiskStore

MiB = 1024 * 1024
FAR = time.time() + 3600


def key(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest()


def files_size(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.glob("cache.db*") if "corrupt" not in f.name)


def rows(directory: Path) -> int:
    with sqlite3.connect(directory / "cache.db") as conn:
        return int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])


async def started(
    directory: Path, max_bytes: int = 8 * MiB, cleanup_interval: float = 3600
) -> DiskStore:
    store = DiskStore(directory, max_bytes, cleanup_interval=cleanup_interval)
    await store.start()
    return store


async def test_roundtrip_reads_its_own_writes_before_and_after_commit(disk: DiskStore) -> None:
    await disk.set(key(1), b"one", FAR)
    assert await disk.get(key(1)) == (b"one", FAR)  # still in the pending batch
    await disk.flush()
    assert await disk.get(key(1)) == (b"one", FAR)  # from SQLite
    await disk.set(key(1), b"uno", FAR + 1)
    await disk.flush()
    assert await disk.get(key(1)) == (b"uno", FAR + 1)
    await disk.delete(key(1))
    assert await disk.get(key(1)) is None
    await disk.flush()
    assert await disk.get(key(1)) is None
    stats = await disk.stats()
    assert (stats.entries, stats.hits, stats.misses) == (0, 3, 2)


async def test_entries_survive_close_and_reopen(tmp_path: Path) -> None:
    store = await started(tmp_path)
    values = {i: os.urandom(100 + i) for i in range(200)}
    for i, v in values.items():
        await store.set(key(i), v, FAR + i)
    await store.close()

    store = await started(tmp_path)
    try:
        assert (await store.stats()).entries == 200
        for i, v in values.items():
            assert await store.get(key(i)) == (v, FAR + i)
    finally:
        await store.close()


async def test_expired_entry_is_a_miss(disk: DiskStore) -> None:
    await disk.set(key(1), b"short", time.time() + 0.2)
    await disk.set(key(2), b"long", FAR)
    await disk.flush()
    assert await disk.get(key(1)) is not None
    await asyncio.sleep(0.3)
    assert await disk.get(key(1)) is None
    assert await disk.get(key(2)) == (b"long", FAR)
    await disk.set(key(2), b"past", time.time() - 1)  # a set in the past removes
    await disk.flush()
    assert await disk.get(key(2)) is None
    assert (await disk.stats()).entries == 1  # key 1: expired, not yet cleaned up


async def test_value_changed_behind_the_stores_back_is_a_miss_and_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await started(tmp_path)
    await store.set(key(1), b"the original value", FAR)
    await store.set(key(2), b"an untouched value", FAR)
    await store.flush()
    with sqlite3.connect(tmp_path / "cache.db", timeout=5) as conn:
        conn.execute("UPDATE entries SET value = ? WHERE key = ?", (b"the 0riginal value", key(1)))
    assert await store.get(key(1)) is None
    assert await store.get(key(2)) == (b"an untouched value", FAR)
    await store.close()  # waits for the deletion
    assert rows(tmp_path) == 1
    assert "checksum" in caplog.text


async def test_flipped_byte_in_the_file_is_a_miss_and_removed(tmp_path: Path) -> None:
    store = await started(tmp_path)
    victim, other = os.urandom(3000), os.urandom(3000)
    await store.set(key(1), victim, FAR)
    await store.set(key(2), other, FAR)
    await store.close()  # checkpointed: the values are in cache.db itself
    path = tmp_path / "cache.db"
    data = bytearray(path.read_bytes())
    at = data.find(victim)
    assert at > 0
    data[at + 1500] ^= 0xFF
    path.write_bytes(bytes(data))

    store = await started(tmp_path)
    assert await store.get(key(1)) is None
    assert await store.get(key(2)) == (other, FAR)
    await store.close()
    assert rows(tmp_path) == 1


@pytest.mark.parametrize("damage", ["garbage file", "garbage header", "garbage pages"])
async def test_corrupted_file_at_start_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    store = await started(tmp_path)
    for i in range(300):
        await store.set(key(i), os.urandom(3000), FAR)
    await store.close()
    path = tmp_path / "cache.db"
    data = bytearray(path.read_bytes())
    if damage == "garbage file":
        data[:] = os.urandom(len(data))
    elif damage == "garbage header":
        data[:100] = os.urandom(100)
    else:
        data[8192:] = os.urandom(len(data) - 8192)
    path.write_bytes(bytes(data))

    caplog.set_level(logging.WARNING)
    store = await started(tmp_path)
    try:
        assert "moved it to" in caplog.text
        assert (tmp_path / "cache.db.corrupt").exists()
        assert (await store.stats()).entries == 0
        assert await store.get(key(1)) is None
        await store.set(key(1), b"fresh", FAR)
        await store.flush()
        assert await store.get(key(1)) == (b"fresh", FAR)
    finally:
        await store.close()
    assert rows(tmp_path) == 1


async def test_corruption_found_while_running_starts_a_fresh_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await started(tmp_path)
    values = {i: os.urandom(3000) for i in range(300)}
    for i, v in values.items():
        await store.set(key(i), v, FAR)
    await store.close()
    path = tmp_path / "cache.db"
    data = bytearray(path.read_bytes())
    page = data.find(values[5]) // 4096  # a table page: the start-up checks do not read it
    data[page * 4096 : (page + 1) * 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))

    store = await started(tmp_path)
    try:
        assert (await store.stats()).entries == 300
        for i in range(10):
            assert await store.get(key(i)) in (None, (values[i], FAR))  # never an exception
        for _ in range(100):
            if (await store.stats()).entries == 0:
                break
            await asyncio.sleep(0.02)
        assert (await store.stats()).entries == 0
        assert "is corrupted; moved it to" in caplog.text
        await store.set(key(1), b"fresh", FAR)
        await store.flush()
        assert await store.get(key(1)) == (b"fresh", FAR)
    finally:
        await store.close()


async def test_background_cleanup_removes_expired_entries(tmp_path: Path) -> None:
    store = await started(tmp_path, cleanup_interval=0.1)
    try:
        for i in range(50):
            await store.set(key(i), b"short-lived", time.time() + 0.2)
        for i in range(50, 60):
            await store.set(key(i), b"long-lived", FAR)
        await store.flush()
        assert (await store.stats()).entries == 60
        for _ in range(100):
            if (await store.stats()).entries == 10:
                break
            await asyncio.sleep(0.05)
        assert (await store.stats()).entries == 10
        assert rows(tmp_path) == 10
        assert await store.get(key(55)) == (b"long-lived", FAR)
    finally:
        await store.close()


async def test_files_never_exceed_max_bytes_and_oldest_go_first(tmp_path: Path) -> None:
    max_bytes = 2 * MiB
    store = await started(tmp_path, max_bytes)
    try:
        for i in range(800):
            await store.set(key(i), os.urandom(8000), FAR)
            if i % 25 == 0:
                await store.flush()
                assert files_size(tmp_path) <= max_bytes
        await store.flush()
        assert files_size(tmp_path) <= max_bytes
        stats = await store.stats()
        assert stats.bytes <= max_bytes
        assert 150 <= stats.entries < 800  # most of the space holds entries
        assert await store.get(key(0)) is None
        assert await store.get(key(799)) is not None
        kept = [i for i in range(800) if await store.get(key(i)) is not None]
        assert kept == list(range(800 - len(kept), 800))  # the newest, contiguously
    finally:
        await store.close()
    assert files_size(tmp_path) <= max_bytes


async def test_reopening_with_a_smaller_bound_shrinks_the_files(tmp_path: Path) -> None:
    store = await started(tmp_path, 6 * MiB)
    for i in range(500):
        await store.set(key(i), os.urandom(8000), FAR)
    await store.close()
    assert files_size(tmp_path) > 3 * MiB

    store = await started(tmp_path, 2 * MiB)
    try:
        assert files_size(tmp_path) <= 2 * MiB
        assert await store.get(key(499)) is not None
    finally:
        await store.close()
    assert files_size(tmp_path) <= 2 * MiB


async def test_value_too_big_for_the_tier_is_not_stored(tmp_path: Path) -> None:
    store = await started(tmp_path, 2 * MiB)
    try:
        await store.set(key(1), b"small", FAR)
        await store.set(key(1), os.urandom(store.db.max_value), FAR)
        await store.flush()
        assert await store.get(key(1)) is None
    finally:
        await store.close()


async def test_many_coroutines_at_once(disk: DiskStore) -> None:
    values = {i: os.urandom(500 + i) for i in range(300)}

    async def writer(i: int) -> None:
        await disk.set(key(i), values[i], FAR)
        assert await disk.get(key(i)) == (values[i], FAR)

    async def reader(i: int) -> None:
        assert await disk.get(key(i)) in (None, (values[i], FAR))

    await asyncio.gather(*(writer(i) for i in range(300)), *(reader(i) for i in range(300)))
    await disk.flush()
    found = await asyncio.gather(*(disk.get(key(i)) for i in range(300)))
    assert found == [(values[i], FAR) for i in range(300)]
    assert (await disk.stats()).entries == 300


async def test_clear_removes_everything(disk: DiskStore) -> None:
    for i in range(40):
        await disk.set(key(i), b"v" * 1000, FAR)
    assert await disk.clear() == 40
    assert await disk.get(key(3)) is None
    assert (await disk.stats()).entries == 0


async def test_not_started_or_closed_is_a_miss_and_a_no_op(tmp_path: Path) -> None:
    store = DiskStore(tmp_path, 8 * MiB)
    await store.set(key(1), b"v", FAR)
    assert await store.get(key(1)) is None
    await store.start()
    await store.close()
    await store.set(key(1), b"v", FAR)
    assert await store.get(key(1)) is None
    assert await store.clear() == 0
    await store.close()


async def test_unusable_directory_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(OSError):
        await DiskStore(tmp_path / "file" / "cache", 8 * MiB).start()


async def test_bound_holds_under_concurrent_mixed_load(tmp_path: Path) -> None:
    max_bytes = 2 * MiB
    store = await started(tmp_path, max_bytes, cleanup_interval=0.05)
    rng = random.Random(5)
    worst = 0

    async def worker() -> None:
        nonlocal worst
        for _ in range(150):
            k, roll = key(rng.randrange(2000)), rng.random()
            if roll < 0.5:
                ttl = rng.choice([0.05, 0.5, 3600])
                await store.set(k, rng.randbytes(rng.randrange(10, 30_000)), time.time() + ttl)
            elif roll < 0.9:
                await store.get(k)
            else:
                await store.delete(k)
            worst = max(worst, files_size(tmp_path))

    try:
        await asyncio.gather(*(worker() for _ in range(16)))
        await store.flush()
    finally:
        await store.close()
    assert 0 < worst <= max_bytes
