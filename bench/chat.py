"""Chat API benchmark: opening a long conversation, and many followed generations at once.

Run from the repository: `.venv/bin/python bench/chat.py` (`-h` for flags). Starts the fake
upstream and `chatgate serve` (single-user mode on loopback, SQLite unless --database-url) as
child processes, from this checkout's `src/` (not whatever chatgate the venv has installed),
then measures from this process with aiohttp:

1. open: `GET /api/conversations/{id}` of an imported conversation of --messages messages
   (targets: p50/p99 under 50 ms for 2,000 messages). Each answer carries the context record
   a 128k window (DeepSeek's) gives it: every earlier message sent, none dropped — what a real
   long conversation stores (`--no-context` imports bare messages, as before);
2. follow: --concurrency generations started at once through `POST .../messages`, each followed
   over SSE; the gaps between consecutive delta events at the client, against the same number
   of streams read straight from the fake upstream in the same run (target: p99 under 10 ms
   above the upstream's own chunk interval). `send` is the latency of those POSTs (all sent at
   once); `chatgate_followed_steady` keeps only the gaps after the last POST had returned.

With each phase it reports the CPU seconds the server, the fake upstream and this client used
(from /proc, so Linux only) and the load average: the three share the machine, and when their
CPU adds up to the cores there are, the gaps measure the machine more than chatgate. CPU per
open, and per chunk (the follow phase's server CPU, start-up included, over the chunks asked
for), are the figures that stay comparable between runs on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
HEADERS = {"X-Requested-With": "bench"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/chat.py",
        description="Benchmark the chat API: open a long conversation; follow many generations.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--messages", type=int, default=2000, help="messages in the open test")
    p.add_argument("--opens", type=int, default=100, help="timed opens")
    p.add_argument(
        "--no-context", action="store_true", help="import the answers without context records"
    )
    p.add_argument("--concurrency", type=int, default=200, help="generations at once")
    p.add_argument("--chunks", type=int, default=50, help="chunks per answer")
    p.add_argument("--chunk-delay-ms", type=float, default=10.0, help="upstream chunk interval")
    p.add_argument("--database-url", help="default: SQLite in a temporary directory")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 0.50) * 1000, 2),
        "p99_ms": round(pct(values, 0.99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2) if values else float("nan"),
        "mean_ms": round(statistics.fmean(values) * 1000, 2) if values else float("nan"),
    }


async def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
            try:
                async with s.get(url) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Usage:
    """CPU used by each process (and the load average) over one phase of the benchmark."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def result(self) -> dict[str, Any]:
        used: dict[str, Any] = {}
        for name, pid in self.pids.items():
            now, before = cpu_seconds(pid), self.start[name]
            used[name] = round(now - before, 2) if now is not None and before is not None else None
        return {"cpu_s": used, "load_average": [round(x, 2) for x in os.getloadavg()]}


WINDOW = 131_072  # DeepSeek's: a 2,000-message conversation fits whole
REPLY = 4096


def long_export(n: int, context: bool) -> dict[str, Any]:
    """A chatgate JSON export of one branch of ``n`` messages; with ``context``, each answer's
    record lists every earlier message as sent (as the context builder stores it, in the
    export's full shape)."""
    messages: list[dict[str, Any]] = []
    for i in range(n):
        role = ("user", "assistant")[i % 2]
        m: dict[str, Any] = {
            "id": f"b{i}",
            "parent_id": f"b{i - 1}" if i else None,
            "role": role,
            "content": f"message {i}: " + "lorem ipsum " * 16,
        }
        if context and role == "assistant":
            sent = [f"b{j}" for j in range(i)]
            m["context"] = {
                "sent": sent,
                "dropped": [],
                "summarised": [],
                "summary_id": None,
                "window": WINDOW,
                "budget": WINDOW - REPLY,
                "reply_tokens": REPLY,
                "prompt_tokens_estimate": 60 * i,
            }
        messages.append(m)
    conversation = {"title": "long", "model": "fake-model", "active_leaf_id": f"b{n - 1}"}
    return {"format": "chatgate.conversation", "conversation": conversation, "messages": messages}


