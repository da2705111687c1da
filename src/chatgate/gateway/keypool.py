"""Upstream key pools: pick a healthy, lightly loaded key; cool it on 429, disable it on 401/403."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from chatgate.errors import RateLimitError, UpstreamError
from chatgate.providers.base import redact

Outcome = Literal["success", "rate_limited", "auth_failed", "upstream_failed", "neutral"]
KeyState = Literal["ok", "cooling", "disabled"]

FAILURES_TO_COOL = 3  # consecutive 5xx/connection failures before a key rests
RETRY_AFTER_CAP = 3600.0  # an upstream Retry-After is honoured up to an hour, never "forever"
FAILURE_MEMORY = 30.0  # seconds an unanswered failure ranks a key after the others
_MAX_STRIKES = 30  # keeps base * 2**n a finite float; the cap applies long before
_DESCRIPTIONS = {
    "rate_limited": "429 rate limited",
    "auth_failed": "rejected (401/403)",
    "upstream_failed": "upstream failed",
}


def mask_key(key: str) -> str:
    """``sk-…abcd`` (first 3 + last 4); shorter keys show less, so most of a key stays hidden."""
    if len(key) >= 14:
        return f"{key[:3]}…{key[-4:]}"
    return f"…{key[-2:]}" if len(key) >= 8 else "…"


def outcome_of(exc: BaseException | None) -> Outcome:
    """What an upstream call's ending says about the key it used."""
    if exc is None:
        return "success"
    if not isinstance(exc, UpstreamError):
        return "neutral"  # cancelled, or our own bug: says nothing about the key
    status = exc.upstream_status
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        return "auth_failed"
    if status is None or status >= 500:
        return "upstream_failed"
    return "neutral"  # the client's mistake (400, 404, 422...): the key worked


def backoff_delays(
    attempts: int, base: float = 0.2, cap: float = 2.0, rng: Callable[[], float] = random.random
) -> list[float]:
    """Sleeps before each of ``attempts`` retries: "full jitter" (AWS Architecture Blog,
    "Exponential Backoff and Jitter"): retry ``i`` waits uniformly in ``[0, min(cap, base·2^i))``,
    so simultaneous failures spread out instead of retrying in lockstep."""
    return [rng() * min(cap, base * 2 ** min(i, _MAX_STRIKES)) for i in range(attempts)]


@dataclass(slots=True, eq=False, repr=False)  # repr=False: the key must never be printed
class _Key:
    key: str
    masked: str
    state: KeyState = "ok"
    until: float = 0.0  # end of the cooldown (clock time) while cooling
    epoch: int = 0  # bumped when a cooldown or disable starts: older leases can't end it
    probing: bool = False  # the one half-open request after a cooldown is in flight
    strikes: int = 0  # consecutive 429s: the backoff exponent
    fails_in_row: int = 0  # consecutive 5xx/connection failures
    in_flight: int = 0
    successes: int = 0
    failures: int = 0
    rate_limited: int = 0
    last_failed: float = -math.inf
    last_error: str | None = None


class KeyLease:
    """One request's use of a key. End it with :meth:`release` (or use it as a ``with`` block,
    which judges the key by the exception that leaves the block, see :func:`outcome_of`).
    Releasing twice is harmless: the first call counts."""

    __slots__ = ("_accepted", "_done", "_epoch", "_pool", "_probe", "_slot", "key")

    def __init__(self, pool: KeyPool, slot: _Key | None, probe: bool = False) -> None:
        self.key: str | None = slot.key if slot is not None else None
        self._pool = pool
        self._slot = slot
        self._epoch = slot.epoch if slot is not None else 0
        self._probe = probe
        self._done = False
        self._accepted = False

    def accepted(self) -> None:
        """The upstream took the request (first chunk / response headers): count the success now,
        so a long stream doesn't keep a half-open key on probation. The lease still counts as
        in flight until :meth:`release`, which then judges nothing more."""
        if self._slot is None or self._done or self._accepted:
            return
        self._accepted = True
        self._pool._judge(self, self._slot, "success", None, None)

    def release(
        self, outcome: Outcome, *, retry_after: float | None = None, error: str | None = None
    ) -> None:
        slot = self._slot
        if slot is None or self._done:
            return
        self._done = True
        slot.in_flight -= 1
        if self._probe and self._epoch == slot.epoch:  # a later probe may own the flag now
            slot.probing = False
        if not self._accepted:
            self._pool._judge(self, slot, outcome, retry_after, error)

    def release_for(self, exc: BaseException | None) -> None:
        """Release judging by how the call ended (``None``: it succeeded)."""
        retry_after = exc.retry_after if isinstance(exc, UpstreamError) else None
        error = exc.message if isinstance(exc, UpstreamError) else None
        self.release(outcome_of(exc), retry_after=retry_after, error=error)

    def __enter__(self) -> KeyLease:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.release_for(exc)

    def __repr__(self) -> str:
        shown = self._slot.masked if self._slot is not None else None
        return f"KeyLease({shown!r})"


