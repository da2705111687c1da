"""UTCDateTime: stored in UTC, always read back timezone-aware, whatever text SQLite holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, MetaData, Table, insert, select
from sqlalchemy.dialects import sqlite

from chatgate.storage import Database
from chatgate.storage.base import UTCDateTime


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("2024-05-01 12:00:00.123456", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01 12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        (None, None),
    ],
)
def test_sqlite_text_reads_back_as_utc(stored: str | None, expected: datetime | None) -> None:
    dialect = sqlite.dialect()
    process = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    assert process is not None
    value = process(stored)
    assert value == expected
    assert value is None or value.tzinfo is UTC


async def test_round_trip_keeps_the_instant(db: Database) -> None:
    table = Table("utc_round_trip", MetaData(), Column("at", UTCDateTime()))
    when = datetime(2024, 5, 1, 15, 30, 1, 42, tzinfo=timezone(timedelta(hours=3)))
    async with db.engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
        await conn.execute(insert(table), [{"at": when}, {"at": None}])
        read = list((await conn.scalars(select(table.c.at))).all())
    assert read == [when, None]
    assert read[0] is not None and read[0].tzinfo is UTC
