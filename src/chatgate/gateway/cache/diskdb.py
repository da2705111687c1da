"""The SQLite file behind ``DiskStore``: schema, recovery, checksummed rows and the size bound."""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# A rowid table with a separate key index, not WITHOUT ROWID: rows carry KB-sized values, which
# SQLite advises against in WITHOUT ROWID tables, and the rowid doubles as the write order that
# eviction follows (REPLACE gives a rewritten key a new, larger id). Triggers keep the entry
# count and payload total in one row, so nothing is counted at start and REPLACE needs no
# look-up of the row it displaces (the writer turns recursive_triggers on for that).
SCHEMA = """
CREATE TABLE entries (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL UNIQUE,
    expires_at REAL NOT NULL,
    size INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX entries_expiry ON entries(expires_at);
CREATE TABLE totals (id INTEGER PRIMARY KEY CHECK (id = 0), entries INTEGER, payload INTEGER);
INSERT INTO totals VALUES (0, 0, 0);
"""
TRIGGERS = (
    """CREATE TRIGGER entries_added AFTER INSERT ON entries BEGIN
    UPDATE totals SET entries = entries + 1, payload = payload + NEW.size WHERE id = 0;
END""",
    """CREATE TRIGGER entries_removed AFTER DELETE ON entries BEGIN
    UPDATE totals SET entries = entries - 1, payload = payload - OLD.size WHERE id = 0;
END""",
)
COLUMNS = ["id", "key", "expires_at", "size", "crc", "value"]

GET = "SELECT id, expires_at, crc, value FROM entries WHERE key = ?"
INSERT = "INSERT OR REPLACE INTO entries(key, expires_at, size, crc, value) VALUES (?, ?, ?, ?, ?)"
DELETE_KEY = "DELETE FROM entries WHERE key = ?"
DELETE_ID = "DELETE FROM entries WHERE id = ?"
OLDEST = "SELECT id, size FROM entries ORDER BY id LIMIT ?"
EXPIRED = "SELECT id, size FROM entries WHERE expires_at <= ? ORDER BY expires_at LIMIT ?"
TOTALS = "SELECT entries, payload FROM totals WHERE id = 0"
# One probe down each B-tree's edge: cheap, and where a damaged file usually shows itself.
PROBES = (
    "SELECT max(id) FROM entries",
    "SELECT min(key) FROM entries",
    "SELECT min(expires_at) FROM entries",  # (min and max in one query would scan)
    "SELECT max(expires_at) FROM entries",
)

SHM_AND_SLACK = 64 * 1024  # the -shm file (32 KiB per ~4,000 WAL frames) and rounding
MIN_MAX_BYTES = 1024 * 1024
CORRUPTION_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB

_F64 = struct.Struct("<d")

Op = tuple[bytes, bytes | None, float]  # (key, value or None to delete, expires_at)
Row = tuple[bytes, float, int, int, bytes]  # key, expires_at, size, crc, value


def checksum(key: bytes, value: bytes, expires_at: float) -> int:
    return zlib.crc32(value, zlib.crc32(key + _F64.pack(expires_at)))


def is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in CORRUPTION_CODES


class Unusable(sqlite3.DatabaseError):
    """The file is a database, but not one of ours (or of another schema version)."""


