"""Login throttling: growing delays per account and per client address (429 + Retry-After).

Every attempt counts when it starts (so a burst of concurrent guesses is counted before any of
them is judged); a success takes its own count back and clears the account's. Past the free
attempts each further one locks the account (or address) for twice as long as the last, from
``base_delay`` up to ``max_delay``, counted from when the wrong password was found; a locked
request is refused before any password hashing.
Counts are forgotten ``forget_after`` seconds after the last attempt. IPv6 addresses are
counted per /64, since one client usually holds the whole prefix.

Per process: with several replicas an attacker gets each replica's allowance (the delays still
grow on every one of them).
"""

from __future__ import annotations

import ipaddress
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from chatgate.errors import RateLimitError


@dataclass(slots=True)
class _Count:
    attempts: int = 0
    locked_until: float = 0.0
    last: float = 0.0


def address_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "a:" + address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "a:" + str(ip.ipv4_mapped)
        return "a:" + str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return "a:" + str(ip)


class LoginThrottle:
    def __init__(
        self,
        per_account: int = 5,
        per_address: int = 20,
        base_delay: float = 1.0,
        max_delay: float = 900.0,
        forget_after: float = 3600.0,
        limit: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.limit = limit
        self.clock = clock
        self._counts: dict[str, _Count] = {}

    def _keys(self, name: str, address: str | None) -> list[tuple[str, int]]:
        keys = [("n:" + name.lower(), self.per_account)]
        if address:
            keys.append((address_key(address), self.per_address))
        return keys

    def _get(self, key: str, now: float) -> _Count | None:
        count = self._counts.get(key)
        if count is not None and now - count.last > self.forget_after:
            del self._counts[key]
            return None
        return count

    def begin(self, name: str, address: str | None) -> None:
        """Count an attempt for ``name`` from ``address``; RateLimitError while either is
        locked."""
        now = self.clock()
        keys = self._keys(name, address)
        wait = 0.0
        for key, _free in keys:
            count = self._get(key, now)
            if count is not None and count.locked_until > now:
                wait = max(wait, count.locked_until - now)
        if wait > 0:
            raise RateLimitError(
                f"Too many failed sign-ins; try again in {int(-(-wait // 1))} s.",
                code="login_throttled",
                retry_after=wait,
            )
        if len(self._counts) >= self.limit:
            self._shed(now)
        for key, free in keys:
            count = self._get(key, now) or self._counts.setdefault(key, _Count())
            count.attempts += 1
            count.last = now
            self._lock(count, free, now)

    def _lock(self, count: _Count, free: int, now: float) -> None:
        if count.attempts > free:
            extra = min(count.attempts - free - 1, 30)
            until = now + min(self.max_delay, self.base_delay * 2**extra)
            count.locked_until = max(count.locked_until, until)

    def failed(self, name: str, address: str | None) -> None:
        """The attempt begun for ``name`` from ``address`` had a wrong password: its delay runs
        from now (hashing may have taken a while)."""
        now = self.clock()
        for key, free in self._keys(name, address):
            count = self._counts.get(key)
            if count is not None:
                self._lock(count, free, now)

    def succeeded(self, name: str, address: str | None) -> None:
        """The attempt begun for ``name`` from ``address`` had the right password."""
        self._counts.pop("n:" + name.lower(), None)
        if not address:
            return
        count = self._counts.get(address_key(address))
        if count is not None:
            count.attempts = max(0, count.attempts - 1)
            if count.attempts <= self.per_address:
                count.locked_until = 0.0

    def _shed(self, now: float) -> None:
        """Bounded memory under a flood of names or addresses: drop forgotten counts, else
        the oldest tenth."""
        stale = [k for k, c in self._counts.items() if now - c.last > self.forget_after]
        for key in stale or list(itertools.islice(self._counts, max(1, self.limit // 10))):
            del self._counts[key]

    def __len__(self) -> int:
        return len(self._counts)
