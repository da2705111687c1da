"""A database outage is ``DatabaseUnavailableError`` (503) for every caller, logged once per
incident, and over when the database is back; other database errors stay what they are.

PostgreSQL is reached through a TCP proxy the test cuts (the server stopped: connections reset,
new ones refused) and restores. SQLite's outage: its file cannot be opened.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from robustness.outage import TcpProxy
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from chatgate.errors import DatabaseUnavailableError
from chatgate.storage import Database, KeyRepository, upgrade
from chatgate.storage.availability import is_unavailable
from tests.storage.conftest import PgServer, pg_address, require_pg, through


async def test_postgres_outage_is_unavailable_logged_once_then_over(
    pg_server: PgServer | str, caplog: pytest.LogCaptureFixture
) -> None:
    server = require_pg(pg_server)
    url = await server.create_database()
    caplog.set_level(logging.WARNING, logger="chatgate.storage")
    try:
        await upgrade(url)
        with TcpProxy(*pg_address(server)) as proxy:
            async with Database(through(proxy.port, url)) as db:
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
    finally:
        await server.drop_database(url)
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
