"""Schemathesis against chatgate's OpenAPI schema (`/openapi.json`), in front of the fake upstream.

Gating checks (:mod:`robustness.st_checks`): no 5xx except an upstream-explained 502/503/504, and
every error (and every SSE error event) in the OpenAI shape. ``--conformance`` adds schemathesis'
own checks (documented status codes, content types, response schemas…): reported, not gating.

    .venv/bin/python -m robustness.fuzz                 # long run: fake + `chatgate serve`
    .venv/bin/python -m robustness.fuzz --examples 50 --phases examples,fuzzing
    .venv/bin/python -m robustness.fuzz --url http://127.0.0.1:8000   # a running chatgate

Exit status 1 when a gating check failed. Reports (JSON, NDJSON) go to ``--report-dir``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustness.harness import REPO, stack

GATING_CHECKS = ("chatgate_server_error", "chatgate_error_shape")
# Built-in checks that need auth or a second user: chatgate's fuzz config has neither.
NOT_APPLICABLE = ("ignored_auth", "object_level_authorization")
ALL_PHASES = "examples,coverage,fuzzing,stateful"


@dataclass
class Failure:
    check: str
    operation: str
    message: str
    status: int | None
    request: str  # a curl command line
    response: str  # the start of the body

    @property
    def gating(self) -> bool:
        return self.check in GATING_CHECKS


@dataclass
class FuzzResult:
    generated: int
    seconds: float
    seed: int | None
    exit_code: int
    failures: list[Failure] = field(default_factory=list)
    output: str = ""

    @property
    def gating(self) -> list[Failure]:
        return [f for f in self.failures if f.gating]

    @property
    def conformance(self) -> list[Failure]:
        return [f for f in self.failures if not f.gating]

    def summary(self) -> str:
        lines = [
            f"schemathesis: {self.generated} cases in {self.seconds:.1f} s (seed {self.seed}); "
            f"{len(self.gating)} gating failure(s), {len(self.conformance)} conformance finding(s)"
        ]
        for title, failures in (("GATING", self.gating), ("conformance", self.conformance)):
            for f in failures:
                lines += [
                    f"- [{title}] {f.check} on {f.operation}: {f.message}",
                    f"    response: {f.status} {f.response}",
                    f"    repro:    {f.request}",
                ]
        return "\n".join(lines)


def run_schemathesis(
    base_url: str,
    *,
    examples: int,
    seed: int | None = None,
    phases: str = ALL_PHASES,
    conformance: bool = False,
    workers: int = 1,
    max_time: int | None = None,
    report_dir: Path | None = None,
    timeout: float = 3600.0,
) -> FuzzResult:
    """Run the schemathesis CLI against ``base_url`` and collect its cases and failures."""
    report_dir = report_dir or Path(tempfile.mkdtemp(prefix="chatgate-fuzz-"))
    report_dir.mkdir(parents=True, exist_ok=True)
    checks = ",".join(GATING_CHECKS) if not conformance else "all"
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{base_url}/openapi.json",
        "--max-examples",
        str(examples),
        "--phases",
        phases,
        "--checks",
        checks,
        "--workers",
        str(workers),
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--output-sanitize",
        "false",
        "--report",
        "json,ndjson",
        "--report-json-path",
        str(report_dir / "report.json"),
        "--report-ndjson-path",
        str(report_dir / "events.ndjson"),
        "--no-color",
    ]
    if conformance:
        cmd += ["--exclude-checks", ",".join(NOT_APPLICABLE)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if max_time is not None:  # schemathesis takes whole seconds, at least 1: "90.0" is refused
        cmd += ["--max-time", str(max(1, int(max_time)))]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "robustness.st_checks", "NO_COLOR": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    started = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    seconds = time.monotonic() - started
    output = proc.stdout + proc.stderr
    report_path = report_dir / "report.json"
    if not report_path.exists():
        raise RuntimeError(f"schemathesis wrote no report (exit {proc.returncode}):\n{output}")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    return FuzzResult(
        generated=int(report["test_cases"]["generated"]),
        seconds=seconds,
        seed=report.get("seed"),
        exit_code=proc.returncode,
        failures=list(_failures(report_dir / "events.ndjson")),
        output=output,
    )


def _decode(blob: Any) -> bytes:
    if isinstance(blob, dict) and "$base64" in blob:
        return base64.b64decode(blob["$base64"])
    if isinstance(blob, str):
        return blob.encode()
    return b""


def _curl(request: dict[str, Any]) -> str:
    parts = ["curl", "-X", str(request.get("method", "GET"))]
    for name, values in (request.get("headers") or {}).items():
        for value in values:
            parts += ["-H", f"{name}: {value}"]
    body = _decode(request.get("body"))
    if body:
        parts += ["-d", body.decode("utf-8", "replace")]
    parts.append(str(request.get("uri", "")))
    return shlex.join(parts)


def _failures(ndjson: Path) -> Iterator[Failure]:
    """Unique failures (by check, operation and message) from the NDJSON event log."""
    seen: set[tuple[str, str, str]] = set()
    if not ndjson.exists():
        return
    with ndjson.open(encoding="utf-8") as lines:
        for line in lines:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished.get("recorder") or {}
            interactions = recorder.get("interactions") or {}
            for case_id, checks in (recorder.get("checks") or {}).items():
                for check in checks:
                    if check.get("status") != "failure":
                        continue
                    info = (check.get("failure_info") or {}).get("failure") or {}
                    message = str(info.get("message", "")).strip().splitlines()
                    first = message[0] if message else ""
                    key = (check["name"], str(info.get("operation", "")), first)
                    if key in seen:
                        continue
                    seen.add(key)
                    interaction = interactions.get(case_id) or {}
                    response = interaction.get("response") or {}
                    content = _decode(response.get("content"))
                    yield Failure(
                        check=check["name"],
                        operation=key[1],
                        message=" / ".join(message)[:400],
                        status=response.get("status_code"),
                        request=_curl(interaction.get("request") or {})[:2000],
                        response=content[:300].decode("utf-8", "replace"),
                    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m robustness.fuzz", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    p.add_argument("--examples", type=int, default=300, help="max examples per operation")
    p.add_argument("--phases", default=ALL_PHASES, help="schemathesis phases, comma separated")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--workers", type=int, default=4, help="concurrent schemathesis workers")
    p.add_argument("--max-time", type=_seconds, default=None, help="time budget, whole seconds")
    p.add_argument("--conformance", action="store_true", help="also run schemathesis' checks")
    p.add_argument("--url", default=None, help="fuzz this running chatgate instead")
    p.add_argument("--cache", action="store_true", help="start chatgate with the cache on")
    p.add_argument(
        "--report-dir", type=Path, default=None, help="where reports go (default: a temp dir)"
    )
    return p.parse_args(argv)


def _seconds(text: str) -> int:
    """A time budget in whole seconds (schemathesis' unit); ``90.0`` is read as 90."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if seconds < 1:
        raise argparse.ArgumentTypeError("the time budget is at least 1 second")
    return int(seconds)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report_dir = args.report_dir or Path(tempfile.mkdtemp(prefix="chatgate-fuzz-"))
    options: dict[str, Any] = {
        "examples": args.examples,
        "seed": args.seed,
        "phases": args.phases,
        "conformance": args.conformance,
        "workers": args.workers,
        "max_time": args.max_time,
        "report_dir": report_dir,
    }
    if args.url:
        result = run_schemathesis(args.url.rstrip("/"), **options)
    else:
        with stack(report_dir / "stack", cache=args.cache) as running:
            print(f"chatgate {running.url} in front of the fake upstream {running.fake_url}")
            result = run_schemathesis(running.url, **options)
            errors = _server_errors(running.gateway.log_path)
        if errors:
            print(f"chatgate logged {errors} error record(s); see {running.gateway.log_path}")
    print(result.summary())
    print(f"reports: {report_dir}")
    return 1 if result.gating else 0


def _server_errors(log: Path) -> int:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if '"level":"error"' in line)


if __name__ == "__main__":
    sys.exit(main())
