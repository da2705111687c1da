"""Attack run: a live chatgate tried the way an attacker would, one table of attack → expected
→ got.

Two servers in front of the fake upstream: ``open`` is the default setup as the README starts it
(loopback, no keys, no users, no admin key: single-user mode for local users); ``locked`` is a
shared deployment (keys required, an admin key, users, the cache on, a metrics token, a provider
whose ``headers:`` carry a secret, a trusted proxy on loopback so one test client can speak for
many addresses). Every attack names what a safe server answers; the memory attacks also report
the server's peak RSS while they run (when the server is a process of its own).

    .venv/bin/python -m robustness.attacks [--only open|locked]   # fake + `chatgate serve`

Exit status 1 if any attack got something else than expected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from bench.procs import PeakRss, rss_mb

from robustness.harness import chatgate_service, clean_env, fake_service, gateway_yaml
from robustness.rawhttp import Reply, request, ws_handshake_headers
from robustness.shape import shape_of

MiB = 1024 * 1024
ADMIN_KEY = "attack-run-admin-key-0123456789"
METRICS_TOKEN = "attack-run-metrics-token-0123"
HEADER_SECRET = "upstream-header-secret-0123456789"
PASSWORD = "correct horse battery"
JSON = {"content-type": "application/json"}
XRW = {"x-requested-with": "attack-run"}
EVIL = "evil.test"
CHAT = {"model": "local", "messages": [{"role": "user", "content": "spend my credit"}]}
USER_CAP = 2  # chat.max_generations_per_user on the locked server


@dataclass
class Target:
    """A running server under attack."""

    url: str
    fake_url: str
    limit: int  # server.max_body_bytes
    make_user: Callable[[str, bool], Awaitable[None]]  # (name, admin), password PASSWORD
    pid: int | None = None  # for RSS readings; None when the server shares our process

    @property
    def port(self) -> str:
        return self.url.rsplit(":", 1)[1]

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/ws"


@dataclass
class Outcome:
    got: str
    ok: bool


@dataclass(frozen=True)
class Attack:
    server: str  # open | locked
    name: str
    expected: str
    run: Callable[[Target], Awaitable[Outcome]]


@dataclass
class Row:
    attack: Attack
    outcome: Outcome
    seconds: float


ATTACKS: list[Attack] = []


def attack(server: str, name: str, expected: str) -> Callable[..., Any]:
    def register(fn: Callable[[Target], Awaitable[Outcome]]) -> Callable[[Target], Any]:
        ATTACKS.append(Attack(server, name, expected, fn))
        return fn

    return register


# -- helpers -------------------------------------------------------------------------------------
def said(reply: Reply | httpx.Response) -> str:
    """``status code`` of a reply, the error code when it is an OpenAI-shaped error, the shape's
    name when it is another API's (each door answers in its own)."""
    status = reply.status if isinstance(reply, Reply) else reply.status_code
    body = reply.body if isinstance(reply, Reply) else reply.content
    shape = shape_of(body) if status >= 400 else None
    if shape not in (None, "OpenAI"):
        return f"{status} in {shape}'s shape"
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return str(status)
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return f"{status} {code}" if code else str(status)


def refused_as(reply: Reply, status: int, shape: str) -> bool:
    return reply.status == status and shape_of(reply.body) == shape


async def upstream_calls(target: Target) -> int:
    async with httpx.AsyncClient(trust_env=False) as http:
        stats = (await http.get(target.fake_url + "/_fake/stats")).json()
    return int(stats["counts"].get("/v1/chat/completions", 0))


@contextlib.contextmanager
def peak_rss(target: Target) -> Iterator[dict[str, float]]:
    """``{"before", "peak"}`` MiB of the server process over the block (empty in-process)."""
    figures: dict[str, float] = {}
    if target.pid is None:
        yield figures
        return
    figures["before"] = rss_mb(target.pid)
    with PeakRss(target.pid, interval=0.02) as peak:
        yield figures
    figures["peak"] = peak.peak_mb


def rss_note(figures: dict[str, float]) -> str:
    if "peak" not in figures:
        return ""
    growth = figures["peak"] - figures["before"]
    return f"; peak RSS {figures['peak']:.0f} MiB ({growth:+.0f})"


def rss_within(figures: dict[str, float], mib: float) -> bool:
    return "peak" not in figures or figures["peak"] - figures["before"] <= mib


def client(target: Target, **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=target.url, timeout=30, trust_env=False, **kw)


