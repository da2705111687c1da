"""Cost end to end: the fake upstream answers in DeepSeek's, OpenAI's and GigaChat's usage shapes,
chatgate prices each answer on a fixed clock (peak and off-peak), says so in ``x-chatgate-cost``
(read by the official openai SDK), counts it in /metrics and the admin API, prices cache hits as
savings, and refuses a key whose spending budget has run out — exactly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from chatgate.app import Gateway, create_app
from chatgate.gateway.pricing import format_amount, to_nanos
from chatgate.storage import Database, KeyRepository, upgrade
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

ADMIN = "admin-key-for-cost-tests-0123456789"
PEAK = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
OFF_PEAK = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
# fake-model: 1 / 0.1 / 2 per million (off-peak), twice that 00:00-06:00 UTC
PRICE = {
    "input": 1.0,
    "cached_input": 0.1,
    "output": 2.0,
    "windows": [{"hours": "00:00-06:00", "input": 2.0, "cached_input": 0.2, "output": 4.0}],
}
DEEPSEEK = {
    "prompt_tokens": 1000,
    "completion_tokens": 100,
    "total_tokens": 1100,
    "prompt_cache_hit_tokens": 800,
    "prompt_cache_miss_tokens": 200,
}
OPENAI = {
    "prompt_tokens": 1000,
    "completion_tokens": 100,
    "total_tokens": 1100,
    "prompt_tokens_details": {"cached_tokens": 800},
}
# 200 × 1 + 800 × 0.1 + 100 × 2 = 480 millionths off-peak; twice that at peak
OFF_PEAK_COST, PEAK_COST = "0.00048", "0.00096"


class FixedClock:
    def __init__(self, when: datetime) -> None:
        self.when = when

    def __call__(self) -> datetime:
        return self.when


def config(fake: FakeUpstream, tmp: Path, **extra: Any) -> Any:
    return gateway_config(
        fake.base_url,
        database={"url": f"sqlite+aiosqlite:///{tmp / 'chatgate.db'}"},
        pricing={"prices": {"fake-model": PRICE}},
        # Priced by its upstream name (the shipped table's `GigaChat`), not its public one.
        models={"giga-lite": {"provider": "giga", "model": "GigaChat"}},
        auth={"admin_key": ADMIN, **extra.pop("auth", {})},
        **extra,
    )


def clock_of(app: Gateway) -> FixedClock:
    """The fixed clock injected into the running gateway's pricing."""
    pricing = app.runtime.require().path.pricing
    assert pricing is not None
    if not isinstance(pricing.clock, FixedClock):
        pricing.clock = FixedClock(OFF_PEAK)
    assert isinstance(pricing.clock, FixedClock)
    return pricing.clock


@pytest.fixture(scope="module")
def priced(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Gateway]]:
    tmp = tmp_path_factory.mktemp("cost")
    cache = {"enabled": True, "dir": str(tmp / "cache"), "ttl": 3600}
    app = create_app(config(fake_server, tmp, cache=cache))
    with ServerThread(app) as url:
        yield url, app


def unique() -> list[dict[str, str]]:
    return [{"role": "user", "content": f"question {uuid.uuid4()}"}]


def metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("shape", [DEEPSEEK, OPENAI], ids=["deepseek", "openai"])
def test_the_sdk_reads_the_cost_at_peak_and_off_peak(
    priced: tuple[str, Gateway], fake: FakeUpstream, shape: dict[str, Any]
) -> None:
    url, app = priced
    fake.configure(usage=shape)
    clock = clock_of(app)
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    costs = []
    for when in (OFF_PEAK, PEAK):
        clock.when = when
        raw = client.chat.completions.with_raw_response.create(
            model="fake-model",
            messages=unique(),  # type: ignore[arg-type]
        )
        assert raw.headers["x-chatgate-cache"] == "miss"
        assert raw.headers["x-chatgate-cost-currency"] == "USD"
        costs.append(raw.headers["x-chatgate-cost"])
        usage = raw.parse().usage
        assert usage is not None and usage.prompt_tokens == 1000  # the upstream's own usage
    assert costs == [OFF_PEAK_COST, PEAK_COST]
    clock.when = OFF_PEAK


