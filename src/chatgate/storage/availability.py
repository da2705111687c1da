"""The database being unreachable, told apart from other database errors, at the driver's edge.

An outage (PostgreSQL stopped or restarting, the network gone, out of connections, SQLite's file
gone or locked past its busy timeout) is not a bug: each request that needs the database is
answered 503 with Retry-After (:class:`~chatgate.errors.DatabaseUnavailableError`) instead of
500 with a traceback. The translation happens once, in hooks on the engine (``install``): on
connect (``do_connect``: the driver's own errors, e.g. ``ConnectionRefusedError``, never reach
SQLAlchemy's error events), on every statement (``handle_error``) and on a pool checkout that
times out. Other errors (a constraint, a bad statement) pass through untouched.

:class:`Availability` logs an incident once when it begins and once when it ends, however many
requests meet it in between.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from chatgate.errors import DatabaseUnavailableError

log = logging.getLogger("chatgate.storage")

# PostgreSQL SQLSTATE classes and codes that mean "cannot serve now", not "your statement":
# 08 connection exception, 53 insufficient resources (too many connections, disk full),
# 57P01-03 admin shutdown / crash shutdown / cannot connect now (starting up, shutting down).
_PG_CLASSES = ("08", "53")
_PG_CODES = frozenset({"57P01", "57P02", "57P03"})
_SQLITE_MESSAGES = ("database is locked", "unable to open database file", "disk i/o error")


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it wraps) says the database cannot be reached right now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DatabaseUnavailableError | OSError | TimeoutError):
            return True  # refused, reset, unreachable, timed out (a driver's or asyncio's)
        if isinstance(current, sa_exc.TimeoutError):  # no pooled connection came free in time
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str) and (state.startswith(_PG_CLASSES) or state in _PG_CODES):
            return True
        if isinstance(current, sqlite3.OperationalError):
            message = str(current).lower()
            if any(m in message for m in _SQLITE_MESSAGES):
                return True
        wrapped = current.orig if isinstance(current, sa_exc.DBAPIError) else None
        current = wrapped or current.__cause__ or current.__context__
    return False


class Availability:
    """Whether the database answered last time; logs each change once."""

    __slots__ = ("_since", "down")

    def __init__(self) -> None:
        self.down = False
        self._since = 0.0

    def failed(self, exc: BaseException) -> DatabaseUnavailableError:
        """Record an outage (logged when it begins); the error to raise for it."""
        if not self.down:
            self.down = True
            self._since = time.monotonic()
            cause = exc.__cause__ if isinstance(exc, DatabaseUnavailableError) else exc
            log.warning(
                "database unavailable (%s: %s); requests that need it are answered 503 "
                "until it is back",
                type(cause).__name__,
                _short(cause),
            )
        return exc if isinstance(exc, DatabaseUnavailableError) else DatabaseUnavailableError()

    def answered(self) -> None:
        if self.down:
            self.down = False
            log.warning("database is back after %.1f s", time.monotonic() - self._since)


def _short(exc: BaseException | None) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


class Pool(AsyncAdaptedQueuePool):
    """The async queue pool, whose checkout timeout counts as the database being unavailable
    (every connection is stuck connecting or waiting on it)."""

    availability: Availability | None = None

    def _do_get(self) -> Any:
        try:
            return super()._do_get()
        except sa_exc.TimeoutError as exc:
            availability = self.availability or Availability()
            raise availability.failed(exc) from exc


def install(engine: AsyncEngine, availability: Availability) -> None:
    """Translate outages into :class:`DatabaseUnavailableError` on this engine."""
    sync = engine.sync_engine
    if isinstance(sync.pool, Pool):
        sync.pool.availability = availability

    @event.listens_for(sync, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            if is_unavailable(exc):
                raise availability.failed(exc) from exc
            raise

    @event.listens_for(sync, "connect")
    def _connected(_dbapi_connection: Any, _record: Any) -> None:
        availability.answered()

    @event.listens_for(sync, "handle_error")
    def _error(ctx: ExceptionContext) -> None:
        if ctx.is_pre_ping:  # the pool replaces a dead pooled connection by itself
            return
        if not isinstance(ctx.original_exception, Exception):
            # A cancelled task (CancelledError, a BaseException) stays cancelled: the query was
            # interrupted, not refused. Translated, a caller's `except Exception` would swallow
            # the cancel, and a task being stopped at shutdown would go on (a sweeper sleeping
            # an hour, with `chatgate models` waiting on it).
            return
        if ctx.is_disconnect or is_unavailable(ctx.original_exception):
            raise availability.failed(ctx.original_exception) from ctx.original_exception
