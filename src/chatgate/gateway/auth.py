"""Client authentication: chatgate's own virtual keys (``sk-cg-…``), stored hashed.

A looked-up key is trusted for ``key_cache_ttl`` seconds (so a busy key costs no database read
per request; a revocation reaches every replica within that time). With ``require_keys`` off, a
request without a valid key is served anonymously: SDKs always send *some* key, so an unknown
one is not an error there — but a known key that is revoked or expired always is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from chatgate.errors import AuthenticationError, PermissionDeniedError, QuotaExceededError
from chatgate.gateway.ratelimit import Limit
from chatgate.storage import ClientKey, KeyRepository

_PREFIX = "sk-cg-"
_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: a client key, or ``ANONYMOUS_IDENTITY``."""

    key_id: str | None
    name: str
    limit: Limit
    models: frozenset[str] | None
    budget_tokens: int | None
    tokens_used: int

    def check_model(self, model: str) -> None:
        if self.models is not None and model not in self.models:
            raise PermissionDeniedError(
                f"This API key may not use the model `{model}`.",
                param="model",
                code="model_not_allowed",
            )


ANONYMOUS_IDENTITY = Identity(None, "anonymous", Limit(), None, None, 0)


def _identity(key: ClientKey) -> Identity:
    return Identity(
        key_id=key.id,
        name=key.name,
        limit=Limit(rpm=key.rpm, tpm=key.tpm),
        models=frozenset(key.models) if key.models is not None else None,
        budget_tokens=key.budget_tokens,
        tokens_used=key.tokens_used,
    )


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class Authenticator:
    def __init__(self, keys: KeyRepository, require_keys: bool, cache_ttl: float = 10.0) -> None:
        self.keys = keys
        self.require_keys = require_keys
        self.cache_ttl = cache_ttl
        # secret → (identity or None for "no such key", valid until); bounded, so a flood of
        # made-up keys cannot grow it without limit
        self._cache: dict[str, tuple[Identity | None, float]] = {}
        # A key's budget use = tokens_used as last read + what the usage batches have written
        # since that read + what they have not written yet. (The database only knows what the
        # batches wrote, so a fresh read must not forget the rest.)
        self._unwritten: dict[str, int] = {}
        self._written_since_read: dict[str, int] = {}

    async def authenticate(self, authorization: str | None) -> Identity:
        secret = bearer(authorization)
        if secret is None or not secret.startswith(_PREFIX):
            if self.require_keys:
                raise AuthenticationError(
                    "A chatgate API key is required (Authorization: Bearer sk-cg-…)."
                )
            return ANONYMOUS_IDENTITY
        now = time.monotonic()
        cached = self._cache.get(secret)
        if cached is not None and cached[1] > now:
            identity = cached[0]
        else:
            identity = await self._load(secret)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[secret] = (identity, now + self.cache_ttl)
        if identity is None:
            if self.require_keys:
                raise AuthenticationError("Incorrect API key provided.")
            return ANONYMOUS_IDENTITY
        return identity

    async def _load(self, secret: str) -> Identity | None:
        key = await self.keys.find_by_secret(secret)
        if key is None:
            return None
        if not key.is_active():
            raise AuthenticationError("This API key has been revoked or has expired.")
        self._written_since_read.pop(key.id, None)  # the fresh read includes those
        return _identity(key)

    def check_budget(self, identity: Identity) -> None:
        if identity.budget_tokens is None or identity.key_id is None:
            return
        key_id = identity.key_id
        used = (
            identity.tokens_used
            + self._unwritten.get(key_id, 0)
            + self._written_since_read.get(key_id, 0)
        )
        if used >= identity.budget_tokens:
            raise QuotaExceededError(
                "You exceeded your token budget for this API key "
                f"({used} of {identity.budget_tokens} tokens used)."
            )

    def spend(self, key_id: str | None, tokens: int) -> None:
        """Count tokens against a key's budget (the usage recorder writes them later)."""
        if key_id is not None and tokens > 0:
            self._unwritten[key_id] = self._unwritten.get(key_id, 0) + tokens

    def written(self, by_key: dict[str, int], by_user: dict[str, int] | None = None) -> None:
        """The usage recorder wrote these tokens to the keys' records."""
        for key_id, tokens in by_key.items():
            left = self._unwritten.get(key_id, 0) - tokens
            if left > 0:
                self._unwritten[key_id] = left
            else:
                self._unwritten.pop(key_id, None)
            self._written_since_read[key_id] = self._written_since_read.get(key_id, 0) + tokens

    def forget(self) -> None:
        """Drop every cached key (after a revocation made here, so it takes effect at once)."""
        self._cache.clear()
