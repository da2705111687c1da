"""The bundled local model through chatgate, as a new user meets it: no key, no config."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import anthropic
import ollama
import openai
import pytest

from chatgate.app import create_app
from chatgate.config import Config
from chatgate.discovery import with_discovered
from tests.server import ServerThread


@pytest.fixture(scope="module")
def local_url() -> Iterator[str]:
    db = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='chatgate-local-')}/db"
    config = with_discovered(
        Config.model_validate({"discover_env": False, "database": {"url": db}}), {}
    )
    with ServerThread(create_app(config)) as url:
        yield url


def test_zero_config_serves_local(local_url: str) -> None:
    client = openai.OpenAI(base_url=local_url + "/v1", api_key="anything", max_retries=0)
    assert [m.id for m in client.models.list()] == ["local", "local-embed", "local-embed-fast"]
    resp = client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "Name a colour."}],
        max_tokens=8,
        temperature=0,
    )
    assert resp.choices[0].message.content
    assert resp.usage is not None and 0 < resp.usage.completion_tokens <= 8


def test_local_stream_token_by_token(local_url: str) -> None:
    client = openai.OpenAI(base_url=local_url + "/v1", api_key="anything", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "Count to five."}],
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) >= 3  # streamed token by token, not in one lump
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 12


def test_zero_config_embeds_locally(local_url: str) -> None:
    """The bundled multilingual embedding model, with the SDK's default (base64) format."""
    client = openai.OpenAI(base_url=local_url + "/v1", api_key="anything", max_retries=0)
    cards = {m.id: m.model_dump() for m in client.models.list()}
    assert cards["local-embed"]["capabilities"] == ["embeddings"]  # chat UIs leave it out
    assert cards["local"]["capabilities"] == {"vision": False}  # SmolLM2 reads text only
    result = client.embeddings.create(model="local-embed", input=["Привет, мир", "你好", "hello"])
    assert [len(d.embedding) for d in result.data] == [384, 384, 384]
    assert result.usage.prompt_tokens > 3
    floats = client.embeddings.create(model="local-embed", input="hello", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(result.data[2].embedding, abs=1e-5)
    with pytest.raises(openai.BadRequestError, match="does not support embeddings"):
        client.embeddings.create(model="local", input="hello")
    with pytest.raises(openai.BadRequestError, match="is an embedding model"):
        client.chat.completions.create(
            model="local-embed", messages=[{"role": "user", "content": "hi"}]
        )
    # The fast one (documents use it): 512 dimensions, Russian and Chinese alike.
    assert cards["local-embed-fast"]["capabilities"] == ["embeddings"]
    fast = client.embeddings.create(model="local-embed-fast", input=["Привет, мир", "你好"])
    assert [len(d.embedding) for d in fast.data] == [512, 512]
    assert fast.usage.prompt_tokens > 2


def test_local_through_the_anthropic_door(local_url: str) -> None:
    client = anthropic.Anthropic(base_url=local_url, api_key="anything", max_retries=0)
    with client.messages.stream(
        model="local",
        max_tokens=8,
        messages=[{"role": "user", "content": "Name a colour."}],
    ) as stream:
        text = stream.get_final_text()
        final = stream.get_final_message()
    assert text
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert 0 < final.usage.output_tokens <= 8 and final.usage.input_tokens > 0


def test_local_through_the_ollama_door(local_url: str) -> None:
    client = ollama.Client(host=local_url)
    assert [m.model for m in client.list().models] == [
        "local",
        "local-embed",
        "local-embed-fast",
    ]  # as Ollama lists embedders
    assert client.show("local:latest").modelinfo["chatgate.context_length"] > 0  # type: ignore[index]
    parts = list(
        client.chat(
            model="local",
            messages=[{"role": "user", "content": "Name a colour."}],
            options={"num_predict": 8, "temperature": 0},
            stream=True,
        )
    )
    assert "".join(p.message.content or "" for p in parts)
    assert parts[-1].done and 0 < (parts[-1].eval_count or 0) <= 8


def test_local_through_the_responses_api(local_url: str) -> None:
    client = openai.OpenAI(base_url=local_url + "/v1", api_key="anything", max_retries=0)
    resp = client.responses.create(
        model="local", input="Name a colour.", max_output_tokens=8, temperature=0
    )
    assert resp.status in ("completed", "incomplete") and resp.output_text
    assert resp.usage is not None and 0 < resp.usage.output_tokens <= 8
    events = list(
        client.responses.create(
            model="local", input="Count to five.", max_output_tokens=12, temperature=0, stream=True
        )
    )
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) >= 3  # token by token
    last = events[-1]  # cut at 12 tokens: response.incomplete, which the SDK's helper refuses
    assert last.type in ("response.completed", "response.incomplete")
    assert last.response.output_text == "".join(deltas)
    assert last.response.usage is not None and last.response.usage.output_tokens <= 12
