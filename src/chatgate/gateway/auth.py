"""Who is calling: chatgate's own virtual keys (``sk-cg-…``, stored hashed), or a signed-in user.

The first stage of the request path. A door hands over the credential it found (a bearer
secret, or the account of a web-chat session) and gets an :class:`Identity`: the caller's model
allow-list, budget and rate limits, which the next stages apply the same way for every door.

A looked-up key or user is trusted for ``cache_ttl`` seconds (so a busy caller costs no database
read per request; a revocation or a changed limit reaches every replica within that time). With
``require_keys`` off, a request without a valid key is served anonymously: SDKs always send
*some* key, so an unknown one is not an error there — but a known key that is revoked or expired
always is.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from chatgate.errors import AuthenticationError, PermissionDeniedError, QuotaExceededError
from chatgate.gateway.pricing import format_amount
from chatgate.gateway.ratelimit import Limit
from chatgate.gateway.usage import Spent
from chatgate.storage import ClientKey, KeyRepository

_PREFIX = "sk-cg-"
_CACHE_LIMIT = 10_000
_WRITTEN_ENTRIES = 8  # per subject between two reads (a flush every 2 s, a read every ~10 s)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: a client key, a user, or ``ANONYMOUS_IDENTITY``."""

    key_id: str | None
    name: str
    limit: Limit
    models: frozenset[str] | None
    budget_tokens: int | None
    tokens_used: int
    user_id: str | None = None
    budget_cost: int | None = None  # nano-units of the budgets' currency
    cost_used: int = 0

    @property
    def subject(self) -> str | None:
        """The one budget and rate-limit holder: ``k:<key id>``, ``u:<user id>`` or None."""
        if self.key_id is not None:
            return "k:" + self.key_id
        return "u:" + self.user_id if self.user_id is not None else None

    def check_model(self, model: str) -> None:
        if self.models is not None and model not in self.models:
            whose = "API key" if self.key_id is not None else "account"
            raise PermissionDeniedError(
                f"This {whose} may not use the model `{model}`.",
                param="model",
                code="model_not_allowed",
            )


ANONYMOUS_IDENTITY = Identity(None, "anonymous", Limit(), None, None, 0)


