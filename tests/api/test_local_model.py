"""The bundled local model through chatgate, as a new user meets it: no key, no config."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

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
    assert [m.id for m in client.models.list()] == ["local"]
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
