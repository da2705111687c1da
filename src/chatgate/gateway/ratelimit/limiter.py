"""The rate-limit stage: reserve before the call, reconcile after it, 429 with the true wait."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from chatgate.errors import RateLimitError
from chatgate.gateway.ratelimit.backend import Backend, Charge, Outcome, required

REQUESTS = "requests"
TOKENS = "tokens"
_SCOPES = {
    "global": "this gateway (all clients together)",
    "key": "your API key",
    "user": "your account",
}
_KINDS = {REQUESTS: "requests per minute (RPM)", TOKENS: "tokens per minute (TPM)"}


@dataclass(frozen=True, slots=True)
class Limit:
    """Requests and tokens per minute; ``None`` is unlimited. Limits are positive."""

    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None (unlimited), not {value}")


@dataclass(slots=True)
class Reservation:
    """What ``reserve`` took. ``headers`` are the ``x-ratelimit-*`` response headers."""

    headers: list[tuple[bytes, bytes]]
    est_tokens: int = 0
    token_charges: tuple[Charge, ...] = field(default=(), repr=False)


class RateLimited(RateLimitError):
    """A 429 carrying the ``x-ratelimit-*`` headers and ``retry-after-ms`` besides Retry-After."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        extra_headers: list[tuple[bytes, bytes]],
        code: str | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after, code=code)
        self.extra_headers = extra_headers

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        if self.retry_after is not None:
            # The official SDKs honour retry-after-ms, which keeps the sub-second precision.
            headers["retry-after-ms"] = str(math.ceil(self.retry_after * 1000))
        headers.update((k.decode("latin-1"), v.decode("latin-1")) for k, v in self.extra_headers)
        return headers


class _Bucket:
    """One bucket as the limiter plans it; the header values that never change are made once."""

    __slots__ = ("capacity", "limit_header", "name", "scope", "tokens")

    def __init__(self, scope: str, tokens: bool, name: str, capacity: int) -> None:
        self.scope = scope  # "global" | "key"
        self.tokens = tokens
        self.name = name
        self.capacity = capacity
        self.limit_header = str(capacity).encode()

    @property
    def kind(self) -> str:
        return TOKENS if self.tokens else REQUESTS


class RateLimiter:
    """Token buckets for requests and tokens per minute, global and per client key.

    A bucket's capacity is the per-minute limit and it refills continuously at limit / 60 per
    second. A request costs 1 request and its estimated tokens, taken from every applicable
    bucket at once or from none. A token estimate larger than a whole bucket (a prompt above the
    TPM) is admitted when that bucket is full and drives it negative, so the next requests wait
    until the per-minute average is back under the limit; it is never refused outright.
    """

    # Plans for client keys are kept for reuse, up to this many (then all are dropped at once).
    PLAN_CACHE = 8192

    def __init__(self, backend: Backend, global_limit: Limit) -> None:
        self.backend = backend
        self.global_limit = global_limit
        self._global = _plan("global", "g", global_limit)
        self._plans: dict[tuple[str, str, int | None, int | None], tuple[_Bucket, ...]] = {}

    @property
    def degraded(self) -> bool:
        return self.backend.degraded

    async def reserve(
        self, key_id: str | None, key_limit: Limit, est_tokens: int, scope: str = "key"
    ) -> Reservation:
        """Take 1 request and ``est_tokens`` tokens, or raise :class:`RateLimited`. ``key_id``
        names the caller's own buckets: a client key's id, or with ``scope="user"`` a user's."""
        est = est_tokens if est_tokens > 0 else 0
        plan = self._global
        if key_id is not None and (key_limit.rpm is not None or key_limit.tpm is not None):
            plan = self._key_plan(key_id, key_limit, scope)
        if not plan:
            return Reservation([], est)
        charges = [Charge(b.name, b.capacity, est if b.tokens else 1) for b in plan]
        outcome = await self.backend.take(charges)
        headers = _headers(plan, outcome)
        if not outcome.ok:
            raise _refusal(plan, charges, outcome, headers)
        tokens = tuple(c for b, c in zip(plan, charges, strict=True) if b.tokens)
        return Reservation(headers, est, tokens)

    async def reconcile(self, reservation: Reservation, actual_tokens: int) -> None:
        """Charge the token buckets ``actual - estimate`` more (or give it back, if negative)."""
        delta = max(0, actual_tokens) - reservation.est_tokens
        if delta and reservation.token_charges:
            await self.backend.adjust(
                [Charge(c.bucket, c.capacity, delta) for c in reservation.token_charges]
            )

    async def close(self) -> None:
        await self.backend.close()

    def _key_plan(self, key_id: str, limit: Limit, scope: str) -> tuple[_Bucket, ...]:
        cache_key = (scope, key_id, limit.rpm, limit.tpm)
        plan = self._plans.get(cache_key)
        if plan is None:
            if len(self._plans) >= self.PLAN_CACHE:
                self._plans.clear()
            prefix = ("u:" if scope == "user" else "k:") + key_id
            plan = self._plans[cache_key] = self._global + _plan(scope, prefix, limit)
        return plan


