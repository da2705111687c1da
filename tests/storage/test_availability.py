"""A database outage is ``DatabaseUnavailableError`` (503) for every caller, logged once per
incident, and over when the database is back; other database errors stay what they are.

PostgreSQL is reached through a TCP proxy the test cuts (the server stopped: connections reset,
new ones refused) and restores. SQLite's outage: its file cannot be opened.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from robustness.outage import TcpProxy
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from chatgate.errors import DatabaseUnavailableError
from chatgate.storage import Database, KeyRepository
from chatgate.storage.availability import is_unavailable
from tests.storage.conftest import PgServer, require_pg


async def test_postgres_outage_is_unavailable_logged_once_then_over(
    proxied_db: tuple[TcpProxy, Database], caplog: pytest.LogCaptureFixture
) -> None:
    proxy, db = proxied_db
    caplog.set_level(logging.WARNING, logger="chatgate.storage")
    keys = KeyRepository(db)
    await keys.create("before")
    proxy.cut()
    for _ in range(5):  # reads, on pooled connections that died and on new ones
        with pytest.raises(DatabaseUnavailableError) as caught:
            await keys.list()
    with pytest.raises(DatabaseUnavailableError):
        await keys.create("during")
    assert not await db.ping()
    assert caught.value.status == 503 and caught.value.headers()["Retry-After"]
    proxy.restore()
    assert [k.name for k in await keys.list()] == ["before"]
    assert await db.ping()
    # A mistake is not an outage.
    with pytest.raises(DBAPIError) as mistake:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT * FROM no_such_table"))
    assert not isinstance(mistake.value, DatabaseUnavailableError)
    assert not is_unavailable(mistake.value)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("database unavailable" in m for m in messages) == 1, messages
    assert sum("database is back" in m for m in messages) == 1, messages


async def test_sqlite_file_gone_is_unavailable(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'chatgate.db'}"
    async with Database(url) as db:
        (tmp_path / "gone").rmdir()  # created by the engine; now it cannot open the file
        with pytest.raises(DatabaseUnavailableError):
            await KeyRepository(db).list()
        assert not await db.ping()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_cancelled_query_stays_cancelled(
    backend: str, tmp_path: Path, pg_server: PgServer | str
) -> None:
    """Cancelling a task mid-query raises CancelledError in it, never the 503 error (which a
    caller's ``except Exception`` would swallow, so the task would not stop)."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'chatgate.db'}"
        slow = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000000) "
            "SELECT count(*) FROM n"
        )
    else:
        server = require_pg(pg_server)
        url = await server.create_database()
        slow = "SELECT pg_sleep(5)"
    try:
        await _cancel_midway(url, slow)
    finally:
        if backend == "postgresql":
            await server.drop_database(url)


async def _cancel_midway(url: str, slow: str) -> None:
    async with Database(url) as db:

        async def query() -> None:
            async with db.engine.connect() as conn:
                await conn.execute(text(slow))

        task = asyncio.create_task(query())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await db.ping()  # and the database is not taken for gone
