"""Usage counters per client key, user, model and UTC day, written in batches as one upsert."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Insert, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute

from chatgate.storage.base import utc_today
from chatgate.storage.db import Database
from chatgate.storage.models import ANONYMOUS, NO_USER, ClientKey, UsageDaily
from chatgate.storage.models_chat import User

_COUNTERS = ("requests", "prompt_tokens", "completion_tokens")
_CONFLICT = ["key_id", "user_id", "model", "day"]

_Row = tuple[str, str, str, date]  # key_id, user_id, model, day (sentinels for None)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Usage to add: `key_id` None (or ANONYMOUS) for requests made without a client key,
    `user_id` None (or NO_USER) for requests made without a signed-in user."""

    key_id: str | None
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 1
    day: date = field(default_factory=utc_today)
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class KeyTotals:
    """All-time (or filtered) sums for one client key."""

    key_id: str
    requests: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class UserTotals:
    """All-time (or filtered) sums for one user."""

    user_id: str
    requests: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


def _aggregate(rows: Iterable[UsageRow]) -> dict[_Row, list[int]]:
    # One row per unique key: PostgreSQL refuses to upsert the same row twice in a statement,
    # and sorted keys give every writer the same lock order (no deadlocks between batches).
    sums: dict[_Row, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        counters = sums[(row.key_id or ANONYMOUS, row.user_id or NO_USER, row.model, row.day)]
        counters[0] += row.requests
        counters[1] += row.prompt_tokens
        counters[2] += row.completion_tokens
    return dict(sorted(sums.items()))


def _upsert(dialect: str) -> Insert:
    """INSERT … ON CONFLICT (key_id, user_id, model, day) DO UPDATE adding to the counters."""
    stmt: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(UsageDaily)
    elif dialect == "sqlite":
        stmt = sqlite.insert(UsageDaily)
    else:
        raise NotImplementedError(f"usage upsert not implemented for {dialect}")
    table = UsageDaily.__table__.c
    excluded = stmt.excluded
    added: dict[str, ColumnElement[Any]] = {
        name: table[name] + excluded[name] for name in _COUNTERS
    }
    return stmt.on_conflict_do_update(index_elements=_CONFLICT, set_=added)


class UsageRepository:
    """Reads and batch-writes the usage_daily counters."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_batch(self, rows: Iterable[UsageRow]) -> None:
        """Add the rows to the daily counters and to each key's and user's tokens_used, in one
        transaction (keys, then users, each in id order: one lock order for every writer)."""
        sums = _aggregate(rows)
        if not sums:
            return
        params = [
            {
                "key_id": k,
                "user_id": u,
                "model": m,
                "day": d,
                "requests": r,
                "prompt_tokens": p,
                "completion_tokens": c,
            }
            for (k, u, m, d), (r, p, c) in sums.items()
        ]
        per_key: dict[str, int] = defaultdict(int)
        per_user: dict[str, int] = defaultdict(int)
        for (key_id, user_id, _, _), (_, prompt, completion) in sums.items():
            if key_id != ANONYMOUS:
                per_key[key_id] += prompt + completion
            if user_id != NO_USER:
                per_user[user_id] += prompt + completion
        async with self._db.session() as s:
            conn = await s.connection()
            await conn.execute(_upsert(self._db.dialect), params)
            for key_id, tokens in sorted(per_key.items()):
                if tokens:
                    await conn.execute(
                        update(ClientKey)
                        .where(ClientKey.id == key_id)
                        .values(tokens_used=ClientKey.tokens_used + tokens)
                    )
            for user_id, tokens in sorted(per_user.items()):
                if tokens:
                    await conn.execute(
                        update(User)
                        .where(User.id == user_id)
                        .values(tokens_used=User.tokens_used + tokens)
                    )

    async def query(
        self,
        key_id: str | None = None,
        since: date | None = None,
        until: date | None = None,
        *,
        user_id: str | None = None,
    ) -> list[UsageDaily]:
        """Daily rows, filtered by key (ANONYMOUS: keyless), by user (NO_USER: without a user)
        and by days since..until, inclusive."""
        stmt = select(UsageDaily).order_by(
            UsageDaily.day, UsageDaily.key_id, UsageDaily.user_id, UsageDaily.model
        )
        if key_id is not None:
            stmt = stmt.where(UsageDaily.key_id == key_id)
        if user_id is not None:
            stmt = stmt.where(UsageDaily.user_id == user_id)
        if since is not None:
            stmt = stmt.where(UsageDaily.day >= since)
        if until is not None:
            stmt = stmt.where(UsageDaily.day <= until)
        async with self._db.session() as s:
            return list(await s.scalars(stmt))

    async def totals_by_key(
        self, since: date | None = None, until: date | None = None
    ) -> dict[str, KeyTotals]:
        """Summed counters per key id (ANONYMOUS included), optionally over since..until."""
        sums = await self._sums(UsageDaily.key_id, since, until)
        return {key: KeyTotals(key, r, p, c) for key, (r, p, c) in sums.items()}

    async def totals_by_user(
        self, since: date | None = None, until: date | None = None
    ) -> dict[str, UserTotals]:
        """Summed counters per user id (NO_USER included), optionally over since..until."""
        sums = await self._sums(UsageDaily.user_id, since, until)
        return {user: UserTotals(user, r, p, c) for user, (r, p, c) in sums.items()}

    async def _sums(
        self, by: InstrumentedAttribute[str], since: date | None, until: date | None
    ) -> dict[str, tuple[int, int, int]]:
        stmt = select(
            by,
            func.sum(UsageDaily.requests),
            func.sum(UsageDaily.prompt_tokens),
            func.sum(UsageDaily.completion_tokens),
        ).group_by(by)
        if since is not None:
            stmt = stmt.where(UsageDaily.day >= since)
        if until is not None:
            stmt = stmt.where(UsageDaily.day <= until)
        async with self._db.session() as s:
            result = await s.execute(stmt)
            return {
                owner: (int(r or 0), int(p or 0), int(c or 0)) for owner, r, p, c in result.all()
            }
