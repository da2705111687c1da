"""Alembic migrations run from code: no alembic.ini, safe when several processes start at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from chatgate.storage.db import make_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# pg_advisory_lock key serialising migrations across replicas: the bytes of "chatgate".
ADVISORY_LOCK_KEY = int.from_bytes(b"chatgate", "big") & 0x7FFF_FFFF_FFFF_FFFF


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic Config pointing at the packaged migrations (url only for the alembic CLI path)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    """The newest revision shipped with this version of chatgate."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


MIGRATION_WAIT_MS = 600_000


async def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision`; a no-op when it is already there."""
    await _run_locked(url, _command(command.upgrade, revision))


async def downgrade(url: str | URL, revision: str) -> None:
    """Migrate the database at `url` down to `revision` (`base` drops every table)."""
    await _run_locked(url, _command(command.downgrade, revision))


async def current_revision(url: str | URL) -> str | None:
    """The revision the database at `url` is at, or None before the first migration."""
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )
    finally:
        await engine.dispose()


def _command(fn: Callable[[Config, str], None], revision: str) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        fn(cfg, revision)

    return run


async def _run_locked(url: str | URL, run: Callable[[Connection], None]) -> None:
    """Run `run(sync_connection)` in one transaction, holding a lock other migrators wait on.

    The database lock also serialises callers inside one process, which matters: Alembic's
    `op` and `context` are process-wide proxies that two interleaved runs would clobber.
    """
    # Another migrator may hold the lock for as long as its migrations take (seconds on a busy
    # machine, times the number waiting): wait as PostgreSQL's advisory lock does, not 10 s.
    engine = make_engine(url, null_pool=True, busy_timeout_ms=MIGRATION_WAIT_MS)
    try:
        async with engine.connect() as conn:
            postgres = conn.dialect.name == "postgresql"
            if postgres:
                await _advisory(conn, "pg_advisory_lock")
            try:
                if conn.dialect.name == "sqlite":
                    # Take SQLite's write lock up front so a second process waits (busy timeout)
                    # instead of racing to create alembic_version.
                    await conn.exec_driver_sql("BEGIN IMMEDIATE")
                await conn.run_sync(run)
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise
            finally:
                if postgres:
                    await _advisory(conn, "pg_advisory_unlock")
    finally:
        await engine.dispose()


async def _advisory(conn: AsyncConnection, function: str) -> None:
    await conn.execute(text(f"SELECT {function}(:key)"), {"key": ADVISORY_LOCK_KEY})
    await conn.commit()
