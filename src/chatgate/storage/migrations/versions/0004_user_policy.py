"""Users get a client key's policy (rpm, tpm, token budget, model allow-list) and usage is
counted per user too: ``usage_daily.user_id`` joins its primary key.

``user_id`` is ``''`` (NO_USER) for usage without a signed-in user, as ``key_id`` is ``''`` for
usage without a key: NULLs never collide in a key, so such rows could not be upserted.

Revision ID: 0004
Revises: 0003
Create Date: 2026-02-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = ["key_id", "model", "day"]
NEW_KEY = ["key_id", "user_id", "model", "day"]
COUNTERS = "requests, prompt_tokens, completion_tokens"


def upgrade() -> None:
    # Added columns, no rebuild of ``users``: on SQLite a rebuild (drop and rename) of a table
    # other tables reference is what ALTER TABLE ADD COLUMN avoids.
    op.add_column("users", sa.Column("rpm", sa.Integer()))
    op.add_column("users", sa.Column("tpm", sa.Integer()))
    op.add_column("users", sa.Column("budget_tokens", sa.BigInteger()))
    op.add_column("users", sa.Column("models", sa.JSON(none_as_null=True)))
    op.add_column(
        "users",
        sa.Column("tokens_used", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    # SQLite cannot alter a primary key: batch mode copies the table (rows, index) into a new
    # one; PostgreSQL alters it in place. Existing rows get user_id '' (no user).
    with op.batch_alter_table("usage_daily") as batch:
        batch.add_column(
            sa.Column("user_id", sa.String(32), server_default=sa.text("''"), nullable=False)
        )
        batch.drop_constraint("pk_usage_daily", type_="primary")
        batch.create_primary_key("pk_usage_daily", NEW_KEY)


def downgrade() -> None:
    # Rows that differ only by user are summed into one before the key loses user_id.
    op.execute(
        "CREATE TABLE usage_daily_merged AS SELECT key_id, model, day, "
        "SUM(requests) AS requests, SUM(prompt_tokens) AS prompt_tokens, "
        "SUM(completion_tokens) AS completion_tokens "
        "FROM usage_daily GROUP BY key_id, model, day"
    )
    op.execute("DELETE FROM usage_daily")
    with op.batch_alter_table("usage_daily") as batch:
        batch.drop_constraint("pk_usage_daily", type_="primary")
        batch.drop_column("user_id")
        batch.create_primary_key("pk_usage_daily", OLD_KEY)
    op.execute(
        f"INSERT INTO usage_daily (key_id, model, day, {COUNTERS}) "
        f"SELECT key_id, model, day, {COUNTERS} FROM usage_daily_merged"
    )
    op.execute("DROP TABLE usage_daily_merged")
    for column in ("tokens_used", "models", "budget_tokens", "tpm", "rpm"):
        op.drop_column("users", column)
