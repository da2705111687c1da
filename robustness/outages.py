"""Outage run: chatgate on real PostgreSQL and Redis that go away and come back.

The fault matrix (``robustness.faults``) breaks the upstream and the clients; this one breaks
chatgate's own backing services and its stop. Each cell is one scenario, judged by what clients
see and what is stored:

- postgres stop/start mid-answer: web-chat answers streaming while PostgreSQL is stopped and
  started again. Every answer is followed whole, saved ``done``; the conversations go on.
- postgres down, every door: keys required, the key cache expired. 503 with Retry-After in each
  door's shape (/v1 whole and streamed, the seed endpoint, /api, a WebSocket error frame);
  ``/ready`` 503; served again once it is back.
- redis stopped, redis frozen (SIGSTOP): create, send and follow each well under a second;
  ``/ready`` says ``degraded``, then ``ready`` again by itself.
- drain deadline with streams: SIGTERM with streams longer than ``drain_seconds``. Each ends with
  its door's error event and a clean end; exit 0, no traceback.
- never-answering upstream: it takes the POST and never answers. 504 after one read timeout,
  and the upstream got one POST.

    .venv/bin/python -m robustness.outages [--repeats 3] [--postgres cluster|proxy]

The long run starts its own processes: the fake upstream, a throwaway PostgreSQL cluster (or a
TCP proxy in front of an existing server, ``--postgres proxy``), a private ``redis-server``,
and ``chatgate serve``. The short form is ``tests/robustness/test_outages.py`` in ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from robustness.harness import (
    FAULT_READ_TIMEOUT,
    chatgate_service,
    fake_service,
    gateway_yaml,
    write_config,
)
from robustness.outage import RedisServer, Switch, postgres
from robustness.shape import error_shape_problem, sse_events

PASSWORD = "correct horse battery"
WEB = {"X-Requested-With": "chatgate-outages"}
SLOW_ANSWER = {"chunks": 20, "chunk_delay_ms": 100}  # two seconds
FAST = 1.0  # seconds: the most a chat action may take while Redis is away


@dataclass
class Cell:
    name: str
    outcomes: Counter[str] = field(default_factory=Counter)
    max_latency: float = 0.0
    problems: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.outcomes) and not self.problems

    def check(self, good: bool, outcome: str, problem: str) -> None:
        self.outcomes[outcome if good else "FAIL"] += 1
        if not good:
            self.problems.append(problem)


@dataclass
class Target:
    """A running chatgate and the switches of its backing services."""

    url: str
    fake_url: str
    key: str  # a client key's secret (keys are required)
    database: Switch
    redis: RedisServer
    web: httpx.AsyncClient  # signed in
    outage_seconds: float = 3.0
    drain: Callable[[], Awaitable[Cell]] | None = None  # a cell needing its own process


def outage_yaml(fake_url: str, workdir: Path, database_url: str, redis_url: str) -> dict[str, Any]:
    """The chatgate config of the run: keys required (trusted 0 s: every call reads its key),
    a signed-in web chat, limits kept in Redis, the fake upstream."""
    return gateway_yaml(
        fake_url,
        workdir,
        extra={
            "database": {"url": database_url},
            "redis": {"url": redis_url},
            "auth": {"require_keys": True, "key_cache_ttl": 0, "single_user": "off"},
            "rate_limits": {"rpm": 1_000_000},
            "chat": {"model_titles": False, "save_interval": 0.2},
        },
    )


async def prepare(database_url: str) -> tuple[str, str]:
    """A client key and a user in chatgate's database: (the key's secret, the user's name)."""
    from chatgate.chat.accounts import Accounts
    from chatgate.storage import Database, KeyRepository

    name = f"outages-{secrets.token_hex(4)}"
    async with Database(database_url) as db:
        _, secret = await KeyRepository(db).create("outages")
        await Accounts(db, "off", True).create_user(name, PASSWORD)
    return secret, name