async def bench_open(
    s: aiohttp.ClientSession,
    url: str,
    n: int,
    opens: int,
    pids: dict[str, int],
    context: bool = True,
) -> dict[str, Any]:
    body = long_export(n, context)
    async with s.post(f"{url}/api/conversations/import", json=body, headers=HEADERS) as r:
        assert r.status == 201, await r.text()
        cid = (await r.json())["id"]
    times = []
    usage = Usage(pids)
    for i in range(opens + 5):
        if i == 5:  # after the warm-up
            usage = Usage(pids)
        t0 = time.perf_counter()
        async with s.get(f"{url}/api/conversations/{cid}") as r:
            data = await r.read()
        times.append(time.perf_counter() - t0)
    assert len(json.loads(data)["messages"]) == n
    return {
        "messages": n,
        "context_records": context,
        "bytes": len(data),
        **summary(times[5:]),
        **usage.result(),
    }


async def arrivals(response: aiohttp.ClientResponse, delta: bytes) -> list[float]:
    """Arrival time of each event line containing ``delta``, until a done or the end."""
    times = []
    async for line in response.content:
        if delta in line:
            times.append(time.perf_counter())
        elif b'"type":"done"' in line or line.startswith(b"data: [DONE]"):
            break
    return times


def gaps(series: list[list[float]]) -> list[float]:
    return [b - a for times in series for a, b in itertools.pairwise(times)]


async def follow_one(
    s: aiohttp.ClientSession, url: str, cid: str, started: list[float], sends: list[float]
) -> list[float]:
    t0 = time.perf_counter()
    async with s.post(
        f"{url}/api/conversations/{cid}/messages", json={"content": "go"}, headers=HEADERS
    ) as r:
        assert r.status == 202, await r.text()
        gid = (await r.json())["generation_id"]
    started.append(time.perf_counter())
    sends.append(started[-1] - t0)
    async with s.get(f"{url}/api/generations/{gid}/events") as r:
        return await arrivals(r, b'"type":"delta"')


def steady(series: list[list[float]], since: float) -> list[float]:
    """The gaps after every generation had been started (no start-up traffic in between)."""
    return [b - a for times in series for a, b in itertools.pairwise(times) if a >= since]