async def sign_in(target: Target, name: str, **headers: str) -> httpx.AsyncClient:
    http = client(target, headers={**XRW, **headers})
    r = await http.post("/api/auth/login", json={"name": name, "password": PASSWORD})
    if r.status_code != 200:
        await http.aclose()
        raise RuntimeError(f"sign-in as {name} failed: {r.status_code} {r.text}")
    return http


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- the default setup ---------------------------------------------------------------------------
def rebound(target: Target) -> dict[str, str]:
    return {"host": f"{EVIL}:{target.port}", "origin": f"http://{EVIL}:{target.port}"}


@attack("open", "DNS rebinding: POST /admin/keys as evil.test", "421")
async def rebinding_admin(target: Target) -> Outcome:
    body = b'{"name": "pwned"}'
    reply = await request(target.url, "POST", "/admin/keys", {**rebound(target), **JSON}, body)
    return Outcome(said(reply), reply.status == 421)


@attack("open", "DNS rebinding: GET /api/conversations as evil.test", "421")
async def rebinding_read(target: Target) -> Outcome:
    reply = await request(target.url, "GET", "/api/conversations", rebound(target))
    return Outcome(said(reply), reply.status == 421)


@attack("open", "DNS rebinding: WebSocket /api/ws as evil.test", "421")
async def rebinding_ws(target: Target) -> Outcome:
    reply = await request(
        target.url, "GET", "/api/ws", {**ws_handshake_headers(), **rebound(target)}
    )
    return Outcome(said(reply), reply.status == 421)


@attack("open", "cross-site text/plain POST /v1/chat/completions", "403|415, no upstream call")
async def cross_site_simple(target: Target) -> Outcome:
    before = await upstream_calls(target)
    headers = {"content-type": "text/plain", "origin": "https://evil.test"}
    reply = await request(target.url, "POST", "/v1/chat/completions", headers, orjson.dumps(CHAT))
    called = await upstream_calls(target) - before
    got = said(reply) + (f", {called} upstream call(s)" if called else "")
    return Outcome(got, reply.status in (403, 415) and not called)


@attack("open", "cross-site JSON POST /chatgpt/ without a key", "403 in seed's shape")
async def cross_site_seed(target: Target) -> Outcome:
    headers = {**JSON, "origin": "https://evil.test"}
    reply = await request(target.url, "POST", "/chatgpt/", headers, orjson.dumps(CHAT))
    return Outcome(said(reply), refused_as(reply, 403, "seed"))


@attack("open", "DNS rebinding: POST /v1/messages as evil.test", "421 in Anthropic's shape")
async def rebinding_messages(target: Target) -> Outcome:
    body = orjson.dumps({**CHAT, "max_tokens": 16})
    reply = await request(target.url, "POST", "/v1/messages", {**rebound(target), **JSON}, body)
    return Outcome(said(reply), refused_as(reply, 421, "Anthropic"))


@attack("open", "cross-site form POST /api/chat (Ollama)", "403 in Ollama's shape")
async def cross_site_ollama(target: Target) -> Outcome:
    headers = {"content-type": "application/x-www-form-urlencoded", "origin": "https://evil.test"}
    reply = await request(target.url, "POST", "/api/chat", headers, orjson.dumps(CHAT))
    return Outcome(said(reply), refused_as(reply, 403, "Ollama"))


@attack("open", "form-encoded POST /api/auth/login", "415")
async def form_login(target: Target) -> Outcome:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    reply = await request(target.url, "POST", "/api/auth/login", headers, b"name=a&password=b")
    return Outcome(said(reply), reply.status == 415)


