"""/metrics changes as requests are made; labels stay bounded; no secrets in it."""

from __future__ import annotations

import re

import httpx
import openai

from tests.fakes.upstream import FakeUpstream

MSG = [{"role": "user", "content": "count me"}]
LINE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")


def scrape(url: str) -> dict[str, float]:
    resp = httpx.get(url + "/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    values: dict[str, float] = {}
    for line in resp.text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = LINE.match(line)
        assert match, f"not Prometheus text format: {line!r}"
        values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


def metric(values: dict[str, float], name: str, **labels: str) -> float:
    want = {f'{k}="{v}"' for k, v in labels.items()}
    total = 0.0
    for key, value in values.items():
        base, _, tags = key.partition("{")
        if base == name and want <= set(tags.rstrip("}").split(",")):
            total += value
    return total


def test_metrics_move_with_requests(
    gateway_url: str, client: openai.OpenAI, fake: FakeUpstream
) -> None:
    before = scrape(gateway_url)
    client.chat.completions.create(model="fake-model", messages=MSG)  # type: ignore[arg-type]
    list(
        client.chat.completions.create(
            model="fake-model",
            messages=MSG,
            stream=True,  # type: ignore[arg-type]
        )
    )
    httpx.post(gateway_url + "/v1/chat/completions", json={"model": "nope", "messages": MSG})
    after = scrape(gateway_url)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("chatgate_requests_total", model="fake-model", status="200") == 2
    assert delta("chatgate_requests_total", model="other", status="404") == 1
    assert delta("chatgate_time_to_first_token_seconds_count", model="fake-model") == 1
    assert delta("chatgate_tokens_total", model="fake-model", kind="completion") == 48
    assert delta("chatgate_request_duration_seconds_count", model="fake-model") == 2
    assert after["chatgate_in_flight_requests"] == 0


def test_upstream_errors_and_key_states(gateway_url: str, fake: FakeUpstream) -> None:
    def errors() -> float:
        values = scrape(gateway_url)
        return metric(values, "chatgate_upstream_errors_total", provider="fake", status="503")

    before = errors()  # the gateway is shared with other tests
    fake.configure(status=503)
    httpx.post(gateway_url + "/v1/chat/completions", json={"model": "fake-model", "messages": MSG})
    # Counted once: a 503 without Retry-After is not sent again (it may be working on it).
    assert errors() - before == 1
    values = scrape(gateway_url)
    assert metric(values, "chatgate_upstream_keys", provider="fake", state="ok") == 1


def test_no_secrets_or_user_text(gateway_url: str, fake: FakeUpstream) -> None:
    httpx.post(
        gateway_url + "/v1/chat/completions",
        json={
            "model": "made-up-" + "x" * 40,
            "messages": [{"role": "user", "content": "PIN 4242"}],
        },
    )
    text = httpx.get(gateway_url + "/metrics").text
    assert "sk-fake-upstream-key" not in text
    assert "PIN 4242" not in text
    assert "made-up-" not in text
