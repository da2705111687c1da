"""The async database: engine and sessions for SQLite (default) or PostgreSQL, chosen by URL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from chatgate.storage.availability import Availability, Pool, install

DEFAULT_URL = "sqlite+aiosqlite:///./chatgate.db"

# Sync or driverless spellings people paste, mapped to the async driver we ship.
_ASYNC_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
}


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL, rewriting `postgresql://` and `sqlite:///` to the async drivers."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def make_engine(
    url: str | URL,
    *,
    busy_timeout_ms: int = 10_000,
    null_pool: bool = False,
    echo: bool = False,
    availability: Availability | None = None,
    connect_timeout: float = 5.0,
) -> AsyncEngine:
    """An AsyncEngine for `url`; on SQLite with WAL, a busy timeout and foreign keys switched on.
    With ``availability``, an outage raises ``DatabaseUnavailableError`` (see
    :mod:`chatgate.storage.availability`)."""
    parsed = normalize_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if null_pool:
        kwargs["poolclass"] = NullPool
    if parsed.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
        # asyncpg waits 60 s for an unreachable host by default: each request would too.
        kwargs["connect_args"] = {"timeout": connect_timeout}
        if not null_pool and availability is not None:
            kwargs["poolclass"] = Pool
    engine = create_async_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        _install_sqlite_pragmas(engine, busy_timeout_ms)
    if availability is not None:
        install(engine, availability)
    return engine


def _install_sqlite_pragmas(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock another process may hold.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            # WAL is a property of the file: switch only when it is not WAL yet. Switching
            # takes an exclusive lock, and a connection asking for it while another holds a
            # write transaction is refused at once ("database is locked"; no busy wait, which
            # could deadlock) — every connection after the first one would risk that.
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() != "wal":
                _switch_to_wal(cursor, busy_timeout_ms / 1000)
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()


def _switch_to_wal(cursor: Any, timeout: float) -> None:
    """Switch a new file to WAL, waiting (up to the busy timeout) while another connection holds
    a write lock: SQLite refuses the switch at once then, and a fresh file opened by several
    connections at once (concurrent migrations) would fail with "database is locked"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as exc:  # the driver's OperationalError, wrapped or not
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(0.01)


class Database:
    """An AsyncEngine plus session factory; `connect()` once at start-up, `close()` at shutdown."""

    def __init__(
        self,
        url: str | URL = DEFAULT_URL,
        *,
        busy_timeout_ms: int = 10_000,
        ping_timeout: float = 2.0,
    ) -> None:
        self.url = normalize_url(url)
        self._busy_timeout_ms = busy_timeout_ms
        self._ping_timeout = ping_timeout
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self.availability = Availability()  # an outage: DatabaseUnavailableError, logged once

    @property
    def dialect(self) -> str:
        """The backend name: `sqlite` or `postgresql`."""
        return self.url.get_backend_name()

    @property
    def engine(self) -> AsyncEngine:
        """The engine; raises if `connect()` has not been awaited."""
        if self._engine is None:
            raise RuntimeError("Database is not connected; await db.connect() first")
        return self._engine

    async def connect(self) -> None:
        """Create the engine and session factory (idempotent); connections open lazily."""
        if self._engine is None:
            self._engine = make_engine(
                self.url, busy_timeout_ms=self._busy_timeout_ms, availability=self.availability
            )
            self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)

    async def close(self) -> None:
        """Dispose of the engine and its pooled connections."""
        if self._engine is not None:
            engine, self._engine, self._sessions = self._engine, None, None
            await engine.dispose()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits when the block ends, rolls back if it raises."""
        if self._sessions is None:
            raise RuntimeError("Database is not connected; await db.connect() first")
        async with self._sessions.begin() as session:
            yield session

    async def ping(self) -> bool:
        """Whether a trivial query succeeds within `ping_timeout` seconds (for /ready)."""
        try:
            async with asyncio.timeout(self._ping_timeout), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            self.availability.failed(exc)
            return False
        self.availability.answered()
        return True

    async def __aenter__(self) -> Database:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"
