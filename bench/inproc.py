"""The gateway's own CPU per request, without a server or a load generator in the way.

Drives chatgate's ASGI app directly (no uvicorn, no wrk) against the fake upstream in its own
process, and reads this process's CPU time: the figure includes our upstream HTTP client and
the whole request path, and none of the load side. Far less sensitive to a busy machine than
wall-clock throughput, so two revisions can be compared on one that is not quiet:

    .venv/bin/python bench/inproc.py --baseline c8fb6f4      # this tree vs a revision, interleaved
    .venv/bin/python bench/inproc.py --requests 4000 --stream
    .venv/bin/python bench/inproc.py --get /v1/models --baseline main   # a bodiless FastAPI door
    .venv/bin/python bench/inproc.py --api responses --profile /tmp/r.prof  # another door, profiled

With ``--baseline`` it re-runs itself alternately with the working tree's ``src`` and the
revision's (a git worktree under bench/results/) on ``PYTHONPATH``, and prints the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))


def start_fake(chunks: int) -> tuple[subprocess.Popen[bytes], int]:
    """The fake upstream in its own process (its CPU is not ours): (process, port)."""
    import httpx

    from procs import free_port

    port = free_port()
    argv = [sys.executable, "-m", "tests.fakes.upstream", "--port", str(port)]
    fake = subprocess.Popen(
        [*argv, "--chunks", str(chunks)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            return fake, port
        except httpx.HTTPError:
            time.sleep(0.05)
    fake.kill()
    raise RuntimeError("the fake upstream did not start")


async def measure(
    requests: int,
    concurrency: int,
    stream: bool,
    port: int,
    get: str | None = None,
    api: str = "chat",
    profile: str | None = None,
) -> dict[str, float]:
    """CPU per request of ``api``'s door (chat completions by default), or with ``get`` of
    ``GET get``; with ``profile``, the measured part's cProfile stats written there."""
    from chatgate.app import create_app
    from chatgate.config import Config

    config = Config.model_validate(
        {
            "discover_env": False,
            "local_model": False,
            "database": {"url": f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/inproc.db"},
            "providers": {
                "fake": {
                    "type": "openai",
                    "base_url": f"http://127.0.0.1:{port}/v1",
                    "api_keys": ["sk-fake"],
                }
            },
            "models": {"fake-model": {"provider": "fake", "model": "fake-model"}},
        }
    )
    app = create_app(config)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    life = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)
    )
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    from apis import APIS

    door = APIS[api]
    mode = "stream" if stream else "non-stream"
    body = json.dumps(door.body("fake-model", "Say hello to the benchmark.", mode)).encode()
    path = get or door.path
    headers = [(b"host", b"127.0.0.1")]  # an allowed Host (api.guard)
    if get:
        body = b""
    else:
        headers.insert(0, (b"content-type", b"application/json"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET" if get else "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }

    async def one() -> None:
        sent = False
        never = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await never.wait()  # the client stays connected
            return {"type": "http.disconnect"}

        status = 0
        size = 0

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                size += len(message.get("body", b""))

        await app(dict(scope), receive, send)
        if status != 200 or not size:
            raise RuntimeError(f"request failed: {status}")

    async def worker(n: int) -> None:
        for _ in range(n):
            await one()

    await asyncio.gather(*(worker(20) for _ in range(concurrency)))  # warm-up
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    per = requests // concurrency
    await asyncio.gather(*(worker(per) for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    await inbox.put({"type": "lifespan.shutdown"})
    await life
    done = per * concurrency
    return {"cpu_us_per_request": cpu / done * 1e6, "wall_rps": done / wall}


def _compare(args: argparse.Namespace) -> int:
    from targets import baseline_source

    short, base_src = baseline_source(REPO, args.baseline, BENCH / "results")
    trees = {"working tree": REPO / "src", f"@{short}": base_src}
    figures: dict[str, list[float]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        for name, src in trees.items():
            env = {**os.environ, "PYTHONPATH": f"{src}:{REPO}"}
            argv = [sys.executable, __file__, "--json", "--requests", str(args.requests)]
            argv += ["--concurrency", str(args.concurrency), "--chunks", str(args.chunks)]
            if args.stream:
                argv.append("--stream")
            if args.get:
                argv += ["--get", args.get]
            argv += ["--api", args.api]
            out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
            value = json.loads(out.stdout.strip().splitlines()[-1])["cpu_us_per_request"]
            figures[name].append(value)
            print(f"round {round_ + 1}: {name:>14}: {value:7.1f} µs/request", file=sys.stderr)
    mode = f"GET {args.get}" if args.get else "stream" if args.stream else "non-stream"
    mode += "" if args.get or args.api == "chat" else f", {args.api}"
    print(f"\n{mode}, concurrency {args.concurrency}, {args.requests} requests × {args.rounds}")
    base = statistics.median(figures[f"@{short}"])
    for name, values in figures.items():
        med = statistics.median(values)
        print(
            f"- {name}: {med:.1f} µs CPU/request (median; {min(values):.1f}–{max(values):.1f}), "
            f"{med / base:.2f}× @{short}"
        )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/inproc.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--chunks", type=int, default=24, help="content chunks per streamed answer")
    p.add_argument("--stream", action="store_true")
    p.add_argument("--get", metavar="PATH", help="measure GET PATH (e.g. /v1/models) instead")
    from apis import APIS

    p.add_argument("--api", choices=sorted(APIS), default="chat", help="the door to measure")
    p.add_argument("--profile", metavar="FILE", help="write cProfile stats of the measured part")
    p.add_argument("--baseline", metavar="REV", help="compare with this git revision")
    p.add_argument("--rounds", type=int, default=5, help="alternating runs with --baseline")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.baseline:
        return _compare(args)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    fake, port = start_fake(args.chunks)
    try:
        result = asyncio.run(
            measure(
                args.requests,
                args.concurrency,
                args.stream,
                port,
                args.get,
                args.api,
                args.profile,
            )
        )
    finally:
        fake.terminate()
        fake.wait(10)
    print(json.dumps(result) if args.json else f"{result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