@attack("open", "cross-site WebSocket (foreign Origin)", "403")
async def cross_site_ws(target: Target) -> Outcome:
    headers = {**ws_handshake_headers(), "origin": "https://evil.test"}
    reply = await request(target.url, "GET", "/api/ws", headers)
    return Outcome(said(reply), reply.status == 403)


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    piece = b"x" * size
    for _ in range(total // size):
        yield piece


async def oversized(target: Target, path: str) -> Outcome:
    total = 10 * target.limit
    with peak_rss(target) as figures:
        reply = await request(target.url, "POST", path, JSON, chunks=chunks(total), deadline=120)
    got = f"{said(reply)} after {reply.sent / MiB:.0f} of {total / MiB:.0f} MiB sent"
    ok = reply.status == 413 and rss_within(figures, 3 * target.limit / MiB)
    return Outcome(got + rss_note(figures), ok)


@attack("open", "chunked body 10x the limit to POST /api/auth/login", "413, RSS bounded")
async def oversized_login(target: Target) -> Outcome:
    return await oversized(target, "/api/auth/login")


@attack("open", "chunked body 10x the limit to POST /v1/chat/completions", "413, RSS bounded")
async def oversized_chat(target: Target) -> Outcome:
    return await oversized(target, "/v1/chat/completions")


@attack("open", "visitor through a proxy (X-Forwarded-For) asks GET /api/me", "401")
async def proxied_me(target: Target) -> Outcome:
    async with client(target) as http:
        r = await http.get("/api/me", headers={"X-Forwarded-For": "203.0.113.7"})
    return Outcome(said(r), r.status_code == 401)


@attack("open", "visitor through a proxy mints an admin key", "401")
async def proxied_admin(target: Target) -> Outcome:
    async with client(target, headers=XRW) as http:
        r = await http.post(
            "/admin/keys", json={"name": "pwned"}, headers={"X-Forwarded-For": "203.0.113.7"}
        )
    return Outcome(said(r), r.status_code == 401)


@attack("open", "flood: 100 sign-ins at once", "429/503 shed, /health fast, RSS bounded")
async def login_flood(target: Target) -> Outcome:
    async with client(target, headers=XRW, limits=httpx.Limits(max_connections=200)) as http:

        async def guess(i: int) -> int:
            body = {"name": f"nobody-{i}", "password": "wrong password"}
            return (await http.post("/api/auth/login", json=body)).status_code

        with peak_rss(target) as figures:
            flood = asyncio.gather(*(guess(i) for i in range(100)))
            await asyncio.sleep(0.3)
            started = time.monotonic()
            health = await http.get("/health")
            latency = time.monotonic() - started
            statuses = Counter(await flood)
    shown = " ".join(f"{s}x{n}" for s, n in sorted(statuses.items()))
    got = f"{shown}; /health {health.status_code} in {latency * 1000:.0f} ms" + rss_note(figures)
    shed = statuses[429] + statuses[503] > 0
    ok = shed and health.status_code == 200 and latency < 2.0 and rss_within(figures, 160)
    return Outcome(got, ok)


# -- a shared deployment -------------------------------------------------------------------------
@attack("locked", "POST /chatgpt/ without a key (keys required)", "401")
async def seed_without_key(target: Target) -> Outcome:
    async with client(target) as http:
        r = await http.post("/chatgpt/", json=CHAT)
    return Outcome(said(r), r.status_code == 401)


@attack("locked", "POST /gigachat/ without a key (keys required)", "401")
async def giga_without_key(target: Target) -> Outcome:
    async with client(target) as http:
        r = await http.post("/gigachat/", json={**CHAT, "model": "GigaChat"})
    return Outcome(said(r), r.status_code == 401)


def via(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}  # the locked server trusts loopback as its proxy


@attack("locked", "brute force: the 7th wrong password for one account", "429 + Retry-After")
async def brute_force(target: Target) -> Outcome:
    victim = fresh("victim")
    await target.make_user(victim, False)
    async with client(target, headers=XRW) as http:
        for i in range(6):
            body = {"name": victim, "password": f"guess {i}"}
            await http.post("/api/auth/login", json=body, headers=via(f"198.51.100.{i}"))
        r = await http.post(
            "/api/auth/login", json={"name": victim, "password": PASSWORD}, headers=via("1.2.3.4")
        )
    wait = r.headers.get("retry-after")
    return Outcome(said(r) + (f", Retry-After {wait}" if wait else ""), r.status_code == 429)


@attack("locked", "one address guessing 25 account names", "429")
async def spraying(target: Target) -> Outcome:
    async with client(target, headers=XRW) as http:
        statuses = Counter()
        for i in range(25):
            body = {"name": f"guess-{i}", "password": "wrong password"}
            r = await http.post("/api/auth/login", json=body, headers=via("203.0.113.66"))
            statuses[r.status_code] += 1
    shown = " ".join(f"{s}x{n}" for s, n in sorted(statuses.items()))
    return Outcome(shown, statuses[429] > 0)


async def two_keys(target: Target) -> tuple[str, str]:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with client(target, headers=admin) as http:
        made = [(await http.post("/admin/keys", json={"name": fresh("k")})).json() for _ in "ab"]
    return made[0]["key"], made[1]["key"]


async def ask(target: Target, key: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    async with client(target) as http:
        return await http.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}", **headers}
        )


def prompt() -> dict[str, Any]:
    return {"model": "local", "messages": [{"role": "user", "content": fresh("secret plan")}]}


@attack("locked", "cache: key B sends key A's exact prompt", "miss (learns nothing)")
async def cache_probe(target: Target) -> Outcome:
    a, b = await two_keys(target)
    body = prompt()
    await ask(target, a, body)
    r = await ask(target, b, body)
    got = r.headers.get("x-chatgate-cache", said(r))
    return Outcome(got, got == "miss")


