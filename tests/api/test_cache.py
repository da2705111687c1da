"""The response cache end to end: fake upstream → chatgate (cache on) → clients."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from chatgate.app import create_app
from tests.conftest import FAKE_CONTENT, gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def cached_config(fake: FakeUpstream, cache_dir: Path) -> Any:
    return gateway_config(
        fake.base_url, cache={"enabled": True, "dir": str(cache_dir), "ttl": 3600}
    )


@pytest.fixture(scope="module")
def cached_url(fake_server: FakeUpstream, cache_dir: Path) -> Iterator[str]:
    with ServerThread(create_app(cached_config(fake_server, cache_dir))) as url:
        yield url


def unique_messages() -> list[dict[str, str]]:
    """A question no other test asked, so each test starts with a cold cache."""
    return [{"role": "user", "content": f"question {uuid.uuid4()}"}]


def post(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def sse_chunks(text: str) -> list[dict[str, Any]]:
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [orjson.loads(e) for e in events[:-1]]


def without_ids(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k not in ("id", "created")} for c in chunks]


def test_miss_then_hit_non_stream(cached_url: str, fake: FakeUpstream) -> None:
    body = {"model": "fake-model", "messages": unique_messages()}
    first = post(cached_url, body)
    second = post(cached_url, body)
    assert first.headers["x-chatgate-cache"] == "miss"
    assert second.headers["x-chatgate-cache"] == "hit"
    assert second.json()["choices"] == first.json()["choices"]
    assert second.json()["id"] != first.json()["id"]  # a replay is a new response
    assert fake.count() == 1


def test_stream_replayed_chunk_for_chunk(cached_url: str, fake: FakeUpstream) -> None:
    fake.configure(reasoning="Thinking it over.", chunks=5)
    body = {
        "model": "fake-model",
        "messages": unique_messages(),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    first = post(cached_url, body, **{"X-Chatgate-Reasoning": "keep"})
    second = post(cached_url, body, **{"X-Chatgate-Reasoning": "keep"})
    assert (first.headers["x-chatgate-cache"], second.headers["x-chatgate-cache"]) == (
        "miss",
        "hit",
    )
    assert without_ids(sse_chunks(second.text)) == without_ids(sse_chunks(first.text))
    assert fake.count() == 1


def test_tool_call_stream_serves_non_stream_and_back(cached_url: str, fake: FakeUpstream) -> None:
    fake.configure(tool_call=True)
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {}}}]
    base = {"model": "fake-model", "messages": unique_messages(), "tools": tools}
    streamed = sse_chunks(post(cached_url, {**base, "stream": True}).text)
    whole = post(cached_url, base)
    assert whole.headers["x-chatgate-cache"] == "hit"
    message = whole.json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "get_time"
    args = "".join(
        d["function"].get("arguments", "")
        for c in streamed
        for ch in c["choices"]
        for d in ch["delta"].get("tool_calls") or ()
    )
    assert message["tool_calls"][0]["function"]["arguments"] == args
    assert whole.json()["choices"][0]["finish_reason"] == "tool_calls"
    assert fake.count() == 1

    fake.configure(tool_call=False)
    other = {"model": "fake-model", "messages": unique_messages()}
    post(cached_url, other)  # cached whole…
    replay = post(cached_url, {**other, "stream": True})  # …served as a stream
    assert replay.headers["x-chatgate-cache"] == "hit"
    text = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in sse_chunks(replay.text)
        if c["choices"]
    )
    assert text == FAKE_CONTENT


def test_every_reasoning_mode_from_one_entry(cached_url: str, fake: FakeUpstream) -> None:
    fake.configure(content="<think>why</think>\n\nBecause.", chunks=4)
    body = {"model": "fake-model", "messages": unique_messages()}
    separate = post(cached_url, body).json()["choices"][0]["message"]
    strip = post(cached_url, body, **{"X-Chatgate-Reasoning": "strip"}).json()
    keep = post(cached_url, body, **{"X-Chatgate-Reasoning": "keep"}).json()
    assert (separate["content"], separate["reasoning_content"]) == ("Because.", "why")
    assert strip["choices"][0]["message"]["content"] == "Because."
    assert keep["choices"][0]["message"]["content"] == "<think>why</think>\n\nBecause."
    assert fake.count() == 1


def test_key_ignores_order_stream_and_user(cached_url: str, fake: FakeUpstream) -> None:
    msgs = unique_messages()
    post(cached_url, {"model": "fake-model", "messages": msgs, "temperature": 1, "user": "a"})
    raw = orjson.dumps({"temperature": 1.0, "user": "b", "messages": msgs, "model": "fake-model"})
    resp = httpx.post(
        cached_url + "/v1/chat/completions",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert resp.headers["x-chatgate-cache"] == "hit"
    changed = post(cached_url, {"model": "fake-model", "messages": msgs, "temperature": 0.5})
    assert changed.headers["x-chatgate-cache"] == "miss"
    assert fake.count() == 2


def test_whole_history_is_in_the_key(cached_url: str, fake: FakeUpstream) -> None:
    last = {"role": "user", "content": f"and then? {uuid.uuid4()}"}
    one = [{"role": "user", "content": "story A"}, {"role": "assistant", "content": "A"}, last]
    two = [{"role": "user", "content": "story B"}, {"role": "assistant", "content": "B"}, last]
    post(cached_url, {"model": "fake-model", "messages": one})
    assert (
        post(cached_url, {"model": "fake-model", "messages": two}).headers["x-chatgate-cache"]
        == "miss"
    )


def test_cache_control_headers(cached_url: str, fake: FakeUpstream) -> None:
    body = {"model": "fake-model", "messages": unique_messages()}
    assert (
        post(cached_url, body, **{"Cache-Control": "no-store"}).headers["x-chatgate-cache"]
        == "miss"
    )
    assert post(cached_url, body).headers["x-chatgate-cache"] == "miss"  # was not stored
    assert post(cached_url, body).headers["x-chatgate-cache"] == "hit"
    bypass = post(cached_url, body, **{"Cache-Control": "no-cache"})
    assert bypass.headers["x-chatgate-cache"] == "bypass"
    assert fake.count() == 3


def test_ttl_header_expires_entry(cached_url: str, fake: FakeUpstream) -> None:
    body = {"model": "fake-model", "messages": unique_messages()}
    post(cached_url, body, **{"X-Chatgate-Cache-TTL": "0.5"})
    assert post(cached_url, body).headers["x-chatgate-cache"] == "hit"
    time.sleep(0.7)
    assert post(cached_url, body).headers["x-chatgate-cache"] == "miss"
    bad = post(cached_url, body, **{"X-Chatgate-Cache-TTL": "soon"})
    assert bad.status_code == 400


@pytest.mark.parametrize("knob", ["reset_after", "error_event_after"])
def test_failed_stream_is_not_stored(cached_url: str, fake: FakeUpstream, knob: str) -> None:
    fake.configure(**{knob: 4})
    body = {"model": "fake-model", "messages": unique_messages(), "stream": True}
    assert "[DONE]" not in post(cached_url, body).text
    fake.configure(**{knob: None})
    again = post(cached_url, body)
    assert again.headers["x-chatgate-cache"] == "miss"
    assert again.text.endswith("data: [DONE]\n\n")


def test_upstream_error_is_not_stored(cached_url: str, fake: FakeUpstream) -> None:
    fake.configure(status=500)
    body = {"model": "fake-model", "messages": unique_messages()}
    assert post(cached_url, body).status_code == 502
    fake.configure(status=None)
    assert post(cached_url, body).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
async def test_single_flight_100_identical_requests(
    cached_url: str, fake: FakeUpstream, stream: bool
) -> None:
    fake.configure(latency_ms=300, chunk_delay_ms=5)
    client = openai.AsyncOpenAI(base_url=cached_url + "/v1", api_key="x", max_retries=0)
    msgs = unique_messages()

    async def one() -> str:
        if not stream:
            resp = await client.chat.completions.create(model="fake-model", messages=msgs)  # type: ignore[arg-type]
            return resp.choices[0].message.content or ""
        parts = []
        async for chunk in await client.chat.completions.create(
            model="fake-model",
            messages=msgs,
            stream=True,  # type: ignore[arg-type]
        ):
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
        return "".join(parts)

    results = await asyncio.gather(*(one() for _ in range(100)))
    assert results == [FAKE_CONTENT] * 100
    assert fake.count() == 1
    await client.close()


async def test_single_flight_late_joiner_gets_everything(
    cached_url: str, fake: FakeUpstream
) -> None:
    fake.configure(chunks=20, chunk_delay_ms=30)
    body = {"model": "fake-model", "messages": unique_messages(), "stream": True}
    async with httpx.AsyncClient(timeout=30) as http:
        first = asyncio.create_task(http.post(cached_url + "/v1/chat/completions", json=body))
        await asyncio.sleep(0.25)  # several chunks have gone out by now
        late = await http.post(cached_url + "/v1/chat/completions", json=body)
        early = await first
    content = lambda r: "".join(  # noqa: E731
        c["choices"][0]["delta"].get("content") or "" for c in sse_chunks(r.text) if c["choices"]
    )
    assert content(late) == content(early) == "".join(f"tok{i} " for i in range(20))
    assert fake.count() == 1


async def test_single_flight_survives_one_waiter_leaving(
    cached_url: str, fake: FakeUpstream
) -> None:
    fake.configure(chunks=20, chunk_delay_ms=30)
    body = {"model": "fake-model", "messages": unique_messages(), "stream": True}
    async with httpx.AsyncClient(timeout=30) as http:

        async def leave_early() -> None:
            async with http.stream("POST", cached_url + "/v1/chat/completions", json=body) as r:
                async for _ in r.aiter_bytes():
                    return  # the first bytes, then gone

        stayer = asyncio.create_task(http.post(cached_url + "/v1/chat/completions", json=body))
        await asyncio.sleep(0.05)
        await leave_early()
        resp = await stayer
    assert resp.text.endswith("data: [DONE]\n\n")
    assert fake.count() == 1
    assert fake.cancelled == 0


def test_upstream_cancelled_when_every_waiter_left(cached_url: str, fake: FakeUpstream) -> None:
    fake.configure(hang=True)
    body = {"model": "fake-model", "messages": unique_messages()}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(cached_url + "/v1/chat/completions", json=body, timeout=0.5)
    deadline = time.monotonic() + 5
    while not fake.cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.cancelled == 1


def test_restart_keeps_hits(fake: FakeUpstream, tmp_path: Path) -> None:
    body = {"model": "fake-model", "messages": unique_messages()}
    config = cached_config(fake, tmp_path)
    with ServerThread(create_app(config)) as url:
        assert post(url, body).headers["x-chatgate-cache"] == "miss"
    with ServerThread(create_app(config)) as url:
        again = post(url, body)
    assert again.headers["x-chatgate-cache"] == "hit"
    assert again.json()["choices"][0]["message"]["content"] == FAKE_CONTENT
    assert fake.count() == 1


def test_admin_cache_stats_and_flush(cached_url: str, fake: FakeUpstream) -> None:
    body = {"model": "fake-model", "messages": unique_messages()}
    post(cached_url, body)
    post(cached_url, body)
    stats = httpx.get(cached_url + "/admin/cache").json()
    assert stats["enabled"] is True
    tiers = {t["name"]: t for t in stats["tiers"]}
    assert tiers["memory"]["entries"] >= 1 and tiers["memory"]["hits"] >= 1
    # Single-user mode: no admin key needed, but a write follows /api's CSRF rules.
    flush = httpx.delete(cached_url + "/admin/cache", headers={"X-Requested-With": "tests"})
    removed = flush.json()["removed"]
    assert removed >= 1
    assert post(cached_url, body).headers["x-chatgate-cache"] == "miss"
