"""UsageRecorder: tallies per key, user, model and day; writes them in one batch to a real
database; tells `on_written` the tokens written per key and per user; keeps a failed batch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from chatgate.gateway.pricing import Cost
from chatgate.gateway.usage import Spent, UsageRecorder
from chatgate.storage import (
    ANONYMOUS,
    NO_USER,
    Database,
    KeyRepository,
    UsageRepository,
    UsageRow,
    User,
    upgrade,
)
from chatgate.storage.base import utc_today, utcnow


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'usage.db'}"
    await upgrade(url)
    async with Database(url) as database:
        async with database.session() as s:
            s.add_all(User(id=f"u_{n}", name=n, created_at=utcnow()) for n in ("ann", "bob"))
        yield database


class Written:
    """An on_written callback that remembers its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Spent], dict[str, Spent]]] = []

    def __call__(self, by_key: dict[str, Spent], by_user: dict[str, Spent]) -> None:
        self.calls.append((by_key, by_user))


async def test_tallies_per_key_and_user_and_reports_both(db: Database) -> None:
    key, _ = await KeyRepository(db).create("k")
    written = Written()
    recorder = UsageRecorder(UsageRepository(db), on_written=written)
    recorder.record(key.id, "chat", 1, 2)  # positional, as the API doors call it
    recorder.record(key.id, "chat", 3, 4, "u_ann")
    recorder.record(key.id, "chat", 5, 6, user_id="u_ann")
    recorder.record(None, "chat", 7, 8, user_id="u_bob")
    recorder.record(None, "chat", 9, 10)
    await recorder.flush()

    today = utc_today()
    rows = await recorder.repo.query()
    assert {
        (r.key_id, r.user_id, r.model, r.day, r.requests, r.prompt_tokens, r.completion_tokens)
        for r in rows
    } == {
        (key.id, NO_USER, "chat", today, 1, 1, 2),
        (key.id, "u_ann", "chat", today, 2, 8, 10),
        (ANONYMOUS, "u_bob", "chat", today, 1, 7, 8),
        (ANONYMOUS, NO_USER, "chat", today, 1, 9, 10),
    }
    assert written.calls == [({key.id: (3 + 18, 0)}, {"u_ann": (18, 0), "u_bob": (15, 0)})]
    totals = await recorder.repo.totals_by_user()
    assert totals["u_ann"].total_tokens == 18 and totals["u_bob"].requests == 1

    await recorder.flush()  # nothing left: no write, no call
    assert len(written.calls) == 1


async def test_on_written_of_keyless_and_userless_requests_is_empty(db: Database) -> None:
    written = Written()
    recorder = UsageRecorder(UsageRepository(db), on_written=written)
    recorder.record(None, "chat", 1, 1)
    await recorder.close()
    assert written.calls == [({}, {})]


class FailingOnce(UsageRepository):
    """A repository whose first write fails (as when the database is briefly away)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.failures = 1

    async def add_batch(self, rows: Iterable[UsageRow]) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("database away")
        await super().add_batch(rows)


async def test_a_failed_write_keeps_the_users_rows(db: Database) -> None:
    written = Written()
    recorder = UsageRecorder(FailingOnce(db), on_written=written)
    recorder.record(None, "chat", 1, 2, user_id="u_ann")
    await recorder.flush()
    assert written.calls == [] and await recorder.repo.query() == []
    recorder.record(None, "chat", 3, 4, user_id="u_ann")
    await recorder.flush()
    (row,) = await recorder.repo.query()
    assert (row.user_id, row.requests, row.prompt_tokens, row.completion_tokens) == (
        "u_ann",
        2,
        4,
        6,
    )
    assert written.calls == [({}, {"u_ann": (10, 0)})]


async def test_cost_and_savings_are_tallied_by_currency_and_reported_for_budgets(
    db: Database,
) -> None:
    key, _ = await KeyRepository(db).create("k")
    written = Written()
    recorder = UsageRecorder(UsageRepository(db), on_written=written)
    usd, rub = Cost(480, "USD", 480), Cost(300, "RUB", 4)  # RUB at an exchange rate
    recorder.record(key.id, "m", 10, 1, "u_ann", cost=usd)
    recorder.record(key.id, "m", 10, 1, "u_ann", cost=usd)
    recorder.record(key.id, "m", 0, 0, "u_ann", saved=usd)  # a cache hit
    recorder.record(key.id, "m", 5, 5)  # unpriced: no currency, the row keeps its own
    recorder.record(key.id, "giga", 3, 0, cost=rub)
    await recorder.flush()
    rows = {(r.user_id, r.model): r for r in await recorder.repo.query()}
    priced = rows[("u_ann", "m")]
    assert (priced.cost_nanos, priced.saved_nanos, priced.currency) == (960, 480, "USD")
    assert rows[(NO_USER, "m")].currency == ""
    assert (rows[(NO_USER, "giga")].cost_nanos, rows[(NO_USER, "giga")].currency) == (300, "RUB")
    # Budgets count the budget-currency worth: 960 + 4.
    assert written.calls == [({key.id: (35, 964)}, {"u_ann": (22, 960)})]
    stored = await KeyRepository(db).get(key.id)
    assert stored is not None and stored.cost_used_nanos == 964
    totals = (await recorder.repo.totals_by_key())[key.id]
    assert totals.cost == {"USD": 960, "RUB": 300} and totals.saved == {"USD": 480}
    # A later unpriced request on the priced row does not erase its currency.
    recorder.record(key.id, "m", 1, 1, "u_ann")
    await recorder.flush()
    rows = {(r.user_id, r.model): r for r in await recorder.repo.query()}
    assert rows[("u_ann", "m")].currency == "USD" and rows[("u_ann", "m")].requests == 4
