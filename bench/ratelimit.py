"""Rate limiter overhead: µs per reserve (+ reconcile) on the local and the Redis backend.

Run from the repository: `.venv/bin/python bench/ratelimit.py` (`-h` for flags; needs Redis for
the Redis rows, `--redis-url`). Limits are high enough never to refuse; a global limit and a
per-key limit (RPM and TPM) apply, so every reserve takes four buckets, as with keys on. Each
row gives wall µs per call (p50/p99 at concurrency 1, mean otherwise) and this process's CPU µs
per call, which is what a gateway at full load pays; a plain PING is the floor for Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from chatgate.gateway.ratelimit import Backend, Limit, LocalBackend, RateLimiter, RedisBackend

HIGH = Limit(rpm=10**9, tpm=10**12)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/ratelimit.py",
        description="Measure the rate limiter's per-call overhead.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--calls", type=int, default=20_000, help="calls per row")
    p.add_argument("--keys", type=int, default=1000, help="distinct client keys, round robin")
    p.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default="1,16,64",
        help="coroutines calling at once, comma list",
    )
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--no-uvloop", action="store_true", help="use asyncio's own loop")
    return p.parse_args(argv)


async def measure(
    call: Callable[[int], Awaitable[None]], calls: int, concurrency: int
) -> tuple[float, float, float]:
    """(p50 or mean wall µs, p99 wall µs or nan, CPU µs) per call."""
    for i in range(min(calls // 10, 2000)):  # warm up: connections, script, buckets
        await call(i)
    latencies: list[float] = []
    counter = iter(range(calls))

    async def worker() -> None:
        for i in counter:
            t = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if concurrency == 1:
        q = statistics.quantiles(latencies, n=100)
        return q[49] * 1e6, q[98] * 1e6, cpu / calls * 1e6
    return wall / calls * 1e6, float("nan"), cpu / calls * 1e6


async def rows(args: argparse.Namespace) -> list[tuple[str, int, tuple[float, float, float]]]:
    keys = [f"key-{i}" for i in range(args.keys)]
    out: list[tuple[str, int, tuple[float, float, float]]] = []

    def limiter_calls(rl: RateLimiter) -> dict[str, Callable[[int], Awaitable[None]]]:
        async def reserve(i: int) -> None:
            await rl.reserve(keys[i % len(keys)], HIGH, 100)

        async def both(i: int) -> None:
            await rl.reconcile(await rl.reserve(keys[i % len(keys)], HIGH, 100), 120)

        return {"reserve": reserve, "reserve+reconcile": both}

    backends: list[tuple[str, Callable[[], Backend]]] = [("local", LocalBackend)]
    client = aioredis.Redis.from_url(args.redis_url, socket_connect_timeout=1)
    prefix = f"bench:rl:{uuid.uuid4().hex}:"
    try:
        await client.ping()
    except Exception as exc:
        print(f"Redis at {args.redis_url} is not reachable ({exc}); local rows only")
    else:
        backends.append(("redis", lambda: RedisBackend(args.redis_url, prefix=prefix)))

        async def ping(i: int) -> None:
            await client.ping()

        for c in args.concurrency:
            out.append(("redis PING (floor)", c, await measure(ping, args.calls, c)))

    for name, make in backends:
        for what in ("reserve", "reserve+reconcile"):
            for c in args.concurrency:
                rl = RateLimiter(make(), HIGH)
                result = await measure(limiter_calls(rl)[what], args.calls, c)
                assert not rl.degraded, "Redis failed during the run"
                await rl.close()
                out.append((f"{name} {what}", c, result))
    if len(backends) > 1:
        names = [n async for n in client.scan_iter(match=prefix + "*", count=1000)]
        for i in range(0, len(names), 1000):
            await client.delete(*names[i : i + 1000])
    await client.aclose()
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.no_uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    results = asyncio.run(rows(args))
    print(f"\n{args.calls} calls per row, {args.keys} keys, 4 buckets per call\n")
    print("| what | concurrency | wall µs/call (p50 at c=1, else mean) | p99 µs | CPU µs/call |")
    print("|---|---:|---:|---:|---:|")
    for name, c, (wall, p99, cpu) in results:
        p99s = "" if p99 != p99 else f"{p99:.1f}"
        print(f"| {name} | {c} | {wall:.1f} | {p99s} | {cpu:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
