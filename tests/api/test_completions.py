"""``POST /v1/completions`` end to end: the official ``openai`` SDK → chatgate → fake upstream."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from chatgate.app import create_app
from chatgate.discovery import discover
from chatgate.providers.openai import OpenAIConfig
from tests.conftest import FAKE_CONTENT, gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread


def _prompt() -> str:
    return f"def f_{uuid.uuid4().hex}("


def test_whole_completion(client: openai.OpenAI, fake: FakeUpstream) -> None:
    done = client.completions.create(
        model="fake-model", prompt=_prompt(), max_tokens=5, stop=["\n"]
    )
    assert done.object == "text_completion"
    assert done.choices[0].text == FAKE_CONTENT
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None and done.usage.completion_tokens == 24
    sent = fake.requests[-1]
    assert sent["path"] == "/v1/completions"
    assert sent["body"]["max_tokens"] == 5 and sent["body"]["stop"] == ["\n"]
    assert sent["body"]["stream"] is False


def test_echo_and_n(client: openai.OpenAI, fake: FakeUpstream) -> None:
    prompt = _prompt()
    done = client.completions.create(model="fake-model", prompt=prompt, echo=True, n=2)
    assert [c.index for c in done.choices] == [0, 1]
    assert all(c.text == prompt + FAKE_CONTENT for c in done.choices)


def test_stream(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(chunks=4)
    chunks = list(
        client.completions.create(
            model="fake-model",
            prompt=_prompt(),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(texts) == "tok0 tok1 tok2 tok3 "
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert all(c.object == "text_completion" for c in chunks)
    # usage was asked upstream for accounting; a client that did not ask does not get it
    plain = list(client.completions.create(model="fake-model", prompt=_prompt(), stream=True))
    assert all(c.usage is None for c in plain)
    assert fake.requests[-1]["body"]["stream_options"] == {"include_usage": True}


def test_bad_requests_in_openai_shape(gateway_url: str, client: openai.OpenAI) -> None:
    r = httpx.post(gateway_url + "/v1/completions", json={"model": "fake-model"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "prompt"
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="no-such-model", prompt="x")


def test_counted_under_its_own_api_label(gateway_url: str, client: openai.OpenAI) -> None:
    client.completions.create(model="fake-model", prompt=_prompt())
    text = httpx.get(gateway_url + "/metrics").text
    assert 'chatgate_requests_total{api="completions",model="fake-model",status="200"' in text


def test_documented(gateway_url: str) -> None:
    spec = httpx.get(gateway_url + "/openapi.json").json()
    op = spec["paths"]["/v1/completions"]["post"]
    assert "suffix" in op["requestBody"]["content"]["application/json"]["schema"]["properties"]


@pytest.fixture(scope="module")
def fim_url(fake_server: FakeUpstream) -> Iterator[str]:
    """A DeepSeek-like provider whose completions live under ``/beta``, as DeepSeek's do."""
    config = gateway_config(
        fake_server.base_url,
        providers={
            "deepseek": {
                "type": "openai",
                "base_url": fake_server.base_url + "/v1",
                "completions_base_url": fake_server.base_url + "/beta",
                "models": ["deepseek-chat"],
            },
            "giga": {
                "type": "gigachat",
                "base_url": fake_server.base_url + "/api/v1",
                "auth_url": fake_server.base_url + "/api/v2/oauth",
                "credentials": "fake-gigachat-credentials",
                "models": ["GigaChat"],
            },
        },
        models={},
    )
    with ServerThread(create_app(config)) as url:
        yield url


def test_fill_in_the_middle_goes_to_the_beta_endpoint(fim_url: str, fake: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=fim_url + "/v1", api_key="unused", max_retries=0)
    done = client.completions.create(
        model="deepseek-chat", prompt="def fib(a):", suffix="    return fib(a-1) + fib(a-2)"
    )
    assert done.choices[0].text == FAKE_CONTENT
    sent = fake.requests[-1]
    assert sent["path"] == "/beta/completions"
    assert sent["body"]["suffix"] == "    return fib(a-1) + fib(a-2)"
    assert sent["body"]["model"] == "deepseek-chat"
    streamed = client.completions.create(
        model="deepseek-chat", prompt="def fib(a):", suffix="pass", stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == FAKE_CONTENT
    assert fake.requests[-1]["path"] == "/beta/completions"


def test_a_provider_without_completions_says_so(fim_url: str) -> None:
    client = openai.OpenAI(base_url=fim_url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="GigaChat", prompt="x")
    assert "The model `GigaChat` does not support legacy completions" in caught.value.message
    assert caught.value.code == "unsupported_model"


@pytest.mark.parametrize(
    ("env", "beta"),
    [
        ({}, "https://api.deepseek.com/beta"),
        ({"DEEPSEEK_BASE_URL": "https://proxy.example/v1"}, "https://proxy.example/beta"),
        ({"DEEPSEEK_COMPLETIONS_BASE_URL": "https://x.example/fim"}, "https://x.example/fim"),
    ],
)
def test_discovered_deepseek_completes_at_beta(env: dict[str, str], beta: str) -> None:
    providers, _ = discover({"DEEPSEEK_API_KEY": "sk-x", **env})
    cfg: Any = providers["deepseek"]
    assert isinstance(cfg, OpenAIConfig) and cfg.completions_base_url == beta
