"""The Grafana dashboard in deploy/ parses and only queries metrics that /metrics really serves."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatgate.app import create_app
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "chatgate-dashboard.json"
METRIC = re.compile(r"\bchatgate_[a-z0-9_]+\b")
MSG = [{"role": "user", "content": "dashboard"}]


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dash["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dash: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dash) for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(var["query"]["query"] if isinstance(var["query"], dict) else var["query"])
    return exprs


def served_names(text: str) -> set[str]:
    """Metric names in Prometheus text: sampled series, and families declared by # TYPE (a
    histogram declares its _bucket/_sum/_count series) even before their first sample."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def exercise(url: str) -> str:
    """A few requests of every kind, then the /metrics text."""
    with httpx.Client(base_url=url, timeout=30) as http:
        for stream in (False, True, False):
            resp = http.post(
                "/v1/chat/completions",
                json={"model": "fake-model", "messages": MSG, "stream": stream},
            )
            assert resp.status_code == 200
        assert http.post(
            "/v1/chat/completions", json={"model": "nope", "messages": MSG}
        ).status_code == (404)
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        return metrics.text


@pytest.fixture
def cached_gateway(fake: FakeUpstream, tmp_path: Path) -> Iterator[str]:
    config = gateway_config(fake.base_url, cache={"enabled": True, "dir": str(tmp_path / "c")})
    with ServerThread(create_app(config)) as url:
        yield url


def test_dashboard_is_valid_grafana_json() -> None:
    dash = load()
    assert dash["title"] and dash["uid"] and dash["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dash):
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
            expr = target["expr"]
            assert expr.count("(") == expr.count(")"), expr
            assert expr.count("{") == expr.count("}"), expr
            assert expr.count("[") == expr.count("]"), expr


def test_dashboard_covers_the_issue_panels() -> None:
    text = " ".join(queries(load()))
    for needed in (
        "chatgate_requests_total",
        "histogram_quantile(0.5, sum by (le) (rate(chatgate_request_duration_seconds_bucket",
        "histogram_quantile(0.95, sum by (le) (rate(chatgate_request_duration_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(chatgate_request_duration_seconds_bucket",
        "chatgate_time_to_first_token_seconds_bucket",
        "chatgate_inter_chunk_seconds_bucket",
        "chatgate_tokens_total",
        "chatgate_cache_hits_total",
        "chatgate_cache_misses_total",
        "chatgate_rejected_total",
        "chatgate_upstream_errors_total",
        "chatgate_upstream_keys",
        "chatgate_queue_depth",
        "chatgate_in_flight_requests",
    ):
        assert needed in text, needed


def test_every_queried_metric_is_served(gateway_url: str, cached_gateway: str) -> None:
    # The session gateway runs without a cache; the cache tier families come from one with it.
    served = served_names(exercise(gateway_url)) | served_names(exercise(cached_gateway))
    used = {name for expr in queries(load()) for name in METRIC.findall(expr)}
    assert used, "the dashboard queries no chatgate metric"
    missing = sorted(used - served)
    assert not missing, f"dashboard queries metrics /metrics does not serve: {missing}"