def _plan(scope: str, prefix: str, limit: Limit) -> tuple[_Bucket, ...]:
    out = []
    if limit.rpm is not None:
        out.append(_Bucket(scope, False, prefix + ":r", limit.rpm))
    if limit.tpm is not None:
        out.append(_Bucket(scope, True, prefix + ":t", limit.tpm))
    return tuple(out)


_REQUEST_NAMES = (
    b"x-ratelimit-limit-requests",
    b"x-ratelimit-remaining-requests",
    b"x-ratelimit-reset-requests",
)
_TOKEN_NAMES = (
    b"x-ratelimit-limit-tokens",
    b"x-ratelimit-remaining-tokens",
    b"x-ratelimit-reset-tokens",
)


def _headers(plan: Sequence[_Bucket], outcome: Outcome) -> list[tuple[bytes, bytes]]:
    """The trio for each kind, from its most restrictive bucket (least left, then smallest)."""
    requests: tuple[float, _Bucket] | None = None
    tokens: tuple[float, _Bucket] | None = None
    for bucket, level in zip(plan, outcome.levels, strict=True):
        seen = tokens if bucket.tokens else requests
        if (
            seen is None
            or level < seen[0]
            or (level == seen[0] and bucket.capacity < seen[1].capacity)
        ):
            if bucket.tokens:
                tokens = (level, bucket)
            else:
                requests = (level, bucket)
    headers: list[tuple[bytes, bytes]] = []
    if requests is not None:
        _trio(headers, _REQUEST_NAMES, requests[0], requests[1], outcome.scale)
    if tokens is not None:
        _trio(headers, _TOKEN_NAMES, tokens[0], tokens[1], outcome.scale)
    return headers


def _trio(
    headers: list[tuple[bytes, bytes]],
    names: tuple[bytes, bytes, bytes],
    level: float,
    bucket: _Bucket,
    scale: float,
) -> None:
    capacity = bucket.capacity * scale
    limit = bucket.limit_header if scale == 1.0 else str(max(1, int(capacity))).encode()
    remaining = str(math.floor(level)).encode() if level >= 1 else b"0"
    reset = (capacity - level) * 60.0 / capacity if level < capacity else 0.0
    headers.append((names[0], limit))
    headers.append((names[1], remaining))
    headers.append((names[2], format_duration(reset).encode()))


def _refusal(
    plan: Sequence[_Bucket],
    charges: Sequence[Charge],
    outcome: Outcome,
    headers: list[tuple[bytes, bytes]],
) -> RateLimited:
    """The 429: waits for the longest-short bucket, since the others refill meanwhile."""
    worst: tuple[float, _Bucket, Charge, float] | None = None
    for bucket, charge, level in zip(plan, charges, outcome.levels, strict=True):
        capacity = bucket.capacity * outcome.scale
        deficit = required(charge.cost, capacity) - level
        if deficit > 0:
            wait = deficit * 60.0 / capacity
            if worst is None or wait > worst[0]:
                worst = (wait, bucket, charge, level)
    if worst is None:  # a rounding hair between the backend and here: try again very soon
        return RateLimited("Rate limit reached.", retry_after=0.001, extra_headers=headers)
    wait, bucket, charge, level = worst
    limit = max(1, int(bucket.capacity * outcome.scale))
    message = (
        f"Rate limit reached for {_SCOPES[bucket.scope]} on {_KINDS[bucket.kind]}: "
        f"limit {limit}, remaining {max(0, math.floor(level))}, requested {charge.cost:.0f}. "
        f"Please try again in {format_duration(wait)}."
    )
    return RateLimited(message, retry_after=wait, extra_headers=headers)


def format_duration(seconds: float) -> str:
    """OpenAI's (Go's) duration format, rounded up to the millisecond: 20ms, 1.5s, 6m0s, 1h2m3s."""
    ms = math.ceil(seconds * 1000 - 1e-6)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
