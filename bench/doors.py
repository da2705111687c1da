"""The dialects' doors side by side: the gateway CPU each spends per request, in one run.

    .venv/bin/python bench/doors.py                       # about 3 minutes
    .venv/bin/python bench/doors.py --baseline /tmp/base  # + chat completions of another tree

One fake upstream and one chatgate (the plain pass-through config of `bench/run.py`), wrk with
the validating script (`lua/chat.lua`, `format=…` per door). For each repeat, mode and
concurrency the doors run back to back (the cores change speed within minutes), so every door
sees the same moments. The figure that matters is **gateway CPU per request**: the gateway's
CPU seconds during the run divided by the valid responses — a door's translation shows up
there even when the load generator limits the throughput. Ratios are paired per repeat against
`/v1/chat/completions` in the same cell; the target is at most 1.25×.

`--baseline SRC` starts a second chatgate from another source tree (its `src/` first on
PYTHONPATH; e.g. `git archive COMMIT | tar -x -C /tmp/base`) and measures its chat completions
interleaved with ours: does the reference door slow down?
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import deps
import machine
import targets
from procs import Service, ServiceError, cpu_seconds
from session import log
from wrk import WrkError, run_wrk

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PROMPT = "Say hello to the benchmark."
TARGET_RATIO = 1.25
REFERENCE = "chat_completions"


@dataclass(frozen=True)
class Door:
    path: str
    body: Callable[[str, bool], dict[str, Any]]  # (prompt, stream) → request body
    wrk_args: tuple[str, ...] = ()


def _chat(prompt: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": targets.MODEL,
        "messages": [{"role": "user", "content": prompt}],
    }
    if stream:
        body["stream"] = True
    return body


def _messages(prompt: str, stream: bool) -> dict[str, Any]:
    return {**_chat(prompt, stream), "max_tokens": 256}


# Each door measured; add a dialect here with its validation in lua/chat.lua.
DOORS: dict[str, Door] = {
    REFERENCE: Door(targets.CHAT_PATH, _chat),
    "messages": Door("/v1/messages", _messages, ("check=anthropic",)),
}


@dataclass(frozen=True)
class Measured:
    gateway: str
    door: str
    mode: str
    concurrency: int
    repeat: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    gateway_cpu_pct: float
    cpu_us_per_request: float
    bad_sample: str


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/doors.py",
        description="Gateway CPU per request of each dialect's door against chat completions, "
        "doors interleaved and repeated. Writes bench/results/doors.{md,json}.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--duration", type=float, default=5, help="seconds per wrk run")
    p.add_argument("--repeats", type=int, default=3, help="runs per table cell")
    p.add_argument("--warmup", type=float, default=2, help="warm-up seconds per door and mode")
    p.add_argument("--concurrency", default="1,64", help="wrk connections, comma list")
    p.add_argument("--modes", default="non-stream,stream", help="comma list")
    p.add_argument("--doors", default=",".join(DOORS), help="comma list")
    p.add_argument("--chunks", type=int, default=24, help="content chunks per streamed answer")
    p.add_argument("--gateway-cpu", type=int, default=0)
    p.add_argument("--load-cpu", type=int, default=1)
    p.add_argument("--chatgate", type=Path, default=REPO / ".venv" / "bin" / "chatgate")
    p.add_argument("--baseline", type=Path, help="another source tree: its chat completions too")
    p.add_argument("--start-timeout", type=float, default=180)
    p.add_argument("--out-dir", type=Path, default=BENCH_DIR / "results")
    args = p.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.doors = [d.strip() for d in args.doors.split(",") if d.strip()]
    unknown = [d for d in args.doors if d not in DOORS]
    if unknown or REFERENCE not in args.doors:
        p.error(f"--doors: known {', '.join(DOORS)} (and {REFERENCE} is always needed)")
    if args.baseline is not None and not (args.baseline / "src" / "chatgate").is_dir():
        p.error(f"--baseline: {args.baseline}/src/chatgate not found")
    return args


def _bodies(work: Path, doors: list[str], modes: list[str]) -> dict[tuple[str, str], Path]:
    out = {}
    for name in doors:
        for mode in modes:
            path = work / f"body-{name}-{mode}.json"
            # The mode is in the prompt, as in run.py: requests of one mode never share a key.
            path.write_text(json.dumps(DOORS[name].body(f"{PROMPT} ({mode})", mode == "stream")))
            out[name, mode] = path
    return out


class Bench:
    def __init__(self, args: argparse.Namespace, cpus: machine.Cpus, work: Path) -> None:
        self.args = args
        self.cpus = cpus
        self.bodies = _bodies(work, args.doors, args.modes)

    def wrk(self, gw: Service, door: str, mode: str, conc: int, seconds: float) -> Any:
        return run_wrk(
            url=gw.base_url + DOORS[door].path,
            mode=mode,
            chunks=self.args.chunks,
            body_file=self.bodies[door, mode],
            connections=conc,
            duration_s=seconds,
            cpu=self.cpus.load,
            timeout_s=30,
            extra_args=DOORS[door].wrk_args,
        )

    def measure(self, gw: Service, door: str, mode: str, conc: int, repeat: int) -> Measured:
        gw.check_alive()
        cpu0, t0 = cpu_seconds(gw.pid), time.monotonic()
        r = self.wrk(gw, door, mode, conc, self.args.duration)
        cpu, wall = cpu_seconds(gw.pid) - cpu0, time.monotonic() - t0
        return Measured(
            gateway=gw.name,
            door=door,
            mode=mode,
            concurrency=conc,
            repeat=repeat,
            rps=r.rps,
            p50_ms=r.p50_ms,
            p99_ms=r.p99_ms,
            errors=r.errors,
            requests=r.requests,
            gateway_cpu_pct=100 * cpu / wall,
            cpu_us_per_request=1e6 * cpu / r.ok if r.ok else float("nan"),
            bad_sample=r.bad_sample,
        )


def _spread(values: list[float], digits: int = 0) -> str:
    vals = sorted(v for v in values if v == v)
    if not vals:
        return "–"
    med = statistics.median(vals)
    if vals[0] == vals[-1]:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} [{vals[0]:,.{digits}f}–{vals[-1]:,.{digits}f}]"


def report(runs: list[Measured], meta: dict[str, Any]) -> str:
    lines = [
        "# chatgate doors: gateway CPU per request",
        "",
        *(f"- {k}: {v}" for k, v in meta.items()),
        "",
        "Medians over the repeats, [min–max]; `× chat` is paired per repeat against "
        f"`{REFERENCE}` of the same gateway in the same cell (target ≤ {TARGET_RATIO}×).",
        "",
        "| gateway | door | mode | c | req/s | p50 ms | p99 ms | errors | gw CPU % | gw µs/req "
        "| × chat |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    checks: list[str] = []
    cells = sorted({(r.gateway, r.door, r.mode, r.concurrency) for r in runs}, key=str)
    for gw, door, mode, conc in cells:
        mine = [
            r for r in runs if (r.gateway, r.door, r.mode, r.concurrency) == (gw, door, mode, conc)
        ]
        ref = {
            r.repeat: r
            for r in runs
            if (r.door, r.mode, r.concurrency) == (REFERENCE, mode, conc)
            and r.gateway == ("chatgate" if door == REFERENCE else gw)
        }
        ratios = [
            r.cpu_us_per_request / ref[r.repeat].cpu_us_per_request
            for r in mine
            if r.repeat in ref and ref[r.repeat].cpu_us_per_request > 0
        ]
        shown = "–" if gw == "chatgate" and door == REFERENCE else _spread(ratios, 2)
        lines.append(
            f"| {gw} | {door} | {mode} | {conc} | {_spread([r.rps for r in mine])} "
            f"| {_spread([r.p50_ms for r in mine], 2)} | {_spread([r.p99_ms for r in mine], 2)} "
            f"| {sum(r.errors for r in mine)} | {_spread([r.gateway_cpu_pct for r in mine])} "
            f"| {_spread([r.cpu_us_per_request for r in mine])} | {shown} |"
        )
        if door != REFERENCE and ratios:
            ok = statistics.median(ratios) <= TARGET_RATIO and not sum(r.errors for r in mine)
            checks.append(
                f"- {'pass' if ok else 'FAIL'}: {door} {mode} c{conc}: "
                f"{statistics.median(ratios):.2f}× chat completions' gateway CPU per request"
            )
    bad = [r for r in runs if r.errors and r.bad_sample]
    if bad:
        checks.append(f"- first bad response ({bad[0].door}): `{bad[0].bad_sample[:200]}`")
    return "\n".join([*lines, "", "## Targets", "", *checks, ""])


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    try:
        deps.ensure_wrk()
        if not args.chatgate.exists():
            raise deps.MissingTool(f"{args.chatgate} not found: install the project into .venv")
        runs, meta = bench(args)
    except (deps.MissingTool, ServiceError, WrkError) as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; services stopped")
        return 130
    markdown = report(runs, meta)
    (args.out_dir / "doors.md").write_text(markdown)
    data = {"meta": meta, "runs": [asdict(r) for r in runs]}
    (args.out_dir / "doors.json").write_text(json.dumps(data, indent=2) + "\n")
    print(markdown)
    log(f"wrote {args.out_dir / 'doors.md'} and {args.out_dir / 'doors.json'}")
    return 0


def bench(args: argparse.Namespace) -> tuple[list[Measured], dict[str, Any]]:
    cpus, warnings = machine.choose_cpus(args.gateway_cpu, args.load_cpu, args.load_cpu)
    background = machine.background_cpu_pct()
    work = args.out_dir / "work-doors"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    meta: dict[str, Any] = {
        "cpus": cpus.describe(),
        "repeats": args.repeats,
        "duration_s": args.duration,
        "chunks": args.chunks,
        "other CPU before the start %": round(background),
        "warnings": "; ".join(warnings) or "none",
    }
    upstream = targets.fake_upstream(repo=REPO, work=work, chunks=args.chunks, cpu=cpus.load)
    default = targets.VARIANTS["default"]
    gateways = [
        targets.chatgate(
            variant=default, exe=args.chatgate, upstream=upstream, work=work, cpu=cpus.gateway
        )
    ]
    if args.baseline is not None:
        base = replace(default, name="base")
        svc = targets.chatgate(
            variant=base, exe=args.chatgate, upstream=upstream, work=work, cpu=cpus.gateway
        )
        env = dict(svc.env or os.environ)
        env["PYTHONPATH"] = str(args.baseline.resolve() / "src")
        svc.env, svc.name = env, "chatgate@baseline"
        gateways.append(svc)
        meta["baseline"] = str(args.baseline)
    b = Bench(args, cpus, work)
    runs: list[Measured] = []
    services = [upstream, *gateways]
    try:
        for svc in services:
            log(f"starting {svc.name}")
            svc.start(args.start_timeout)
        plan = [
            (gw, door)
            for gw in gateways
            for door in args.doors
            if gw is gateways[0] or door == REFERENCE
        ]
        for gw, door in plan:
            for mode in args.modes:
                r = b.wrk(gw, door, mode, max(args.concurrency), args.warmup)
                log(f"warm-up {gw.name} {door} {mode}: {r.rps:,.0f} req/s, {r.errors} errors")
                if r.requests and not r.ok:
                    raise WrkError(f"{door} gave no valid {mode} response: {r.bad_sample[:200]!r}")
        total = args.repeats * len(args.modes) * len(args.concurrency) * len(plan)
        for rep in range(1, args.repeats + 1):
            for mode in args.modes:
                for conc in args.concurrency:
                    for gw, door in plan:
                        m = b.measure(gw, door, mode, conc, rep)
                        runs.append(m)
                        log(
                            f"[{len(runs)}/{total}] {gw.name} {door:<16} {mode:<10} c{conc:<3} "
                            f"r{rep}: {m.rps:8,.0f} req/s  {m.cpu_us_per_request:6,.0f} µs/req  "
                            f"errors {m.errors}"
                        )
    finally:
        for svc in reversed(services):
            svc.stop()
    return runs, meta


if __name__ == "__main__":
    sys.exit(main())