def test_a_cache_hit_costs_nothing_and_is_counted_as_saved(
    priced: tuple[str, Gateway], fake: FakeUpstream
) -> None:
    url, app = priced
    fake.configure(usage=DEEPSEEK)
    clock_of(app).when = OFF_PEAK
    body = {"model": "fake-model", "messages": unique()}
    saved_before = metric(url, "chatgate_cost_saved_total", model="fake-model", currency="USD")
    first = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
    hit = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
    assert first.headers["x-chatgate-cost"] == OFF_PEAK_COST
    assert "x-chatgate-cost-saved" not in first.headers
    assert hit.headers["x-chatgate-cache"] == "hit"
    assert hit.headers["x-chatgate-cost"] == "0"
    assert hit.headers["x-chatgate-cost-saved"] == OFF_PEAK_COST
    saved = metric(url, "chatgate_cost_saved_total", model="fake-model", currency="USD")
    assert saved - saved_before == pytest.approx(0.00048)
    assert fake.count() == 1


def test_a_stream_is_priced_at_its_end_in_metrics_and_usage(
    priced: tuple[str, Gateway], fake: FakeUpstream
) -> None:
    url, app = priced
    fake.configure(usage=DEEPSEEK)
    clock_of(app).when = PEAK
    before = metric(url, "chatgate_cost_total", model="fake-model", currency="USD")
    body = {"model": "fake-model", "messages": unique(), "stream": True}
    resp = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
    assert resp.status_code == 200
    assert "x-chatgate-cost" not in resp.headers  # not known when the headers left
    after = metric(url, "chatgate_cost_total", model="fake-model", currency="USD")
    assert after - before == pytest.approx(0.00096)
    # The client asked for usage: DeepSeek's own fields reach it untouched.
    with_usage = {**body, "messages": unique(), "stream_options": {"include_usage": True}}
    text = httpx.post(url + "/v1/chat/completions", json=with_usage, timeout=30).text
    events = [orjson.loads(line[6:]) for line in text.splitlines() if line[6:7] == "{"]
    assert events[-1]["usage"]["prompt_cache_hit_tokens"] == 800
    clock_of(app).when = OFF_PEAK
    report = httpx.get(
        url + "/admin/usage", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
    ).json()
    rows = [r for r in report["data"] if r["model"] == "fake-model"]
    assert rows and all(r["currency"] == "USD" for r in rows)
    assert sum(r["cost"] for r in rows) >= 0.00096 * 2
    anonymous = next(t for t in report["totals"] if t["key_id"] is None)
    assert anonymous["spend"]["USD"] >= 0.00096 * 2
    assert anonymous["saved"].get("USD", 0) >= 0


def test_gigachat_precached_tokens_are_priced_free_in_roubles(
    priced: tuple[str, Gateway], fake: FakeUpstream
) -> None:
    url, _ = priced
    fake.configure(
        usage={
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "total_tokens": 1500,
            "precached_prompt_tokens": 4000,
        }
    )
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="giga-lite",
        messages=unique(),  # type: ignore[arg-type]
    )
    # Shipped GigaChat price: 200 RUB a million tokens, cached ones not billed.
    assert raw.headers["x-chatgate-cost"] == format_amount(1500 * 200_000)  # "0.3"
    assert raw.headers["x-chatgate-cost-currency"] == "RUB"


def test_an_unpriced_model_has_no_cost_header(
    priced: tuple[str, Gateway], fake: FakeUpstream
) -> None:
    url, _ = priced
    resp = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "fake-reasoner", "messages": unique()},
        timeout=30,
    )
    assert resp.status_code == 200
    assert "x-chatgate-cost" not in resp.headers


