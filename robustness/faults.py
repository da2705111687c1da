"""Fault run: chatgate in front of a misbehaving fake upstream, and clients that walk away.

Every fault is injected per request (the fake reads knobs from the body field ``"fake"``, which
chatgate passes through) on ``faulty-model``: a keyless provider with a 1 s read timeout, so no
fault changes an upstream key's health. Each request is bounded by a client-side deadline; it
must end with the right answer or the right error: the right status with an OpenAI-shaped body
before the first byte, an SSE ``data: {"error": …}`` event and no ``[DONE]`` after it. A client
that disconnects must get its upstream call cancelled and leave nothing in flight.

    .venv/bin/python -m robustness.faults [--repeats 20]      # fake + `chatgate serve` processes

Prints a table (fault × mode → outcomes, count, max latency); exit status 1 if a cell failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson

from robustness.harness import FAULT_READ_TIMEOUT, stack
from robustness.shape import error_shape_problem, sse_events

Mode = Literal["json", "stream"]
Client = Literal["normal", "gone_mid_request", "gone_waiting", "gone_mid_stream"]
MODES: tuple[Mode, ...] = ("json", "stream")
MODEL = "faulty-model"
CHUNKS = 6
CONTENT = "".join(f"tok{i} " for i in range(CHUNKS))
DEADLINE = 20.0  # seconds: a request still running after this has hung
SETTLE = 5.0  # seconds for the upstream call of a departed client to be cancelled
SLOW = int(FAULT_READ_TIMEOUT * 3000)  # ms: well past the read timeout
QUICK = int(FAULT_READ_TIMEOUT * 400)  # ms: well inside it

ANSWER, DONE, ERROR_EVENT, GONE = "200 answer", "200 [DONE]", "200 error event", "client gone"


@dataclass(frozen=True)
class Fault:
    name: str
    knobs: dict[Mode, dict[str, Any]]  # per mode; a mode missing here is not applicable
    expect: dict[Mode, tuple[str, ...]]  # accepted outcome prefixes
    client: Client = "normal"


FAULTS: tuple[Fault, ...] = (
    Fault("none", {"json": {}, "stream": {}}, {"json": (ANSWER,), "stream": (DONE,)}),
    Fault(
        "upstream timeout (no headers)",
        {"json": {"latency_ms": SLOW}, "stream": {"latency_ms": SLOW}},
        {"json": ("504 ",), "stream": ("504 ",)},
    ),
    Fault(
        "upstream stalls mid-stream",
        {"stream": {"chunk_delay_ms": SLOW}},
        {"stream": (ERROR_EVENT,)},
    ),
    Fault(
        "upstream 500",
        {"json": {"status": 500}, "stream": {"status": 500}},
        {"json": ("502 ",), "stream": ("502 ",)},
    ),
    Fault(
        "upstream 503 + Retry-After",
        {"json": {"status": 503, "retry_after": 1}, "stream": {"status": 503, "retry_after": 1}},
        {"json": ("502 ",), "stream": ("502 ",)},
    ),
    Fault(
        "upstream 429 + Retry-After",
        {"json": {"status": 429, "retry_after": 1}, "stream": {"status": 429, "retry_after": 1}},
        {"json": ("429 ",), "stream": ("429 ",)},
    ),
    Fault(
        "reset mid-stream / no answer",
        {"json": {"reset_after": 2}, "stream": {"reset_after": 2}},
        {"json": ("502 ",), "stream": (ERROR_EVENT,)},
    ),
    Fault(
        "error event mid-stream",
        {"json": {"error_event_after": 2}, "stream": {"error_event_after": 2}},
        {"json": (ANSWER,), "stream": (ERROR_EVENT,)},
    ),
    Fault(
        "slow first byte (< timeout)",
        {"json": {"latency_ms": QUICK}, "stream": {"first_byte_ms": QUICK}},
        {"json": (ANSWER,), "stream": (DONE,)},
    ),
    Fault(
        "client gone mid-request body",
        {"json": {}, "stream": {}},
        {"json": (GONE,), "stream": (GONE,)},
        client="gone_mid_request",
    ),
    Fault(
        "client gone before answer",
        {"json": {"latency_ms": SLOW}, "stream": {"latency_ms": SLOW}},
        {"json": (GONE,), "stream": (GONE,)},
        client="gone_waiting",
    ),
    Fault(
        "client gone mid-stream",
        {"stream": {"chunk_delay_ms": 100, "chunks": 24}},
        {"stream": (GONE,)},
        client="gone_mid_stream",
    ),
)


@dataclass
class Cell:
    fault: Fault
    mode: Mode
    outcomes: Counter[str] = field(default_factory=Counter)
    max_latency: float = 0.0
    notes: list[str] = field(default_factory=list)  # problems found after the requests
    detail: str = ""  # what the after-checks saw when all was well

    @property
    def count(self) -> int:
        return sum(self.outcomes.values())

    @property
    def ok(self) -> bool:
        accepted = self.fault.expect[self.mode]
        good = all(o.startswith(accepted) for o in self.outcomes)
        return good and bool(self.outcomes) and not self.notes


def body(fault: Fault, mode: Mode, tag: str) -> dict[str, Any]:
    """A unique request (no cache hit, no single-flight sharing) carrying the fault's knobs."""
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"fault run {tag}"}],
        "stream": mode == "stream",
        "fake": {"chunks": CHUNKS, **fault.knobs[mode]},
    }


