"""Aggregate repeated runs into medians with ranges, same-run ratios, Markdown and JSON."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from wrk import WrkResult

DIRECT = "direct"
LITELLM = "litellm"
BASELINE = "chatgate@rev-"  # chatgate at another git revision (--baseline)


@dataclass(frozen=True)
class Run:
    """One wrk run against one target: a single repeat of one table cell."""

    target: str
    mode: str
    concurrency: int
    repeat: int
    wrk: WrkResult
    gateway_peak_rss_mb: float | None  # None for the direct run (no gateway)
    gateway_cpu_pct: float | None
    upstream_cpu_pct: float
    other_cpu_pct: float  # CPU used by processes outside the benchmark (should be ~0)
    steal_pct: float  # CPU the hypervisor took away
    gateway_cpu_us: float | None = None  # gateway CPU time per valid response, µs

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["wrk"].update(rps=self.wrk.rps, errors=self.wrk.errors, wrk_cpu_pct=self.wrk.wrk_cpu_pct)
        return d


@dataclass(frozen=True)
class Spread:
    """Median of repeated figures with their min and max."""

    median: float
    lo: float
    hi: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        vals = sorted(values)
        return cls(statistics.median(vals), vals[0], vals[-1])

    def fmt(self, digits: int = 0, unit: str = "") -> str:
        if self.lo == self.hi:
            return f"{self.median:,.{digits}f}{unit}"
        return f"{self.median:,.{digits}f}{unit} [{self.lo:,.{digits}f}–{self.hi:,.{digits}f}]"


@dataclass(frozen=True)
class Cell:
    target: str
    mode: str
    concurrency: int
    rps: Spread
    p50_ms: Spread
    p99_ms: Spread
    errors: int
    requests: int
    peak_rss_mb: float | None
    gateway_cpu_pct: float | None
    upstream_cpu_pct: float
    wrk_cpu_pct: float
    other_cpu_pct: float
    steal_pct: float
    gateway_cpu_us: Spread | None = None

    @property
    def cpu_us_per_request(self) -> float | None:
        """The gateway's CPU time per request (µs): its CPU % over its req/s."""
        if self.gateway_cpu_pct is None or self.rps.median <= 0:
            return None
        return self.gateway_cpu_pct / 100 * 1e6 / self.rps.median


@dataclass(frozen=True)
class Ratio:
    gateway: str
    versus: str
    mode: str
    concurrency: int
    throughput: Spread | None  # gateway req/s ÷ reference req/s, paired per repeat
    added_p50_ms: Spread | None  # gateway p50 − direct p50, concurrency 1 only


@dataclass(frozen=True)
class ApiCost:
    """A door against chat completions on the same gateway: gateway CPU per request."""

    target: str  # e.g. chatgate@responses
    versus: str  # e.g. chatgate (its chat completions)
    mode: str
    concurrency: int
    cpu_us: Spread
    versus_cpu_us: Spread
    ratio: Spread  # target µs ÷ versus µs, paired per repeat


