"""Database: URL rewriting, SQLite pragmas, unit-of-work sessions, ping."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from chatgate.storage import DEFAULT_URL, Database, normalize_url
from chatgate.storage.models import ClientKey


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        (DEFAULT_URL, "sqlite+aiosqlite"),
        ("sqlite:///./x.db", "sqlite+aiosqlite"),
        ("sqlite+pysqlite:///x.db", "sqlite+aiosqlite"),
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg2://u@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_normalize_url_uses_async_drivers(given: str, driver: str) -> None:
    url = normalize_url(given)
    assert url.drivername == driver
    assert url.database == normalize_url(given).database


def test_normalize_url_keeps_everything_else() -> None:
    url = normalize_url("postgresql://user:p%40ss@db.example:6543/chat?ssl=require")
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "user",
        "p@ss",
        "db.example",
        6543,
        "chat",
    )
    assert url.query == {"ssl": "require"}


def test_repr_hides_password() -> None:
    assert "secret" not in repr(Database("postgresql://u:secret@h/db"))


async def test_sqlite_pragmas_and_parent_dir(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "chatgate.db"
    async with Database(f"sqlite:///{path}") as db:
        assert db.dialect == "sqlite"
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 10_000
    assert path.exists()


async def test_ping(db: Database) -> None:
    assert await db.ping()


async def test_ping_false_when_unreachable_or_closed(tmp_path: Path) -> None:
    async with Database("postgresql+asyncpg://nobody@127.0.0.1:9/none", ping_timeout=5) as db:
        assert not await db.ping()
    closed = Database(f"sqlite:///{tmp_path / 'x.db'}")
    assert not await closed.ping()
    with pytest.raises(RuntimeError, match="connect"):
        async with closed.session():
            pass


async def test_session_commits_or_rolls_back(db: Database) -> None:
    def key(key_id: str) -> ClientKey:
        return ClientKey(
            id=key_id, name=key_id, key_hash=key_id.ljust(64, "0")[:64], prefix="sk-cg-xxxx"
        )

    async with db.session() as s:
        s.add(key("committed"))
    with pytest.raises(ZeroDivisionError):
        async with db.session() as s:
            s.add(key("rolledback"))
            await s.flush()
            _ = 1 / 0
    async with db.session() as s:
        assert await s.get(ClientKey, "committed") is not None
        assert await s.get(ClientKey, "rolledback") is None


async def test_connect_and_close_are_idempotent(db_url: str) -> None:
    db = Database(db_url)
    await db.connect()
    engine = db.engine
    await db.connect()
    assert db.engine is engine
    await db.close()
    await db.close()
    with pytest.raises(RuntimeError):
        _ = db.engine
