"""``POST /v1/embeddings`` end to end: the official ``openai`` SDK → chatgate → fake upstream."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from chatgate.app import create_app
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream, fake_vector
from tests.server import ServerThread


def _text() -> str:
    return f"Привет, мир {uuid.uuid4().hex}"


def test_sdk_default_base64_is_decoded_to_the_upstreams_floats(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    text = _text()
    result = client.embeddings.create(model="fake-model", input=text)  # the SDK asks base64
    assert result.object == "list" and result.model == "fake-model"
    assert result.data[0].embedding == pytest.approx(fake_vector(text, 8), rel=1e-6)
    assert result.usage.prompt_tokens > 0
    sent = fake.requests[-1]
    assert sent["path"] == "/v1/embeddings"
    assert "encoding_format" not in sent["body"]  # floats upstream; the door encodes


def test_floats_lists_tokens_and_dimensions(client: openai.OpenAI, fake: FakeUpstream) -> None:
    texts = [_text(), _text()]
    result = client.embeddings.create(
        model="fake-model", input=texts, encoding_format="float", dimensions=4
    )
    assert [d.index for d in result.data] == [0, 1]
    assert [d.embedding for d in result.data] == [fake_vector(t, 4) for t in texts]
    assert fake.requests[-1]["body"]["dimensions"] == 4
    tokens = client.embeddings.create(model="fake-model", input=[[1, 2, 3], [4, 5]])
    assert len(tokens.data) == 2 and tokens.usage.prompt_tokens == 5


def test_bad_requests_in_openai_shape(gateway_url: str, client: openai.OpenAI) -> None:
    r = httpx.post(gateway_url + "/v1/embeddings", json={"model": "fake-model", "input": ""})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    with pytest.raises(openai.BadRequestError, match="encoding_format"):
        client.embeddings.create(model="fake-model", input="x", encoding_format="int8")  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")


def test_counted_under_its_own_api_label(gateway_url: str, client: openai.OpenAI) -> None:
    client.embeddings.create(model="fake-model", input=_text())
    text = httpx.get(gateway_url + "/metrics").text
    assert 'chatgate_requests_total{api="embeddings",model="fake-model",status="200"' in text


def test_documented(gateway_url: str) -> None:
    spec = httpx.get(gateway_url + "/openapi.json").json()
    op = spec["paths"]["/v1/embeddings"]["post"]
    assert "input" in op["requestBody"]["content"]["application/json"]["schema"]["required"]


@pytest.fixture(scope="module")
def cached_url(
    fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    cache_dir: Path = tmp_path_factory.mktemp("embeddings-cache")
    config = gateway_config(
        fake_server.base_url,
        cache={"enabled": True, "dir": str(cache_dir), "ttl": 3600},
        providers={
            "fake": {"type": "openai", "base_url": fake_server.base_url + "/v1", "models": ["e"]},
            "giga": {
                "type": "gigachat",
                "base_url": fake_server.base_url + "/api/v1",
                "auth_url": fake_server.base_url + "/api/v2/oauth",
                "credentials": "fake-gigachat-credentials",
                "models": ["GigaChat", "Embeddings"],
            },
        },
        models={},
    )
    with ServerThread(create_app(config)) as url:
        yield url


def test_cached_like_chat_answers(cached_url: str, fake: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=cached_url + "/v1", api_key="unused", max_retries=0)
    text = _text()
    first = client.embeddings.with_raw_response.create(model="e", input=[text, "b"])
    second = client.embeddings.with_raw_response.create(
        model="e", input=[text, "b"], encoding_format="float"
    )
    assert first.headers["x-chatgate-cache"] == "miss"
    assert second.headers["x-chatgate-cache"] == "hit"  # whatever the format asked
    a, b = first.parse(), second.parse()
    for got, was in zip(b.data, a.data, strict=True):
        assert got.embedding == pytest.approx(was.embedding, rel=1e-6)
    assert b.usage.prompt_tokens == a.usage.prompt_tokens
    assert fake.count("/v1/embeddings") == 1
    other = client.embeddings.with_raw_response.create(model="e", input=[text, "b"], dimensions=3)
    assert other.headers["x-chatgate-cache"] == "miss"  # other options, another answer


def test_identical_requests_share_one_upstream_call(cached_url: str, fake: FakeUpstream) -> None:
    fake.configure(latency_ms=300)
    client = openai.AsyncOpenAI(base_url=cached_url + "/v1", api_key="unused", max_retries=0)
    text = _text()

    async def many() -> list[list[float]]:
        results = await asyncio.gather(
            *(client.embeddings.create(model="e", input=text) for _ in range(4))
        )
        return [r.data[0].embedding for r in results]

    vectors = asyncio.run(many())
    assert fake.count("/v1/embeddings") == 1
    assert all(v == vectors[0] for v in vectors)


def test_gigachat_embeddings(cached_url: str, fake: FakeUpstream) -> None:
    """GigaChat takes an array of strings and counts usage per item; OpenAI's shape sums it."""
    client = openai.OpenAI(base_url=cached_url + "/v1", api_key="unused", max_retries=0)
    texts = [_text(), "второй текст"]
    result = client.embeddings.create(model="Embeddings", input=texts)
    assert [d.embedding for d in result.data] == [
        pytest.approx(fake_vector(t, 8), rel=1e-6) for t in texts
    ]
    assert result.usage.prompt_tokens == sum(len(t) // 4 + 1 for t in texts)
    sent = fake.requests[-1]
    assert sent["path"] == "/api/v1/embeddings" and sent["body"]["input"] == texts
    one = client.embeddings.create(model="Embeddings", input=texts[0], encoding_format="float")
    assert fake.requests[-1]["body"]["input"] == [texts[0]]  # a string goes as an array of one
    assert one.data[0].embedding == pytest.approx(fake_vector(texts[0], 8))
    with pytest.raises(openai.BadRequestError, match="text input only"):
        client.embeddings.create(model="Embeddings", input=[[1, 2, 3]])
