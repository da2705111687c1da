"""Money: usage rows carry what the upstream charged and what chatgate's cache saved
(``cost_nanos``, ``saved_nanos``, in nano-units of ``currency``); keys and users get a budget in
currency (``budget_cost_nanos``, NULL: none) and its counter (``cost_used_nanos``).

Added columns only (no table rebuild), with server defaults, so existing rows read as free.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.add_column("usage_daily", _counter("cost_nanos"))
    op.add_column("usage_daily", _counter("saved_nanos"))
    op.add_column(
        "usage_daily",
        sa.Column("currency", sa.String(8), server_default=sa.text("''"), nullable=False),
    )
    for table in ("client_keys", "users"):
        op.add_column(table, sa.Column("budget_cost_nanos", sa.BigInteger()))
        op.add_column(table, _counter("cost_used_nanos"))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), as 0006: a batch rebuild of ``users`` would touch the
    # tables that reference it.
    for table in ("users", "client_keys"):
        op.drop_column(table, "cost_used_nanos")
        op.drop_column(table, "budget_cost_nanos")
    for column in ("currency", "saved_nanos", "cost_nanos"):
        op.drop_column("usage_daily", column)