@attack("locked", "cache: key B re-rolls with no-cache, then A asks", "A still hits its own")
async def cache_reroll(target: Target) -> Outcome:
    a, b = await two_keys(target)
    body = prompt()
    await ask(target, a, body)
    await ask(target, b, body, **{"Cache-Control": "no-cache"})
    before = await upstream_calls(target)
    r = await ask(target, a, body)
    got = f"{r.headers.get('x-chatgate-cache')}, {await upstream_calls(target) - before} calls"
    return Outcome(got, got == "hit, 0 calls")


@attack("locked", "X-Chatgate-Cache-TTL: 1e300", "400")
async def cache_ttl(target: Target) -> Outcome:
    a, _ = await two_keys(target)
    r = await ask(target, a, prompt(), **{"X-Chatgate-Cache-TTL": "1e300"})
    return Outcome(said(r), r.status_code == 400)


@attack("locked", "n=100 in one request", "400")
async def many_choices(target: Target) -> Outcome:
    a, _ = await two_keys(target)
    r = await ask(target, a, {**prompt(), "n": 100})
    return Outcome(said(r), r.status_code == 400)


@attack("locked", f"one user starts {USER_CAP + 1} answers at once", "429 past the cap")
async def generation_cap(target: Target) -> Outcome:
    name = fresh("busy")
    await target.make_user(name, False)
    http = await sign_in(target, name)
    statuses, running = [], []
    slow = {"fake": {"chunks": 40, "chunk_delay_ms": 100}}
    try:
        for _ in range(USER_CAP + 1):
            conv = await http.post("/api/conversations", json={"model": "local", "params": slow})
            r = await http.post(
                f"/api/conversations/{conv.json()['id']}/messages", json={"content": "go"}
            )
            statuses.append(said(r))
            if r.status_code == 202:
                running.append(r.json()["generation_id"])
        for gid in running:
            await http.post(f"/api/generations/{gid}/stop")
    finally:
        await http.aclose()
    return Outcome(", ".join(statuses), statuses[-1].startswith("429"))


@attack("locked", "WebSocket after its session signed out", "closed (1008)")
async def ws_after_logout(target: Target) -> Outcome:
    name = fresh("leaver")
    await target.make_user(name, False)
    http = await sign_in(target, name)
    cookie = {"Cookie": f"chatgate_session={http.cookies['chatgate_session']}"}
    try:
        async with websockets.connect(target.ws, additional_headers=cookie) as ws:
            await http.post("/api/auth/logout")
            try:
                async with asyncio.timeout(5):
                    while True:
                        await ws.recv()
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                return Outcome(f"closed ({code})", code == 1008)
            except TimeoutError:
                return Outcome("still open after 5 s", False)
    finally:
        await http.aclose()


@attack("locked", "event stream (SSE) after its session signed out", "ended (session_ended)")
async def sse_after_logout(target: Target) -> Outcome:
    name = fresh("reader")
    await target.make_user(name, False)
    http = await sign_in(target, name)
    try:
        async with http.stream("GET", "/api/events") as events:
            lines = events.aiter_lines()
            await anext(lines)
            await http.post("/api/auth/logout")
            tail: list[str] = []
            try:
                async with asyncio.timeout(5):
                    async for line in lines:
                        tail.append(line)
            except TimeoutError:
                return Outcome("still streaming after 5 s", False)
        ended = any("session_ended" in line for line in tail)
        return Outcome("ended (session_ended)" if ended else "ended", ended)
    finally:
        await http.aclose()