class KeyPool:
    """The upstream keys of one provider.

    Choice (:meth:`acquire`): a key just back from cooldown first (its probe), then fewest
    requests in flight, then least recently failed (a failure counts until the key next succeeds,
    at most ``FAILURE_MEMORY`` s), then round-robin. Rules, each a reaction to one way shared-key
    gateways go wrong:

    - 429: the key cools for the upstream's ``Retry-After`` (up to an hour) or, without one,
      ``base_cooldown × 2^n`` capped at ``max_cooldown``, ``n`` counting consecutive 429s and reset
      by a success. When the cooldown ends the key gets exactly one "half-open" request: success
      makes it ``ok``, another 429 cools it longer. It is never chosen while cooling and never
      parked forever.
    - 401/403: disabled until :meth:`revive`'s probe says it works again.
    - 5xx / connection failure / timeout: usually the upstream's trouble rather than the key's, so
      it counts lightly: the key sorts after keys that failed less recently, and only
      ``FAILURES_TO_COOL`` consecutive failures cool it, for ``base_cooldown`` — and only while
      another key is ``ok``: resting the last good key would turn an upstream hiccup into our
      own refusals.
    - A lease taken before a cooldown or disable began cannot end it (its success predates the
      trouble); its 429 only lengthens the cooldown to its own ``Retry-After``, adding no strike.

    A pool with no keys (Ollama, a local model) always lends key ``None``.
    """

    def __init__(
        self,
        provider: str,
        keys: list[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        base_cooldown: float = 1.0,
        max_cooldown: float = 60.0,
    ) -> None:
        self.provider = provider
        self._keys = [_Key(k, mask_key(k)) for k in dict.fromkeys(k for k in keys if k)]
        self._clock = clock
        self.base_cooldown = base_cooldown
        self.max_cooldown = max_cooldown
        self._next = 0
        self._no_key = KeyLease(self, None)

    def __len__(self) -> int:
        return len(self._keys)

    def acquire(self) -> KeyLease:
        """A lease on the best usable key now; raises :class:`RateLimitError` (``retry_after``:
        when the first key is back) if all are cooling, :class:`UpstreamError` if all disabled."""
        keys = self._keys
        n = len(keys)
        if n == 0:
            return self._no_key
        now = self._clock()
        forgotten = now - FAILURE_MEMORY
        best: _Key | None = None
        best_rank = (0, 0, 0.0)
        best_i = 0
        for j in range(n):
            i = (self._next + j) % n
            k = keys[i]
            if k.state != "ok" and (k.state == "disabled" or k.probing or now < k.until):
                continue
            # A key back from cooldown goes first: its one probe request should happen promptly.
            failed = k.last_failed if k.last_failed > forgotten else -math.inf
            rank = (k.state == "ok", k.in_flight, failed)
            if best is None or rank < best_rank:
                best, best_rank, best_i = k, rank, i
        if best is None:
            raise self._unavailable(now)
        self._next = (best_i + 1) % n
        probe = best.state == "cooling"
        if probe:
            best.probing = True
        best.in_flight += 1
        return KeyLease(self, best, probe)

    def _unavailable(self, now: float) -> UpstreamError | RateLimitError:
        waits = [
            self.base_cooldown if k.probing else k.until - now
            for k in self._keys
            if k.state == "cooling"
        ]
        if not waits:
            return UpstreamError(
                f"{self.provider}: every upstream API key was rejected (401/403) and is disabled "
                "until it passes a check; fix the keys in the configuration.",
                code="upstream_keys_disabled",
            )
        return RateLimitError(
            f"{self.provider}: every upstream API key is rate-limited by the upstream right now.",
            retry_after=max(min(waits), 0.0),
        )

    def _judge(
        self, lease: KeyLease, k: _Key, outcome: Outcome, wait: float | None, error: str | None
    ) -> None:
        if outcome == "neutral":
            return
        if outcome == "success":
            k.successes += 1
            if k.state == "ok" or (lease._probe and k.state == "cooling"):
                k.state, k.strikes, k.fails_in_row, k.last_failed = "ok", 0, 0, -math.inf
            return
        now = self._clock()
        k.failures += 1
        k.last_failed = now
        k.last_error = self._describe(outcome, wait, error)
        if outcome == "auth_failed":
            k.state, k.probing = "disabled", False
            k.epoch += 1
            return
        if k.state == "disabled":
            return
        current = lease._epoch == k.epoch
        if outcome == "rate_limited":
            k.rate_limited += 1
            if wait is not None:
                wait = min(max(wait, 0.0), RETRY_AFTER_CAP)
            if not current:
                if wait is not None:
                    k.until = max(k.until, now + wait)
                return
            if wait is None:
                wait = min(self.max_cooldown, self.base_cooldown * 2**k.strikes)
            k.strikes = min(k.strikes + 1, _MAX_STRIKES)
            self._cool(k, now + wait)
        elif current:  # upstream_failed
            k.fails_in_row += 1
            others_ok = any(o is not k and o.state == "ok" for o in self._keys)
            if others_ok and (lease._probe or k.fails_in_row >= FAILURES_TO_COOL):
                self._cool(k, now + self.base_cooldown)

    @staticmethod
    def _cool(k: _Key, until: float) -> None:
        k.state, k.until, k.probing, k.fails_in_row = "cooling", until, False, 0
        k.epoch += 1

    def _describe(self, outcome: Outcome, wait: float | None, error: str | None) -> str:
        head = _DESCRIPTIONS[outcome]
        if outcome == "rate_limited" and wait is not None:
            head += f" (Retry-After {wait:g}s)"
        return f"{head}: {self._redact(error)}" if error else head

    def _redact(self, text: str) -> str:
        return redact(text, (k.key for k in self._keys))[:200]

    def snapshot(self) -> list[dict[str, Any]]:
        """Each key's state for ``/admin/upstreams``; keys masked, never whole."""
        now = self._clock()
        return [
            {
                "provider": self.provider,
                "key": k.masked,
                "state": k.state,
                "in_flight": k.in_flight,
                "successes": k.successes,
                "failures": k.failures,
                "rate_limited": k.rate_limited,
                "cooldown_remaining": round(max(k.until - now, 0.0), 3)
                if k.state == "cooling"
                else 0.0,
                "probing": k.probing,
                "last_error": k.last_error,
            }
            for k in self._keys
        ]

    async def revive(self, probe: Callable[[str], Awaitable[bool]]) -> None:
        """Check each disabled key with ``probe`` (e.g. list models with it); ``True`` brings it
        back. A probe that raises counts as ``False``."""
        targets = [k for k in self._keys if k.state == "disabled"]
        if not targets:
            return
        results = await asyncio.gather(*(probe(k.key) for k in targets), return_exceptions=True)
        for k, ok in zip(targets, results, strict=True):
            if ok is True and k.state == "disabled":
                k.state, k.strikes, k.fails_in_row, k.last_failed = "ok", 0, 0, -math.inf
                k.epoch += 1
            elif isinstance(ok, BaseException):
                k.last_error = f"revive check failed: {self._redact(f'{type(ok).__name__}: {ok}')}"
