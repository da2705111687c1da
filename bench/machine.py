"""Which CPUs to pin to, and a description of the machine and software for the report."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import deps
from procs import system_cpu


@dataclass(frozen=True)
class Cpus:
    gateway: int  # the gateway under test
    load: int  # wrk and the fake upstream
    direct_wrk: int  # wrk in the direct runs (the fake stays on `load`)

    def describe(self) -> str:
        return (
            f"gateway on CPU {self.gateway}; wrk (1 thread) and fake upstream on CPU "
            f"{self.load}; direct runs: fake upstream on CPU {self.load}, wrk on CPU "
            f"{self.direct_wrk}"
        )


def choose_cpus(gateway: int, load: int, direct_wrk: int) -> tuple[Cpus, list[str]]:
    """The CPUs asked for, falling back to the first one we may use; warnings say what changed."""
    available = sorted(os.sched_getaffinity(0))
    warnings: list[str] = []

    def pick(role: str, cpu: int) -> int:
        if cpu in available:
            return cpu
        warnings.append(f"CPU {cpu} ({role}) not available here; using CPU {available[0]}")
        return available[0]

    cpus = Cpus(pick("gateway", gateway), pick("load", load), pick("direct wrk", direct_wrk))
    if cpus.gateway == cpus.load:
        warnings.append("gateway and load generator share a CPU: figures are not comparable")
    return cpus, warnings


def background_cpu_pct(seconds: float = 1.0) -> float:
    """CPU the machine spends on other work before we start (100 = one core busy)."""
    busy0, _ = system_cpu()
    time.sleep(seconds)
    busy1, _ = system_cpu()
    return 100 * (busy1 - busy0) / seconds


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def _commit(repo: Path) -> str:
    """Read-only: the checked-out commit, for telling results apart."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    return "unknown"


def describe(repo: Path, cpus: Cpus, litellm_venv: Path | None) -> dict[str, object]:
    meta: dict[str, object] = {
        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": _commit(repo),
        "pinning": cpus.describe(),
        "host": f"{platform.node()}, {os.cpu_count()} CPUs, {_cpu_model()}, "
        f"Linux {platform.release()}",
        "python": platform.python_version(),
        "chatgate": _version("chatgate"),
        "wrk": deps.wrk_version(),
    }
    if litellm_venv is not None:
        meta["litellm"] = deps.litellm_version(litellm_venv)
    return meta
