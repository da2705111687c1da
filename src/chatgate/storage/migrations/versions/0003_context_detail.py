"""Messages: ``context_detail`` holds the context record's id lists, apart from ``context``.

An answer's record names every message sent to the model; with a 128k window that makes a
conversation's records O(n²), and the open reads ``context``. The lists move to a column the
open does not read. Rows written before keep their lists in ``context`` (read as before).

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column: ALTER TABLE ADD COLUMN on both databases, no table rebuild (SQLite's
    # rebuild would drop the full-text search triggers).
    op.add_column("messages", sa.Column("context_detail", sa.JSON(none_as_null=True)))


def downgrade() -> None:
    # Put the lists back into ``context``, where the earlier code reads them.
    if op.get_bind().dialect.name == "sqlite":
        merged = "json_patch(coalesce(context, '{}'), context_detail)"
    else:
        merged = "(coalesce(context::jsonb, '{}'::jsonb) || context_detail::jsonb)::json"
    op.execute(
        f"UPDATE messages SET context = {merged} "
        "WHERE context_detail IS NOT NULL AND CAST(context_detail AS TEXT) != 'null'"
    )
    op.drop_column("messages", "context_detail")