async def direct_one(s: aiohttp.ClientSession, fake: str) -> list[float]:
    body = {"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    async with s.post(f"{fake}/v1/chat/completions", json=body) as r:
        return await arrivals(r, b'"content"')


async def bench_follow(
    s: aiohttp.ClientSession, url: str, fake: str, n: int, pids: dict[str, int]
) -> dict[str, Any]:
    cids = []
    for _ in range(n):
        async with s.post(f"{url}/api/conversations", json={"model": "fake-model"},
                          headers=HEADERS) as r:  # fmt: skip
            cids.append((await r.json())["id"])
    usage = Usage(pids)
    t0 = time.perf_counter()
    direct = await asyncio.gather(*(direct_one(s, fake) for _ in range(n)))
    direct_s = time.perf_counter() - t0
    direct_usage = usage.result()
    usage = Usage(pids)
    t0 = time.perf_counter()
    started: list[float] = []
    sends: list[float] = []
    followed = await asyncio.gather(*(follow_one(s, url, cid, started, sends) for cid in cids))
    followed_s = time.perf_counter() - t0
    all_started = max(started)
    return {
        "generations": n,
        "chunks_received": sum(map(len, followed)),
        "direct_upstream": {"wall_s": round(direct_s, 2), **summary(gaps(direct)), **direct_usage},
        "send": summary(sends),
        "chatgate_followed": {
            "wall_s": round(followed_s, 2),
            **summary(gaps(followed)),
            **usage.result(),
        },
        "chatgate_followed_steady": {
            "wall_s": round(followed_s - (all_started - t0), 2),
            **summary(steady(followed, all_started)),
        },
    }


async def run(
    args: argparse.Namespace, url: str, fake: str, pids: dict[str, int]
) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as s:
        opened = await bench_open(s, url, args.messages, args.opens, pids, not args.no_context)
        follow = await bench_follow(s, url, fake, args.concurrency, pids)
    return {"open_conversation": opened, "follow": follow}


def describe(phase: dict[str, Any], count: int, unit: str) -> str:
    """CPU per process over a phase, the server's per ``unit``, and the load average."""
    cpu = phase["cpu_s"]
    per = (
        f", server {cpu['server'] / count * 1e3:.3g} ms CPU per {unit}"
        if cpu.get("server") is not None and count
        else ""
    )
    used = ", ".join(f"{k} {v} s" for k, v in cpu.items() if v is not None)
    load = " ".join(map(str, phase["load_average"]))
    return f"CPU: {used or 'n/a'}{per}; load average {load}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="chatgate-bench-chat-"))
    fake_port, port = free_port(), free_port()
    fake, url = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{port}"
    config = tmp / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "discover_env": False,
                "local_model": False,
                "providers": {"fake": {"type": "openai", "base_url": fake + "/v1",
                                       "models": ["fake-model"]}},
                # One user starts them all: lift the per-user cap on running answers.
                "chat": {"model_titles": False, "max_generations_per_user": args.concurrency},
                # The import of a long conversation with its context records is bigger than 8 MB.
                "server": {"max_body_bytes": 512 * 1024 * 1024},
            }
        )  # JSON is YAML
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    database = args.database_url or f"sqlite+aiosqlite:///{tmp / 'chat.db'}"
    py = sys.executable
    procs = [
        start([py, "-m", "tests.fakes.upstream", "--port", str(fake_port), "--chunks",
               str(args.chunks), "--chunk-delay-ms", str(args.chunk_delay_ms)], env),
        start([py, "-m", "chatgate.cli", "serve", "--config", str(config), "--port", str(port),
               "--database-url", database, "--log-level", "warning"], env),
    ]  # fmt: skip
    try:
        asyncio.run(wait_up(fake + "/_fake/stats", procs[0]))
        asyncio.run(wait_up(url + "/health", procs[1]))
        pids = {"server": procs[1].pid, "upstream": procs[0].pid, "client": os.getpid()}
        try:
            import uvloop

            result = uvloop.run(run(args, url, fake, pids))
        except ImportError:
            result = asyncio.run(run(args, url, fake, pids))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    result["upstream_chunk_delay_ms"] = args.chunk_delay_ms
    result["database"] = "postgresql" if "postgres" in database else "sqlite"
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        o, f = result["open_conversation"], result["follow"]
        records = "with" if o["context_records"] else "without"
        print(f"open a {o['messages']}-message conversation {records} context records "
              f"({o['bytes']} bytes): "
              f"p50 {o['p50_ms']} ms, p99 {o['p99_ms']} ms  (target < 50 ms); "
              f"{describe(o, o['n'], 'open')}")  # fmt: skip
        print(f"{'send':>24}: {f['generations']} POSTs at once, p50 {f['send']['p50_ms']} ms, "
              f"p99 {f['send']['p99_ms']} ms")  # fmt: skip
        for name in ("direct_upstream", "chatgate_followed", "chatgate_followed_steady"):
            g = f[name]
            print(
                f"{name:>24}: {f['generations']} streams at once, inter-chunk gap "
                f"p50 {g['p50_ms']} ms, p99 {g['p99_ms']} ms, max {g['max_ms']} ms "
                f"(upstream interval {args.chunk_delay_ms} ms), wall {g['wall_s']} s"
            )
            if "cpu_s" in g:
                chunks = f["generations"] * args.chunks if name != "direct_upstream" else 0
                print(f"{'':>26}{describe(g, chunks, 'chunk')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