async def sign_in(url: str, name: str) -> httpx.AsyncClient:
    web = httpx.AsyncClient(base_url=url, headers=WEB, timeout=30, trust_env=False)
    r = await web.post("/api/auth/login", json={"name": name, "password": PASSWORD})
    r.raise_for_status()
    return web


# -- the web chat ---------------------------------------------------------------------------------
async def conversation(web: httpx.AsyncClient, fake: dict[str, Any] | None = None) -> str:
    params = {"fake": fake} if fake else {}
    r = await web.post("/api/conversations", json={"model": "local", "params": params})
    r.raise_for_status()
    return str(r.json()["id"])


async def stored(web: httpx.AsyncClient, cid: str, mid: str) -> dict[str, Any] | None:
    r = await web.get(f"/api/conversations/{cid}")
    if r.status_code != 200:
        return None
    found = [m for m in r.json()["messages"] if m["id"] == mid]
    return found[0] if found else None


async def settled(
    web: httpx.AsyncClient, cid: str, mid: str, within: float = 30
) -> dict[str, Any] | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await stored(web, cid, mid)
        if found is not None and found["status"] != "streaming":
            return found
        await asyncio.sleep(0.1)
    return None


async def follow(web: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    events = []
    async with web.stream("GET", path) as resp:
        async for line in resp.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def text(chunks: int) -> str:
    return "".join(f"tok{i} " for i in range(chunks))


# -- the cells ------------------------------------------------------------------------------------
async def postgres_mid_answer(t: Target, repeats: int) -> Cell:
    cell = Cell("postgres stop/start mid-answer")
    convs = [await conversation(t.web, SLOW_ANSWER) for _ in range(repeats)]
    started = []
    for cid in convs:
        r = await t.web.post(f"/api/conversations/{cid}/messages", json={"content": "slowly"})
        r.raise_for_status()
        started.append(r.json())
    followers = [asyncio.create_task(follow(t.web, s["events_url"])) for s in started]
    await asyncio.sleep(0.6)  # a few words in, and a partial save
    t.database.down()
    began = time.monotonic()
    try:
        await asyncio.sleep(t.outage_seconds)  # the answers end while it is away
    finally:
        t.database.up()
    for s, task in zip(started, followers, strict=True):
        events = await task
        whole = "".join(e.get("content", "") for e in events) == text(20)
        cell.check(whole, "followed whole", f"{s['generation_id']}: the follower missed text")
    for cid, s in zip(convs, started, strict=True):
        saved = await settled(t.web, cid, s["message_id"])
        cell.max_latency = max(cell.max_latency, time.monotonic() - began)
        good = saved is not None and saved["status"] == "done" and saved["content"] == text(20)
        cell.check(good, "saved done", f"{s['message_id']} stored as {saved and saved['status']}")
        r = await t.web.post(
            f"/api/conversations/{cid}/messages",
            json={"content": "and then?", "parent_id": s["message_id"]},
        )
        cell.check(r.status_code == 202, "next 202", f"next message: {r.status_code} {r.text}")
    cell.detail = f"PostgreSQL away {t.outage_seconds:g} s"
    return cell


async def postgres_doors(t: Target, repeats: int) -> Cell:
    cell = Cell("postgres down: every door")
    cid = await conversation(t.web)
    auth = {"Authorization": f"Bearer {t.key}"}
    body = {"model": "local", "messages": [{"role": "user", "content": "hi"}]}
    ws_url = t.url.replace("http://", "ws://") + "/api/ws"
    cookie = f"chatgate_session={t.web.cookies['chatgate_session']}"
    async with (
        httpx.AsyncClient(base_url=t.url, timeout=30, trust_env=False) as http,
        websockets.connect(ws_url, additional_headers={"Cookie": cookie}) as socket,
    ):
        t.database.down()
        try:
            for _ in range(repeats):
                for stream in (False, True):
                    r = await http.post(
                        "/v1/chat/completions", json={**body, "stream": stream}, headers=auth
                    )
                    cell.check(*_openai_503(r, "/v1" + (" stream" if stream else "")))
                r = await http.post("/chatgpt/", json=body, headers=auth)
                seed = r.status_code == 503 and "retry-after" in r.headers
                seed = seed and set(r.json()) == {"detail"}
                cell.check(seed, "seed 503", f"/chatgpt/: {r.status_code} {r.text[:200]}")
                r = await t.web.post("/api/conversations", json={"model": "local"})
                cell.check(*_openai_503(r, "/api"))
                await socket.send(
                    json.dumps({"type": "send", "conversation_id": cid, "content": "x"})
                )
                reply = json.loads(await asyncio.wait_for(socket.recv(), 10))
                good = reply.get("type") == "error" and reply["error"]["code"] == (
                    "database_unavailable"
                )
                cell.check(good, "ws error frame", f"WebSocket: {reply}")
            r = await http.get("/ready")
            ready = r.status_code == 503 and r.json().get("database") == "down"
            cell.check(ready, "/ready 503", f"/ready: {r.status_code} {r.text[:200]}")
        finally:
            t.database.up()
        r = await http.post("/v1/chat/completions", json=body, headers=auth)
        cell.check(r.status_code == 200, "back 200", f"after: {r.status_code} {r.text[:200]}")
    return cell


def _openai_503(r: httpx.Response, door: str) -> tuple[bool, str, str]:
    try:
        payload = r.json()
    except ValueError:
        payload = None
    good = (
        r.status_code == 503
        and "retry-after" in r.headers
        and error_shape_problem(payload) is None
        and payload["error"]["code"] == "database_unavailable"
    )
    return good, f"{door.split()[0]} 503", f"{door}: {r.status_code} {r.text[:200]}"


async def redis_away(t: Target, repeats: int, how: str) -> Cell:
    cell = Cell(f"redis {how}")
    took: list[float] = []
    if how == "frozen":
        t.redis.freeze()
    else:
        t.redis.stop()
    try:
        for _ in range(repeats + 1):
            for seconds, outcome in await _chat_round(t):
                took.append(seconds)
                cell.check(seconds < FAST, outcome, f"{outcome} took {seconds:.2f} s")
        r = await t.web.get("/ready")
        body = r.json()
        degraded = r.status_code == 200 and body.get("status") == "degraded"
        cell.check(degraded, "/ready degraded", f"/ready while away: {body}")
    finally:
        if how == "frozen":
            t.redis.thaw()
        else:
            t.redis.start()
    deadline = time.monotonic() + 10
    while (await t.web.get("/ready")).json().get("status") != "ready":
        if time.monotonic() > deadline:
            cell.problems.append("/ready not back to ready within 10 s")
            break
        await asyncio.sleep(0.1)
    cell.max_latency = max(took, default=0.0)
    cell.detail = f"first round {took[0]:.2f}/{took[1]:.2f}/{took[2]:.2f} s, then max " + (
        f"{max(took[3:]):.3f} s" if len(took) > 3 else "-"
    )
    return cell


async def _chat_round(t: Target) -> list[tuple[float, str]]:
    """Create a conversation, send, follow to the end: (seconds, outcome) of each."""
    started = time.monotonic()
    cid = await conversation(t.web, {"chunks": 3})
    created = time.monotonic()
    r = await t.web.post(f"/api/conversations/{cid}/messages", json={"content": "hi"})
    r.raise_for_status()
    sent = time.monotonic()
    events = await follow(t.web, r.json()["events_url"])
    followed = time.monotonic()
    whole = events and events[-1].get("type") == "done" and events[-1].get("status") == "done"
    return [
        (created - started, "create fast"),
        (sent - created, "send fast"),
        (followed - sent if whole else float("inf"), "answer fast"),
    ]


async def never_answering(t: Target, repeats: int) -> Cell:
    cell = Cell("never-answering upstream")
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        for i in range(repeats):
            for stream in (False, True):
                before = (await http.get(t.fake_url + "/_fake/stats")).json()["counts"]
                body = {
                    "model": "faulty-model",
                    "messages": [{"role": "user", "content": f"hang {i} {secrets.token_hex(4)}"}],
                    "stream": stream,
                    "fake": {"hang": True},
                }
                started = time.monotonic()
                r = await http.post(
                    t.url + "/v1/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {t.key}"},
                )
                took = time.monotonic() - started
                cell.max_latency = max(cell.max_latency, took)
                after = (await http.get(t.fake_url + "/_fake/stats")).json()["counts"]
                path = "/v1/chat/completions"
                posts = after.get(path, 0) - before.get(path, 0)
                good = r.status_code == 504 and posts == 1 and took < FAULT_READ_TIMEOUT * 2
                cell.check(good, "504 once", f"{r.status_code}, {posts} POSTs, {took:.2f} s")
    return cell


