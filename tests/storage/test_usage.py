"""UsageRepository: batched upserts accumulate per key/user/model/day, feed keys' and users'
budgets, and filter."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from sqlalchemy import select

from chatgate.storage import (
    ANONYMOUS,
    NO_USER,
    Database,
    KeyRepository,
    UsageDaily,
    UsageRepository,
    UsageRow,
    User,
)
from chatgate.storage.base import utc_today, utcnow

D1 = date(2025, 1, 1)
D2 = date(2025, 1, 2)
D3 = date(2025, 1, 3)


def _table(rows: list[UsageDaily]) -> set[tuple[str, str, date, int, int, int]]:
    return {
        (r.key_id, r.model, r.day, r.requests, r.prompt_tokens, r.completion_tokens) for r in rows
    }


async def test_upsert_accumulates_across_batches_models_and_days(db: Database) -> None:
    keys = KeyRepository(db)
    usage = UsageRepository(db)
    key, _ = await keys.create("alice")
    await usage.add_batch(
        [
            UsageRow(key.id, "chat", 10, 5, day=D1),
            UsageRow(key.id, "chat", 1, 1, day=D1),  # same row twice in one batch
            UsageRow(key.id, "reasoner", 7, 3, day=D1),
            UsageRow(key.id, "chat", 2, 2, day=D2),
        ]
    )
    await usage.add_batch([UsageRow(key.id, "chat", 100, 50, requests=3, day=D1)])
    assert _table(await usage.query()) == {
        (key.id, "chat", D1, 5, 111, 56),
        (key.id, "reasoner", D1, 1, 7, 3),
        (key.id, "chat", D2, 1, 2, 2),
    }
    stored = await keys.get(key.id)
    assert stored is not None and stored.tokens_used == 111 + 56 + 7 + 3 + 2 + 2


async def test_anonymous_usage(db: Database) -> None:
    keys = KeyRepository(db)
    usage = UsageRepository(db)
    key, _ = await keys.create("alice")
    await usage.add_batch([UsageRow(None, "chat", 3, 4, day=D1), UsageRow(key.id, "chat", 1, 1)])
    await usage.add_batch(
        [UsageRow(None, "chat", 3, 4, day=D1), UsageRow(ANONYMOUS, "chat", 1, 0, day=D1)]
    )
    anonymous = await usage.query(key_id=ANONYMOUS)
    assert _table(anonymous) == {(ANONYMOUS, "chat", D1, 3, 7, 8)}
    stored = await keys.get(key.id)
    assert stored is not None and stored.tokens_used == 2  # anonymous tokens charge no key


async def test_default_day_is_today_utc(db: Database) -> None:
    usage = UsageRepository(db)
    await usage.add_batch([UsageRow(None, "chat", 1, 1)])
    assert [r.day for r in await usage.query()] == [utc_today()]


async def test_empty_batch_is_a_noop(db: Database) -> None:
    usage = UsageRepository(db)
    await usage.add_batch([])
    assert await usage.query() == []


async def test_big_counters(db: Database) -> None:
    keys = KeyRepository(db)
    usage = UsageRepository(db)
    key, _ = await keys.create("heavy")
    big = 3_000_000_000  # beyond 32-bit integers
    await usage.add_batch([UsageRow(key.id, "chat", big, big, day=D1)])
    await usage.add_batch([UsageRow(key.id, "chat", big, 0, day=D1)])
    [row] = await usage.query()
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (2 * big, big, 3 * big)
    stored = await keys.get(key.id)
    assert stored is not None and stored.tokens_used == 3 * big


async def test_concurrent_batches_lose_nothing(db: Database) -> None:
    keys = KeyRepository(db)
    usage = UsageRepository(db)
    a, _ = await keys.create("a")
    b, _ = await keys.create("b")
    batch = [UsageRow(a.id, "chat", 1, 2, day=D1), UsageRow(b.id, "chat", 3, 4, day=D1)]
    await asyncio.gather(*(usage.add_batch(batch if i % 2 else batch[::-1]) for i in range(20)))
    assert _table(await usage.query()) == {
        (a.id, "chat", D1, 20, 20, 40),
        (b.id, "chat", D1, 20, 60, 80),
    }
    assert [(k.id, k.tokens_used) for k in await keys.list()] == [(a.id, 60), (b.id, 140)]


async def test_query_filters(db: Database) -> None:
    keys = KeyRepository(db)
    usage = UsageRepository(db)
    a, _ = await keys.create("a")
    b, _ = await keys.create("b")
    await usage.add_batch(
        [UsageRow(k, "chat", 1, 1, day=d) for k in (a.id, b.id, None) for d in (D1, D2, D3)]
    )
    assert len(await usage.query()) == 9
    assert {(r.key_id, r.day) for r in await usage.query(key_id=a.id)} == {
        (a.id, D1),
        (a.id, D2),
        (a.id, D3),
    }
    assert {r.day for r in await usage.query(since=D2)} == {D2, D3}
    assert {r.day for r in await usage.query(until=D2)} == {D1, D2}
    assert _table(await usage.query(key_id=b.id, since=D2, until=D2)) == {
        (b.id, "chat", D2, 1, 1, 1)
    }
    assert await usage.query(since=D3 + timedelta(days=1)) == []
    assert await usage.query(key_id="key_missing") == []
    rows = await usage.query()
    assert [(r.day, r.key_id) for r in rows] == sorted((r.day, r.key_id) for r in rows)


async def test_totals_by_key(db: Database) -> None:
    keys = KeyRepository(db)
    usage = UsageRepository(db)
    a, _ = await keys.create("a")
    await usage.add_batch(
        [
            UsageRow(a.id, "chat", 10, 1, day=D1),
            UsageRow(a.id, "reasoner", 20, 2, requests=2, day=D2),
            UsageRow(None, "chat", 5, 5, day=D2),
        ]
    )
    totals = await usage.totals_by_key()
    assert set(totals) == {a.id, ANONYMOUS}
    assert (totals[a.id].requests, totals[a.id].prompt_tokens, totals[a.id].completion_tokens) == (
        3,
        30,
        3,
    )
    assert totals[a.id].total_tokens == 33
    assert totals[ANONYMOUS].total_tokens == 10
    assert (await usage.totals_by_key(since=D2))[a.id].prompt_tokens == 20
    assert await usage.totals_by_key(until=D1 - timedelta(days=1)) == {}


async def _users(db: Database, *names: str) -> list[str]:
    async with db.session() as s:
        s.add_all(User(id=f"u_{n}", name=n, created_at=utcnow()) for n in names)
    return [f"u_{n}" for n in names]


async def _tokens_used(db: Database) -> dict[str, int]:
    async with db.session() as s:
        return {u.id: u.tokens_used for u in await s.scalars(select(User))}


def _user_table(rows: list[UsageDaily]) -> set[tuple[str, str, str, date, int, int, int]]:
    return {
        (r.key_id, r.user_id, r.model, r.day, r.requests, r.prompt_tokens, r.completion_tokens)
        for r in rows
    }


async def test_users_get_rows_of_their_own_and_tokens_used(db: Database) -> None:
    keys = KeyRepository(db)
    usage = UsageRepository(db)
    key, _ = await keys.create("alice")
    ann, bob = await _users(db, "ann", "bob")
    await usage.add_batch(
        [
            UsageRow(None, "chat", 10, 5, day=D1, user_id=ann),
            UsageRow(None, "chat", 1, 1, day=D1, user_id=ann),  # same row twice in one batch
            UsageRow(None, "chat", 2, 2, day=D1, user_id=bob),
            UsageRow(key.id, "chat", 3, 3, day=D1, user_id=ann),  # a key and a user
            UsageRow(key.id, "chat", 4, 4, day=D1),
            UsageRow(None, "chat", 6, 6, day=D1, user_id=NO_USER),
        ]
    )
    await usage.add_batch([UsageRow(None, "chat", 100, 50, requests=3, day=D1, user_id=ann)])
    assert _user_table(await usage.query()) == {
        (ANONYMOUS, ann, "chat", D1, 5, 111, 56),
        (ANONYMOUS, bob, "chat", D1, 1, 2, 2),
        (key.id, ann, "chat", D1, 1, 3, 3),
        (key.id, NO_USER, "chat", D1, 1, 4, 4),
        (ANONYMOUS, NO_USER, "chat", D1, 1, 6, 6),
    }
    assert await _tokens_used(db) == {ann: 111 + 56 + 6, bob: 4}
    stored = await keys.get(key.id)
    assert stored is not None and stored.tokens_used == 6 + 8


async def test_an_unknown_user_is_counted_but_charges_nobody(db: Database) -> None:
    usage = UsageRepository(db)
    (ann,) = await _users(db, "ann")
    await usage.add_batch([UsageRow(None, "chat", 1, 2, day=D1, user_id="u_gone")])
    assert _user_table(await usage.query()) == {(ANONYMOUS, "u_gone", "chat", D1, 1, 1, 2)}
    assert await _tokens_used(db) == {ann: 0}


async def test_concurrent_batches_of_users_lose_nothing(db: Database) -> None:
    usage = UsageRepository(db)
    keys = KeyRepository(db)
    key, _ = await keys.create("k")
    ann, bob = await _users(db, "ann", "bob")
    batch = [
        UsageRow(key.id, "chat", 1, 2, day=D1, user_id=ann),
        UsageRow(None, "chat", 3, 4, day=D1, user_id=bob),
        UsageRow(key.id, "chat", 1, 0, day=D1, user_id=bob),
    ]
    await asyncio.gather(*(usage.add_batch(batch if i % 2 else batch[::-1]) for i in range(20)))
    assert await _tokens_used(db) == {ann: 60, bob: 160}
    stored = await keys.get(key.id)
    assert stored is not None and stored.tokens_used == 80


async def test_query_by_user(db: Database) -> None:
    usage = UsageRepository(db)
    ann, bob = await _users(db, "ann", "bob")
    await usage.add_batch(
        [UsageRow(None, "chat", 1, 1, day=d, user_id=u) for u in (ann, bob, None) for d in (D1, D2)]
    )
    assert {(r.user_id, r.day) for r in await usage.query(user_id=ann)} == {(ann, D1), (ann, D2)}
    assert {r.user_id for r in await usage.query(user_id=NO_USER)} == {NO_USER}
    assert [r.user_id for r in await usage.query(None, D2, D2, user_id=bob)] == [bob]
    assert await usage.query(key_id="key_x", user_id=ann) == []


async def test_totals_by_user(db: Database) -> None:
    keys = KeyRepository(db)
    usage = UsageRepository(db)
    key, _ = await keys.create("k")
    (ann,) = await _users(db, "ann")
    await usage.add_batch(
        [
            UsageRow(None, "chat", 10, 1, day=D1, user_id=ann),
            UsageRow(key.id, "reasoner", 20, 2, requests=2, day=D2, user_id=ann),
            UsageRow(key.id, "chat", 5, 5, day=D2),
        ]
    )
    totals = await usage.totals_by_user()
    assert set(totals) == {ann, NO_USER}
    mine = totals[ann]
    assert (mine.user_id, mine.requests, mine.prompt_tokens, mine.completion_tokens) == (
        ann,
        3,
        30,
        3,
    )
    assert mine.total_tokens == 33
    assert totals[NO_USER].total_tokens == 10
    assert (await usage.totals_by_user(since=D2))[ann].prompt_tokens == 20
    assert await usage.totals_by_user(until=D1 - timedelta(days=1)) == {}
    # The per-key totals still add up every user's rows of a key.
    assert (await usage.totals_by_key())[key.id].total_tokens == 22 + 10