class DiskDB:
    """One cache database file. The writer methods run on one thread, which owns the counters;
    :meth:`read` runs on any reader thread, each with its own connection (WAL: readers never
    wait for the writer).

    Size bound: the files never exceed ``max_bytes``. ``wal_reserve`` (a tenth, 64 KiB to
    256 MiB) is kept for the WAL; the database's pages get the rest (``db_budget``). The WAL
    holds what one transaction changes, and deleting a row costs about as much WAL as writing
    it, so every transaction is capped at ``txn_rows`` rows and ``txn_bytes`` of values
    written plus deleted, and the WAL is checkpointed back to zero bytes whenever it passes a
    quarter of its reserve. Before a batch goes in, the oldest entries are evicted to make
    room for it (estimated from the pages an entry has used so far), and after, the real page
    count is checked again; free pages past the budget go back with an incremental vacuum.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        if max_bytes < MIN_MAX_BYTES:
            raise ValueError(f"the disk cache needs max_bytes >= {MIN_MAX_BYTES}, got {max_bytes}")
        self.path = path
        self.max_bytes = max_bytes
        self.wal_reserve = min(max(max_bytes // 10, 64 * 1024), 256 * 1024 * 1024)
        self.db_budget = max_bytes - self.wal_reserve - SHM_AND_SLACK
        self.page_size = 4096
        self.txn_bytes = self.wal_reserve // 8  # written + deleted, per transaction
        self.txn_rows = max(1, self.wal_reserve // (8 * self.page_size))  # index pages touched
        self.max_value = self.txn_bytes // 2  # larger values are not stored on disk
        self.entries = 0  # as committed; written by the writer thread only
        self.payload = 0  # sum of len(key) + len(value)
        self.disk_bytes = 0  # the files' size after the last write
        self._w: sqlite3.Connection | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._generation = 0

    # -- writer thread ---------------------------------------------------------------------

    def open(self) -> None:
        """Open the file, or, if it is unreadable or not ours, move it aside and start afresh."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            self._close_writer()
            aside = self._move_aside()
            log.warning(
                "cache: %s is unusable (%s); moved it to %s and started an empty cache",
                self.path,
                exc,
                aside,
            )
            self._open()
        self.maintain()

    def recreate(self, corrupt: bool) -> int:
        """Start an empty file, moving a corrupt one aside or deleting a healthy one (that is
        how :meth:`DiskStore.clear` empties the cache: O(1), and the space is given back).
        No read may be running. Returns how many entries the old file held."""
        before = self.entries
        self._close_readers()
        self._close_writer()
        if corrupt:
            aside = self._move_aside()
            log.warning("cache: %s is corrupted; moved it to %s, started empty", self.path, aside)
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self.entries = self.payload = 0
        self._open()
        return before

    def close(self) -> None:
        self._close_readers()
        self._close_writer()

    def write(self, ops: Sequence[Op]) -> None:
        """Apply sets and deletes (one per key), in transactions within the caps."""
        start = 0
        while start < len(ops):
            end, size = start, 0
            while end < len(ops) and end - start < self.txn_rows:
                value = ops[end][1]
                # Counted twice: what a set writes, it will later cost again to evict.
                size += 2 * (len(ops[end][0]) + (len(value) if value is not None else 0))
                if size > self.txn_bytes and end > start:
                    break
                end += 1
            self._write_txn(ops[start:end])
            start = end

    def delete_ids(self, ids: Sequence[int]) -> None:
        self._txn(lambda w: w.executemany(DELETE_ID, [(i,) for i in ids]))

    def remove_expired(self, now: float) -> int:
        """Delete one transaction's worth of expired entries; returns how many."""
        before = self.entries
        self._txn(lambda w: self._delete_some(w, w.execute(EXPIRED, (now, self.txn_rows))))
        return before - self.entries

    def maintain(self) -> None:
        """Evict until the bound holds (``max_bytes`` may have shrunk since the file was
        written), one capped transaction at a time."""
        while True:
            before = self.entries
            self._txn(lambda w: self._make_room(w, 0, capped=True))
            if self.entries in (before, 0):
                return

    # -- reader threads --------------------------------------------------------------------

    def read(self, key: bytes) -> tuple[bytes, float] | int | None:
        """The entry, None when absent, or its row id when its checksum does not match."""
        conn = self._reader()
        row = conn.execute(GET, (key,)).fetchone()
        if row is None:
            return None
        row_id, expires_at, crc, value = row
        if checksum(key, value, expires_at) != crc:
            return int(row_id)
        return value, expires_at

    # -- internals -------------------------------------------------------------------------

    def _open(self) -> None:
        w = self._w = self._connect()
        mode = w.execute("PRAGMA journal_mode").fetchone()[0]  # reads the header: NOTADB here
        version = w.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in w.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version == 0 and not tables:
            w.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes effect before any table
            w.executescript(SCHEMA + ";\n".join(TRIGGERS) + ";")
            w.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION or not {"entries", "totals"} <= tables:
            raise Unusable(f"schema version {version}, tables {sorted(tables)}")
        elif [r[1] for r in w.execute("PRAGMA table_info(entries)")] != COLUMNS:
            raise Unusable("unexpected columns in table entries")
        if mode != "wal":
            w.execute("PRAGMA journal_mode = WAL")
        w.execute("PRAGMA cache_size = -32768")  # 32 MiB: the key index of 1M entries is ~45 MB
        self.page_size = w.execute("PRAGMA page_size").fetchone()[0]
        w.execute(f"PRAGMA journal_size_limit = {self.wal_reserve // 4}")
        w.execute(f"PRAGMA wal_autocheckpoint = {max(4, self.wal_reserve // self.page_size // 4)}")
        w.execute("PRAGMA recursive_triggers = ON")  # REPLACE's deletions fire the trigger
        for probe in PROBES:
            w.execute(probe).fetchall()
        self.entries, self.payload = w.execute(TOTALS).fetchone()
        self.disk_bytes = self._files_size()
        self._generation += 1

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL: a crash loses recent writes, no more
        conn.execute("PRAGMA temp_store = MEMORY")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.generation != self._generation:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA cache_size = -8192")  # 8 MiB of pages per reader
            self._local.conn, self._local.generation = conn, self._generation
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _close_readers(self) -> None:
        # The caller guarantees no read is running (the reader threads have been shut down).
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()

    def _close_writer(self) -> None:
        if self._w is not None:
            try:
                self._w.close()
            finally:
                self._w = None

    def _move_aside(self) -> Path:
        """Keep the latest bad file (with its WAL) as ``<name>.corrupt`` for a post-mortem."""
        aside = self.path.with_name(self.path.name + ".corrupt")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            dst = Path(f"{aside}{suffix}")
            dst.unlink(missing_ok=True)
            if src.exists():
                src.rename(dst)
        return aside

    def _txn(self, body: Callable[[sqlite3.Connection], object]) -> None:
        """Run ``body`` in one write transaction, then give free pages past the budget back to
        the file system and the WAL back to zero bytes if it has grown."""
        w = self._w
        if w is None:
            raise sqlite3.OperationalError("the disk cache is closed")
        self._checkpoint_if_grown(w)  # in case the last one found readers in the way
        w.execute("BEGIN IMMEDIATE")
        try:
            body(w)
            w.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                if w.in_transaction:
                    w.execute("ROLLBACK")
            raise
        self.entries, self.payload = w.execute(TOTALS).fetchone()
        over = w.execute("PRAGMA page_count").fetchone()[0] - self.db_budget // self.page_size
        if over > 0:
            # Its own transaction, run to the end by executescript: a plain execute frees one
            # page only (the pragma returns a row per page freed).
            w.executescript(f"PRAGMA incremental_vacuum({over})")
        self._checkpoint_if_grown(w)
        self.disk_bytes = self._files_size()

    def _checkpoint_if_grown(self, w: sqlite3.Connection) -> None:
        # SQLite's own checkpoints cannot restart the WAL while readers use it, and the file
        # only shrinks at a checkpoint; this one waits for the readers (they are short).
        if self._size("-wal") > self.wal_reserve // 4:
            w.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _write_txn(self, ops: Sequence[Op]) -> None:
        now = time.time()
        rows: list[Row] = []
        deletes: list[tuple[bytes]] = []
        for key, value, expires_at in ops:
            if value is None or expires_at <= now:
                deletes.append((key,))
            else:
                size = len(key) + len(value)
                rows.append((key, expires_at, size, checksum(key, value, expires_at), value))
        incoming = sum(r[2] for r in rows)

        def run(w: sqlite3.Connection) -> None:
            self._make_room(w, incoming)
            w.executemany(DELETE_KEY, deletes)
            w.executemany(INSERT, rows)
            self._make_room(w, 0)

        self._txn(run)

    def _used(self, w: sqlite3.Connection) -> int:
        pages = w.execute("PRAGMA page_count").fetchone()[0]
        free = w.execute("PRAGMA freelist_count").fetchone()[0]
        return int(pages - free) * self.page_size

    def _make_room(self, w: sqlite3.Connection, incoming: int, capped: bool = False) -> None:
        """Evict oldest entries until ``incoming`` payload bytes fit, in pages, in the budget.
        A batch evicts about what it brings; ``capped`` stops after one transaction's worth."""
        for _ in range(100):
            entries, payload = w.execute(TOTALS).fetchone()
            used = self._used(w)
            ratio = min(max(used / payload, 1.0), 3.0) if entries >= 16 else 1.5
            excess = used + incoming * ratio - self.db_budget
            if excess <= 0 or entries == 0:
                return
            n = max(1, math.ceil(excess / max(used / entries, 1.0)))
            if capped:
                self._delete_some(w, w.execute(OLDEST, (min(n, self.txn_rows),)))
                return
            w.executemany(DELETE_ID, [(row[0],) for row in w.execute(OLDEST, (n,)).fetchall()])

    def _delete_some(self, w: sqlite3.Connection, rows: Iterable[tuple[int, int]]) -> None:
        """Delete the given (id, size) rows, stopping at ``txn_bytes`` (but at least one)."""
        total = 0

        def within(row: tuple[int, int]) -> bool:
            nonlocal total
            total += row[1]
            return total <= self.txn_bytes or total == row[1]

        ids = [(row[0],) for row in itertools.takewhile(within, list(rows))]
        w.executemany(DELETE_ID, ids)

    def _size(self, suffix: str) -> int:
        try:
            return os.stat(f"{self.path}{suffix}").st_size
        except FileNotFoundError:
            return 0

    def _files_size(self) -> int:
        return sum(self._size(suffix) for suffix in ("", "-wal", "-shm"))
