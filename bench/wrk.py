"""Run wrk with the validating Lua script and parse its machine-readable result line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from procs import pinned

LUA_SCRIPT = Path(__file__).resolve().parent / "lua" / "chat.lua"
RESULT_PREFIX = "BENCH_RESULT "


class WrkError(RuntimeError):
    """wrk failed or printed no result line."""


@dataclass(frozen=True)
class WrkResult:
    requests: int  # responses wrk completed, valid or not
    duration_s: float
    non2xx: int
    invalid: int  # 2xx responses whose body failed validation
    socket_errors: int  # connect + read + write errors
    timeouts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    wrk_cpu_s: float  # user + system CPU time wrk itself used
    bad_sample: str

    @property
    def errors(self) -> int:
        return self.non2xx + self.invalid + self.socket_errors + self.timeouts

    @property
    def ok(self) -> int:
        return max(0, self.requests - self.non2xx - self.invalid)

    @property
    def rps(self) -> float:
        """Valid responses per second: failures never inflate throughput."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def wrk_cpu_pct(self) -> float:
        return 100 * self.wrk_cpu_s / self.duration_s if self.duration_s > 0 else 0.0


def run_wrk(
    *,
    url: str,
    mode: str,
    chunks: int,
    body_file: Path,
    connections: int,
    duration_s: float,
    cpu: int | None,
    timeout_s: float,
    extra_args: tuple[str, ...] = (),
) -> WrkResult:
    """One wrk run with one thread; bounded by duration + a margin, killed on any exception."""
    argv = pinned(
        cpu,
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            f"--timeout={max(1, round(timeout_s))}s",
            "--latency",
            "-s",
            str(LUA_SCRIPT),
            url,
            "--",
            mode,
            str(chunks),
            str(body_file),
            *extra_args,
        ],
    )
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + duration_s + timeout_s + 30
    try:
        # wait4 instead of communicate(): it also gives wrk's own CPU usage (is wrk a bottleneck?)
        assert proc.stdout is not None
        output = b""
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                output += proc.stdout.read()
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                raise WrkError(f"wrk did not finish in time: {' '.join(argv)}")
            time.sleep(0.05)
    except BaseException:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
    text = output.decode(errors="replace")
    if proc.returncode != 0:
        raise WrkError(f"wrk exited with {proc.returncode}:\n{text}")
    return _parse(text, wrk_cpu_s=usage.ru_utime + usage.ru_stime)


def _parse(text: str, *, wrk_cpu_s: float) -> WrkResult:
    for line in text.splitlines():
        if line.startswith(RESULT_PREFIX):
            data = json.loads(line[len(RESULT_PREFIX) :])
            break
    else:
        raise WrkError(f"no {RESULT_PREFIX.strip()} line in wrk output:\n{text}")
    return WrkResult(
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        non2xx=data["non2xx"],
        invalid=data["invalid"],
        socket_errors=data["connect_errors"] + data["read_errors"] + data["write_errors"],
        timeouts=data["timeouts"],
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        mean_ms=data["mean_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        wrk_cpu_s=wrk_cpu_s,
        bad_sample=data["bad_sample"],
    )
