"""Benchmark chatgate against the fake upstream directly and against LiteLLM, in one run.

Run from the repository: `.venv/bin/python bench/run.py` (what `make bench` does); `-h` for flags.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import apis
import deps
import machine
import targets
from procs import Service, ServiceError
from report import DIRECT, LITELLM, Report, Run
from session import Plan, log, session
from wrk import WrkError

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
MODES = ("non-stream", "stream")
PROMPT = "Say hello to the benchmark."


def _strs(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in _strs(text)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Measure req/s, p50/p99 latency, errors and peak RSS of chatgate, LiteLLM "
        "and the fake upstream itself, stream and non-stream, at several concurrencies, with "
        "targets interleaved and repeated. Writes bench/results/latest.{md,json}.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    p.add_argument("--repeats", type=int, default=3, help="runs per table cell")
    p.add_argument("--warmup", type=float, default=2, help="warm-up seconds per target process")
    p.add_argument("--concurrency", type=_ints, default="1,64", help="wrk connections, comma list")
    p.add_argument("--modes", type=_strs, default=",".join(MODES), help="comma list")
    p.add_argument("--chunks", type=int, default=24, help="content chunks per streamed answer")
    p.add_argument(
        "--targets", type=_strs, default=f"{DIRECT},chatgate,{LITELLM}", help="comma list"
    )
    p.add_argument(
        "--variants",
        type=_strs,
        default="default",
        help=f"chatgate config variants (comma list) of: {', '.join(targets.VARIANTS)}",
    )
    p.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure chatgate at this git revision (a worktree under --out-dir), "
        "interleaved with the working tree, as chatgate@rev-REV; ratios against it reported",
    )
    p.add_argument(
        "--apis",
        type=_strs,
        default=apis.REFERENCE,
        help=f"chatgate doors to measure side by side (comma list) of: {', '.join(apis.APIS)}; "
        f"each is compared with {apis.REFERENCE} (gateway CPU per request)",
    )
    p.add_argument("--gateway-cpu", type=int, default=0, help="CPU the gateway is pinned to")
    p.add_argument("--load-cpu", type=int, default=1, help="CPU for wrk and the fake upstream")
    p.add_argument(
        "--direct-wrk-cpu", type=int, default=1, help="CPU for wrk in the direct (no gateway) runs"
    )
    p.add_argument("--wrk-timeout", type=float, default=30, help="wrk per-request timeout, s")
    p.add_argument("--start-timeout", type=float, default=180, help="service start-up limit, s")
    p.add_argument(
        "--chatgate",
        type=Path,
        default=REPO / ".venv" / "bin" / "chatgate",
        help="chatgate command",
    )
    p.add_argument(
        "--litellm-venv",
        type=Path,
        default=BENCH_DIR / ".venv-litellm",
        help="LiteLLM's own venv, created when missing",
    )
    p.add_argument("--litellm-spec", default=deps.LITELLM_SPEC, help="pip spec if not installed")
    p.add_argument(
        "--out-dir",
        type=Path,
        default=BENCH_DIR / "results",
        help="where latest.md, latest.json and work/ (configs, logs) go",
    )
    args = p.parse_args(argv)
    for mode in args.modes:
        if mode not in MODES:
            p.error(f"--modes: unknown mode {mode!r}; use {','.join(MODES)}")
    for t in args.targets:
        if t not in (DIRECT, "chatgate", LITELLM):
            p.error(f"--targets: unknown target {t!r}; use direct,chatgate,litellm")
    for v in args.variants:
        if v not in targets.VARIANTS:
            p.error(f"--variants: unknown variant {v!r}; known: {', '.join(targets.VARIANTS)}")
    for a in args.apis:
        if a not in apis.APIS:
            p.error(f"--apis: unknown API {a!r}; known: {', '.join(apis.APIS)}")
    if apis.REFERENCE not in args.apis:
        args.apis.insert(0, apis.REFERENCE)  # the others are measured against it
    if args.repeats < 1 or args.duration < 1 or not args.concurrency or not args.modes:
        p.error("need --repeats ≥ 1, --duration ≥ 1, a --concurrency and a --modes")
    return args


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the `with` blocks that stop services


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    try:
        deps.ensure_wrk()
        if "chatgate" in args.targets and not args.chatgate.exists():
            raise deps.MissingTool(f"{args.chatgate} not found: install the project into .venv")
        if not (REPO / "tests" / "fakes" / "upstream.py").exists():
            raise deps.MissingTool("tests/fakes/upstream.py (the fake upstream) not found")
        litellm_exe = None
        if LITELLM in args.targets:
            litellm_exe = deps.ensure_litellm(args.litellm_venv, args.litellm_spec)
        report = bench(args, litellm_exe)
    except (deps.MissingTool, ServiceError, WrkError) as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; services stopped")
        return 130
    out: Path = args.out_dir
    markdown = report.to_markdown()
    (out / "latest.md").write_text(markdown)
    (out / "latest.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    print(markdown)
    log(f"wrote {out / 'latest.md'} and {out / 'latest.json'}")
    return 0


def _write_bodies(work: Path, api: apis.Api, modes: Sequence[str]) -> dict[str, Path]:
    return apis.write_bodies(work, api, targets.MODEL, PROMPT, list(modes))


def _log_run(run: Run, done: int, total: int) -> None:
    w = run.wrk
    log(
        f"[{done}/{total}] {run.target:<10} {run.mode:<10} c{run.concurrency:<3} "
        f"r{run.repeat}: {w.rps:8,.0f} req/s  p50 {w.p50_ms:7.2f} ms  p99 {w.p99_ms:8.2f} ms  "
        f"errors {w.errors}"
    )


def bench(args: argparse.Namespace, litellm_exe: Path | None) -> Report:
    cpus, warnings = machine.choose_cpus(args.gateway_cpu, args.load_cpu, args.direct_wrk_cpu)
    background = machine.background_cpu_pct()
    if background > 10:
        warnings.append(f"before the start, other processes already used {background:.0f}% CPU")
        log(f"warning: the machine is busy ({background:.0f}% CPU): figures will be noisy")
    meta = machine.describe(REPO, cpus, args.litellm_venv if litellm_exe else None)
    plan = Plan(
        modes=args.modes,
        concurrency=args.concurrency,
        repeats=args.repeats,
        duration_s=args.duration,
        warmup_s=args.warmup,
        chunks=args.chunks,
        wrk_timeout_s=args.wrk_timeout,
        start_timeout_s=args.start_timeout,
    )
    meta.update(
        repeats=plan.repeats,
        duration_s=plan.duration_s,
        warmup_s=plan.warmup_s,
        chunks=plan.chunks,
        variants="; ".join(
            f"{targets.VARIANTS[v].label}: {targets.VARIANTS[v].description}" for v in args.variants
        ),
        apis="; ".join(f"{a}: {apis.APIS[a].description}" for a in args.apis),
    )
    work = args.out_dir / "work"  # configs and service logs of the latest run
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    upstream = targets.fake_upstream(repo=REPO, work=work, chunks=plan.chunks, cpu=cpus.load)
    gateways: list[Service] = []
    if "chatgate" in args.targets:
        sources = [None]
        if args.baseline:
            sources.append(targets.baseline_source(REPO, args.baseline, args.out_dir))
            short = sources[-1][0]
            meta["baseline"] = f"chatgate@rev-{short}: git revision {args.baseline}"
        for name in args.variants:
            for source in sources:
                gateways.append(
                    targets.chatgate(
                        variant=targets.VARIANTS[name],
                        exe=args.chatgate,
                        upstream=upstream,
                        work=work,
                        cpu=cpus.gateway,
                        source=source,
                    )
                )
    if litellm_exe is not None:
        gateways.append(
            targets.litellm(exe=litellm_exe, upstream=upstream, work=work, cpu=cpus.gateway)
        )

    bodies = {a: _write_bodies(work, apis.APIS[a], plan.modes) for a in args.apis}
    doors = [(apis.APIS[a], bodies[a]) for a in args.apis]
    with session(plan, cpus, upstream, bodies[apis.REFERENCE]) as s:
        order = [s.direct(DIRECT)] if DIRECT in args.targets else []
        if DIRECT in args.targets:  # the upstream endpoints other doors call, for their ratios
            order += [s.direct(DIRECT, door) for door in doors if door[0].upstream]
        for g in gateways:  # LiteLLM is measured through chat completions alone
            order += s.add_gateway(g, doors if g.name.startswith("chatgate") else ())
        for target in order:
            s.warm_up(target)
        runs = s.run_all(order, _log_run)
        idle = dict(s.idle_rss_mb)

    report = Report(meta=meta, idle_rss_mb=idle, runs=runs, warnings=warnings)
    report.add_warnings()
    return report


if __name__ == "__main__":
    sys.exit(main())
