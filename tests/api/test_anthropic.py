"""``/v1/messages`` through chatgate to the fake upstream, with the official anthropic SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from chatgate.app import create_app
from tests.conftest import FAKE_CONTENT, gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

MSG: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


@pytest.fixture(scope="module")
def url(fake_server: FakeUpstream) -> Iterator[str]:
    config = gateway_config(
        fake_server.base_url, anthropic={"model_aliases": {"claude-*": "fake-model"}}
    )
    with ServerThread(create_app(config)) as base:
        yield base


@pytest.fixture(autouse=True)
def _leave_the_fake_clean(fake_server: FakeUpstream) -> Iterator[None]:
    yield
    fake_server.reset()  # no knob set here may reach the modules that run next


@pytest.fixture
def client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)


def test_create(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    message = client.messages.create(
        model="fake-model", max_tokens=100, system="Be brief.", messages=MSG
    )
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == FAKE_CONTENT  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.model == "fake-model"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens == 24
    sent = fake.requests[-1]["body"]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, *MSG]
    assert sent["max_tokens"] == 100 and sent["model"] == "fake-model"


def test_stream(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    with client.messages.stream(model="fake-model", max_tokens=100, messages=MSG) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) == 24 and "".join(pieces) == FAKE_CONTENT
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 24 and final.usage.input_tokens > 0


def test_the_event_sequence_on_the_wire(url: str, fake: FakeUpstream) -> None:
    fake.configure(chunks=2)
    body = {"model": "fake-model", "max_tokens": 10, "messages": MSG, "stream": True}
    with httpx.stream("POST", url + "/v1/messages", json=body) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        names = [line[7:] for line in resp.iter_lines() if line.startswith("event: ")]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_a_tool_round_trip(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    fake.configure(tool_call=True, tool_arguments='{"city": "Paris"}')
    first = client.messages.create(model="fake-model", max_tokens=100, messages=MSG, tools=TOOLS)
    assert first.stop_reason == "tool_use"
    [call] = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "get_weather" and call.input == {"city": "Paris"}
    sent = fake.requests[-1]["body"]
    assert sent["tools"][0]["function"]["parameters"] == TOOLS[0]["input_schema"]

    fake.configure(tool_call=False)
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 °C"}
    turns = [
        *MSG,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [result]},
    ]
    second = client.messages.create(model="fake-model", max_tokens=100, messages=turns, tools=TOOLS)
    assert second.stop_reason == "end_turn" and second.content[0].text == FAKE_CONTENT  # type: ignore[union-attr]
    history = fake.requests[-1]["body"]["messages"]
    assert history[1]["tool_calls"][0]["id"] == call.id
    assert history[2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 °C"}


def test_a_streamed_tool_round_trip(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    fake.configure(tool_call=True, tool_arguments='{"city": "Paris"}', reasoning="I should look.")
    with client.messages.stream(
        model="fake-model",
        max_tokens=100,
        messages=MSG,
        tools=TOOLS,
        tool_choice={"type": "any"},
    ) as stream:
        kinds = {event.type for event in stream}
        first = stream.get_final_message()
    assert "input_json" in kinds and "thinking" in kinds
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    assert first.content[0].thinking == "I should look."  # type: ignore[union-attr]
    call = first.content[1]
    assert call.type == "tool_use" and call.input == {"city": "Paris"}
    assert first.stop_reason == "tool_use"
    assert fake.requests[-1]["body"]["tool_choice"] == "required"

    fake.configure(tool_call=False, reasoning=None)
    result = {
        "type": "tool_result",
        "tool_use_id": call.id,
        "content": [{"type": "text", "text": "sunny"}],
    }
    turns = [
        *MSG,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [result]},
    ]
    with client.messages.stream(
        model="fake-model", max_tokens=100, messages=turns, tools=TOOLS
    ) as stream:
        text = stream.get_final_text()
    assert text == FAKE_CONTENT


def test_count_tokens(client: anthropic.Anthropic) -> None:
    short = client.messages.count_tokens(model="fake-model", messages=MSG)
    longer = client.messages.count_tokens(
        model="fake-model", system="You are a weather bot. " * 20, messages=MSG, tools=TOOLS
    )
    assert 0 < short.input_tokens < longer.input_tokens


def test_an_alias_serves_a_claude_name(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MSG)
    assert message.model == "claude-sonnet-4-5"  # the name the client asked for
    assert fake.requests[-1]["body"]["model"] == "fake-model"
    count = client.messages.count_tokens(model="claude-opus-4-1", messages=MSG)
    assert count.input_tokens > 0


def test_bearer_and_version_headers_are_accepted(url: str, fake: FakeUpstream) -> None:
    body = {"model": "fake-model", "max_tokens": 10, "messages": MSG}
    headers = {"Authorization": "Bearer whatever", "anthropic-version": "2023-06-01"}
    resp = httpx.post(url + "/v1/messages?beta=true", json=body, headers=headers)
    assert resp.status_code == 200 and resp.json()["type"] == "message"
    assert resp.headers["request-id"] == resp.headers["x-request-id"]
    assert resp.headers["x-chatgate-cache"] == "bypass"


def test_stop_sequences_and_sampling_reach_the_upstream(
    client: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    client.messages.create(
        model="fake-model",
        max_tokens=10,
        messages=MSG,
        stop_sequences=["\n\n"],
        metadata={"user_id": "someone"},
        # this SDK no longer offers the sampling fields; older clients still send them
        extra_body={"temperature": 0.1, "top_p": 0.5, "top_k": 5},
    )
    sent = fake.requests[-1]["body"]
    assert sent["stop"] == ["\n\n"] and sent["temperature"] == 0.1
    assert sent["top_p"] == 0.5 and sent["top_k"] == 5 and sent["user"] == "someone"


def test_errors_come_in_anthropic_shape(client: anthropic.Anthropic, url: str) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-model", max_tokens=10, messages=MSG)
    assert missing.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": missing.value.body["error"]["message"]},  # type: ignore[index]
    }
    resp = httpx.post(url + "/v1/messages", json={"model": "fake-model", "messages": MSG})
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in resp.json()["error"]["message"]
    json_type = {"content-type": "application/json"}
    resp = httpx.post(url + "/v1/messages", content=b"{not json", headers=json_type)
    assert resp.status_code == 400 and resp.json()["type"] == "error"


def test_an_upstream_failure_before_the_stream(
    client: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    fake.configure(status=500)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="fake-model", max_tokens=10, messages=MSG)
    assert caught.value.status_code == 502
    assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_an_error_mid_stream_is_an_error_event(
    client: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    fake.configure(error_event_after=5)
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(model="fake-model", max_tokens=100, messages=MSG) as stream,
    ):
        for _ in stream.text_stream:
            pass
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_reasoning_header_and_disabled_thinking(
    client: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    fake.configure(reasoning="Deep thought.")
    shown = client.messages.create(model="fake-model", max_tokens=10, messages=MSG)
    assert shown.content[0].type == "thinking"
    hidden = client.messages.create(
        model="fake-model", max_tokens=10, messages=MSG, thinking={"type": "disabled"}
    )
    assert [b.type for b in hidden.content] == ["text"]
    kept = client.messages.create(
        model="fake-model",
        max_tokens=10,
        messages=MSG,
        thinking={"type": "disabled"},
        extra_headers={"X-Chatgate-Reasoning": "separate"},
    )
    assert kept.content[0].type == "thinking"  # the header decides


def test_counted_under_its_own_api_label(client: anthropic.Anthropic, url: str) -> None:
    client.messages.create(model="fake-model", max_tokens=10, messages=MSG)
    text = httpx.get(url + "/metrics").text
    assert 'chatgate_requests_total{api="anthropic",model="fake-model",status="200"' in text


def test_documented_at_docs(url: str) -> None:
    paths = httpx.get(url + "/openapi.json").json()["paths"]
    assert "post" in paths["/v1/messages"] and "post" in paths["/v1/messages/count_tokens"]
    assert "post" in paths["/v1/chat/completions"]


def test_a_wrong_method_is_405(url: str) -> None:
    resp = httpx.get(url + "/v1/messages")
    assert resp.status_code == 405 and resp.headers["allow"] == "POST"
