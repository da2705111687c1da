"""This process's resident memory, for tests that check a server in this process does not grow
by a body's size (``with PeakRss() as rss: ...; rss.grew``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import TracebackType


def rss() -> int:
    """Resident set size of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """Samples ``rss()`` every ``every`` seconds while the block runs; ``grew`` is the peak
    above what it was at the start."""

    def __init__(self, every: float = 0.002) -> None:
        self.every = every
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    @property
    def grew(self) -> int:
        return self.peak - self.base

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(self.every)

    def __enter__(self) -> PeakRss:
        self.base = self.peak = rss()
        self._sampler.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._sampler.join()
        self.peak = max(self.peak, rss())