async def run_outages(t: Target, repeats: int = 3) -> list[Cell]:
    """Every cell, one after the other (each takes a service away from all)."""
    runs: list[tuple[str, Callable[[], Awaitable[Cell]]]] = [
        ("never-answering upstream", lambda: never_answering(t, repeats)),
        ("redis stopped", lambda: redis_away(t, repeats, "stopped")),
        ("redis frozen", lambda: redis_away(t, repeats, "frozen")),
        ("postgres down: every door", lambda: postgres_doors(t, repeats)),
        ("postgres stop/start mid-answer", lambda: postgres_mid_answer(t, repeats)),
    ]
    if t.drain is not None:
        runs.append(("drain deadline with streams", t.drain))
    cells = []
    for name, run in runs:
        try:
            cells.append(await run())
        except Exception as exc:  # a cell whose client broke off is a failed cell, not a crash
            crashed = Cell(name)
            crashed.check(False, "", f"crashed: {type(exc).__name__}: {exc}"[:300])
            cells.append(crashed)
    return cells


# -- the drain cell: a chatgate process of its own, stopped with SIGTERM --------------------------
async def drain_deadline(workdir: Path, fake_url: str, streams: int = 3) -> Cell:
    """``chatgate serve`` (SQLite, drain_seconds 1) with /v1 streams and web-chat answers longer
    than that in flight at SIGTERM."""
    cell = Cell("drain deadline with streams")
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    data = gateway_yaml(fake_url, workdir, extra={"chat": {"model_titles": False}})
    data["server"] = {"log_level": "info", "drain_seconds": 1}
    service = chatgate_service(workdir, write_config(workdir / "drain.yaml", data), name="drained")
    await asyncio.to_thread(service.start, 60)
    slow = {"chunks": 100, "chunk_delay_ms": 100}
    try:
        async with httpx.AsyncClient(
            base_url=service.base_url, headers=WEB, timeout=30, trust_env=False
        ) as http:
            readers = []
            for i in range(streams):
                body = {
                    "model": "local",
                    "messages": [{"role": "user", "content": f"drain {i} {secrets.token_hex(4)}"}],
                    "stream": True,
                    "fake": slow,
                }
                readers.append(asyncio.create_task(_read("/v1", http, "POST", body)))
                cid = await conversation(http, slow)
                r = await http.post(f"/api/conversations/{cid}/messages", json={"content": "x"})
                r.raise_for_status()
                readers.append(
                    asyncio.create_task(_read("chat", http, "GET", r.json()["events_url"]))
                )
            await asyncio.sleep(1.0)  # all of them streaming
            assert service.proc is not None
            service.proc.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            for door, events, error, ended in await asyncio.gather(*readers):
                cell.max_latency = max(cell.max_latency, ended - stopped)
                last = events[-1] if events else ""
                if door == "/v1":
                    good = error is None and '"shutting_down"' in last and "[DONE]" not in events
                else:
                    good = error is None and ('"status":"error"' in last or '"error"' in last)
                cell.check(good, f"{door} error event", f"{door}: {error!r}, last {last[:160]}")
            code = await asyncio.to_thread(service.proc.wait, 30)
            cell.check(code == 0, "exit 0", f"exit status {code}")
    finally:
        await asyncio.to_thread(service.stop)
    log = service.log_path.read_text(encoding="utf-8", errors="replace")
    if "Traceback" in log or "Cancel" in log:
        cell.problems.append(f"traceback or cancelled tasks in {service.log_path}")
    cell.detail = f"ended within {cell.max_latency:.2f} s of SIGTERM (drain_seconds 1)"
    return cell