def classify_json(status: int, content: bytes) -> str:
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        return f"{status} NOT JSON"
    if status == 200:
        try:
            text = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return "200 NO MESSAGE"
        return ANSWER if text == CONTENT else "200 WRONG CONTENT"
    problem = error_shape_problem(payload)
    if problem:
        return f"{status} BAD ERROR SHAPE ({problem})"
    return f"{status} {payload['error']['code']}"


def classify_stream(content: bytes) -> str:
    events = sse_events(content.decode("utf-8", "replace"))
    pieces: list[str] = []
    for i, data in enumerate(events):
        if data == "[DONE]":
            if i != len(events) - 1:
                return "200 EVENTS AFTER [DONE]"
            return DONE if "".join(pieces) == CONTENT else "200 WRONG CONTENT"
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return "200 NOT JSON EVENT"
        if isinstance(payload, dict) and "error" in payload:
            problem = error_shape_problem(payload)
            if problem:
                return f"200 BAD ERROR EVENT ({problem})"
            if i != len(events) - 1:
                return "200 EVENTS AFTER ERROR"
            return f"{ERROR_EVENT} ({payload['error']['code']})"
        for choice in payload.get("choices") or []:
            pieces.append((choice.get("delta") or {}).get("content") or "")
    return "200 TRUNCATED (no [DONE], no error event)"


