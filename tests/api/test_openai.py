"""/v1 through chatgate to the fake upstream, with the official openai SDK as the client."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import openai
import orjson
import pytest

from chatgate.app import create_app
from tests.conftest import FAKE_CONTENT, gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

MSG = [{"role": "user", "content": "hello"}]


def test_sync_non_stream(client: openai.OpenAI, fake: FakeUpstream) -> None:
    resp = client.chat.completions.create(model="fake-model", messages=MSG)  # type: ignore[arg-type]
    assert resp.choices[0].message.content == FAKE_CONTENT
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.completion_tokens > 0
    assert fake.count() == 1


def test_sync_stream_with_usage(client: openai.OpenAI, fake: FakeUpstream) -> None:
    stream = client.chat.completions.create(
        model="fake-model",
        messages=MSG,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == FAKE_CONTENT
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


async def test_async_client_both_modes(aclient: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    resp = await aclient.chat.completions.create(model="fake-model", messages=MSG)  # type: ignore[arg-type]
    assert resp.choices[0].message.content == FAKE_CONTENT
    stream = await aclient.chat.completions.create(
        model="fake-model",
        messages=MSG,  # type: ignore[arg-type]
        stream=True,
    )
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts) == FAKE_CONTENT


async def test_many_concurrent_streams(aclient: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    async def one() -> str:
        stream = await aclient.chat.completions.create(
            model="fake-model",
            messages=MSG,  # type: ignore[arg-type]
            stream=True,
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    results = await asyncio.gather(*(one() for _ in range(50)))
    assert results == [FAKE_CONTENT] * 50


def test_every_openai_field_passes_through(client: openai.OpenAI, fake: FakeUpstream) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    client.chat.completions.create(
        model="fake-model",
        messages=MSG,  # type: ignore[arg-type]
        tools=tools,  # type: ignore[arg-type]
        tool_choice="auto",
        response_format={"type": "json_object"},
        stop=["\n\n", "END"],
        n=2,
        logprobs=True,
        top_logprobs=3,
        temperature=0.25,
        seed=7,
        user="alice",
        extra_body={"custom_extra": {"nested": [1, 2, 3]}, "top_k": 40},
    )
    body = fake.requests[-1]["body"]
    assert body["tools"] == tools
    assert body["tool_choice"] == "auto"
    assert body["response_format"] == {"type": "json_object"}
    assert body["stop"] == ["\n\n", "END"]
    assert (body["n"], body["logprobs"], body["top_logprobs"]) == (2, True, 3)
    assert (body["temperature"], body["seed"], body["user"]) == (0.25, 7, "alice")
    assert body["custom_extra"] == {"nested": [1, 2, 3]}
    assert body["top_k"] == 40
    assert body["model"] == "fake-model"


def test_stream_options_pass_through(client: openai.OpenAI, fake: FakeUpstream) -> None:
    list(
        client.chat.completions.create(
            model="fake-model",
            messages=MSG,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    body = fake.requests[-1]["body"]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_upstream_key_is_sent_but_never_returned(client: openai.OpenAI, fake: FakeUpstream) -> None:
    client.chat.completions.create(model="fake-model", messages=MSG)  # type: ignore[arg-type]
    assert fake.requests[-1]["headers"]["Authorization"] == "Bearer sk-fake-upstream-key-0123456789"
    fake.configure(status=401)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="refused/fake-model", messages=MSG)  # type: ignore[arg-type]
    # The upstream's 401 is about *our* key: the client sees a gateway error, not its own 401.
    assert info.value.status_code == 502
    assert "sk-refused-key" not in info.value.response.text
    assert fake.count() == 2  # a refused key is not retried: it is disabled at once


def test_models_listing(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "fake-model" in ids
    assert "slow-model" in ids
    assert client.models.retrieve("fake-model").owned_by == "fake"


def test_models_carry_a_known_context_window(fake: FakeUpstream) -> None:
    models = {"tiny": {"provider": "fake", "model": "fake-model", "context_window": 1000}}
    with ServerThread(create_app(gateway_config(fake.base_url, models=models))) as url:
        listed = {m["id"]: m for m in httpx.get(url + "/v1/models").json()["data"]}
        one = httpx.get(url + "/v1/models/tiny").json()
    assert listed["tiny"]["context_window"] == 1000 and one["context_window"] == 1000
    assert "context_window" not in listed["fake-model"]  # unknown: left out, not guessed


def test_provider_prefix_always_routes(client: openai.OpenAI, fake: FakeUpstream) -> None:
    resp = client.chat.completions.create(model="fake/fake-model", messages=MSG)  # type: ignore[arg-type]
    assert resp.choices[0].message.content == FAKE_CONTENT
    assert fake.requests[-1]["body"]["model"] == "fake-model"


def test_model_system_prompt_is_injected(client: openai.OpenAI, fake: FakeUpstream) -> None:
    client.chat.completions.create(model="pirate", messages=MSG)  # type: ignore[arg-type]
    sent = fake.requests[-1]["body"]["messages"]
    assert sent[0] == {"role": "system", "content": "Talk like a pirate."}
    assert sent[1:] == MSG


def test_fallback_before_first_byte(client: openai.OpenAI, fake: FakeUpstream) -> None:
    resp = client.chat.completions.create(model="with-fallback", messages=MSG)  # type: ignore[arg-type]
    assert resp.choices[0].message.content == FAKE_CONTENT
    stream = client.chat.completions.create(
        model="with-fallback",
        messages=MSG,  # type: ignore[arg-type]
        stream=True,
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == FAKE_CONTENT


# --- errors: OpenAI shape, right status, and the server stays up -------------------------------


def _post(gateway_url: str, content: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        gateway_url + "/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )


def _assert_error_shape(resp: httpx.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    assert resp.headers["x-request-id"]
    return err  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "fake-model"}', "messages"),
        (b'{"model": "fake-model", "messages": "hi"}', "messages"),
        (b'{"model": "fake-model", "messages": [{"role": "wizard", "content": "x"}]}', None),
        (b'{"model": "fake-model", "messages": [{"role": {}, "content": null}]}', None),
        (b'{"model": "fake-model", "messages": [{"role": ["user"]}]}', None),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": 5}]}', None),
        (b'{"model": "fake-model", "messages": [{"role": "user"}], "temperature": "hot"}', None),
        (b'{"model": "fake-model", "messages": [{"role": "user"}], "stream": "yes"}', "stream"),
        (b'{"model": "fake-model", "messages": [{"role": "user"}], "max_tokens": 1.5}', None),
        (b'{"model": "fake-model", "messages": [{"role": "user"}], "n": 0}', "n"),
    ],
)
def test_bad_requests_are_400(
    gateway_url: str, fake: FakeUpstream, body: bytes, param: str | None
) -> None:
    err = _assert_error_shape(_post(gateway_url, body), 400)
    assert err["type"] == "invalid_request_error"
    if param:
        assert err["param"] == param
    assert fake.count() == 0  # nothing reached the upstream


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=MSG)  # type: ignore[arg-type]
    assert info.value.code == "model_not_found"


def test_body_too_large_is_413(gateway_url: str) -> None:
    big = (
        b'{"model": "fake-model", "messages": [{"role": "user", "content": "'
        + b"x" * (9 * 1024 * 1024)
        + b'"}]}'
    )
    _assert_error_shape(_post(gateway_url, big), 413)


@pytest.mark.parametrize(("upstream", "expected"), [(500, 502), (503, 502), (400, 400)])
def test_upstream_status_mapping(
    gateway_url: str, fake: FakeUpstream, upstream: int, expected: int
) -> None:
    fake.configure(status=upstream)
    body = orjson.dumps({"model": "fake-model", "messages": MSG})
    _assert_error_shape(_post(gateway_url, body), expected)
    stream_body = orjson.dumps({"model": "fake-model", "messages": MSG, "stream": True})
    _assert_error_shape(_post(gateway_url, stream_body), expected)


def test_upstream_429_keeps_retry_after(gateway_url: str, fake: FakeUpstream) -> None:
    fake.configure(status=429, retry_after=7)
    body = orjson.dumps({"model": "limited/fake-model", "messages": MSG})
    resp = _post(gateway_url, body)
    err = _assert_error_shape(resp, 429)
    assert err["type"] == "rate_limit_error"
    assert resp.headers["retry-after"] == "7"
    # the key is cooling for those 7 s: the next request is refused without asking upstream
    again = _post(gateway_url, body)
    _assert_error_shape(again, 429)
    assert 6 <= int(again.headers["retry-after"]) <= 7
    assert fake.count() == 1


def test_upstream_timeout_is_504(gateway_url: str, fake: FakeUpstream) -> None:
    fake.configure(latency_ms=3000)
    resp = _post(gateway_url, orjson.dumps({"model": "slow-model", "messages": MSG}))
    _assert_error_shape(resp, 504)


def test_unreachable_upstream_is_502(gateway_url: str) -> None:
    resp = _post(gateway_url, orjson.dumps({"model": "dead-model", "messages": MSG}))
    _assert_error_shape(resp, 502)


def _sse_events(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize("knob", ["reset_after", "error_event_after"])
def test_failure_mid_stream_becomes_error_event(
    gateway_url: str, fake: FakeUpstream, knob: str
) -> None:
    fake.configure(**{knob: 5})
    body = orjson.dumps({"model": "fake-model", "messages": MSG, "stream": True})
    resp = _post(gateway_url, body)
    assert resp.status_code == 200
    events = _sse_events(resp.text)
    assert "[DONE]" not in events  # never passed off as a whole answer
    last = orjson.loads(events[-1])
    assert set(last["error"]) == {"message", "type", "param", "code"}
    assert len(events) >= 2  # the chunks before the failure did arrive


def test_failure_mid_stream_raises_in_sdk(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(reset_after=3)
    stream = client.chat.completions.create(
        model="fake-model",
        messages=MSG,  # type: ignore[arg-type]
        stream=True,
    )
    with pytest.raises(openai.APIError):
        list(stream)


def _wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def _raw_request(gateway_url: str, body: bytes) -> socket.socket:
    host, port = gateway_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body)
    return sock


def test_client_disconnect_cancels_upstream_non_stream(
    gateway_url: str, fake: FakeUpstream
) -> None:
    fake.configure(hang=True)
    sock = _raw_request(gateway_url, orjson.dumps({"model": "fake-model", "messages": MSG}))
    assert _wait_for(lambda: fake.in_flight == 1)
    sock.close()
    assert _wait_for(lambda: fake.cancelled == 1), "upstream call outlived its client"
    assert _wait_for(lambda: fake.in_flight == 0)


def test_client_disconnect_cancels_upstream_stream(gateway_url: str, fake: FakeUpstream) -> None:
    fake.configure(chunks=200, chunk_delay_ms=50)
    body = orjson.dumps({"model": "fake-model", "messages": MSG, "stream": True})
    sock = _raw_request(gateway_url, body)
    assert b"200 OK" in sock.recv(4096)
    sock.close()
    assert _wait_for(lambda: fake.cancelled == 1), "upstream stream outlived its client"


def test_server_still_up_after_errors(gateway_url: str) -> None:
    assert httpx.get(gateway_url + "/health").json() == {"status": "ok"}
    ready = httpx.get(gateway_url + "/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_request_id_is_echoed(gateway_url: str) -> None:
    body = orjson.dumps({"model": "fake-model", "messages": MSG})
    resp = _post(gateway_url, body, **{"x-request-id": "req-123"})
    assert resp.headers["x-request-id"] == "req-123"


def test_docs_and_openapi(gateway_url: str) -> None:
    assert httpx.get(gateway_url + "/docs").status_code == 200
    schema = httpx.get(gateway_url + "/openapi.json").json()
    assert "/v1/chat/completions" in schema["paths"]
    assert "/chatgpt/" in schema["paths"]


def test_unknown_path_is_openai_shaped_404(gateway_url: str) -> None:
    resp = httpx.get(gateway_url + "/v1/nope")
    assert resp.status_code == 404
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