async def test_a_spending_budget_runs_out_exactly(fake: FakeUpstream, tmp_path: Path) -> None:
    fake.configure(usage=DEEPSEEK)
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'chatgate.db'}"
    await upgrade(db_url)
    async with Database(db_url) as db:
        keys = KeyRepository(db)
        # Three answers' worth: 3 admitted (spent 0, 1, 2 × 0.00048 before each), then none.
        capped, secret = await keys.create("capped", budget_cost_nanos=to_nanos("0.00144"))
    app = create_app(config(fake, tmp_path, auth={"require_keys": True}))
    with ServerThread(app) as url:
        clock_of(app).when = OFF_PEAK
        headers = {"Authorization": f"Bearer {secret}"}
        results = []
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for i in range(5):
                body: dict[str, Any] = {"model": "fake-model", "messages": unique()}
                if i == 1:  # a stream's cost counts too
                    body.update(stream=True, stream_options={"include_usage": True})
                results.append(await http.post("/v1/chat/completions", json=body, headers=headers))
            admin = {"Authorization": f"Bearer {ADMIN}"}
            listed = (await http.get("/admin/keys", headers=admin)).json()["data"]
    assert [r.status_code for r in results] == [200, 200, 200, 429, 429]
    err = results[3].json()["error"]
    assert err["code"] == "insufficient_quota"
    assert "0.00144 of 0.00144 USD" in err["message"], err
    assert fake.count() == 3
    record = next(k for k in listed if k["id"] == capped.id)
    assert record["budget_cost"] == pytest.approx(0.00144)
    assert record["cost_used"] == pytest.approx(0.00144)
    assert record["spend"] == {"USD": pytest.approx(0.00144)}
    async with Database(db_url) as db:
        stored = await KeyRepository(db).get(capped.id)
    assert stored is not None and stored.cost_used_nanos == to_nanos("0.00144")


@pytest.mark.parametrize("budget", [1e-10, 0, -1, 1e30])
def test_a_spending_budget_the_table_cannot_hold_is_refused_not_a_server_error(
    priced: tuple[str, Gateway], budget: float
) -> None:
    """1e-10 rounds to 0 nano-units: a 4xx naming the field (schemathesis found a 500)."""
    url, _ = priced
    httpx.get(url + "/api/me", timeout=10)  # the single-user mode's user, if there is one
    admin = {"Authorization": f"Bearer {ADMIN}"}
    body = {"name": "tiny", "budget_cost": budget}
    reply = httpx.post(url + "/admin/keys", json=body, headers=admin, timeout=10)
    assert reply.status_code in (400, 422), reply.text
    assert "budget_cost" in reply.text
    users = httpx.get(url + "/admin/users", headers=admin, timeout=10).json()["data"]
    if users:
        path = f"{url}/admin/users/{users[0]['id']}"
        reply = httpx.patch(path, json={"budget_cost": budget}, headers=admin, timeout=10)
        assert reply.status_code in (400, 422), reply.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages", {"max_tokens": 64, "messages": [{"role": "user", "content": "{q}"}]}),
        ("/api/chat", {"stream": False, "messages": [{"role": "user", "content": "{q}"}]}),
        ("/v1/responses", {"input": "{q}", "store": False}),
        ("/v1/completions", {"prompt": "{q}"}),
    ],
    ids=["anthropic", "ollama", "responses", "completions"],
)
def test_every_door_says_what_a_whole_answer_cost(
    priced: tuple[str, Gateway], fake: FakeUpstream, path: str, body: dict[str, Any]
) -> None:
    url, app = priced
    fake.configure(usage=DEEPSEEK)
    clock_of(app).when = OFF_PEAK
    question = f"question {uuid.uuid4()}"
    sent = orjson.loads(orjson.dumps(body).replace(b"{q}", question.encode()))
    resp = httpx.post(url + path, json={"model": "fake-model", **sent}, timeout=30)
    assert resp.status_code == 200, resp.text
    if path == "/v1/completions":  # the fake's completions have their own, plain usage
        assert resp.headers["x-chatgate-cost-currency"] == "USD"
        assert float(resp.headers["x-chatgate-cost"]) > 0
    else:
        assert resp.headers["x-chatgate-cost"] == OFF_PEAK_COST
