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
    from chatgate.gateway.pricing import Cost

NANOS = 1_000_000_000

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


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt(names: Labels, values: Labels) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{escape(v)}"' for n, v in zip(names, values, strict=True)) + "}"


class Metrics:
    def __init__(self) -> None:
        self.requests = Counter(
            "chatgate_requests_total",
            "Requests by door (api), model and outcome.",
            ("api", "model", "status", "cache", "stream"),
        )
        self.latency = Histogram(
            "chatgate_request_duration_seconds",
            "Whole request time.",
            ("api", "model", "stream"),
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
        self.cost = Counter(
            "chatgate_cost_total",
            "What upstreams charged for answers, by model and currency (from their usage).",
            ("model", "currency"),
        )
        self.cost_saved = Counter(
            "chatgate_cost_saved_total",
            "What answers served from chatgate's cache would have cost upstream.",
            ("model", "currency"),
        )
        self.in_flight = 0

    def observe_request(
        self,
        api: str,
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
        self.requests.inc((api, model, str(status), cache, flag))
        self.latency.observe((api, model, flag), seconds)
        if prompt:
            self.tokens.inc((model, "prompt"), prompt)
        if completion:
            self.tokens.inc((model, "completion"), completion)
        if status in (429, 503) and code:
            self.rejected.inc((code,))

    def observe_cost(self, model: str, cost: Cost | None, saved: Cost | None) -> None:
        if cost is not None:
            self.cost.inc((model, cost.currency), cost.nanos / NANOS)
        if saved is not None:
            self.cost_saved.inc((model, saved.currency), saved.nanos / NANOS)

    def upstream_error(self, provider: str, status: int | None) -> None:
        self.upstream_errors.inc((provider, str(status) if status else "connection"))

    def render(self, live: Iterable[str] = ()) -> str:
        """The text exposition; ``live`` adds lines read from running state at scrape time."""
        lines: list[str] = []
        for metric in (
            self.requests,
            self.latency,
            self.ttft,
            self.inter_chunk,
            self.tokens,
            self.cost,
            self.cost_saved,
            self.rejected,
            self.upstream_errors,
        ):
            lines.extend(metric.render())
        lines += [
            "# HELP chatgate_in_flight_requests Requests on the request path now (any door).",
            "# TYPE chatgate_in_flight_requests gauge",
            f"chatgate_in_flight_requests {self.in_flight}",
        ]
        lines.extend(live)
        return "\n".join(lines) + "\n"
