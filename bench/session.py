"""One benchmark session: running services, warm-up, and interleaved, repeated measurements."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from apis import Api
from machine import Cpus
from procs import PeakRss, Service, cpu_seconds, rss_mb, system_cpu
from report import Run
from targets import CHAT_PATH, Target
from wrk import WrkError, WrkResult, run_wrk


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    modes: Sequence[str]
    concurrency: Sequence[int]
    repeats: int
    duration_s: float
    warmup_s: float
    chunks: int
    wrk_timeout_s: float
    start_timeout_s: float


@dataclass
class Session:
    """Services under test, started once; `stack` stops all of them whatever happens."""

    plan: Plan
    cpus: Cpus
    upstream: Service
    bodies: dict[str, Path]  # chat request body file per mode (the direct run's)
    stack: contextlib.ExitStack
    gateways: list[Service] = field(default_factory=list)
    idle_rss_mb: dict[str, float] = field(default_factory=dict)

    def start(self, service: Service) -> Service:
        log(f"starting {service.name}: {' '.join(service.argv)}")
        self.stack.callback(service.stop)
        service.start(self.plan.start_timeout_s)
        return service

    def add_gateway(
        self, service: Service, apis: Sequence[tuple[Api, dict[str, Path]]] = ()
    ) -> list[Target]:
        """Start a gateway; one target per API it is measured through (chat alone without
        ``apis``), each named after the gateway plus the API's suffix."""
        self.start(service)
        self.gateways.append(service)
        time.sleep(0.5)  # let start-up allocations settle before the idle reading
        self.idle_rss_mb[service.name] = rss_mb(service.pid)
        log(f"{service.name} ready, idle RSS {self.idle_rss_mb[service.name]:.0f} MB")
        if not apis:
            return [
                Target(
                    service.name,
                    service.base_url + CHAT_PATH,
                    service,
                    self.bodies,
                    service.wrk_args,
                )
            ]
        return [
            Target(
                service.name + api.suffix(),
                service.base_url + api.path,
                service,
                bodies,
                (*service.wrk_args, "check=" + api.check),
            )
            for api, bodies in apis
        ]

    def direct(self, name: str, api: tuple[Api, dict[str, Path]] | None = None) -> Target:
        """The upstream itself: its chat completions, or with ``api`` the endpoint that door
        calls (named ``direct@api``), measured with that door's bodies and check."""
        if api is None or api[0].upstream is None:
            return Target(name, self.upstream.base_url + CHAT_PATH, None, self.bodies)
        door, bodies = api
        url = self.upstream.base_url + door.upstream
        return Target(name + door.suffix(), url, None, bodies, ("check=" + door.check,))

    def wrk(self, target: Target, mode: str, conc: int, duration: float) -> WrkResult:
        return run_wrk(
            url=target.url,
            mode=mode,
            chunks=self.plan.chunks,
            body_file=target.bodies[mode],
            connections=conc,
            duration_s=duration,
            cpu=self.cpus.direct_wrk if target.service is None else self.cpus.load,
            timeout_s=self.plan.wrk_timeout_s,
            extra_args=target.wrk_args,
        )

    def warm_up(self, target: Target) -> None:
        """A short run per mode at the highest concurrency; fails fast on a broken target."""
        modes = [m for m in self.plan.modes if m in target.bodies]
        per_mode = max(1.0, self.plan.warmup_s / len(modes))
        for mode in modes:
            r = self.wrk(target, mode, max(self.plan.concurrency), per_mode)
            log(f"warm-up {target.name} {mode}: {r.rps:,.0f} req/s, {r.errors} errors")
            if r.errors and r.bad_sample:
                log(f"  first bad response: {r.bad_sample[:200]!r}")
            if r.requests and not r.ok:
                raise WrkError(f"{target.name} gave no valid {mode} response during warm-up")

    def run_all(
        self, order: Sequence[Target], on_run: Callable[[Run, int, int], None]
    ) -> list[Run]:
        """Every cell `repeats` times, the targets interleaved so that speed drift hits all."""
        runs: list[Run] = []
        cells = [(m, c) for m in self.plan.modes for c in self.plan.concurrency]
        total = self.plan.repeats * sum(1 for m, _ in cells for t in order if m in t.bodies)
        for rep in range(1, self.plan.repeats + 1):
            for mode, conc in cells:
                for target in order:
                    if mode not in target.bodies:
                        continue  # a door without this mode (embeddings do not stream)
                    runs.append(self.measure(target, mode, conc, rep))
                    on_run(runs[-1], len(runs), total)
        return runs

    def _own_cpu_s(self) -> float:
        """CPU used so far by this harness and every service it runs (wrk is measured apart)."""
        me = os.times()
        services = [self.upstream, *self.gateways]
        return me.user + me.system + sum(cpu_seconds(s.pid) for s in services)

    def measure(self, target: Target, mode: str, conc: int, repeat: int) -> Run:
        gw = target.service
        for service in (self.upstream, gw):
            if service is not None:
                service.check_alive()
        up0 = cpu_seconds(self.upstream.pid)
        gw0 = cpu_seconds(gw.pid) if gw else 0.0
        busy0, steal0 = system_cpu()
        own0 = self._own_cpu_s()
        t0 = time.monotonic()
        with contextlib.ExitStack() as stack:
            peak = stack.enter_context(PeakRss(gw.pid)) if gw else None
            result = self.wrk(target, mode, conc, self.plan.duration_s)
        wall = time.monotonic() - t0
        busy1, steal1 = system_cpu()
        up_s = cpu_seconds(self.upstream.pid) - up0
        gw_s = cpu_seconds(gw.pid) - gw0 if gw else 0.0
        own_s = self._own_cpu_s() - own0 + result.wrk_cpu_s
        return Run(
            target=target.name,
            mode=mode,
            concurrency=conc,
            repeat=repeat,
            wrk=result,
            gateway_peak_rss_mb=peak.peak_mb if peak else None,
            gateway_cpu_pct=100 * gw_s / wall if gw else None,
            gateway_cpu_us=1e6 * gw_s / result.ok if gw and result.ok else None,
            upstream_cpu_pct=100 * up_s / wall,
            other_cpu_pct=100 * max(0.0, busy1 - busy0 - own_s) / wall,
            steal_pct=100 * (steal1 - steal0) / wall,
        )


@contextlib.contextmanager
def session(
    plan: Plan, cpus: Cpus, upstream: Service, bodies: dict[str, Path]
) -> Iterator[Session]:
    """A Session whose services are all stopped on exit, on errors and on Ctrl-C alike."""
    with contextlib.ExitStack() as stack:
        s = Session(plan=plan, cpus=cpus, upstream=upstream, bodies=bodies, stack=stack)
        s.start(upstream)
        yield s
