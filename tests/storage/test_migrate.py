"""Migrations: create the schema, are idempotent, match the models, survive concurrent starts."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from chatgate.chat.accounts import Accounts
from chatgate.chat.store import ConversationStore
from chatgate.storage import Database, KeyRepository, current_revision, head_revision, upgrade
from chatgate.storage.base import Base
from chatgate.storage.db import make_engine
from chatgate.storage.migrate import alembic_config, downgrade
from chatgate.storage.models_chat import include_name

TABLES = {"client_keys", "usage_daily", "users", "user_sessions", "conversations", "messages"}
# SQLite full-text search: the FTS5 table and its shadow tables (PostgreSQL uses an index).
FTS_TABLES = {f"messages_fts{s}" for s in ("", "_data", "_idx", "_docsize", "_config")}


async def _inspect(url: str, fn: Any) -> Any:
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names()) - FTS_TABLES


def _schema_diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "include_name": include_name}
    )
    return list(compare_metadata(context, Base.metadata))


async def test_upgrade_creates_tables(db_url: str) -> None:
    assert await current_revision(db_url) is None
    assert await _inspect(db_url, _tables) == set()
    await upgrade(db_url)
    assert await _inspect(db_url, _tables) == TABLES | {"alembic_version"}
    assert await current_revision(db_url) == head_revision() == "0003"


async def test_migrations_match_models(db_url: str) -> None:
    await upgrade(db_url)
    assert await _inspect(db_url, _schema_diff) == []


async def test_upgrade_twice_is_a_noop(db_url: str) -> None:
    await upgrade(db_url)
    async with Database(db_url) as db:
        key, _ = await KeyRepository(db).create("survivor")
    await upgrade(db_url)
    assert await current_revision(db_url) == head_revision()
    async with Database(db_url) as db:
        assert [k.id for k in await KeyRepository(db).list()] == [key.id]


async def test_downgrade_to_base_and_back(db_url: str) -> None:
    await upgrade(db_url)
    await downgrade(db_url, "base")
    assert await _inspect(db_url, _tables) == {"alembic_version"}
    assert await current_revision(db_url) is None
    await upgrade(db_url)
    assert await _inspect(db_url, _tables) == TABLES | {"alembic_version"}


async def test_concurrent_upgrades_in_one_process(db_url: str) -> None:
    await asyncio.gather(*(upgrade(db_url) for _ in range(4)))
    assert await current_revision(db_url) == head_revision()
    assert await _inspect(db_url, _schema_diff) == []


# Each worker imports first, then waits for a common start time, so the upgrades really race.
WORKER = """
import asyncio, sys, time
from chatgate.storage import upgrade
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
asyncio.run(upgrade(sys.argv[1]))
"""


async def test_concurrent_upgrades_in_separate_processes(db_url: str) -> None:
    start = time.time() + 3
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            db_url,
            str(start),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    results = [await p.communicate() for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()
    assert await current_revision(db_url) == head_revision()
    assert await _inspect(db_url, _schema_diff) == []


async def test_alembic_commands_work_from_a_url(db_url: str) -> None:
    """The path developers use (`alembic check`, `revision --autogenerate`) via alembic_config."""
    cfg = alembic_config(db_url)
    await asyncio.to_thread(command.upgrade, cfg, "head")
    await asyncio.to_thread(command.check, cfg)  # raises if the models need a new migration
    assert await current_revision(db_url) == head_revision()


def _message_columns(conn: Connection) -> set[str]:
    return {c["name"] for c in inspect(conn).get_columns("messages")}


async def test_0003_moves_context_lists_apart_and_back(db_url: str) -> None:
    """0003 adds ``context_detail``; going back puts its lists into ``context`` again."""
    await upgrade(db_url, "0002")
    assert "context_detail" not in await _inspect(db_url, _message_columns)
    await upgrade(db_url)
    assert "context_detail" in await _inspect(db_url, _message_columns)
    async with Database(db_url) as db:
        user = await Accounts(db, "off", True).create_user("ann", "a long enough password")
        store = ConversationStore(db)
        conv = await store.create(user.id, {"model": "m"})
        rows = [
            {"id": "u", "role": "user", "content": "hi"},
            {"id": "a", "parent_id": "u", "role": "assistant", "content": "hello",
             "context": {"sent_count": 1, "window": 10}, "context_detail": {"sent": ["u"]}},
        ]  # fmt: skip
        await store.add_messages(conv["id"], rows, "a")
        await store.close()
    await downgrade(db_url, "0002")
    assert "context_detail" not in await _inspect(db_url, _message_columns)
    async with Database(db_url) as db:
        store = ConversationStore(db)
        _, stored = await store.with_messages(user.id, conv["id"])
    assert stored[-1]["context"] == {"sent_count": 1, "window": 10, "sent": ["u"]}
    assert stored[0]["context"] is None
