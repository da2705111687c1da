"""ORM tables of the chat application: users, login sessions, conversations and messages.

Messages form a tree through ``parent_id`` (edit and regenerate add siblings); ``num`` is an
integer key in creation order that SQLite's FTS5 index uses as its rowid, while ``id`` is the
public identifier. Full-text search indexes are created by the migration (dialect-specific).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from chatgate.storage.base import Base, UTCDateTime, utcnow

# SQLite makes only a column typed exactly INTEGER an alias of the rowid (stable across VACUUM).
RowId = BigInteger().with_variant(Integer(), "sqlite")

ROLES = ("system", "user", "assistant", "summary")
STATUSES = ("done", "streaming", "stopped", "error")


class User(Base):
    """A local account; ``password_hash`` is None for the implicit single-user-mode user.

    The policy columns are those of a client key: None is no limit (``models``: every model).
    ``disabled_at`` set: the user may not sign in or use anything (sessions included).
    """

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    budget_tokens: Mapped[int | None] = mapped_column(BigInteger)
    # SQL NULL, never JSON null, for "every model" (as ClientKey.models).
    models: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    tokens_used: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    budget_cost_nanos: Mapped[int | None] = mapped_column(BigInteger)  # as ClientKey's
    cost_used_nanos: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UserSession(Base):
    """A login session; ``id`` is the sha256 of the cookie's token (the token is never stored)."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(300), default="")
    model: Mapped[str] = mapped_column(String(200))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # No foreign key: a conversation and its messages reference each other.
    active_leaf_id: Mapped[str | None] = mapped_column(String(32))


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation", "conversation_id", "num"),
        Index("ix_messages_generation", "generation_id"),
    )

    num: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    conversation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("conversations.id", ondelete="CASCADE")
    )
    parent_id: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    reasoning: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="done")
    model: Mapped[str | None] = mapped_column(String(200))
    generation_id: Mapped[str | None] = mapped_column(String(32))
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # The context record's id lists, apart from ``context``: not read by the open (0003).
    context_detail: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The document passages an answer's prompt carried (0008): [{file_id, name, page, n, text}].
    citations: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))


def include_name(name: str | None, type_: str, _parent: object) -> bool:
    """Alembic filter: the full-text search objects (SQLite's FTS5 table and its shadow tables,
    PostgreSQL's expression index) are the migration's own, not the ORM's."""
    return not (type_ in ("table", "index") and name is not None and name.startswith(SEARCH))


SEARCH = "messages_fts"
