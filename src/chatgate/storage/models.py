"""ORM tables: client (virtual) keys and per-key/user/model/day usage and cost counters."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from chatgate.storage.base import Base, UTCDateTime, utcnow

# Usage of requests made without a client key. A sentinel instead of NULL because NULLs never
# collide in a unique key, so anonymous rows could not be upserted.
ANONYMOUS = ""
# Usage not made by a signed-in user (API calls with or without a key), for the same reason.
NO_USER = ""


class ClientKey(Base):
    """A virtual key handed to a client; only the sha256 of the secret is stored."""

    __tablename__ = "client_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    budget_tokens: Mapped[int | None] = mapped_column(BigInteger)
    # None allows every model; JSON null would be ambiguous, so store SQL NULL.
    models: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    tokens_used: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    # Money in nano-units (1e-9) of the budgets' currency (``pricing.currency``).
    budget_cost_nanos: Mapped[int | None] = mapped_column(BigInteger)
    cost_used_nanos: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))

    def is_active(self, now: datetime | None = None) -> bool:
        """Not revoked and not expired at `now` (default: the current time)."""
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > (now or utcnow())

    def allows_model(self, model: str) -> bool:
        """Whether the model allow-list (None = all models) admits `model`."""
        return self.models is None or model in self.models

    @property
    def budget_left(self) -> int | None:
        """Tokens left in the budget (never negative), or None without a budget."""
        if self.budget_tokens is None:
            return None
        return max(0, self.budget_tokens - self.tokens_used)


class UsageDaily(Base):
    """Request and token counters of one client key (or ANONYMOUS) and one user (or NO_USER)
    for one model and UTC day."""

    __tablename__ = "usage_daily"
    __table_args__ = (Index("ix_usage_daily_day", "day"),)

    # No foreign keys: the sentinels have no rows; keys are revoked, not deleted.
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(32), primary_key=True, default=NO_USER, server_default=text("''")
    )
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    # What the upstream charged (``cost``) and what chatgate's cache saved (``saved``, answers
    # served from it priced as if they had gone upstream), in nano-units (1e-9) of ``currency``
    # (the model's price currency; '' while the model has no price).
    cost_nanos: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    saved_nanos: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    currency: Mapped[str] = mapped_column(String(8), default="", server_default=text("''"))

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens
