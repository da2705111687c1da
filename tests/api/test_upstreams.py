"""DeepSeek and GigaChat as they are today, found from the environment, through the gateway with
the official `openai` SDK: models from their own lists, aliases and per-model settings, DeepSeek
fields and usage passed through untouched, GigaChat functions as OpenAI tools both ways, images to
GigaChat uploaded to its storage and sent as ``attachments``."""

from __future__ import annotations

import base64
import json
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from chatgate.app import create_app
from chatgate.config import Config, ModelConfig
from chatgate.discovery import with_discovered
from tests.fakes.upstream import FakeUpstream
from tests.files import make
from tests.server import ServerThread

DS_KEY = "sk-deepseek-test-key-0123456789"
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ASK = {"role": "user", "content": "Weather in Moscow?"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(chunks=4, gigachat_embedders=["Embeddings"]) as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeUpstream) -> Iterator[str]:
    env = {
        "DEEPSEEK_API_KEY": DS_KEY,
        "DEEPSEEK_BASE_URL": upstream.base_url,  # as api.deepseek.com: no /v1
        "GIGACHAT_CREDENTIALS": upstream.gigachat_credentials,
        "GIGACHAT_BASE_URL": upstream.base_url + "/api/v1",
        "GIGACHAT_AUTH_URL": upstream.base_url + "/api/v2/oauth",
    }
    data: dict[str, Any] = {
        "local_model": False,
        "database": {"url": f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='chatgate-')}/db"},
        "aliases": {"deepseek-chat": "deepseek-v4-flash", "deepseek-reasoner": "ds-thinking"},
    }
    config = with_discovered(Config.model_validate(data), env)
    thinking = {
        "provider": "deepseek",
        "model": "deepseek-v4-flash",
        "params": {"thinking": {"type": "enabled"}, "reasoning_effort": "high"},
    }
    # (a model of a discovered provider: added once discovery has added the provider)
    config = config.model_copy(update={"models": {"ds-thinking": ModelConfig(**thinking)}})
    with ServerThread(create_app(config)) as url:
        yield url


@pytest.fixture
def fake(upstream: FakeUpstream) -> FakeUpstream:
    upstream.reset()
    return upstream


@pytest.fixture
def client(gateway: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)


def sent(fake: FakeUpstream, path: str) -> list[dict[str, Any]]:
    return [r["body"] for r in fake.requests if r["path"] == path]


def test_models_come_from_each_providers_own_list(client: openai.OpenAI, gateway: str) -> None:
    cards = {m["id"]: m for m in httpx.get(gateway + "/v1/models").json()["data"]}
    for name in ("deepseek-v4-flash", "deepseek-v4-pro", "GigaChat", "GigaChat-Pro"):
        assert name in cards
    assert "fake-model" not in cards  # DeepSeek lists at /models, never /v1/models
    assert cards["deepseek-chat"]["owned_by"] == "deepseek"  # the alias
    assert cards["Embeddings"]["capabilities"] == ["embeddings"]
    assert cards["GigaChat"]["capabilities"] == {"vision": False}  # Lite: no images
    assert cards["GigaChat-Pro"]["capabilities"] == {"vision": True}  # sees, via its storage


def test_deepseek_fields_pass_through_untouched(client: openai.OpenAI, fake: FakeUpstream) -> None:
    extra = {
        "thinking": {"type": "enabled"},
        "user_id": "user-42",
        "response_format": {"type": "json_object"},
        "logprobs": True,
        "top_logprobs": 2,
    }
    answer = client.chat.completions.create(
        model="deepseek-v4-pro",
        messages=[ASK],  # type: ignore[list-item]
        reasoning_effort="high",
        extra_body=extra,
    )
    [body] = sent(fake, "/chat/completions")
    assert body["model"] == "deepseek-v4-pro"
    for name, value in {**extra, "reasoning_effort": "high"}.items():
        assert body[name] == value
    usage = answer.usage
    assert usage is not None
    dumped = usage.model_dump()
    assert dumped["prompt_cache_hit_tokens"] == 0
    assert dumped["prompt_cache_miss_tokens"] == usage.prompt_tokens