@attack("locked", "a disabled user signs in / uses an old session", "403 / 401")
async def disabled_user(target: Target) -> Outcome:
    name = fresh("gone")
    await target.make_user(name, False)
    http = await sign_in(target, name)
    try:
        async with client(target, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
            users = (await admin.get("/admin/users")).json()["data"]
            uid = next(u["id"] for u in users if u["name"] == name)
            await admin.post(f"/admin/users/{uid}/disable")
        session = await http.get("/api/me")
        login = await http.post("/api/auth/login", json={"name": name, "password": PASSWORD})
    finally:
        await http.aclose()
    got = f"{said(login)} / {said(session)}"
    return Outcome(got, login.status_code == 403 and session.status_code == 401)


@attack("locked", "an upstream error echoing the provider's header secret", "secret redacted")
async def header_secret(target: Target) -> Outcome:
    a, _ = await two_keys(target)
    body = {**prompt(), "model": "secret-model", "fake": {"echo": HEADER_SECRET}}
    r = await ask(target, a, body)
    leaked = HEADER_SECRET in r.text
    return Outcome(said(r) + (", SECRET LEAKED" if leaked else ", redacted"), not leaked)


@attack("locked", "GET /metrics without the token", "401")
async def metrics(target: Target) -> Outcome:
    async with client(target) as http:
        r = await http.get("/metrics")
    return Outcome(said(r), r.status_code == 401)


# -- the servers ---------------------------------------------------------------------------------
def server_config(kind: str, fake_url: str, workdir: Path) -> dict[str, Any]:
    """The config of the ``open`` or ``locked`` server (YAML-able)."""
    if kind == "open":
        return gateway_yaml(fake_url, workdir)
    data = gateway_yaml(fake_url, workdir, cache=True)
    data["cache"].update({"disk_bytes": 0})
    data["providers"]["secret"] = {
        "type": "openai",
        "base_url": fake_url + "/v1",
        "headers": {"X-Upstream-Token": HEADER_SECRET},
        "models": ["secret-model"],
    }
    data["server"].update({"metrics_token": METRICS_TOKEN, "trusted_proxies": ["127.0.0.1"]})
    data["auth"] = {"require_keys": True, "admin_key": ADMIN_KEY, "session_check_seconds": 1}
    data["chat"] = {"model_titles": False, "max_generations_per_user": USER_CAP}
    return data


async def run_attacks(targets: dict[str, Target]) -> list[Row]:
    """Every attack whose server is among ``targets``, one after another (some read the
    server's RSS or the fake's counters)."""
    rows = []
    for item in ATTACKS:
        target = targets.get(item.server)
        if target is None:
            continue
        started = time.monotonic()
        try:
            outcome = await asyncio.wait_for(item.run(target), 180)
        except Exception as exc:  # an attack that broke is a failed row, not a crashed run
            outcome = Outcome(f"ERROR {type(exc).__name__}: {exc}"[:120], False)
        rows.append(Row(item, outcome, time.monotonic() - started))
    return rows


def table(rows: list[Row]) -> str:
    lines = [("server", "attack", "expected", "got", "result")]
    for row in rows:
        lines.append(
            (
                row.attack.server,
                row.attack.name,
                row.attack.expected,
                row.outcome.got,
                "ok" if row.outcome.ok else "FAIL",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    out = []
    for j, line in enumerate(lines):
        out.append(" | ".join(line[i].ljust(widths[i]) for i in range(4)) + " | " + line[4])
        if j == 0:
            out.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * 6)
    return "\n".join(out)


async def cli_user(config: Path, name: str, admin: bool) -> None:
    """A user made the way an operator makes one: ``chatgate users create``."""
    argv = [sys.executable, "-m", "chatgate.cli", "users", "create", name, "--password-stdin"]
    argv += ["--config", str(config)] + (["--admin"] if admin else [])
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=clean_env(),
    )
    out, _ = await proc.communicate((PASSWORD + "\n").encode())
    if proc.returncode:
        raise RuntimeError(f"chatgate users create {name}: {out.decode()}")


@contextlib.asynccontextmanager
async def servers(workdir: Path, kinds: list[str]) -> AsyncIterator[dict[str, Target]]:
    from robustness.harness import write_config

    fake = fake_service(workdir)
    running = []
    try:
        fake.start(60)
        targets = {}
        for kind in kinds:
            data = server_config(kind, fake.base_url, workdir / kind)
            config = write_config(workdir / kind / "chatgate.yaml", data)
            service = chatgate_service(workdir / kind, config, name=f"chatgate-{kind}")
            service.start(60)
            running.append(service)

            async def make(name: str, admin: bool, config: Path = config) -> None:
                await cli_user(config, name, admin)

            targets[kind] = Target(
                service.base_url,
                fake.base_url,
                data.get("server", {}).get("max_body_bytes", 8 * MiB),
                make,
                service.pid,
            )
        yield targets
    finally:
        for service in running:
            service.stop()
        fake.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustness.attacks", description=__doc__)
    p.add_argument("--only", choices=["open", "locked"], help="attack one server only")
    p.add_argument("--workdir", type=Path, default=None, help="logs and config (default: temp)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="chatgate-attacks-"))
    kinds = [args.only] if args.only else ["open", "locked"]

    async def go() -> list[Row]:
        async with servers(workdir, kinds) as targets:
            return await run_attacks(targets)

    rows = asyncio.run(go())
    print(table(rows))
    failed = [r for r in rows if not r.outcome.ok]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} attacks refused as expected; logs in {workdir}")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "server": r.attack.server,
                        "attack": r.attack.name,
                        "expected": r.attack.expected,
                        "got": r.outcome.got,
                        "ok": r.outcome.ok,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
