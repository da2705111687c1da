"""Files: uploads (images, documents) with their bytes, text chunks and embeddings, attached to
messages; ``messages.citations`` (the passages an answer's prompt carried).

Revision ID: 0008
Revises: 0006 (the coordinator rechains it onto 0007 at merge)
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("mime", sa.String(127), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_files_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_files"),
    )
    op.create_index("ix_files_user_created", "files", ["user_id", "created_at"])
    op.create_table(
        "file_parts",
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name="fk_file_parts_file_id_files", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("file_id", "seq", name="pk_file_parts"),
    )
    op.create_table(
        "file_chunks",
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("n", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name="fk_file_chunks_file_id_files", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("file_id", "n", name="pk_file_chunks"),
    )
    op.create_table(
        "message_files",
        sa.Column("message_id", sa.String(32), nullable=False),
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_message_files_message_id_messages",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name="fk_message_files_file_id_files", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("message_id", "file_id", name="pk_message_files"),
    )
    op.create_index("ix_message_files_file", "message_files", ["file_id"])
    op.add_column("messages", sa.Column("citations", sa.JSON(none_as_null=True)))


def downgrade() -> None:
    op.drop_column("messages", "citations")
    op.drop_index("ix_message_files_file", table_name="message_files")
    op.drop_table("message_files")
    op.drop_table("file_chunks")
    op.drop_table("file_parts")
    op.drop_index("ix_files_user_created", table_name="files")
    op.drop_table("files")
