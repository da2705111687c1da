"""Client (virtual) keys: generate, store hashed, look up by secret, revoke, count tokens."""

from __future__ import annotations

import builtins
import hashlib
import secrets
import string
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, literal, select, update

from chatgate.storage.base import UTCDateTime, utcnow
from chatgate.storage.db import Database
from chatgate.storage.models import ClientKey

KEY_PREFIX = "sk-cg-"
SECRET_LENGTH = 40
PREFIX_LENGTH = 10  # shown in lists: "sk-cg-" plus 4 characters of the secret
_ALPHABET = string.ascii_letters + string.digits


def generate_secret() -> str:
    """A new plaintext key: `sk-cg-` and 40 random base62 characters (~238 bits)."""
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))


def hash_secret(secret: str) -> str:
    """The sha256 hex digest under which a key is stored and looked up."""
    return hashlib.sha256(secret.encode()).hexdigest()


MAX_RATE = 2**31 - 1  # rpm/tpm are 32-bit integer columns
MAX_BUDGET = 2**63 - 1  # budget_tokens/tokens_used are 64-bit
MAX_EXPIRES_DAYS = 36_500.0  # a hundred years; beyond that a datetime overflows


def check_limits(
    rpm: int | None,
    tpm: int | None,
    budget_tokens: int | None,
    expires_days: float | None,
    budget_cost_nanos: int | None = None,
) -> None:
    """Raise ValueError naming the first value the key table cannot hold."""
    for name, value, top in (
        ("rpm", rpm, MAX_RATE),
        ("tpm", tpm, MAX_RATE),
        ("budget_tokens", budget_tokens, MAX_BUDGET),
        ("budget_cost", budget_cost_nanos, MAX_BUDGET),
    ):
        if value is not None and not 1 <= value <= top:
            raise ValueError(f"{name} must be between 1 and {top}")
    if expires_days is not None and not 0 < expires_days <= MAX_EXPIRES_DAYS:
        raise ValueError(f"expires_days must be above 0 and at most {MAX_EXPIRES_DAYS:g}")


class KeyRepository:
    """Client keys in the database; the plaintext secret leaves `create` once and is never kept."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        name: str,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        budget_tokens: int | None = None,
        models: Sequence[str] | None = None,
        expires_days: float | None = None,
        budget_cost_nanos: int | None = None,
    ) -> tuple[ClientKey, str]:
        """Store a new key and return it with its plaintext secret (shown to the user once).
        ``budget_cost_nanos``: a spending budget in nano-units of the budgets' currency."""
        check_limits(rpm, tpm, budget_tokens, expires_days, budget_cost_nanos)
        secret = generate_secret()
        now = utcnow()
        key = ClientKey(
            id="key_" + secrets.token_hex(8),
            name=name,
            key_hash=hash_secret(secret),
            prefix=secret[:PREFIX_LENGTH],
            created_at=now,
            expires_at=None if expires_days is None else now + timedelta(days=expires_days),
            rpm=rpm,
            tpm=tpm,
            budget_tokens=budget_tokens,
            models=None if models is None else builtins.list(models),
            tokens_used=0,
            budget_cost_nanos=budget_cost_nanos,
            cost_used_nanos=0,
        )
        async with self._db.session() as s:
            s.add(key)
        return key, secret

    async def find_by_secret(self, secret: str) -> ClientKey | None:
        """The key with this secret, revoked or expired ones included (check `is_active()`)."""
        if not secret.startswith(KEY_PREFIX):
            return None
        async with self._db.session() as s:
            found = await s.scalars(
                select(ClientKey).where(ClientKey.key_hash == hash_secret(secret))
            )
            return found.one_or_none()

    async def get(self, key_id: str) -> ClientKey | None:
        """The key with this id, or None."""
        async with self._db.session() as s:
            return await s.get(ClientKey, key_id)

    async def list(self, *, include_revoked: bool = True) -> builtins.list[ClientKey]:
        """Every key, oldest first."""
        query = select(ClientKey).order_by(ClientKey.created_at, ClientKey.id)
        if not include_revoked:
            query = query.where(ClientKey.revoked_at.is_(None))
        async with self._db.session() as s:
            return builtins.list(await s.scalars(query))

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key (keeping the first revocation time); False if no such key exists."""
        stmt = (
            update(ClientKey)
            .where(ClientKey.id == key_id)
            .values(revoked_at=func.coalesce(ClientKey.revoked_at, literal(utcnow(), UTCDateTime)))
        )
        async with self._db.session() as s:
            result = await s.execute(stmt, execution_options={"synchronize_session": False})
            return cast(CursorResult[Any], result).rowcount > 0

    async def add_tokens_used(self, key_id: str, n: int) -> None:
        """Add `n` tokens to the key's budget counter (atomic in the database)."""
        stmt = (
            update(ClientKey)
            .where(ClientKey.id == key_id)
            .values(tokens_used=ClientKey.tokens_used + n)
        )
        async with self._db.session() as s:
            await s.execute(stmt, execution_options={"synchronize_session": False})
