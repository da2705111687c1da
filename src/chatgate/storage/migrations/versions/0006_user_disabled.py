"""Users can be disabled: ``users.disabled_at`` (NULL: enabled). A disabled user cannot sign
in, their sessions stop counting, and the request path refuses them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-02-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("disabled_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("users", "disabled_at")
