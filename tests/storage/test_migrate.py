"""Migrations: create the schema, are idempotent, match the models, survive concurrent starts,
and upgrade databases that hold rows."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import date
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from chatgate.chat.accounts import Accounts
from chatgate.chat.store import ConversationStore
from chatgate.storage import (
    Database,
    KeyRepository,
    UsageRepository,
    UsageRow,
    current_revision,
    head_revision,
    upgrade,
)
from chatgate.storage.base import Base
from chatgate.storage.db import make_engine
from chatgate.storage.migrate import alembic_config, downgrade
from chatgate.storage.models_chat import include_name

TABLES = {
    "client_keys",
    "usage_daily",
    "users",
    "user_sessions",
    "conversations",
    "messages",
    "responses",
    "files",
    "file_parts",
    "file_chunks",
    "message_files",
}
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
    assert await current_revision(db_url) == head_revision() == "0008"


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
    async with Database(db_url) as db, db.engine.connect() as conn:
        # Read as 0002 code would (today's store reads columns added since, e.g. citations).
        result = await conn.execute(text("SELECT context FROM messages ORDER BY num"))
        stored = [json.loads(c) if isinstance(c, str) else c for (c,) in result]
    assert stored[-1] == {"sent_count": 1, "window": 10, "sent": ["u"]}
    assert stored[0] is None


D1 = date(2025, 1, 1)
D2 = date(2025, 1, 2)
# What a 0003 database holds: a key, two users (one the implicit, passwordless) and usage.
ROWS_0003 = [
    "INSERT INTO client_keys (id, name, key_hash, prefix, created_at, tokens_used) "
    "VALUES ('key_a', 'a', 'hash-a', 'sk-cg-aaaa', '2025-01-01 00:00:00', 30)",
    "INSERT INTO users (id, name, password_hash, is_admin, created_at) "
    "VALUES ('u_ann', 'ann', 'x', true, '2025-01-01 00:00:00'), "
    "('u_local', 'local', NULL, false, '2025-01-01 00:00:00')",
    "INSERT INTO usage_daily (key_id, model, day, requests, prompt_tokens, completion_tokens) "
    "VALUES ('key_a', 'chat', '2025-01-01', 2, 10, 20), ('', 'chat', '2025-01-01', 1, 3, 4), "
    "('key_a', 'chat', '2025-01-02', 5, 50, 60)",
]


async def _execute(url: str, *statements: str) -> None:
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


def _usage_key(conn: Connection) -> list[str]:
    return list(inspect(conn).get_pk_constraint("usage_daily")["constrained_columns"])


def _indexes(conn: Connection) -> set[str]:
    return {i["name"] for i in inspect(conn).get_indexes("usage_daily") if i["name"]}


def _counters(rows: list[Any]) -> set[tuple[Any, ...]]:
    return {
        (r.key_id, r.user_id, r.model, r.day, r.requests, r.prompt_tokens, r.completion_tokens)
        for r in rows
    }


async def test_0004_adds_user_policy_and_keeps_usage_rows(db_url: str) -> None:
    """0004 upgrades a database with rows: users get no limits and 0 tokens used, usage rows
    get user '' (none) and the key (key_id, user_id, model, day) the upsert conflicts on."""
    await upgrade(db_url, "0003")
    await _execute(db_url, *ROWS_0003)
    assert await _inspect(db_url, _usage_key) == ["key_id", "model", "day"]
    await upgrade(db_url)
    assert await _inspect(db_url, _usage_key) == ["key_id", "user_id", "model", "day"]
    assert "ix_usage_daily_day" in await _inspect(db_url, _indexes)
    assert await _inspect(db_url, _schema_diff) == []
    async with Database(db_url) as db:
        usage = UsageRepository(db)
        assert _counters(await usage.query()) == {
            ("key_a", "", "chat", D1, 2, 10, 20),
            ("", "", "chat", D1, 1, 3, 4),
            ("key_a", "", "chat", D2, 5, 50, 60),
        }
        accounts = {a.id: a for a in await Accounts(db, "off", True).list_users()}
        assert {
            (a.rpm, a.tpm, a.budget_tokens, a.models, a.tokens_used) for a in accounts.values()
        } == {(None, None, None, None, 0)}
        assert accounts["u_local"].implicit and not accounts["u_ann"].implicit
        # An old row and a user's row of the same key, model and day are two rows now.
        await usage.add_batch(
            [
                UsageRow("key_a", "chat", 1, 1, day=D1),
                UsageRow("key_a", "chat", 7, 8, day=D1, user_id="u_ann"),
            ]
        )
        assert _counters(await usage.query(key_id="key_a", until=D1)) == {
            ("key_a", "", "chat", D1, 3, 11, 21),
            ("key_a", "u_ann", "chat", D1, 1, 7, 8),
        }
        ann = await Accounts(db, "off", True).get("u_ann")
        assert ann is not None and ann.tokens_used == 15
        key = await KeyRepository(db).get("key_a")
        assert key is not None and key.tokens_used == 30 + 2 + 15

    # Back to 0003: a key's rows of several users are summed into one again.
    await downgrade(db_url, "0003")
    assert await _inspect(db_url, _usage_key) == ["key_id", "model", "day"]
    assert "ix_usage_daily_day" in await _inspect(db_url, _indexes)
    engine = make_engine(db_url, null_pool=True)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT key_id, model, day, requests, prompt_tokens, completion_tokens "
                    "FROM usage_daily ORDER BY day, key_id"
                )
            )
            got = {(k, m, str(d), r, p, c) for k, m, d, r, p, c in rows}
            user_columns = {
                c["name"] for c in await conn.run_sync(lambda c: inspect(c).get_columns("users"))
            }
    finally:
        await engine.dispose()
    assert got == {
        ("", "chat", "2025-01-01", 1, 3, 4),
        ("key_a", "chat", "2025-01-01", 4, 18, 29),
        ("key_a", "chat", "2025-01-02", 5, 50, 60),
    }
    assert user_columns == {"id", "name", "password_hash", "is_admin", "created_at"}
    await upgrade(db_url)  # and forward again
    assert await current_revision(db_url) == head_revision()
