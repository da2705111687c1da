"""Usage and cost counters per client key, user, model and UTC day, written in batches as one
upsert."""

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

_COUNTERS = ("requests", "prompt_tokens", "completion_tokens", "cost_nanos", "saved_nanos")
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
    cost_nanos: int = 0  # what the upstream charged, in `currency`
    saved_nanos: int = 0  # what chatgate's cache saved, in `currency`
    currency: str = ""
    budget_nanos: int = 0  # the cost in the budgets' currency (added to keys' and users' use)


@dataclass(frozen=True, slots=True)
class KeyTotals:
    """All-time (or filtered) sums for one client key."""

    key_id: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: dict[str, int] = field(default_factory=dict)  # currency → nano-units spent
    saved: dict[str, int] = field(default_factory=dict)  # currency → nano-units the cache saved

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
    cost: dict[str, int] = field(default_factory=dict)
    saved: dict[str, int] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


# counters (requests, prompt, completion, cost, saved, budget nanos) and the currency
_Sums = tuple[list[int], str]


def _aggregate(rows: Iterable[UsageRow]) -> dict[_Row, _Sums]:
    # One row per unique key: PostgreSQL refuses to upsert the same row twice in a statement,
    # and sorted keys give every writer the same lock order (no deadlocks between batches).
    sums: dict[_Row, _Sums] = {}
    for row in rows:
        key = (row.key_id or ANONYMOUS, row.user_id or NO_USER, row.model, row.day)
        entry = sums.get(key)
        if entry is None:
            entry = sums[key] = ([0, 0, 0, 0, 0, 0], "")
        counters = entry[0]
        counters[0] += row.requests
        counters[1] += row.prompt_tokens
        counters[2] += row.completion_tokens
        counters[3] += row.cost_nanos
        counters[4] += row.saved_nanos
        counters[5] += row.budget_nanos
        if row.currency:
            sums[key] = (counters, row.currency)
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
    # A row priced once keeps its currency; an unpriced request ('') does not erase it.
    added["currency"] = func.coalesce(func.nullif(excluded["currency"], ""), table["currency"])
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
                "requests": n[0],
                "prompt_tokens": n[1],
                "completion_tokens": n[2],
                "cost_nanos": n[3],
                "saved_nanos": n[4],
                "currency": currency,
            }
            for (k, u, m, d), (n, currency) in sums.items()
        ]
        per_key: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # tokens, budget nanos
        per_user: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for (key_id, user_id, _, _), (n, _) in sums.items():
            for owner, per in ((key_id, per_key), (user_id, per_user)):
                if owner != ANONYMOUS:  # == NO_USER
                    per[owner][0] += n[1] + n[2]
                    per[owner][1] += n[5]
        async with self._db.session() as s:
            conn = await s.connection()
            await conn.execute(_upsert(self._db.dialect), params)
            for table, per in ((ClientKey, per_key), (User, per_user)):
                for owner, (tokens, nanos) in sorted(per.items()):
                    if tokens or nanos:
                        await conn.execute(
                            update(table)
                            .where(table.id == owner)
                            .values(
                                tokens_used=table.tokens_used + tokens,
                                cost_used_nanos=table.cost_used_nanos + nanos,
                            )
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
        money = await self._money(UsageDaily.key_id, since, until)
        return {
            key: KeyTotals(key, r, p, c, *money.get(key, ({}, {})))
            for key, (r, p, c) in sums.items()
        }

    async def totals_by_user(
        self, since: date | None = None, until: date | None = None
    ) -> dict[str, UserTotals]:
        """Summed counters per user id (NO_USER included), optionally over since..until."""
        sums = await self._sums(UsageDaily.user_id, since, until)
        money = await self._money(UsageDaily.user_id, since, until)
        return {
            user: UserTotals(user, r, p, c, *money.get(user, ({}, {})))
            for user, (r, p, c) in sums.items()
        }

    async def _sums(
        self, by: InstrumentedAttribute[str], since: date | None, until: date | None
    ) -> dict[str, tuple[int, int, int]]:
        stmt = (
            select(
                by,
                func.sum(UsageDaily.requests),
                func.sum(UsageDaily.prompt_tokens),
                func.sum(UsageDaily.completion_tokens),
            )
            .where(*_between(since, until))
            .group_by(by)
        )
        async with self._db.session() as s:
            result = await s.execute(stmt)
            return {
                owner: (int(r or 0), int(p or 0), int(c or 0)) for owner, r, p, c in result.all()
            }

    async def _money(
        self, by: InstrumentedAttribute[str], since: date | None, until: date | None
    ) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
        """Spent and saved nano-units per owner and currency (priced rows, amounts above 0)."""
        stmt = (
            select(
                by,
                UsageDaily.currency,
                func.sum(UsageDaily.cost_nanos),
                func.sum(UsageDaily.saved_nanos),
            )
            .where(UsageDaily.currency != "", *_between(since, until))
            .group_by(by, UsageDaily.currency)
        )
        out: dict[str, tuple[dict[str, int], dict[str, int]]] = {}
        async with self._db.session() as s:
            for owner, currency, cost, saved in (await s.execute(stmt)).all():
                spent, kept = out.setdefault(owner, ({}, {}))
                if cost:
                    spent[currency] = int(cost)
                if saved:
                    kept[currency] = int(saved)
        return out


def _between(since: date | None, until: date | None) -> list[ColumnElement[bool]]:
    """The conditions for days since..until, inclusive (either may be open)."""
    days = []
    if since is not None:
        days.append(UsageDaily.day >= since)
    if until is not None:
        days.append(UsageDaily.day <= until)
    return days
