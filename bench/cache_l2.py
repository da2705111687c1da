"""L2 disk cache: fill a DiskStore with 1,000,000 entries, then time lookups (hits and misses).

Run from the repository: `.venv/bin/python bench/cache_l2.py` (`-h` for flags). The store is
closed and opened again between the fill and the lookups, as after a restart; lookups come from
an asyncio loop, one at a time and with several coroutines at once, on random keys.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from chatgate.gateway.cache.disk import DiskStore

MiB = 1024 * 1024


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/cache_l2.py",
        description="Fill the disk cache tier (SQLite) and measure lookup latency p50/p99.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--entries", type=int, default=1_000_000, help="entries to fill")
    p.add_argument("--value-bytes", type=int, default=1024, help="bytes per value")
    p.add_argument("--lookups", type=int, default=20_000, help="lookups per kind (hit, miss)")
    p.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default="1,16",
        help="coroutines looking up at once, comma list",
    )
    p.add_argument("--dir", type=Path, help="cache directory (default: a temporary one)")
    p.add_argument("--max-bytes", type=int, help="store bound (default: 2x the payload)")
    p.add_argument("--skip-fill", action="store_true", help="reuse what --dir already holds")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return p.parse_args(argv)


def key(i: int) -> bytes:
    return hashlib.blake2b(i.to_bytes(8, "little"), digest_size=32).digest()


def log(msg: str) -> None:
    print(f"[cache_l2] {msg}", file=sys.stderr, flush=True)


def files(directory: Path) -> dict[str, int]:
    return {f.name: f.stat().st_size for f in sorted(directory.glob("cache.db*"))}


async def fill(store: DiskStore, entries: int, value_bytes: int) -> float:
    rng = random.Random(1)
    expires_at = time.time() + 30 * 86400
    start = time.perf_counter()
    for i in range(entries):
        await store.set(key(i), rng.randbytes(value_bytes), expires_at)
        if i and i % 100_000 == 0:
            log(f"filled {i:,} ({i / (time.perf_counter() - start):,.0f}/s)")
    await store.flush()
    return time.perf_counter() - start


async def lookups(store: DiskStore, keys: list[bytes], concurrency: int) -> tuple[list[float], int]:
    """Latency of each lookup in ms, and how many were hits."""
    latencies: list[float] = []
    hits = 0
    it = iter(keys)

    async def worker() -> None:
        nonlocal hits
        for k in it:
            t0 = time.perf_counter_ns()
            found = await store.get(k)
            latencies.append((time.perf_counter_ns() - t0) / 1e6)
            hits += found is not None

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, hits


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


async def main(args: argparse.Namespace) -> int:
    directory = args.dir or Path(tempfile.mkdtemp(prefix="chatgate-cache-l2-"))
    max_bytes = args.max_bytes or max(
        64 * MiB, 2 * args.entries * (args.value_bytes + 32) + 256 * MiB
    )
    try:
        store = DiskStore(directory, max_bytes)
        await store.start()
        if not args.skip_fill:
            log(f"filling {args.entries:,} entries of {args.value_bytes} B into {directory}")
            fill_s = await fill(store, args.entries, args.value_bytes)
        await store.close()

        t0 = time.perf_counter()
        store = DiskStore(directory, max_bytes)
        await store.start()
        start_s = time.perf_counter() - t0
        stats = await store.stats()
        sizes = files(directory)
        total = sum(sizes.values())

        print(f"entries:    {stats.entries:,} x {args.value_bytes} B values (32 B keys)")
        if not args.skip_fill:
            rate = args.entries / fill_s
            print(f"fill:       {fill_s:.1f} s ({rate:,.0f} entries/s, batched group commits)")
        print(f"reopen:     {start_s * 1000:.0f} ms (open, schema and size checks)")
        print(
            f"on disk:    {total / MiB:,.1f} MiB = "
            + ", ".join(f"{name} {size / MiB:,.1f} MiB" for name, size in sizes.items())
            + f"; {total / max(stats.entries, 1):,.0f} B per entry"
        )
        rng = random.Random(2)
        n = args.lookups
        hit_keys = [key(rng.randrange(args.entries)) for _ in range(n)]
        miss_keys = [key(args.entries + rng.randrange(10 * args.entries)) for _ in range(n)]
        await lookups(store, hit_keys[: n // 10], 4)  # warm the reader threads' connections
        print(f"lookups:    {n:,} per row, random keys, latency of each `await store.get()`")
        print(
            f"{'kind':<6} {'coros':>5} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} "
            f"{'max ms':>8} {'lookups/s':>10} {'found':>7}"
        )
        for concurrency in args.concurrency:
            for kind, keys in (("hit", hit_keys), ("miss", miss_keys)):
                t0 = time.perf_counter()
                lat, found = await lookups(store, keys, concurrency)
                wall = time.perf_counter() - t0
                print(
                    f"{kind:<6} {concurrency:>5} {pct(lat, 50):>8.3f} {pct(lat, 99):>8.3f} "
                    f"{pct(lat, 99.9):>9.3f} {max(lat):>8.3f} {len(lat) / wall:>10,.0f} "
                    f"{found / len(lat):>7.1%}"
                )
        await store.close()
    finally:
        if args.dir is None and not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
        elif args.dir is None:
            log(f"kept {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
