"""Key pools: 429 cooldowns (Retry-After and backoff), half-open probes, 401 disable and revive."""

from __future__ import annotations

import asyncio

import pytest

from chatgate.errors import RateLimitError, UpstreamError
from chatgate.gateway.keypool import KeyPool, backoff_delays, mask_key, outcome_of

A = "sk-aaaaaaaaaaaaaaaaaaaa1111"
B = "sk-bbbbbbbbbbbbbbbbbbbb2222"
C = "sk-cccccccccccccccccccc3333"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(*keys: str, **kw: float) -> tuple[KeyPool, Clock]:
    clock = Clock()
    return KeyPool("openai", list(keys), clock=clock, **kw), clock


def use(pool: KeyPool, outcome: str = "success", retry_after: float | None = None) -> str | None:
    lease = pool.acquire()
    lease.release(outcome, retry_after=retry_after)  # type: ignore[arg-type]
    return lease.key


def state(pool: KeyPool, i: int) -> str:
    return str(pool.snapshot()[i]["state"])


def test_429_with_retry_after_moves_traffic_to_b_and_back_after_cooldown() -> None:
    pool, clock = make(A, B)
    lease = pool.acquire()
    assert lease.key == A
    lease.release("rate_limited", retry_after=5)
    assert state(pool, 0) == "cooling"
    assert {use(pool) for _ in range(10)} == {B}
    clock.advance(4.9)
    assert {use(pool) for _ in range(10)} == {B}
    clock.advance(0.1)
    # Back from cooldown: one half-open request; while it runs A gets nothing more.
    probe = pool.acquire()
    assert probe.key == A
    assert {use(pool) for _ in range(5)} == {B}
    probe.release("success")
    assert state(pool, 0) == "ok"
    assert {use(pool) for _ in range(4)} == {A, B}


def test_without_retry_after_the_backoff_doubles_and_success_resets_it() -> None:
    pool, clock = make(A, base_cooldown=1.0, max_cooldown=6.0)
    cooldowns = []
    for _ in range(4):
        use(pool, "rate_limited")
        cooldowns.append(pool.snapshot()[0]["cooldown_remaining"])
        with pytest.raises(RateLimitError):
            pool.acquire()
        clock.advance(float(cooldowns[-1]))
    assert cooldowns == [1.0, 2.0, 4.0, 6.0]  # doubling, capped at max_cooldown
    assert use(pool) == A  # the half-open probe succeeds
    assert state(pool, 0) == "ok"
    use(pool, "rate_limited")
    assert pool.snapshot()[0]["cooldown_remaining"] == 1.0


def test_failed_probe_cools_the_key_again_longer() -> None:
    pool, clock = make(A, base_cooldown=1.0)
    use(pool, "rate_limited")
    clock.advance(1.0)
    use(pool, "rate_limited")  # the probe
    assert pool.snapshot()[0]["cooldown_remaining"] == 2.0


def test_all_cooling_raises_429_with_time_until_the_first_key_returns() -> None:
    pool, clock = make(A, B)
    use(pool, "rate_limited", retry_after=5)
    use(pool, "rate_limited", retry_after=3)
    with pytest.raises(RateLimitError) as info:
        pool.acquire()
    assert info.value.retry_after == pytest.approx(3.0)
    assert A not in info.value.message and B not in info.value.message
    clock.advance(1.0)
    with pytest.raises(RateLimitError) as info:
        pool.acquire()
    assert info.value.retry_after == pytest.approx(2.0)
    clock.advance(2.0)
    assert use(pool) == B


def test_concurrent_429s_on_one_key_count_as_one_strike() -> None:
    pool, _ = make(A, base_cooldown=1.0)
    leases = [pool.acquire() for _ in range(5)]
    for lease in leases:
        lease.release("rate_limited")
    assert pool.snapshot()[0]["cooldown_remaining"] == 1.0  # not 16
    # ...but a longer Retry-After from a late one is honoured.
    pool2, _ = make(A)
    first, second = pool2.acquire(), pool2.acquire()
    first.release("rate_limited", retry_after=2)
    second.release("rate_limited", retry_after=7)
    assert pool2.snapshot()[0]["cooldown_remaining"] == 7.0


