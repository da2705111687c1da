"""Pinned service processes: start, wait until ready, measure (RSS, CPU) and always clean up."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event, Thread

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServiceError(RuntimeError):
    """A service did not start, or died; the message says which and points at its log."""


def free_port() -> int:
    """A currently unused loopback port (tiny race before the service binds it; fine here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pinned(cpu: int | None, argv: Sequence[str]) -> list[str]:
    """argv run under `taskset -c CPU` (taskset execs, so the PID stays the service's own)."""
    return list(argv) if cpu is None else ["taskset", "-c", str(cpu), *argv]


@dataclass
class Service:
    """One long-running process under test (fake upstream or a gateway), in its own group."""

    name: str
    argv: list[str]
    base_url: str  # http://127.0.0.1:PORT
    ready_path: str
    log_path: Path
    cwd: Path
    env: Mapping[str, str] | None = None
    wrk_args: tuple[str, ...] = ()  # extra arguments for the wrk script (key=…, unique)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def ready_url(self) -> str:
        return self.base_url + self.ready_path

    def start(self, timeout: float) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=dict(self.env) if self.env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: we kill it whole, Ctrl-C does not
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise ServiceError(f"{self.name} exited during start-up; see {self.log_path}")
            try:
                with _NO_PROXY.open(self.ready_url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.1)
        raise ServiceError(
            f"{self.name} not ready at {self.ready_url} after {timeout:.0f} s; see {self.log_path}"
        )

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise ServiceError(f"{self.name} is not running")
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise ServiceError(f"{self.name} is not running any more; see {self.log_path}")

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the whole process group, then SIGKILL whatever is left after `grace`."""
        proc = self.proc
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Members of the group that outlived the leader (e.g. uvicorn worker children).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.proc = None


# --- /proc readings -------------------------------------------------------------------------


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
    return parents


def process_tree(root: int) -> list[int]:
    """root and all its descendants (uvicorn / gunicorn workers included)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rss_mb(root: int) -> float:
    """Current resident set size of the whole process tree, in MB."""
    return sum(_status_kb(pid, "VmRSS") for pid in process_tree(root)) / 1024


def cpu_seconds(root: int) -> float:
    """user + system CPU time consumed so far by the process tree (live members only)."""
    total = 0
    for pid in process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def system_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, all CPUs summed, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user + nice + system: comparable with the processes' utime + stime (irq time is not)
    busy = fields[0] + fields[1] + fields[2]
    return busy / CLOCK_TICKS, fields[7] / CLOCK_TICKS


class PeakRss:
    """Peak RSS of a process tree over a window: VmHWM reset at the start, plus sampled VmRSS.

    Writing 5 to /proc/PID/clear_refs resets the kernel's high-water mark (VmHWM); when that is
    not allowed the 50 ms sampler alone gives the figure.
    """

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.root = root
        self.interval = interval
        self.sampled_mb = 0.0
        self._stop = Event()
        self._thread = Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        for pid in process_tree(self.root):
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.sampled_mb = max(self.sampled_mb, rss_mb(self.root))
            self._stop.wait(self.interval)

    @property
    def peak_mb(self) -> float:
        hwm = sum(_status_kb(pid, "VmHWM") for pid in process_tree(self.root)) / 1024
        return max(hwm, self.sampled_mb)
