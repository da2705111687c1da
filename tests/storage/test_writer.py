"""GroupWriter: concurrent writes share one transaction, merged statements keep every row in
order, and a failing write fails only its own caller (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from chatgate.storage import Conversation, Database, Message, User
from chatgate.storage.base import utcnow
from chatgate.storage.writer import GroupWriter

ADD_USER = insert(User)
ADD_MESSAGES = insert(Message)
MOVE_LEAF = (
    update(Conversation)
    .where(Conversation.id == bindparam("b_id"))
    .values(active_leaf_id=bindparam("b_leaf"))
)


def user(name: str) -> dict[str, Any]:
    return {"id": name, "name": name, "password_hash": None, "is_admin": False,
            "created_at": utcnow()}  # fmt: skip


def message(mid: str, cid: str = "c1") -> dict[str, Any]:
    return {"id": mid, "conversation_id": cid, "role": "user", "content": mid,
            "created_at": utcnow(), "updated_at": utcnow()}  # fmt: skip


def count_commits(db: Database) -> list[int]:
    commits = [0]

    @event.listens_for(db.engine.sync_engine, "commit")
    def _commit(_conn: Any) -> None:
        commits[0] += 1

    return commits


async def names(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        return list((await conn.scalars(select(User.name).order_by(User.name))).all())


async def test_concurrent_writes_share_one_transaction(db: Database) -> None:
    writer = GroupWriter(db)
    commits = count_commits(db)
    await asyncio.gather(*(writer.execute((ADD_USER, user(f"u{i:02d}"))) for i in range(40)))
    assert await names(db) == [f"u{i:02d}" for i in range(40)]
    assert commits[0] <= 2  # all forty were queued before the writer ran
    await writer.close()


async def test_merged_writes_keep_their_rows_and_order(db: Database) -> None:
    writer = GroupWriter(db)
    await writer.execute((ADD_USER, user("alice")))
    await writer.execute(
        (insert(Conversation), {"id": "c1", "user_id": "alice", "model": "m", "params": {}})
    )
    # Three writes of the same two statements: merged step by step into two executemany.
    await asyncio.gather(
        *(
            writer.execute(
                (ADD_MESSAGES, [message(f"{w}1"), message(f"{w}2")]),
                (MOVE_LEAF, {"b_id": "c1", "b_leaf": f"{w}2"}),
            )
            for w in "abc"
        )
    )
    async with db.engine.connect() as conn:
        order = (await conn.scalars(select(Message.id).order_by(Message.num))).all()
        leaf = await conn.scalar(select(Conversation.active_leaf_id))
    assert list(order) == ["a1", "a2", "b1", "b2", "c1", "c2"]
    assert leaf == "c2"  # the last write's update ran last
    await writer.close()


async def test_a_failing_write_fails_only_its_caller(db: Database) -> None:
    writer = GroupWriter(db)
    await writer.execute((ADD_USER, user("taken")))
    results = await asyncio.gather(
        writer.execute((ADD_USER, user("first"))),
        writer.execute((ADD_USER, {**user("taken"), "id": "other"})),  # name is unique
        writer.execute((ADD_USER, user("last"))),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], IntegrityError)
    assert await names(db) == ["first", "last", "taken"]
    await writer.close()


async def test_counted_writes_report_matched_rows(db: Database) -> None:
    writer = GroupWriter(db)
    await asyncio.gather(*(writer.execute((ADD_USER, user(n))) for n in ("a", "b", "c")))
    stmt = update(User).where(User.name.in_(["a", "b", "zz"])).values(is_admin=True)
    missing = update(User).where(User.name == "zz").values(is_admin=True)
    assert await asyncio.gather(writer.execute_counted(stmt), writer.execute_counted(missing)) == [
        2,
        0,
    ]
    await writer.close()


async def test_close_writes_what_is_queued_and_later_writes_still_land(db: Database) -> None:
    writer = GroupWriter(db)
    queued = [asyncio.ensure_future(writer.execute((ADD_USER, user(f"q{i}")))) for i in range(5)]
    await asyncio.sleep(0)
    await writer.close()
    await asyncio.gather(*queued)
    await writer.execute((ADD_USER, user("after")))
    assert await names(db) == ["after", "q0", "q1", "q2", "q3", "q4"]


@pytest.mark.parametrize("rows", [0, 1])
async def test_empty_steps_are_skipped(db: Database, rows: int) -> None:
    writer = GroupWriter(db)
    await writer.execute((ADD_USER, [user(f"r{i}") for i in range(rows)]))
    assert await names(db) == [f"r{i}" for i in range(rows)]
    await writer.close()
