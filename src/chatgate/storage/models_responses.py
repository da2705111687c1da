"""ORM table of stored Responses API responses (``store: true``), kept until they expire."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from chatgate.storage.base import Base, UTCDateTime


class StoredResponse(Base):
    """One response and the whole input it answered (the chain's items before it included), so
    a response continues from it alone, however many turns came first.

    ``owner`` is the caller's subject (``k:<key id>``, ``u:<user id>``) or ``''`` for anonymous
    callers; every read is by id *and* owner. ``input`` and ``response`` are JSON text, written
    and served as the door made them (no re-encoding on the way).
    """

    __tablename__ = "responses"
    __table_args__ = (Index("ix_responses_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    previous_response_id: Mapped[str | None] = mapped_column(String(64))
    input: Mapped[str] = mapped_column(Text)
    response: Mapped[str] = mapped_column(Text)
