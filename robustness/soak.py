"""Soak run: minutes of steady mixed load on a ``chatgate serve`` process, watching its memory.

The fake upstream and chatgate (cache on) run as their own processes; this process generates a
fixed request rate, an even mix of four kinds:

    json-cached    non-stream, one of a fixed set of prompts (cache hits after the first)
    stream-cached  stream, same set (a streamed answer replays a cached one, and vice versa)
    json-nocache   non-stream, unique prompt, ``Cache-Control: no-cache, no-store`` (bypass)
    stream-nocache stream, unique prompt, bypass

After a warm-up (every cached prompt stored, pools and buffers grown) the gateway's RSS is
sampled every few seconds; the run reports RSS at start and end, the growth (target: under
10 %), the slope of a least-squares fit, and requests served and failed.

    .venv/bin/python -m robustness.soak [--minutes 3] [--rps 150] [--warmup 30]

Exit status 1 if any request failed or RSS grew more than ``--max-growth`` percent.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from bench.procs import rss_mb

from robustness.harness import stack
from robustness.shape import sse_events

KINDS = ("json-cached", "stream-cached", "json-nocache", "stream-nocache")
BYPASS = {"Cache-Control": "no-cache, no-store"}
KNOBS = {"chunks": 16, "chunk_delay_ms": 1}  # fake upstream: streams of 16 chunks, 1 ms apart


@dataclass
class Tally:
    served: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    cache: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def fail(self, kind: str, why: str) -> None:
        self.failed[kind] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {why}")


@dataclass
class Sample:
    t: float  # seconds since the measured period began
    rss: float  # MB
    served: int


def request_body(kind: str, n: int, prompts: int) -> dict[str, Any]:
    stream = kind.startswith("stream")
    if kind.endswith("-cached"):
        text = f"soak cached prompt {random.randrange(prompts)}"
    else:
        text = f"soak unique prompt {n} {random.random()}"
    return {
        "model": "fake-model",
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
        "fake": KNOBS,  # the same for both modes: a cached answer serves stream and non-stream
    }


async def one(
    http: aiohttp.ClientSession, url: str, kind: str, n: int, prompts: int, tally: Tally
) -> None:
    headers = BYPASS if kind.endswith("-nocache") else {}
    started = time.perf_counter()
    try:
        async with http.post(
            url + "/v1/chat/completions",
            data=orjson.dumps(request_body(kind, n, prompts)),
            headers={"Content-Type": "application/json", **headers},
        ) as resp:
            content = await resp.read()
            if resp.status != 200:
                tally.fail(kind, f"status {resp.status}: {content[:200]!r}")
                return
            tally.cache[resp.headers.get("X-Chatgate-Cache", "?")] += 1
            if kind.startswith("stream"):
                events = sse_events(content.decode("utf-8", "replace"))
                if not events or events[-1] != "[DONE]":
                    tally.fail(kind, f"stream without [DONE]: {content[-200:]!r}")
                    return
            else:
                orjson.loads(content)["choices"][0]["message"]["content"]
    except (aiohttp.ClientError, TimeoutError, KeyError, IndexError, ValueError) as exc:
        tally.fail(kind, f"{type(exc).__name__}: {exc}")
        return
    tally.served[kind] += 1
    tally.latencies.append(time.perf_counter() - started)


async def load(
    url: str, seconds: float, rps: float, prompts: int, tally: Tally, concurrency: int
) -> None:
    """``rps`` requests a second for ``seconds``, kinds in rotation, at most ``concurrency``
    in flight (a slow gateway shows as a lower achieved rate, never as an unbounded pile-up)."""
    gate = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        start = time.monotonic()
        n = 0
        while True:
            due = start + n / rps
            now = time.monotonic()
            if due - start >= seconds:
                break
            if due > now:
                await asyncio.sleep(due - now)
            await gate.acquire()
            kind = KINDS[n % len(KINDS)]

            async def run(kind: str = kind, n: int = n) -> None:
                try:
                    await one(http, url, kind, n, prompts, tally)
                finally:
                    gate.release()

            task = asyncio.create_task(run())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        if tasks:
            await asyncio.gather(*tasks)


async def warm_cache(url: str, prompts: int) -> None:
    """Store every cached prompt once (non-stream; streams replay the same entries)."""
    tally = Tally()
    async with aiohttp.ClientSession() as http:
        for start in range(0, prompts, 50):
            await asyncio.gather(
                *(_store(http, url, i, tally) for i in range(start, min(start + 50, prompts)))
            )
    if tally.failed:
        raise RuntimeError(f"warm-up failed: {tally.examples}")


async def _store(http: aiohttp.ClientSession, url: str, i: int, tally: Tally) -> None:
    body = {
        "model": "fake-model",
        "messages": [{"role": "user", "content": f"soak cached prompt {i}"}],
        "stream": False,
        "fake": KNOBS,
    }
    async with http.post(url + "/v1/chat/completions", json=body) as resp:
        await resp.read()
        if resp.status != 200:
            tally.fail("warm", f"status {resp.status}")


async def sample_rss(pid: int, every: float, tally: Tally, out: list[Sample]) -> None:
    start = time.monotonic()
    while True:
        sample = Sample(time.monotonic() - start, rss_mb(pid), sum(tally.served.values()))
        out.append(sample)
        print(
            f"  t={sample.t:6.0f}s  rss={sample.rss:7.1f} MB  served={sample.served}"
            f"  failed={sum(tally.failed.values())}",
            flush=True,
        )
        await asyncio.sleep(every)


def slope_mb_per_min(samples: list[Sample]) -> float:
    if len(samples) < 3:
        return 0.0
    xs = [s.t / 60 for s in samples]
    ys = [s.rss for s in samples]
    return statistics.linear_regression(xs, ys).slope


@dataclass
class SoakReport:
    start_mb: float
    end_mb: float
    peak_mb: float
    slope: float
    seconds: float
    tally: Tally

    @property
    def growth(self) -> float:
        return (self.end_mb - self.start_mb) / self.start_mb * 100

    def render(self) -> str:
        served = sum(self.tally.served.values())
        failed = sum(self.tally.failed.values())
        lat = sorted(self.tally.latencies) or [0.0]
        p50 = lat[len(lat) // 2] * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        lines = [
            f"RSS start (after warm-up) {self.start_mb:.1f} MB, end {self.end_mb:.1f} MB, "
            f"peak {self.peak_mb:.1f} MB: growth {self.growth:+.1f} % "
            f"(fit {self.slope:+.2f} MB/min)",
            f"requests served {served} in {self.seconds:.0f} s ({served / self.seconds:.0f}/s), "
            f"failed {failed}; latency p50 {p50:.1f} ms, p99 {p99:.1f} ms",
            "  by kind: " + ", ".join(f"{k} {self.tally.served[k]}" for k in KINDS),
            "  cache:   " + ", ".join(f"{k} {v}" for k, v in sorted(self.tally.cache.items())),
        ]
        lines += [f"  failure: {e}" for e in self.tally.examples]
        return "\n".join(lines)


async def soak(
    url: str,
    pid: int,
    *,
    minutes: float,
    warmup: float,
    rps: float,
    prompts: int,
    every: float,
    concurrency: int,
) -> SoakReport:
    print(f"warm-up: storing {prompts} cached prompts, then {warmup:.0f} s of load", flush=True)
    await warm_cache(url, prompts)
    warm = Tally()
    await load(url, warmup, rps, prompts, warm, concurrency)
    if warm.failed:
        print(f"warm-up: {sum(warm.failed.values())} request(s) failed: {warm.examples[:3]}")
    print(f"measuring for {minutes:g} min at {rps:g} req/s", flush=True)
    tally = Tally()
    samples: list[Sample] = []
    sampler = asyncio.create_task(sample_rss(pid, every, tally, samples))
    started = time.monotonic()
    await load(url, minutes * 60, rps, prompts, tally, concurrency)
    seconds = time.monotonic() - started
    sampler.cancel()
    samples.append(Sample(seconds, rss_mb(pid), sum(tally.served.values())))
    return SoakReport(
        start_mb=samples[0].rss,
        end_mb=samples[-1].rss,
        peak_mb=max(s.rss for s in samples),
        slope=slope_mb_per_min(samples),
        seconds=seconds,
        tally=tally,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustness.soak", description="Soak run.")
    p.add_argument("--minutes", type=float, default=3.0, help="measured period (after warm-up)")
    p.add_argument("--warmup", type=float, default=30.0, help="seconds of load before measuring")
    p.add_argument("--rps", type=float, default=150.0, help="request rate")
    p.add_argument("--concurrency", type=int, default=64, help="max requests in flight")
    p.add_argument("--prompts", type=int, default=500, help="distinct cached prompts")
    p.add_argument("--every", type=float, default=5.0, help="RSS sampling interval, seconds")
    p.add_argument("--max-growth", type=float, default=10.0, help="allowed RSS growth, %%")
    p.add_argument("--workdir", type=Path, default=None, help="logs, config, cache dir")
    args = p.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="chatgate-soak-"))
    with stack(workdir, cache=True) as running:
        print(f"chatgate {running.url} (pid {running.gateway.pid}), logs in {workdir}")
        report = asyncio.run(
            soak(
                running.url,
                running.gateway.pid,
                minutes=args.minutes,
                warmup=args.warmup,
                rps=args.rps,
                prompts=args.prompts,
                every=args.every,
                concurrency=args.concurrency,
            )
        )
    print(report.render())
    failed = sum(report.tally.failed.values())
    ok = failed == 0 and report.growth < args.max_growth
    print("soak: " + ("ok" if ok else "FAILED") + f" (target: growth < {args.max_growth:g} %)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
