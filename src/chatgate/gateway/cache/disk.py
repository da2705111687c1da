"""L2: a persistent cache in one SQLite file, with all disk I/O on worker threads."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from chatgate.gateway.cache.diskdb import DiskDB, Op, is_corruption
from chatgate.gateway.cache.store import Health, StoreStats

log = logging.getLogger(__name__)
T = TypeVar("T")

Pending = dict[bytes, tuple[bytes | None, float]]  # key -> (value, or None: deleted; expires_at)


class DiskStore:
    """The disk tier: survives restarts, holds millions of entries, never outgrows ``max_bytes``.

    Layout: ``<directory>/cache.db`` (SQLite, WAL), one row per entry with its value inline and
    a CRC-32 over key, expiry and value; see :class:`DiskDB` for the size bound. Lookups run on
    ``readers`` threads, each with its own connection; every write goes through one writer
    thread, so the counters need no locks and SQLite never sees two writers.

    Writes are group-committed: ``set``/``delete`` land in an in-memory batch (which ``get``
    consults first, so a coroutine reads its own writes) and return; the writer takes the whole
    batch as soon as it is free (in transactions of a bounded size). ``flush`` waits for that.
    Past two transactions' worth (64 MiB at most) waiting, ``set`` waits for the writer
    (back-pressure, bounded memory). A value larger than ``db.max_value`` (a sixteenth of the
    WAL reserve: 4 MiB from ``max_bytes`` = 640 MiB, 16 MiB from 2.5 GiB) is not stored here.

    Eviction is oldest-written first (an LRU would turn every disk hit into a write; the memory
    tier above is the LRU). Expired rows are deleted every ``cleanup_interval`` seconds by a
    task started in :meth:`start`. A row whose checksum fails is a miss and is deleted; a file
    SQLite reports as corrupt is moved aside (``cache.db.corrupt``) and a fresh one started,
    at :meth:`start` or whenever a read or write finds it. Until :meth:`start`, and after
    :meth:`close`, the store is a miss / no-op.
    """

    name = "disk"

    def __init__(
        self,
        directory: str | Path,
        max_bytes: int,
        *,
        readers: int = 4,
        cleanup_interval: float = 60.0,
    ) -> None:
        self.directory = Path(directory)
        self.db = DiskDB(self.directory / "cache.db", max_bytes)
        self.cleanup_interval = cleanup_interval
        self._n_readers = readers
        self._readers: ThreadPoolExecutor | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._pending: Pending = {}
        self._pending_bytes = 0
        self._max_pending = min(2 * self.db.txn_bytes, 64 * 1024 * 1024)
        self._inflight: Pending = {}
        self._flusher: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[None] | None = None
        self._cleaner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._resetting: asyncio.Task[int] | None = None
        self._closing = False
        self._health = Health(log, f"the disk cache ({self.db.path})")
        self._hits = 0
        self._misses = 0

    async def start(self) -> None:
        """Open (or recover) the file and start the cleanup task; raises if the directory is
        unusable (a configuration error), never for a damaged file."""
        if self._writer is not None:
            return
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="cache-disk-writer")
        try:
            await self._in_writer(self.db.open)
        except BaseException:
            self._writer.shutdown(wait=False)
            self._writer = None
            raise
        self._readers = self._reader_pool()
        self._cleaner = asyncio.get_running_loop().create_task(self._cleanup_loop())

    async def get(self, key: bytes) -> tuple[bytes, float] | None:
        found = self._pending.get(key) or self._inflight.get(key)
        if found is None and self._readers is not None:
            found = await self._read(key, self._readers)
        if found is not None:
            value, expires_at = found
            if value is not None and expires_at > time.time():
                self._hits += 1
                return value, expires_at
        self._misses += 1
        return None

    async def set(self, key: bytes, value: bytes, expires_at: float) -> None:
        if len(key) + len(value) > self.db.max_value:
            await self.delete(key)  # too big for this tier; an older value must not linger
            return
        await self._put(key, value, expires_at)

    async def delete(self, key: bytes) -> None:
        await self._put(key, None, 0.0)

    async def clear(self) -> int:
        """Start an empty file (the old one is deleted: instant, and the space is freed)."""
        if self._writer is None or self._closing:
            return 0
        await self.flush()
        self._pending.clear()
        self._pending_bytes = 0
        return await self._recreate(corrupt=False)

    async def stats(self) -> StoreStats:
        """Entries as committed (not those still in the batch); bytes: the files' size."""
        return StoreStats(self.db.entries, self.db.disk_bytes, self._hits, self._misses)

    async def flush(self) -> None:
        """Wait until every write made so far is committed."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher})

    async def cleanup(self) -> int:
        """Delete expired entries now (the background task calls this); returns how many."""
        removed = 0
        try:
            # One small transaction per job, so writes queued meanwhile go in between.
            while n := await self._in_writer(self.db.remove_expired, time.time()):
                removed += n
            await self._in_writer(self.db.maintain)
        except Exception as exc:
            self._failed(exc, "removing expired entries")
        if removed:
            log.debug("cache: removed %d expired entries from disk", removed)
        return removed

    async def close(self) -> None:
        if self._writer is None or self._closing:
            return
        self._closing = True
        if self._cleaner is not None:
            self._cleaner.cancel()
            await asyncio.wait({self._cleaner})
        await self.flush()
        while busy := [*self._tasks, *[t for t in [self._resetting] if t and not t.done()]]:
            await asyncio.wait(busy)
        readers, self._readers = self._readers, None
        if readers is not None:
            await asyncio.to_thread(readers.shutdown)
        writer = self._writer
        try:
            await self._in_writer(self.db.close)
        finally:
            self._writer = None
            self._closing = False
            writer.shutdown(wait=False)

    # -- internals -------------------------------------------------------------------------

    async def _read(self, key: bytes, readers: ThreadPoolExecutor) -> tuple[bytes, float] | None:
        try:
            found = await asyncio.get_running_loop().run_in_executor(readers, self.db.read, key)
        except Exception as exc:
            self._failed(exc, "reading")
            return None
        self._health.ok()
        if isinstance(found, int):
            log.warning("cache: a disk entry failed its checksum; deleting it")
            self._spawn(self._in_writer(self.db.delete_ids, [found]))
            return None
        return found

    async def _put(self, key: bytes, value: bytes | None, expires_at: float) -> None:
        if self._writer is None or self._closing:
            return
        old = self._pending.get(key)
        if old is not None:
            self._pending_bytes -= len(key) + (len(old[0]) if old[0] is not None else 0)
        self._pending[key] = (value, expires_at)
        self._pending_bytes += len(key) + (len(value) if value is not None else 0)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        # Back-pressure: past two transactions' worth, wait for the writer to take the batch.
        while self._pending_bytes > self._max_pending:
            if self._writing is None:
                await asyncio.sleep(0)  # the flusher has not run yet: let it take the batch
            else:
                await asyncio.wait({self._writing})

    async def _flush_loop(self) -> None:
        while self._pending and self._writer is not None:
            batch, self._pending, self._pending_bytes = self._pending, {}, 0
            self._inflight = batch
            ops: list[Op] = [(k, v, e) for k, (v, e) in batch.items()]
            self._writing = asyncio.ensure_future(self._in_writer(self.db.write, ops))
            try:
                await asyncio.wait({self._writing})
                exc = self._writing.exception()
                if exc is None:
                    self._health.ok()
                else:
                    self._failed(exc, "writing")
            finally:
                self._inflight = {}
                self._writing = None

    async def _cleanup_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cleanup_interval)
            await self.cleanup()

    def _failed(self, exc: BaseException, doing: str) -> None:
        if isinstance(exc, sqlite3.DatabaseError) and is_corruption(exc):
            if self._resetting is None or self._resetting.done():
                coro = self._recreate(corrupt=True)
                self._resetting = asyncio.get_running_loop().create_task(coro)
            return
        self._health.failed(exc, doing)

    async def _recreate(self, corrupt: bool) -> int:
        """Let running reads finish, then swap in an empty file and new reader threads (an
        old connection must not be busy when it is closed). Returns the entries dropped."""
        old, self._readers = self._readers, None  # gets are misses meanwhile
        if old is not None:
            await asyncio.to_thread(old.shutdown)
        try:
            return await self._in_writer(self.db.recreate, corrupt)
        except Exception as exc:
            self._health.failed(exc, "recreating the file")
            return 0
        finally:
            if self._writer is not None and self._readers is None:
                self._readers = self._reader_pool()

    def _reader_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self._n_readers, thread_name_prefix="cache-disk-reader")

    async def _in_writer(self, fn: Callable[..., T], *args: object) -> T:
        if self._writer is None:
            raise sqlite3.OperationalError("the disk cache is not started")
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            self._failed(exc, "deleting a damaged entry")