def test_deepseek_usage_fields_reach_the_client_streamed(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.configure(cache_hit_tokens=3)
    stream = client.chat.completions.create(
        model="deepseek-v4-flash",
        messages=[{"role": "user", "content": "x" * 64}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"thinking": {"type": "disabled"}},
    )
    chunks = list(stream)
    usage = chunks[-1].usage
    assert usage is not None
    dumped = usage.model_dump()
    assert dumped["prompt_cache_hit_tokens"] == 3
    assert dumped["prompt_cache_miss_tokens"] == usage.prompt_tokens - 3
    assert dumped["prompt_tokens_details"]["cached_tokens"] == 3
    [body] = sent(fake, "/chat/completions")
    assert body["thinking"] == {"type": "disabled"} and body["stream"] is True


def test_aliases_and_per_model_settings(client: openai.OpenAI, fake: FakeUpstream) -> None:
    client.chat.completions.create(model="deepseek-chat", messages=[ASK])  # type: ignore[list-item]
    client.chat.completions.create(model="deepseek-reasoner", messages=[ASK])  # type: ignore[list-item]
    client.chat.completions.create(
        model="deepseek-reasoner",
        messages=[ASK],  # type: ignore[list-item]
        reasoning_effort="low",  # the client's own value wins over the model's
    )
    plain, thinking, low = sent(fake, "/chat/completions")
    assert plain["model"] == thinking["model"] == "deepseek-v4-flash"
    assert "thinking" not in plain
    assert thinking["thinking"] == {"type": "enabled"} and thinking["reasoning_effort"] == "high"
    assert low["reasoning_effort"] == "low" and low["thinking"] == {"type": "enabled"}


def test_reasoning_of_a_tool_call_turn_goes_back(client: openai.OpenAI, fake: FakeUpstream) -> None:
    """DeepSeek's thinking mode refuses a tool round trip without the turn's reasoning."""
    fake.configure(tool_call="once", reasoning="I should look it up.")
    first = client.chat.completions.create(
        model="deepseek-v4-flash",
        messages=[ASK],  # type: ignore[list-item]
        tools=[WEATHER],  # type: ignore[list-item]
    )
    message = first.choices[0].message
    assert message.tool_calls
    turn = message.model_dump(exclude_none=True)
    assert turn["reasoning_content"] == "I should look it up."
    result = {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "-3"}
    client.chat.completions.create(
        model="deepseek-v4-flash",
        messages=[ASK, turn, result],  # type: ignore[list-item]
        tools=[WEATHER],  # type: ignore[list-item]
    )
    second = sent(fake, "/chat/completions")[1]
    assert second["messages"][1]["reasoning_content"] == "I should look it up."


def ask(
    client: openai.OpenAI, messages: list[Any], stream: bool, model: str = "GigaChat"
) -> dict[str, Any]:
    """One answer as a message dict (and its finish reason), streamed deltas put together as
    an OpenAI client does it (tool calls by index)."""
    if not stream:
        choice = client.chat.completions.create(
            model=model,
            messages=messages,
            tools=[WEATHER],  # type: ignore[list-item]
        ).choices[0]
        return {**choice.message.model_dump(exclude_none=True), "finish": choice.finish_reason}
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    calls: dict[int, dict[str, Any]] = {}
    for chunk in client.chat.completions.create(
        model=model,
        messages=messages,
        tools=[WEATHER],  # type: ignore[list-item]
        stream=True,
    ):
        for choice in chunk.choices:
            message["content"] += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(
                    delta.index,
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                call["id"] += delta.id or ""
                if delta.function is not None:
                    call["function"]["name"] += delta.function.name or ""
                    call["function"]["arguments"] += delta.function.arguments or ""
            if choice.finish_reason:
                message["finish"] = choice.finish_reason
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message


@pytest.mark.parametrize("stream", [False, True])
def test_gigachat_tool_round_trip(client: openai.OpenAI, fake: FakeUpstream, stream: bool) -> None:
    fake.configure(tool_call="once", tool_arguments='{"city": "Moscow"}')
    first = ask(client, [ASK], stream)
    assert first.pop("finish") == "tool_calls"
    [call] = first["tool_calls"]
    assert call["function"]["name"] == "weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Moscow"}
    result = {"role": "tool", "tool_call_id": call["id"], "content": "-3 and snowing"}
    final = ask(client, [ASK, first, result], stream)
    assert final["finish"] == "stop" and final["content"] == "tok0 tok1 tok2 tok3 "
    [issued] = fake.server.function_states
    second = sent(fake, "/api/v1/chat/completions")[1]
    assert second["functions"] == [WEATHER["function"]]
    assert second["messages"][1]["functions_state_id"] == issued  # handed back to GigaChat
    assert second["messages"][2] == {
        "role": "function",
        "name": "weather",
        "content": '{"result":"-3 and snowing"}',
    }


def test_gigachat_embeddings_model_from_its_list(client: openai.OpenAI, fake: FakeUpstream) -> None:
    result = client.embeddings.create(model="Embeddings", input=["one", "two words"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 8
    [body] = sent(fake, "/api/v1/embeddings")
    assert body == {"model": "Embeddings", "input": ["one", "two words"]}


def test_models_stay_current_while_serving(upstream: FakeUpstream) -> None:
    """DeepSeek renames a model while the gateway runs: the new name is served without a
    restart, and an outage of its list keeps what it listed before."""
    upstream.reset()
    env = {"DEEPSEEK_API_KEY": DS_KEY, "DEEPSEEK_BASE_URL": upstream.base_url}
    data: dict[str, Any] = {
        "local_model": False,
        "models_refresh": 0.1,
        "database": {"url": f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='chatgate-')}/db"},
    }
    config = with_discovered(Config.model_validate(data), env)

    def served(url: str) -> list[str]:
        return [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]]

    def until(url: str, models: list[str]) -> list[str]:
        for _ in range(100):
            if (now := served(url)) == models:
                break
            time.sleep(0.05)
        return now

    try:
        with ServerThread(create_app(config)) as url:
            assert served(url) == ["deepseek-v4-flash", "deepseek-v4-pro"]
            upstream.configure(deepseek_models=["deepseek-v5-flash", "deepseek-v4-pro"])
            assert until(url, ["deepseek-v5-flash", "deepseek-v4-pro"]) == [
                "deepseek-v5-flash",
                "deepseek-v4-pro",
            ]
            upstream.configure(models_status=503)
            refused = len(upstream.requests)
            for _ in range(100):  # two refreshes that could not read the list
                if sum(r["path"] == "/models" for r in upstream.requests[refused:]) >= 2:
                    break
                time.sleep(0.05)
            assert sum(r["path"] == "/models" for r in upstream.requests[refused:]) >= 2
            assert served(url) == ["deepseek-v5-flash", "deepseek-v4-pro"]
    finally:
        upstream.reset()


@pytest.mark.parametrize("stream", [False, True])
def test_gigachat_sees_an_image_sent_as_openai_content_parts(
    client: openai.OpenAI, fake: FakeUpstream, stream: bool
) -> None:
    image = make.png(6, 6 + stream)  # one image per case: the gateway's uploads are kept
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    parts: Any = [{"type": "text", "text": f"What is drawn here? ({stream})"},
                  {"type": "image_url", "image_url": {"url": url}}]  # fmt: skip
    turns: Any = [{"role": "user", "content": parts}]
    first = ask(client, turns, stream, model="GigaChat-Pro")
    assert first["content"] == "tok0 tok1 tok2 tok3 "
    turns += [{"role": "assistant", "content": first["content"]},
              {"role": "user", "content": "And the colour?"}]  # fmt: skip
    ask(client, turns, stream, model="GigaChat-Pro")
    [upload] = sent(fake, "/api/v1/files")  # the second turn reuses the stored file
    assert upload["mime"] == "image/png" and upload["bytes"] == len(image)
    bodies = sent(fake, "/api/v1/chat/completions")
    assert len(bodies) == 2
    [stored] = fake.server.gigachat_files
    assert bodies[0]["messages"] == [
        {"role": "user", "content": f"What is drawn here? ({stream})", "attachments": [stored]}
    ]
    assert bodies[1]["messages"][0]["attachments"] == [stored]


def test_gigachat_refuses_a_remote_image_url_clearly(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    remote = {"url": "https://example.com/a.png"}
    parts: Any = [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": remote}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="GigaChat-Pro", messages=[{"role": "user", "content": parts}]
        )
    assert "data: URL" in str(caught.value) and caught.value.status_code == 400
    assert not sent(fake, "/api/v1/chat/completions")