async def _read(
    door: str, http: httpx.AsyncClient, method: str, what: Any
) -> tuple[str, list[str], BaseException | None, float]:
    events: list[str] = []
    error = None
    try:
        kwargs = {"json": what} if method == "POST" else {}
        path = "/v1/chat/completions" if method == "POST" else what
        async with http.stream(method, path, **kwargs) as resp:
            events = sse_events((await resp.aread()).decode())
    except (httpx.HTTPError, OSError) as exc:
        error = exc
    return door, events, error, time.monotonic()


# -- reporting ------------------------------------------------------------------------------------
def table(cells: list[Cell]) -> str:
    rows = [("cell", "outcome × count", "max s", "result")]
    for c in cells:
        outcomes = ", ".join(f"{o} ×{n}" for o, n in sorted(c.outcomes.items()))
        result = "ok" if c.ok else "FAIL: " + "; ".join(c.problems[:3])
        if c.ok and c.detail:
            result += f" ({c.detail})"
        rows.append((c.name, outcomes, f"{c.max_latency:.2f}", result))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for j, r in enumerate(rows):
        lines.append(" | ".join(r[i].ljust(widths[i]) for i in range(3)) + " | " + r[3])
        if j == 0:
            lines.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * 6)
    return "\n".join(lines)


# -- the long run: every piece a process of its own -----------------------------------------------
async def _long_run(
    url: str, fake_url: str, database_url: str, switch: Switch, redis: RedisServer, args: Any
) -> list[Cell]:
    secret, name = await prepare(database_url)
    web = await sign_in(url, name)
    try:
        target = Target(
            url, fake_url, secret, switch, redis, web, outage_seconds=args.outage_seconds
        )
        target.drain = lambda: drain_deadline(args.workdir / "drain", fake_url)
        return await run_outages(target, args.repeats)
    finally:
        await web.aclose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustness.outages", description="Outage run.")
    p.add_argument("--repeats", type=int, default=3, help="requests or answers per cell")
    p.add_argument("--outage-seconds", type=float, default=6.0, help="how long PostgreSQL is away")
    p.add_argument(
        "--postgres",
        choices=["cluster", "proxy"],
        default="cluster",
        help="a throwaway cluster stopped for real (initdb + pg_ctl), or a TCP proxy cut in "
        "front of --postgres-url",
    )
    p.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--workdir", type=Path, default=None, help="logs and config (default: temp)")
    args = p.parse_args(argv)
    if args.workdir is None:
        args.workdir = Path(tempfile.mkdtemp(prefix="chatgate-outages-"))
        args.workdir.chmod(0o755)  # as root, the cluster's postgres user must reach its folder
    fake = fake_service(args.workdir)
    fake.start(60)
    try:
        with (
            postgres(args.postgres, args.workdir, args.postgres_url) as (database_url, switch),
            RedisServer(args.workdir / "redis.log") as redis,
        ):
            config = outage_yaml(fake.base_url, args.workdir, database_url, redis.url)
            config["server"] = {"log_level": "info", "drain_seconds": 2}
            gateway = chatgate_service(args.workdir, write_config(args.workdir / "c.yaml", config))
            gateway.start(60)
            try:
                cells = asyncio.run(
                    _long_run(gateway.base_url, fake.base_url, database_url, switch, redis, args)
                )
            finally:
                gateway.stop()
    finally:
        fake.stop()
    print(table(cells))
    failed = [c for c in cells if not c.ok]
    print(f"\n{len(cells) - len(failed)}/{len(cells)} cells ok; logs in {args.workdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
