"""Prometheus metrics, kept in plain dicts (one event loop per process: no locks on the hot path).

Label values are bounded: a model label is a routable model name or ``other``, statuses are HTTP
codes, providers come from the config — never user text, keys or request ids. Gauges that
describe live state (queue depth, key states, cache tiers) are read from it at scrape time.
With ``--workers N`` each worker keeps its own numbers; scrape one worker per process (one per
pod in Kubernetes).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatgate.state import AppState

Labels = tuple[str, ...]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
CHUNK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Counter:
    __slots__ = ("help", "labels", "name", "values")

    def __init__(self, name: str, help: str, labels: Labels) -> None:
        self.name, self.help, self.labels = name, help, labels
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in self.values.items():
            yield f"{self.name}{_fmt(self.labels, labels)} {_num(value)}"


class Histogram:
    __slots__ = ("buckets", "help", "labels", "name", "series")

    def __init__(self, name: str, help: str, labels: Labels, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.labels, self.buckets = name, help, labels, buckets
        self.series: dict[Labels, list[float]] = {}  # per-bucket counts…, +Inf count, sum

    def observe(self, labels: Labels, value: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0.0] * (len(self.buckets) + 2)
        series[bisect.bisect_left(self.buckets, value)] += 1
        series[-1] += value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, series in self.series.items():
            running = 0.0
            for bound, count in zip((*self.buckets, float("inf")), series[:-1], strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else _num(bound)
                tags = _fmt((*self.labels, "le"), (*labels, le))
                yield f"{self.name}_bucket{tags} {_num(running)}"
            yield f"{self.name}_sum{_fmt(self.labels, labels)} {series[-1]!r}"
            yield f"{self.name}_count{_fmt(self.labels, labels)} {_num(running)}"


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt(names: Labels, values: Labels) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)) + "}"


class Metrics:
    def __init__(self) -> None:
        self.requests = Counter(
            "chatgate_requests_total",
            "Chat completion requests by outcome.",
            ("model", "status", "cache", "stream"),
        )
        self.latency = Histogram(
            "chatgate_request_duration_seconds",
            "Whole request time.",
            ("model", "stream"),
            LATENCY_BUCKETS,
        )
        self.ttft = Histogram(
            "chatgate_time_to_first_token_seconds",
            "Time to the first streamed chunk.",
            ("model",),
            LATENCY_BUCKETS,
        )
        self.inter_chunk = Histogram(
            "chatgate_inter_chunk_seconds",
            "Gaps between streamed writes to the client.",
            ("model",),
            CHUNK_BUCKETS,
        )
        self.tokens = Counter(
            "chatgate_tokens_total",
            "Tokens by model and kind (upstream usage; cache hits 0).",
            ("model", "kind"),
        )
        self.rejected = Counter(
            "chatgate_rejected_total",
            "Requests refused by limits, budgets or queues.",
            ("reason",),
        )
        self.upstream_errors = Counter(
            "chatgate_upstream_errors_total",
            "Failed upstream attempts (before retries).",
            ("provider", "status"),
        )
        self.in_flight = 0

    def observe_request(
        self,
        model: str,
        status: int,
        cache: str,
        stream: bool,
        seconds: float,
        prompt: int,
        completion: int,
        code: str | None,
    ) -> None:
        flag = "true" if stream else "false"
        self.requests.inc((model, str(status), cache, flag))
        self.latency.observe((model, flag), seconds)
        if prompt:
            self.tokens.inc((model, "prompt"), prompt)
        if completion:
            self.tokens.inc((model, "completion"), completion)
        if status in (429, 503) and code:
            self.rejected.inc((code,))

    def upstream_error(self, provider: str, status: int | None) -> None:
        self.upstream_errors.inc((provider, str(status) if status else "connection"))

    def render(self, state: AppState | None) -> str:
        lines: list[str] = []
        for metric in (
            self.requests,
            self.latency,
            self.ttft,
            self.inter_chunk,
            self.tokens,
            self.rejected,
            self.upstream_errors,
        ):
            lines.extend(metric.render())
        lines += [
            "# HELP chatgate_in_flight_requests Chat requests being served now.",
            "# TYPE chatgate_in_flight_requests gauge",
            f"chatgate_in_flight_requests {self.in_flight}",
        ]
        if state is not None:
            lines += _live_state(state)
        return "\n".join(lines) + "\n"


def _live_state(state: AppState) -> list[str]:
    lines = [
        "# HELP chatgate_queue_depth Requests waiting for an upstream slot.",
        "# TYPE chatgate_queue_depth gauge",
    ]
    for name, queue in state.queues.items():
        lines.append(f'chatgate_queue_depth{{provider="{_escape(name)}"}} {queue.depth}')
    lines += [
        "# HELP chatgate_upstream_keys Upstream keys by provider and state.",
        "# TYPE chatgate_upstream_keys gauge",
    ]
    for name, pool in state.pools.items():
        counts = {"ok": 0, "cooling": 0, "disabled": 0}
        for key in pool.snapshot():
            counts[str(key["state"])] = counts.get(str(key["state"]), 0) + 1
        for key_state, n in counts.items():
            lines.append(
                f'chatgate_upstream_keys{{provider="{_escape(name)}",state="{key_state}"}} {n}'
            )
    lines += [
        "# HELP chatgate_rate_limit_degraded 1 while Redis is down and limits are local.",
        "# TYPE chatgate_rate_limit_degraded gauge",
        f"chatgate_rate_limit_degraded {int(state.limiter.degraded)}",
    ]
    return lines


async def cache_lines(state: AppState) -> list[str]:
    """Cache tier numbers (async: the disk and Redis tiers are asked)."""
    if state.tiers is None:
        return []
    stats = await state.tiers.stats()
    lines: list[str] = []
    for metric, field, kind in (
        ("chatgate_cache_hits_total", "hits", "counter"),
        ("chatgate_cache_misses_total", "misses", "counter"),
        ("chatgate_cache_entries", "entries", "gauge"),
        ("chatgate_cache_bytes", "bytes", "gauge"),
    ):
        lines += [f"# HELP {metric} Response cache {field} per tier.", f"# TYPE {metric} {kind}"]
        for tier, s in stats.items():
            lines.append(f'{metric}{{tier="{_escape(tier)}"}} {getattr(s, field)}')
    return lines
