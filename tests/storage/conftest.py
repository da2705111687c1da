"""Storage fixtures: each test runs on real SQLite (tmp_path) and a throwaway PostgreSQL database.

PostgreSQL comes from CHATGATE_TEST_POSTGRES_URL or the loopback server (users postgres/root).
Each test session picks a random `chatgate_test_<hex>` prefix; each test gets its own database
under it, dropped afterwards, so runs never collide. PostgreSQL unreachable: those tests skip,
or fail when CI=true.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from robustness.outage import TcpProxy
from sqlalchemy.engine import make_url

from chatgate.storage import Database, upgrade

PG_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql://root@127.0.0.1:5432/postgres",
)
BACKENDS = ("sqlite", "postgresql")


@dataclass
class PgServer:
    """A reachable PostgreSQL server and this session's database-name prefix."""

    admin_dsn: str
    prefix: str = field(default_factory=lambda: f"chatgate_test_{secrets.token_hex(4)}")
    count: int = 0

    async def create_database(self) -> str:
        self.count += 1
        name = f"{self.prefix}_{self.count}"
        await self._admin(f'CREATE DATABASE "{name}"')
        return make_url(self.admin_dsn).set(database=name).render_as_string(hide_password=False)

    async def drop_database(self, url: str) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    async def drop_leftovers(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            names = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", self.prefix + "%"
            )
            for row in names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        finally:
            await conn.close()

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


async def _find_pg() -> tuple[str | None, str]:
    override = os.environ.get("CHATGATE_TEST_POSTGRES_URL")
    candidates = (override,) if override else PG_CANDIDATES
    errors = []
    for dsn in candidates:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            errors.append(f"{make_url(dsn).render_as_string()}: {exc}")
            continue
        await conn.close()
        return dsn, ""
    return None, "PostgreSQL not reachable (" + "; ".join(errors) + ")"


@pytest.fixture(scope="session")
async def pg_server() -> AsyncIterator[PgServer | str]:
    """The PostgreSQL server, or the reason it is unavailable."""
    dsn, reason = await _find_pg()
    if dsn is None:
        yield reason
        return
    server = PgServer(dsn)
    try:
        yield server
    finally:
        await server.drop_leftovers()


def require_pg(pg_server: PgServer | str) -> PgServer:
    """The server, or skip (fail under CI=true) with the reason it is missing."""
    if isinstance(pg_server, PgServer):
        return pg_server
    if os.environ.get("CI") == "true":
        pytest.fail(f"{pg_server}; CI=true requires PostgreSQL")
    pytest.skip(f"{pg_server}; set CHATGATE_TEST_POSTGRES_URL or start PostgreSQL")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def db_url(backend: str, tmp_path: Path, pg_server: PgServer | str) -> AsyncIterator[str]:
    """A URL of an empty database of the backend under test."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'chatgate.db'}"
        return
    server = require_pg(pg_server)
    url = await server.create_database()
    try:
        yield url
    finally:
        await server.drop_database(url)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A connected Database, migrated to head."""
    await upgrade(db_url)
    database = Database(db_url)
    await database.connect()
    try:
        yield database
    finally:
        await database.close()


def through(proxy_port: int, url: str) -> str:
    """``url`` with its host and port replaced by a local proxy's."""
    return (
        make_url(url).set(host="127.0.0.1", port=proxy_port).render_as_string(hide_password=False)
    )


def pg_address(server: PgServer) -> tuple[str, int]:
    parsed = make_url(server.admin_dsn)
    return parsed.host or "127.0.0.1", parsed.port or 5432


@pytest.fixture
async def proxied_db(pg_server: PgServer | str) -> AsyncIterator[tuple[TcpProxy, Database]]:
    """A migrated PostgreSQL database reached through a TCP proxy that the test cuts and
    restores (an outage), and a Database connected through it; dropped afterwards."""
    server = require_pg(pg_server)
    url = await server.create_database()
    try:
        await upgrade(url)
        with TcpProxy(*pg_address(server)) as proxy:
            async with Database(through(proxy.port, url)) as db:
                yield proxy, db
    finally:
        await server.drop_database(url)