def test_success_of_a_request_started_before_the_cooldown_does_not_end_it() -> None:
    pool, _ = make(A, B)
    old = pool.acquire()
    assert old.key == A
    use(pool)  # B
    limited = pool.acquire()
    assert limited.key == B
    other = pool.acquire()
    assert other.key == A
    other.release("rate_limited", retry_after=10)
    old.release("success")
    assert state(pool, 0) == "cooling"
    limited.release("success")


async def test_401_disables_the_key_until_revive_brings_it_back() -> None:
    pool, clock = make(A, B)
    use(pool, "auth_failed")
    assert state(pool, 0) == "disabled"
    clock.advance(10_000)
    assert {use(pool) for _ in range(10)} == {B}

    async def probe(key: str) -> bool:
        return True

    await pool.revive(probe)
    assert state(pool, 0) == "ok"
    assert {use(pool) for _ in range(4)} == {A, B}


async def test_revive_keeps_keys_that_still_fail_disabled() -> None:
    pool, _ = make(A, B)
    use(pool, "auth_failed")
    use(pool, "auth_failed")
    with pytest.raises(UpstreamError) as info:
        pool.acquire()
    assert info.value.status == 502
    checked: list[str] = []

    async def probe(key: str) -> bool:
        checked.append(key)
        if key == B:
            raise ConnectionError(f"refused for {key}")
        return False

    await pool.revive(probe)
    assert sorted(checked) == [A, B]
    assert [s["state"] for s in pool.snapshot()] == ["disabled", "disabled"]
    assert B not in repr(pool.snapshot())  # a probe error that echoes the key is redacted

    async def good(key: str) -> bool:
        return key == B

    await pool.revive(good)
    assert use(pool) == B


def test_load_spreads_by_in_flight_count() -> None:
    pool, _ = make(A, B, C)
    leases = [pool.acquire() for _ in range(9)]
    counts = {k: sum(1 for lease in leases if lease.key == k) for k in (A, B, C)}
    assert counts == {A: 3, B: 3, C: 3}
    for lease in leases:
        if lease.key != B:
            lease.release("success")
    # A and C are idle now, B still has three in flight.
    assert {pool.acquire().key for _ in range(4)} == {A, C}
    assert [s["in_flight"] for s in pool.snapshot()] == [2, 3, 2]


def test_round_robin_among_equals_and_recently_failed_keys_go_last() -> None:
    pool, clock = make(A, B, C)
    assert [use(pool) for _ in range(6)] == [A, B, C, A, B, C]
    use(pool, "upstream_failed")  # A
    clock.advance(1)
    assert [use(pool) for _ in range(4)] == [B, C, B, C]
    clock.advance(30)  # an old failure is forgotten
    assert {use(pool) for _ in range(3)} == {A, B, C}


def test_upstream_failures_cool_a_key_only_after_three_in_a_row() -> None:
    pool, clock = make(A, B, base_cooldown=1.0)

    def round_(a_outcome: str) -> None:
        # two leases at once: the second always goes to the other key (fewest in flight)
        first, second = pool.acquire(), pool.acquire()
        a, b = (first, second) if first.key == A else (second, first)
        assert (a.key, b.key) == (A, B)
        a.release(a_outcome)  # type: ignore[arg-type]
        b.release("success")

    for _ in range(2):
        round_("upstream_failed")
        round_("upstream_failed")
        round_("success")  # a success resets the count
    assert state(pool, 0) == "ok"
    for _ in range(3):
        round_("upstream_failed")
    assert state(pool, 0) == "cooling"
    assert pool.snapshot()[0]["cooldown_remaining"] == 1.0
    clock.advance(1.0)
    assert use(pool) == A  # back from its rest: A gets the next request as its probe


def test_the_last_good_key_never_rests_for_upstream_failures() -> None:
    pool, _ = make(A, base_cooldown=1.0)
    for _ in range(10):
        use(pool, "upstream_failed")
    assert state(pool, 0) == "ok"  # resting it would turn an upstream hiccup into refusals
    assert use(pool) == A


