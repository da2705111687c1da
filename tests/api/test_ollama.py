"""The Ollama API through chatgate to the fake upstream, with the official ``ollama`` client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import orjson
import pytest

from tests.conftest import FAKE_CONTENT
from tests.fakes.upstream import FakeUpstream

MSG: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture(autouse=True)
def _leave_the_fake_clean(fake_server: FakeUpstream) -> Iterator[None]:
    yield
    fake_server.reset()  # no knob set here may reach the modules that run next


@pytest.fixture
def client(gateway_url: str) -> ollama.Client:
    return ollama.Client(host=gateway_url)


def test_list_show_version_ps(client: ollama.Client, gateway_url: str) -> None:
    names = [m.model for m in client.list().models]
    assert "fake-model" in names and "pirate" in names
    shown = client.show("fake-model")
    assert shown.modelinfo is not None and shown.modelinfo["general.architecture"] == "chatgate"
    assert shown.capabilities is not None and "completion" in shown.capabilities
    assert "fake-model" in [m.model for m in client.ps().models]
    assert httpx.get(gateway_url + "/api/version").json() == {"version": ollama_version()}
    with pytest.raises(ollama.ResponseError) as missing:
        client.show("no-such-model")
    assert missing.value.status_code == 404 and "not found" in missing.value.error


def ollama_version() -> str:
    from chatgate.protocol.ollama import VERSION

    return VERSION


def test_chat(client: ollama.Client, fake: FakeUpstream) -> None:
    resp = client.chat(model="fake-model", messages=MSG, stream=False, options={"temperature": 0.2})
    assert resp.message.role == "assistant" and resp.message.content == FAKE_CONTENT
    assert resp.done and resp.done_reason == "stop" and resp.model == "fake-model"
    assert resp.eval_count == 24 and resp.prompt_eval_count and resp.total_duration
    sent = fake.requests[-1]["body"]
    assert sent["messages"] == MSG and sent["temperature"] == 0.2


def test_chat_streams_by_default(gateway_url: str, fake: FakeUpstream) -> None:
    body = {"model": "fake-model", "messages": MSG}
    with httpx.stream("POST", gateway_url + "/api/chat", json=body) as resp:
        assert resp.headers["content-type"] == "application/x-ndjson"
        parts = [orjson.loads(line) for line in resp.iter_lines() if line]
    assert len(parts) == 25 and all(not p["done"] for p in parts[:-1]) and parts[-1]["done"]


def test_chat_stream(client: ollama.Client, fake: FakeUpstream) -> None:
    parts = list(client.chat(model="fake-model", messages=MSG, stream=True))
    assert "".join(p.message.content or "" for p in parts) == FAKE_CONTENT
    assert len(parts) == 25 and parts[-1].done and parts[-1].done_reason == "stop"
    assert parts[-1].eval_count == 24 and parts[-1].eval_duration is not None


def test_generate(client: ollama.Client, fake: FakeUpstream) -> None:
    resp = client.generate(model="fake-model", prompt="Why?", system="Be brief.", stream=False)
    assert resp.response == FAKE_CONTENT and resp.done
    assert fake.requests[-1]["body"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why?"},
    ]
    parts = list(client.generate(model="fake-model:latest", prompt="Why?", stream=True))
    assert "".join(p.response or "" for p in parts) == FAKE_CONTENT and parts[-1].done
    assert fake.requests[-1]["body"]["model"] == "fake-model"  # `:latest` found the model


def test_generate_without_a_prompt_loads(client: ollama.Client, fake: FakeUpstream) -> None:
    resp = client.generate(model="fake-model")
    assert resp.done and resp.done_reason == "load"
    assert fake.count() == 0  # no upstream call


def test_a_tool_round_trip_with_thinking(client: ollama.Client, fake: FakeUpstream) -> None:
    fake.configure(tool_call=True, tool_arguments='{"city": "Paris"}', reasoning="Use the tool.")
    parts = list(
        client.chat(model="fake-model", messages=MSG, tools=TOOLS, think=True, stream=True)
    )
    thinking = "".join(p.message.thinking or "" for p in parts)
    calls = [c for p in parts for c in p.message.tool_calls or ()]
    assert thinking == "Use the tool."
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert fake.requests[-1]["body"]["tools"] == TOOLS

    fake.configure(tool_call=False, reasoning=None)
    turns = [
        *MSG,
        {"role": "assistant", "content": "", "tool_calls": [c.model_dump() for c in calls]},
        {"role": "tool", "tool_name": "get_weather", "content": "sunny"},
    ]
    resp = client.chat(model="fake-model", messages=turns, tools=TOOLS, stream=False)
    assert resp.message.content == FAKE_CONTENT
    sent = fake.requests[-1]["body"]["messages"]
    assert sent[2]["tool_call_id"] == sent[1]["tool_calls"][0]["id"]
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'


def test_think_false_drops_the_reasoning(client: ollama.Client, fake: FakeUpstream) -> None:
    fake.configure(reasoning="Hidden.")
    shown = client.chat(model="fake-model", messages=MSG, stream=False)
    assert shown.message.thinking == "Hidden."
    hidden = client.chat(model="fake-model", messages=MSG, stream=False, think=False)
    assert hidden.message.thinking is None and hidden.message.content == FAKE_CONTENT


def test_format_reaches_the_upstream(client: ollama.Client, fake: FakeUpstream) -> None:
    client.generate(model="fake-model", prompt="JSON please", format="json", stream=False)
    assert fake.requests[-1]["body"]["response_format"] == {"type": "json_object"}


def test_images(client: ollama.Client, fake: FakeUpstream) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    client.chat(
        model="fake-model",
        messages=[{"role": "user", "content": "What is this?", "images": [png]}],
        stream=False,
    )
    parts = fake.requests[-1]["body"]["messages"][0]["content"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")


def test_errors_in_ollama_shape(
    client: ollama.Client, gateway_url: str, fake: FakeUpstream
) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model="no-such-model", messages=MSG, stream=False)
    assert (
        missing.value.status_code == 404
        and missing.value.error == 'model "no-such-model" not found'
    )
    resp = httpx.post(gateway_url + "/api/chat", content=b"{nope")
    assert resp.status_code == 400 and set(resp.json()) == {"error"}
    fake.configure(status=500)
    with pytest.raises(ollama.ResponseError) as failed:
        client.generate(model="fake-model", prompt="x", stream=False)
    assert failed.value.status_code == 502


def test_an_error_mid_stream_is_an_error_line(client: ollama.Client, fake: FakeUpstream) -> None:
    fake.configure(error_event_after=5)
    with pytest.raises(ollama.ResponseError) as caught:
        for _ in client.chat(model="fake-model", messages=MSG, stream=True):
            pass
    assert "fake error event" in caught.value.error


def test_head_root_answers(gateway_url: str) -> None:
    assert httpx.head(gateway_url + "/").status_code == 200  # Ollama's clients probe it


def test_counted_under_its_own_api_label(client: ollama.Client, gateway_url: str) -> None:
    client.chat(model="fake-model", messages=MSG, stream=False)
    text = httpx.get(gateway_url + "/metrics").text
    assert 'chatgate_requests_total{api="ollama",model="fake-model",status="200"' in text


def test_documented_at_docs(gateway_url: str) -> None:
    paths = httpx.get(gateway_url + "/openapi.json").json()["paths"]
    for path in ("/api/chat", "/api/generate", "/api/show"):
        assert "post" in paths[path], path
    for path in ("/api/tags", "/api/version", "/api/ps"):
        assert "get" in paths[path], path