async def normal_request(http: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> str:
    async with http.stream("POST", url + "/v1/chat/completions", json=payload) as resp:
        content = await resp.aread()
        if resp.status_code == 200 and resp.headers.get("content-type", "").startswith(
            "text/event-stream"
        ):
            return classify_stream(content)
        label = classify_json(resp.status_code, content)
        if resp.status_code in (429, 503) and "retry-after" not in resp.headers:
            label += " (NO Retry-After)"
        return label


def _raw_request(url: str, payload: dict[str, Any]) -> tuple[str, int, bytes, bytes]:
    parts = urlsplit(url)
    data = orjson.dumps(payload)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    return parts.hostname or "127.0.0.1", parts.port or 80, head, data


async def gone_mid_request(url: str, payload: dict[str, Any]) -> str:
    host, port, head, data = _raw_request(url, payload)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(head + data[: len(data) // 2])
    await writer.drain()
    await asyncio.sleep(0.2)
    early = await _read_some(reader, 0.01)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return GONE if not early else f"ANSWERED AN UNFINISHED BODY: {early[:60]!r}"


async def gone_waiting(url: str, payload: dict[str, Any]) -> str:
    host, port, head, data = _raw_request(url, payload)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(head + data)
    await writer.drain()
    early = await _read_some(reader, 0.3)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return GONE if not early else f"ANSWERED BEFORE THE UPSTREAM: {early[:60]!r}"


async def gone_mid_stream(url: str, payload: dict[str, Any]) -> str:
    host, port, head, data = _raw_request(url, payload)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(head + data)
    await writer.drain()
    seen = b""
    while seen.count(b"data: ") < 2:
        chunk = await reader.read(65536)
        if not chunk:
            return "STREAM ENDED EARLY"
        seen += chunk
    done = b"[DONE]" in seen
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return GONE if not done else "STREAM FINISHED BEFORE THE DISCONNECT"


async def _read_some(reader: asyncio.StreamReader, seconds: float) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(65536), seconds)
    except TimeoutError:
        return b""


async def fake_stats(http: httpx.AsyncClient, fake_url: str) -> dict[str, Any]:
    stats: dict[str, Any] = (await http.get(fake_url + "/_fake/stats")).json()
    return stats


async def gateway_in_flight(http: httpx.AsyncClient, url: str) -> float:
    text = (await http.get(url + "/metrics")).text
    match = re.search(r"^chatgate_in_flight_requests (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else -1.0


async def run_cell(
    http: httpx.AsyncClient, url: str, fake_url: str, fault: Fault, mode: Mode, repeats: int
) -> Cell:
    cell = Cell(fault, mode)
    action: Callable[[dict[str, Any]], Awaitable[str]]
    if fault.client == "normal":
        action = lambda p: normal_request(http, url, p)  # noqa: E731
    elif fault.client == "gone_mid_request":
        action = lambda p: gone_mid_request(url, p)  # noqa: E731
    elif fault.client == "gone_waiting":
        action = lambda p: gone_waiting(url, p)  # noqa: E731
    else:
        action = lambda p: gone_mid_stream(url, p)  # noqa: E731

    async def one(i: int) -> None:
        payload = body(fault, mode, f"{fault.name}/{mode}/{i}/{uuid.uuid4().hex}")
        started = time.monotonic()
        try:
            label = await asyncio.wait_for(action(payload), DEADLINE)
        except TimeoutError:
            label = f"HUNG (> {DEADLINE:.0f} s)"
        except (httpx.HTTPError, OSError) as exc:
            label = f"CONNECTION ERROR ({type(exc).__name__})"
        cell.max_latency = max(cell.max_latency, time.monotonic() - started)
        cell.outcomes[label] += 1

    before = await fake_stats(http, fake_url) if fault.client != "normal" else {}
    await asyncio.gather(*(one(i) for i in range(repeats)))
    if fault.client != "normal":
        await _check_released(http, url, fake_url, cell, before, repeats)
    return cell


async def _check_released(
    http: httpx.AsyncClient,
    url: str,
    fake_url: str,
    cell: Cell,
    before: dict[str, Any],
    repeats: int,
) -> None:
    """After clients walked away: their upstream calls were cancelled (or never made) and
    nothing stays in flight, upstream or in the gateway."""
    deadline = time.monotonic() + SETTLE
    while True:
        stats = await fake_stats(http, fake_url)
        in_flight = await gateway_in_flight(http, url)
        cancelled = stats["cancelled"] - before["cancelled"]
        calls = stats["counts"].get("/v1/chat/completions", 0) - before["counts"].get(
            "/v1/chat/completions", 0
        )
        want_cancelled = 0 if cell.fault.client == "gone_mid_request" else repeats
        settled = stats["in_flight"] == 0 and in_flight == 0 and cancelled >= want_cancelled
        if settled or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    if cell.fault.client == "gone_mid_request" and calls:
        cell.notes.append(f"{calls} unfinished request(s) reached the upstream")
    if cancelled < want_cancelled:
        cell.notes.append(f"upstream cancelled {cancelled}/{want_cancelled} within {SETTLE:.0f} s")
    if stats["in_flight"]:
        cell.notes.append(f"{stats['in_flight']} upstream call(s) still running")
    if in_flight:
        cell.notes.append(f"gateway in-flight gauge at {in_flight:g}, not 0")
    cell.detail = f"upstream calls {calls}, cancelled {cancelled}"


async def run_faults(url: str, fake_url: str, repeats: int = 5) -> list[Cell]:
    """Every fault × mode. Cells with well-behaved clients run concurrently; cells whose clients
    disconnect run one at a time, since they are judged by the fake's global counters."""
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(DEADLINE), limits=limits, trust_env=False
    ) as http:
        normal = [
            run_cell(http, url, fake_url, f, m, repeats)
            for f in FAULTS
            if f.client == "normal"
            for m in MODES
            if m in f.knobs
        ]
        cells = list(await asyncio.gather(*normal))
        for f in FAULTS:
            if f.client == "normal":
                continue
            for m in MODES:
                if m in f.knobs:
                    cells.append(await run_cell(http, url, fake_url, f, m, repeats))
    order = {(f.name, m): i for i, f in enumerate(FAULTS) for m in MODES}
    return sorted(cells, key=lambda c: order[(c.fault.name, c.mode)])


def table(cells: list[Cell]) -> str:
    rows = [("fault", "mode", "outcome × count", "n", "max s", "result")]
    for c in cells:
        outcomes = ", ".join(f"{o} ×{n}" for o, n in sorted(c.outcomes.items()))
        result = "ok" if c.ok else "FAIL: " + ("; ".join(c.notes) or "unexpected outcome")
        if c.ok and c.detail:
            result += f" ({c.detail})"
        rows.append((c.fault.name, c.mode, outcomes, str(c.count), f"{c.max_latency:.2f}", result))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for j, r in enumerate(rows):
        lines.append(" | ".join(r[i].ljust(widths[i]) for i in range(5)) + " | " + r[5])
        if j == 0:
            lines.append("-+-".join("-" * w for w in widths) + "-+-" + "-" * 6)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustness.faults", description="Fault run.")
    p.add_argument("--repeats", type=int, default=20, help="requests per fault and mode")
    p.add_argument("--workdir", type=Path, default=None, help="logs and config (default: temp)")
    args = p.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="chatgate-faults-"))
    with stack(workdir) as running:
        cells = asyncio.run(run_faults(running.url, running.fake_url, args.repeats))
    print(table(cells))
    failed = [c for c in cells if not c.ok]
    print(f"\n{len(cells) - len(failed)}/{len(cells)} cells ok; logs in {workdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