@dataclass
class Report:
    meta: dict[str, Any]
    idle_rss_mb: dict[str, float]
    runs: list[Run]
    warnings: list[str] = field(default_factory=list)

    # --- aggregation ----------------------------------------------------------------------

    def cells(self) -> list[Cell]:
        keys: dict[tuple[str, str, int], list[Run]] = {}
        for run in self.runs:
            keys.setdefault((run.target, run.mode, run.concurrency), []).append(run)
        return [_cell(t, m, c, runs) for (t, m, c), runs in keys.items()]

    def ratios(self) -> list[Ratio]:
        out: list[Ratio] = []
        targets = list(dict.fromkeys(r.target for r in self.runs))
        gateways = [t for t in targets if t.startswith("chatgate")]
        baselines = [t for t in gateways if t.startswith(BASELINE)]
        if LITELLM in targets:
            gateways.append(LITELLM)
        cells = list(dict.fromkeys((r.mode, r.concurrency) for r in self.runs))
        for gw in gateways:
            # A door that calls another upstream endpoint than chat completions is compared
            # with the direct run of that endpoint (`direct@embeddings`).
            door = gw.partition("@")[2]
            direct = f"{DIRECT}@{door}" if f"{DIRECT}@{door}" in targets else DIRECT
            for versus in (direct, LITELLM, *baselines):
                if versus in baselines and not _same_variant(gw, versus):
                    continue  # the working tree against the baseline, variant for variant
                if versus == gw or versus not in targets:
                    continue
                for mode, conc in cells:
                    if self._paired(gw, versus, mode, conc):
                        out.append(self._ratio(gw, versus, mode, conc))
        return out

    def api_costs(self) -> list[ApiCost]:
        """Every ``gateway@api`` target against its gateway's chat completions, per cell."""
        out: list[ApiCost] = []
        for target in dict.fromkeys(r.target for r in self.runs):
            if "@" not in target:
                continue
            versus = target.split("@", 1)[0]
            for mode, conc in dict.fromkeys((r.mode, r.concurrency) for r in self.runs):
                pairs = [
                    (a.gateway_cpu_us, b.gateway_cpu_us)
                    for a, b in self._paired_runs(target, versus, mode, conc)
                    if a.gateway_cpu_us and b.gateway_cpu_us
                ]
                if pairs:
                    out.append(
                        ApiCost(
                            target,
                            versus,
                            mode,
                            conc,
                            Spread.of(a for a, _ in pairs),
                            Spread.of(b for _, b in pairs),
                            Spread.of(a / b for a, b in pairs),
                        )
                    )
        return out

    def _paired_runs(self, a: str, b: str, mode: str, conc: int) -> list[tuple[Run, Run]]:
        def by_repeat(target: str) -> dict[int, Run]:
            return {
                r.repeat: r
                for r in self.runs
                if r.target == target and r.mode == mode and r.concurrency == conc
            }

        ra, rb = by_repeat(a), by_repeat(b)
        return [(ra[i], rb[i]) for i in sorted(ra.keys() & rb.keys())]

    def _paired(self, a: str, b: str, mode: str, conc: int) -> list[tuple[WrkResult, WrkResult]]:
        def by_repeat(target: str) -> dict[int, WrkResult]:
            return {
                r.repeat: r.wrk
                for r in self.runs
                if r.target == target and r.mode == mode and r.concurrency == conc
            }

        ra, rb = by_repeat(a), by_repeat(b)
        return [(ra[i], rb[i]) for i in sorted(ra.keys() & rb.keys())]

    def _ratio(self, gw: str, versus: str, mode: str, conc: int) -> Ratio:
        pairs = self._paired(gw, versus, mode, conc)
        thr = [g.rps / v.rps for g, v in pairs if v.rps > 0]
        added: list[float] = []
        if versus.startswith(DIRECT) and conc == 1:
            added = [g.p50_ms - v.p50_ms for g, v in pairs]
        return Ratio(
            gateway=gw,
            versus=versus,
            mode=mode,
            concurrency=conc,
            throughput=Spread.of(thr) if thr else None,
            added_p50_ms=Spread.of(added) if added else None,
        )

    def checks(self) -> list[tuple[str, bool | None, str]]:
        """Issue 2's targets for plain chatgate: (what, passed or None if unmeasured, figure)."""
        gw = "chatgate"
        cells = {(c.target, c.mode, c.concurrency): c for c in self.cells()}
        ratios = {(r.gateway, r.versus, r.mode, r.concurrency): r for r in self.ratios()}
        out: list[tuple[str, bool | None, str]] = []

        def add(what: str, value: float | None, ok: Callable[[float], bool], fmt: str) -> None:
            if value is None:
                out.append((what, None, "not measured"))
            else:
                out.append((what, ok(value), fmt.format(value)))

        for mode in ("non-stream", "stream"):
            r = ratios.get((gw, LITELLM, mode, 64))
            add(
                f"{mode} c64 ≥ 30× LiteLLM",
                r.throughput.median if r and r.throughput else None,
                lambda v: v >= 30,
                "{:.1f}×",
            )
        for mode in ("non-stream", "stream"):
            r = ratios.get((gw, DIRECT, mode, 1))
            add(
                f"{mode} added p50 at c1 < 0.4 ms",
                r.added_p50_ms.median if r and r.added_p50_ms else None,
                lambda v: v < 0.4,
                "{:.2f} ms",
            )
        for mode in ("non-stream", "stream"):
            c = cells.get((gw, mode, 64))
            add(
                f"{mode} p99 at c64 < 50 ms",
                c.p99_ms.median if c else None,
                lambda v: v < 50,
                "{:.1f} ms",
            )
        gw_cells = [c for c in cells.values() if c.target == gw]
        add(
            "no errors",
            sum(c.errors for c in gw_cells) if gw_cells else None,
            lambda v: v == 0,
            "{:.0f}",
        )
        add("idle RSS < 120 MB", self.idle_rss_mb.get(gw), lambda v: v < 120, "{:.0f} MB")
        return out

    def add_warnings(self) -> None:
        """Say where a figure may not mean what it seems: errors, a busy machine, bottlenecks."""
        noisy = [c for c in self.cells() if c.other_cpu_pct > 10 or c.steal_pct > 10]
        if noisy:
            worst = max(noisy, key=lambda c: c.other_cpu_pct + c.steal_pct)
            self.warnings.append(
                f"the machine was not quiet in {len(noisy)} of {len(self.cells())} cells: other "
                f"processes used up to {worst.other_cpu_pct:.0f}% CPU (hypervisor steal up to "
                f"{max(c.steal_pct for c in noisy):.0f}%); see the other CPU % column and re-run "
                "on a quiet machine before quoting figures"
            )
        for c in self.cells():
            where = f"{c.target} {c.mode} c{c.concurrency}"
            if c.errors:
                sample = next(
                    (
                        r.wrk.bad_sample
                        for r in self.runs
                        if (r.target, r.mode, r.concurrency) == (c.target, c.mode, c.concurrency)
                        and r.wrk.bad_sample
                    ),
                    "",
                )
                self.warnings.append(
                    f"{where}: {c.errors} errors; first bad response: {sample[:160]!r}"
                )
            if c.wrk_cpu_pct > 90:
                self.warnings.append(f"{where}: wrk used {c.wrk_cpu_pct:.0f}% CPU, may be a limit")
            if (
                c.gateway_cpu_pct is not None
                and c.concurrency > 1
                and c.gateway_cpu_pct < 80
                and c.upstream_cpu_pct + c.wrk_cpu_pct > 85
            ):
                self.warnings.append(
                    f"{where}: gateway at {c.gateway_cpu_pct:.0f}% CPU while the load CPU is busy "
                    f"(fake {c.upstream_cpu_pct:.0f}% + wrk {c.wrk_cpu_pct:.0f}%): the load side "
                    "may be the limit, not the gateway"
                )

    # --- output ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "idle_rss_mb": self.idle_rss_mb,
            "cells": [asdict(c) for c in self.cells()],
            "ratios": [asdict(r) for r in self.ratios()],
            "api_costs": [asdict(c) for c in self.api_costs()],
            "checks": [{"what": w, "passed": p, "value": v} for w, p, v in self.checks()],
            "warnings": self.warnings,
            "runs": [r.as_dict() for r in self.runs],
        }

    def to_markdown(self) -> str:
        m = self.meta
        lines = [
            f"# chatgate benchmark — {m['started']}",
            "",
            f"{m['repeats']} repeats × {m['duration_s']:g} s per cell, targets interleaved; "
            f"stream = {m['chunks']} content chunks. Figures are medians [min–max] over the "
            "repeats; errors are summed. Compare figures only within this run.",
            "",
            "| target | mode | conc | req/s | p50 ms | p99 ms | errors | peak RSS MB "
            "| CPU % gw / up / wrk | gw CPU µs/req | other CPU % |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for c in self.cells():
            rss = f"{c.peak_rss_mb:.0f}" if c.peak_rss_mb is not None else "–"
            gw_cpu = f"{c.gateway_cpu_pct:.0f}" if c.gateway_cpu_pct is not None else "–"
            per_req = c.gateway_cpu_us.fmt(0) if c.gateway_cpu_us is not None else "–"
            lines.append(
                f"| {c.target} | {c.mode} | {c.concurrency} | {c.rps.fmt(0)} "
                f"| {c.p50_ms.median:.2f} | {c.p99_ms.median:.2f} | {c.errors} | {rss} "
                f"| {gw_cpu} / {c.upstream_cpu_pct:.0f} / {c.wrk_cpu_pct:.0f} | {per_req} "
                f"| {c.other_cpu_pct:.0f} |"
            )
        costs = self.api_costs()
        if costs:
            lines += ["", "## Gateway CPU per request by API (paired per repeat, same run)", ""]
            lines += [
                "| API target | vs | mode | conc | µs/req | vs µs/req | ratio |",
                "|---|---|---|--:|--:|--:|--:|",
            ]
            lines += [
                f"| {a.target} | {a.versus} | {a.mode} | {a.concurrency} | {a.cpu_us.fmt(0)} "
                f"| {a.versus_cpu_us.fmt(0)} | {a.ratio.fmt(2, '×')} |"
                for a in costs
            ]
        lines += ["", "## Ratios (paired per repeat, same run)", ""]
        lines += [
            "| gateway | vs | mode | conc | throughput ratio | added p50 ms |",
            "|---|---|---|--:|--:|--:|",
        ]
        for r in self.ratios():
            thr = r.throughput.fmt(2, "×") if r.throughput else "–"
            added = r.added_p50_ms.fmt(2) if r.added_p50_ms else "–"
            lines.append(
                f"| {r.gateway} | {r.versus} | {r.mode} | {r.concurrency} | {thr} | {added} |"
            )
        lines += ["", "## Idle RSS right after start", ""]
        lines += [f"- {name}: {mb:.0f} MB" for name, mb in self.idle_rss_mb.items()]
        checks = self.checks()
        if any(p is not None for _, p, _ in checks):
            lines += ["", "## Targets from issue 2 (plain chatgate)", ""]
            for what, passed, value in checks:
                mark = {True: "pass", False: "FAIL", None: "–"}[passed]
                lines.append(f"- {mark}: {what} — {value}")
        lines += ["", "## Setup", ""]
        lines += [f"- {k}: {v}" for k, v in m.items() if k not in {"started"}]
        if self.warnings:
            lines += ["", "## Warnings", ""]
            lines += [f"- {w}" for w in self.warnings]
        return "\n".join(lines) + "\n"


def _same_variant(gateway: str, baseline: str) -> bool:
    """``chatgate+cache`` pairs with ``chatgate@rev-abc+cache``; a baseline with no other, nor
    another door of the working tree (``chatgate@responses``)."""
    if gateway == LITELLM or gateway.startswith("chatgate@"):
        return False
    return gateway.partition("+")[2] == baseline.partition("+")[2]


def _cell(target: str, mode: str, conc: int, runs: Sequence[Run]) -> Cell:
    rss = [r.gateway_peak_rss_mb for r in runs if r.gateway_peak_rss_mb is not None]
    gw_cpu = [r.gateway_cpu_pct for r in runs if r.gateway_cpu_pct is not None]
    per_req = [r.gateway_cpu_us for r in runs if r.gateway_cpu_us]
    return Cell(
        target=target,
        mode=mode,
        concurrency=conc,
        rps=Spread.of(r.wrk.rps for r in runs),
        p50_ms=Spread.of(r.wrk.p50_ms for r in runs),
        p99_ms=Spread.of(r.wrk.p99_ms for r in runs),
        errors=sum(r.wrk.errors for r in runs),
        requests=sum(r.wrk.requests for r in runs),
        peak_rss_mb=max(rss) if rss else None,
        gateway_cpu_pct=statistics.median(gw_cpu) if gw_cpu else None,
        upstream_cpu_pct=statistics.median(r.upstream_cpu_pct for r in runs),
        wrk_cpu_pct=statistics.median(r.wrk.wrk_cpu_pct for r in runs),
        other_cpu_pct=max(r.other_cpu_pct for r in runs),
        steal_pct=max(r.steal_pct for r in runs),
        gateway_cpu_us=Spread.of(per_req) if per_req else None,
    )
