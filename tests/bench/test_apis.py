"""One way to measure the doors: ``bench/run.py --apis`` (``bench/apis.py``) has every door,
with the wrk script's check for each, the modes it has, and a direct run of the upstream
endpoint it calls to compare throughput with (``bench/report.py``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pytest import approx

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))  # the harness's modules import each other by bare name

import apis  # noqa: E402
import report  # noqa: E402
from wrk import WrkResult  # noqa: E402

DOORS = {"chat", "responses", "anthropic", "ollama", "completions", "embeddings"}


def test_every_door_is_an_api_choice_with_its_own_check() -> None:
    assert set(apis.APIS) >= DOORS
    script = (BENCH / "lua" / "chat.lua").read_text()
    for api in apis.APIS.values():
        assert api.check == "chat" or f'check == "{api.check}"' in script, api.name
    assert not (BENCH / "doors.py").exists(), "a second way to bench the doors"


def test_bodies_for_the_modes_a_door_has(tmp_path: Path) -> None:
    modes = ["non-stream", "stream"]
    embeddings = apis.write_bodies(tmp_path, apis.APIS["embeddings"], "m", "hi", modes)
    assert set(embeddings) == {"non-stream"}
    body = json.loads(embeddings["non-stream"].read_text())
    assert body == {"model": "m", "input": "hi (non-stream)"}
    ollama = apis.write_bodies(tmp_path, apis.APIS["ollama"], "m", "hi", modes)
    assert json.loads(ollama["non-stream"].read_text())["stream"] is False  # Ollama's default
    assert json.loads(ollama["stream"].read_text())["stream"] is True
    messages = apis.write_bodies(tmp_path, apis.APIS["anthropic"], "m", "hi", modes)
    assert json.loads(messages["stream"].read_text())["max_tokens"] > 0


def _run(target: str, rps: float, cpu_us: float | None = None) -> report.Run:
    wrk = WrkResult(int(rps), 1.0, 0, 0, 0, 0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.1, "")
    gw = cpu_us is not None
    return report.Run(
        target, "non-stream", 1, 1, wrk, 100.0 if gw else None, 50.0 if gw else None,
        10.0, 0.0, 0.0, cpu_us,
    )  # fmt: skip


def test_a_door_is_compared_with_the_upstream_endpoint_it_calls() -> None:
    runs = [
        _run("direct", 1000),
        _run("direct@embeddings", 2000),
        _run("chatgate", 400, 500.0),
        _run("chatgate@embeddings", 500, 550.0),
        _run("chatgate@anthropic", 380, 520.0),
    ]
    ratios = {(r.gateway, r.versus): r.throughput for r in report.Report({}, {}, runs).ratios()}
    assert set(ratios) == {
        ("chatgate", "direct"),
        ("chatgate@embeddings", "direct@embeddings"),
        ("chatgate@anthropic", "direct"),
    }
    embeddings = ratios["chatgate@embeddings", "direct@embeddings"]
    assert embeddings is not None and embeddings.median == 0.25
    costs = {c.target: c.ratio.median for c in report.Report({}, {}, runs).api_costs()}
    assert costs == {"chatgate@embeddings": approx(1.1), "chatgate@anthropic": approx(1.04)}