class Member(Protocol):
    """A user's policy as the user store gives it (``chat.accounts.Account`` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def rpm(self) -> int | None: ...
    @property
    def tpm(self) -> int | None: ...
    @property
    def models(self) -> frozenset[str] | None: ...
    @property
    def budget_tokens(self) -> int | None: ...
    @property
    def tokens_used(self) -> int: ...
    @property
    def budget_cost_nanos(self) -> int | None: ...
    @property
    def cost_used_nanos(self) -> int: ...
    @property
    def disabled(self) -> bool: ...


UserLookup = Callable[[str], Awaitable[Member | None]]


def _key_identity(key: ClientKey) -> Identity:
    return Identity(
        key_id=key.id,
        name=key.name,
        limit=Limit(rpm=key.rpm, tpm=key.tpm),
        models=frozenset(key.models) if key.models is not None else None,
        budget_tokens=key.budget_tokens,
        tokens_used=key.tokens_used,
        budget_cost=key.budget_cost_nanos,
        cost_used=key.cost_used_nanos or 0,
    )


def _user_identity(user: Member) -> Identity:
    return Identity(
        key_id=None,
        name=user.name,
        limit=Limit(rpm=user.rpm, tpm=user.tpm),
        models=user.models,
        budget_tokens=user.budget_tokens,
        tokens_used=user.tokens_used,
        user_id=user.id,
        budget_cost=user.budget_cost_nanos,
        cost_used=user.cost_used_nanos,
    )


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class Authenticator:
    def __init__(
        self,
        keys: KeyRepository,
        require_keys: bool,
        cache_ttl: float = 10.0,
        users: UserLookup | None = None,
        currency: str = "USD",
    ) -> None:
        self.keys = keys
        self.users = users
        self.require_keys = require_keys
        self.cache_ttl = cache_ttl
        self.currency = currency  # of the cost budgets
        # secret or "u:<id>" → (identity or None for "no such key", valid until); bounded, so a
        # flood of made-up keys cannot grow it without limit
        self._cache: dict[str, tuple[Identity | None, float]] = {}
        # A budget's use = tokens_used as last read + what the usage batches have written since
        # that read + what they have not written yet (by subject). The database only knows what
        # the batches wrote, so a fresh read must not forget the rest — nor a batch written while
        # the read was on its way (it may not include it): batches are numbered, and a read
        # drops only those written before it began.
        # Amounts are (tokens, nano-units of the budgets' currency).
        self._unwritten: dict[str, tuple[int, int]] = {}
        self._written_since_read: dict[str, list[tuple[int, int, int]]] = {}  # (batch, tokens, $)
        self._batches = 0

    async def authenticate(self, secret: str | None) -> Identity:
        """The identity of a client key's secret (``None``: no key was sent)."""
        if secret is None or not secret.startswith(_PREFIX):
            if self.require_keys:
                raise AuthenticationError(
                    "A chatgate API key is required (Authorization: Bearer sk-cg-…)."
                )
            return ANONYMOUS_IDENTITY
        identity = await self._cached(secret, self._load_key)
        if identity is None:
            if self.require_keys:
                raise AuthenticationError("Incorrect API key provided.")
            return ANONYMOUS_IDENTITY
        return identity

    async def user(self, user_id: str, name: str) -> Identity:
        """The identity of a signed-in user (the session was checked by the door)."""
        if self.users is None:
            return Identity(None, name, Limit(), None, None, 0, user_id=user_id)
        identity = await self._cached("u:" + user_id, self._load_user)
        if identity is None:
            raise AuthenticationError("This account no longer exists.")
        return identity

    async def _cached(
        self, lookup: str, load: Callable[[str], Awaitable[Identity | None]]
    ) -> Identity | None:
        now = time.monotonic()
        cached = self._cache.get(lookup)
        if cached is not None and cached[1] > now:
            return cached[0]
        began = self._batches
        identity = await load(lookup)
        if identity is not None:
            self._read(identity, began)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[lookup] = (identity, now + self.cache_ttl)
        return identity

    async def _load_key(self, secret: str) -> Identity | None:
        key = await self.keys.find_by_secret(secret)
        if key is None:
            return None
        if not key.is_active():
            raise AuthenticationError("This API key has been revoked or has expired.")
        return _key_identity(key)

    async def _load_user(self, lookup: str) -> Identity | None:
        assert self.users is not None
        user = await self.users(lookup.removeprefix("u:"))
        if user is None:
            return None
        if user.disabled:
            raise PermissionDeniedError("This account is disabled.", code="account_disabled")
        return _user_identity(user)

    def _read(self, identity: Identity, began: int) -> None:
        """A fresh read, begun when ``began`` batches had been written, includes those."""
        subject = identity.subject
        written = self._written_since_read.get(subject) if subject is not None else None
        if subject is None or written is None:
            return
        later = [entry for entry in written if entry[0] > began]
        if later:
            self._written_since_read[subject] = later
        else:
            del self._written_since_read[subject]

    def check_budget(self, identity: Identity) -> None:
        """Refuse a caller whose token or cost budget is spent (429 ``insufficient_quota``)."""
        subject = identity.subject
        if subject is None or (identity.budget_tokens is None and identity.budget_cost is None):
            return
        tokens, nanos = self._unwritten.get(subject, (0, 0))
        for _, t, n in self._written_since_read.get(subject, ()):
            tokens, nanos = tokens + t, nanos + n
        whose = "API key" if identity.key_id is not None else "account"
        used = identity.tokens_used + tokens
        if identity.budget_tokens is not None and used >= identity.budget_tokens:
            raise QuotaExceededError(
                f"You exceeded your token budget for this {whose} "
                f"({used} of {identity.budget_tokens} tokens used)."
            )
        spent = identity.cost_used + nanos
        if identity.budget_cost is not None and spent >= identity.budget_cost:
            raise QuotaExceededError(
                f"You exceeded your spending budget for this {whose} ({format_amount(spent)} "
                f"of {format_amount(identity.budget_cost)} {self.currency} spent)."
            )

    def spend(self, identity: Identity, tokens: int, nanos: int = 0) -> None:
        """Count tokens and cost (nano-units of the budgets' currency) against the caller's
        budgets (the usage recorder writes them later)."""
        subject = identity.subject
        if subject is not None and (tokens > 0 or nanos > 0):
            was = self._unwritten.get(subject, (0, 0))
            self._unwritten[subject] = (was[0] + tokens, was[1] + nanos)

    def written(self, by_key: dict[str, Spent], by_user: dict[str, Spent] | None = None) -> None:
        """The usage recorder wrote these (tokens, nano-units) to the keys' and users' records."""
        self._batches += 1
        batch = self._batches
        written = {"k:" + k: n for k, n in by_key.items()}
        written.update(("u:" + u, n) for u, n in (by_user or {}).items())
        for subject, (tokens, nanos) in written.items():
            was = self._unwritten.get(subject, (0, 0))
            left = (max(was[0] - tokens, 0), max(was[1] - nanos, 0))
            if left != (0, 0):
                self._unwritten[subject] = left
            else:
                self._unwritten.pop(subject, None)
            entries = self._written_since_read.setdefault(subject, [])
            entries.append((batch, tokens, nanos))
            if len(entries) > _WRITTEN_ENTRIES:
                # Bounded (a user the door never re-reads): the oldest two become one under the
                # newer number, so a read can only keep them too long, never forget one.
                (_, t1, n1), (second_batch, t2, n2) = entries[0], entries[1]
                entries[0:2] = [(second_batch, t1 + t2, n1 + n2)]

    def forget(self) -> None:
        """Drop every cached key and user (after a change made here, so it takes effect at once)."""
        self._cache.clear()