def test_accepted_ends_the_probation_before_a_long_stream_ends() -> None:
    pool, clock = make(A)
    use(pool, "rate_limited", retry_after=1)
    clock.advance(1)
    stream = pool.acquire()
    with pytest.raises(RateLimitError):
        pool.acquire()  # probe in flight
    stream.accepted()  # first chunk arrived
    other = pool.acquire()
    assert other.key == A
    assert pool.snapshot()[0]["in_flight"] == 2
    stream.release("upstream_failed")  # judged already: only frees the load
    other.release("success")
    snap = pool.snapshot()[0]
    assert (snap["state"], snap["in_flight"], snap["failures"]) == ("ok", 0, 1)


def test_lease_as_context_manager_judges_by_exception() -> None:
    pool, _ = make(A, B)
    with pytest.raises(UpstreamError), pool.acquire():
        raise UpstreamError(f"quota for {A} exceeded", upstream_status=429, retry_after=5)
    snap = pool.snapshot()
    assert snap[0]["state"] == "cooling"
    assert A not in repr(snap)
    with pool.acquire() as lease:
        assert lease.key == B
    with pytest.raises(UpstreamError), pool.acquire():
        raise UpstreamError("bad request", upstream_status=400)
    assert [s["state"] for s in pool.snapshot()] == ["cooling", "ok"]
    assert pool.snapshot()[1]["in_flight"] == 0


def test_release_twice_counts_once() -> None:
    pool, _ = make(A)
    lease = pool.acquire()
    lease.release("success")
    lease.release("auth_failed")
    snap = pool.snapshot()[0]
    assert (snap["state"], snap["in_flight"], snap["successes"]) == ("ok", 0, 1)


def test_outcome_of_classifies_upstream_errors() -> None:
    assert outcome_of(None) == "success"
    assert outcome_of(UpstreamError("x", upstream_status=429)) == "rate_limited"
    assert outcome_of(UpstreamError("x", upstream_status=401)) == "auth_failed"
    assert outcome_of(UpstreamError("x", upstream_status=403)) == "auth_failed"
    assert outcome_of(UpstreamError("x", upstream_status=503)) == "upstream_failed"
    assert outcome_of(UpstreamError("connection refused")) == "upstream_failed"
    assert outcome_of(UpstreamError("x", upstream_status=422)) == "neutral"
    assert outcome_of(asyncio.CancelledError()) == "neutral"


def test_no_keys_lends_none_for_free() -> None:
    pool, _ = make()
    lease = pool.acquire()
    assert lease.key is None
    lease.release("auth_failed")
    lease.release("success")
    assert pool.acquire() is lease
    assert pool.snapshot() == []


def test_snapshot_masks_every_key() -> None:
    pool, _ = make(A, B, "short-key1", "tiny")
    lease = pool.acquire()
    lease.release("upstream_failed", error=f"upstream said: invalid key {A}")
    use(pool, "auth_failed")
    snap = pool.snapshot()
    assert snap[0]["key"] == "sk-…1111"
    text = repr(snap) + repr(lease) + repr(pool)
    for key in (A, B, "short-key1", "tiny"):
        assert key not in text
    assert snap[0]["last_error"].startswith("upstream failed")
    assert set(snap[0]) >= {
        "key",
        "state",
        "in_flight",
        "successes",
        "failures",
        "cooldown_remaining",
        "last_error",
    }


def test_mask_key_shows_less_of_short_keys() -> None:
    assert mask_key("sk-proj-abcdefghijklmnop") == "sk-…mnop"
    assert mask_key("abcdefghij") == "…ij"
    assert mask_key("abc") == "…"


def test_backoff_delays_use_full_jitter_under_a_cap() -> None:
    assert backoff_delays(5, base=0.2, cap=2.0, rng=lambda: 1.0) == [0.2, 0.4, 0.8, 1.6, 2.0]
    assert backoff_delays(3, rng=lambda: 0.0) == [0.0, 0.0, 0.0]
    assert backoff_delays(0) == []
    for _ in range(100):
        delays = backoff_delays(4)
        assert all(0 <= d <= c for d, c in zip(delays, [0.2, 0.4, 0.8, 1.6], strict=True))
