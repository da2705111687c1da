"""Login throttling (growing delays per account and per address) and the bounded hashing pool."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from chatgate.chat.passwords import Hashing, verify_password
from chatgate.chat.throttle import LoginThrottle, address_key
from chatgate.errors import RateLimitError, ServiceUnavailableError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def locked_for(throttle: LoginThrottle, name: str, address: str | None = None) -> float:
    with pytest.raises(RateLimitError) as refused:
        throttle.begin(name, address)
    assert refused.value.code == "login_throttled" and refused.value.status == 429
    assert refused.value.retry_after is not None
    return refused.value.retry_after


def test_delays_grow_per_account_and_cap() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_account=3, per_address=100, max_delay=10, clock=clock)
    for _ in range(3):
        throttle.begin("alice", "10.0.0.1")  # free attempts (all failing)
    throttle.begin("alice", "10.0.0.1")  # the 4th goes through, and locks for 1 s
    delays = []
    for _ in range(6):
        delays.append(locked_for(throttle, "ALICE", "10.0.0.2"))  # names are not case games
        clock.now += delays[-1]
        throttle.begin("alice", "10.0.0.3")
    assert [round(d) for d in delays] == [1, 2, 4, 8, 10, 10]
    throttle.begin("bob", "10.0.0.1")  # another account is not locked
    clock.now += 3601  # forgotten after an hour without attempts
    throttle.begin("alice", None)


def test_a_success_takes_its_count_back() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_account=2, per_address=2, clock=clock)
    for _ in range(2):
        throttle.begin("alice", "10.0.0.1")
    throttle.succeeded("alice", "10.0.0.1")  # the 2nd was right: alice starts afresh
    throttle.begin("alice", "10.0.0.1")
    throttle.begin("alice", "10.0.0.1")
    throttle.succeeded("alice", "10.0.0.1")
    throttle.begin("carol", "10.0.0.1")  # the address had 1 + 1 failures: still free


def test_per_address_across_names() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_account=100, per_address=3, clock=clock)
    for i in range(4):
        throttle.begin(f"user{i}", "2001:db8::1")
    assert locked_for(throttle, "someone-else", "2001:db8::ffff") >= 1  # the same /64
    throttle.begin("someone-else", "2001:db8:0:1::1")  # another /64
    throttle.begin("someone-else", "10.0.0.9")
    assert address_key("::ffff:10.0.0.9") == address_key("10.0.0.9")


def test_memory_is_bounded() -> None:
    throttle = LoginThrottle(limit=1000)
    for i in range(5000):
        throttle.begin(f"made-up-{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(throttle) <= 1000 + 2


async def test_hashing_pool_is_bounded() -> None:
    running = peak = 0
    lock = threading.Lock()

    def slow(_: object) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return True

    pool = Hashing(workers=2, queue=3)
    results = await asyncio.gather(*(pool._run(slow, i) for i in range(20)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, ServiceUnavailableError)]
    assert len(refused) == 15 and results.count(True) == 5
    assert refused[0].code == "login_busy" and refused[0].retry_after == 1
    assert peak == 2
    assert pool.pending == 0
    assert await pool.verify(await pool.hash("a password"), "a password")
    assert not verify_password(None, "anything")
    pool.close()
