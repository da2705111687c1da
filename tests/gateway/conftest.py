"""Fixtures for the stage tests: real OpenAI providers on the fake upstream, real storage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from chatgate.config import ModelConfig
from chatgate.gateway.router import Deployment
from chatgate.protocol.openai import ChunkBatch
from chatgate.providers.openai import OpenAIConfig, OpenAIProvider
from tests.fakes.upstream import FakeUpstream

# The storage tests' fixtures (real SQLite and PostgreSQL), for test_auth and test_path.
from tests.storage.conftest import backend, db, db_url, pg_server  # noqa: F401

KEY_A = "sk-aaaaaaaaaaaaaaaaaaaa1111"
KEY_B = "sk-bbbbbbbbbbbbbbbbbbbb2222"
DEAD_URL = "http://127.0.0.1:9"  # nothing listens there: connection refused
MESSAGES = [{"role": "user", "content": "hello there"}]


class Upstreams:
    """Builds started OpenAI providers (on the fake unless told otherwise) and closes them."""

    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self._made: list[OpenAIProvider] = []

    async def provider(
        self, name: str = "p", keys: Sequence[str] = (), url: str | None = None
    ) -> OpenAIProvider:
        cfg = OpenAIConfig(
            type="openai",
            base_url=(url or self.fake.base_url) + "/v1",
            api_keys=list(keys),
        )
        provider = OpenAIProvider(name, cfg)
        await provider.start()
        self._made.append(provider)
        return provider

    async def deployment(
        self,
        name: str = "p",
        keys: Sequence[str] = (),
        model: str = "fake-model",
        url: str | None = None,
        settings: ModelConfig | None = None,
        public: str | None = None,
    ) -> Deployment:
        provider = await self.provider(name, keys, url)
        return Deployment(public or model, name, provider, model, settings)

    async def close(self) -> None:
        for provider in self._made:
            await provider.close()


@pytest.fixture
async def upstreams(fake: FakeUpstream) -> AsyncIterator[Upstreams]:
    made = Upstreams(fake)
    yield made
    await made.close()


def keys_used(fake: FakeUpstream) -> list[str]:
    """The upstream key of each chat request the fake received, in order."""
    return [
        str(r["headers"].get("authorization", "")).removeprefix("Bearer ")
        for r in fake.requests
        if r["path"] == "/v1/chat/completions"
    ]


def text_of(batches: Sequence[ChunkBatch]) -> tuple[str, str]:
    """(content, reasoning_content) of streamed batches, joined."""
    content, reasoning = [], []
    for batch in batches:
        for chunk in batch:
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                content.append(delta.get("content") or "")
                reasoning.append(delta.get("reasoning_content") or "")
    return "".join(content), "".join(reasoning)


async def eventually(check: Callable[[], Awaitable[Any] | Any], seconds: float = 5.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value or loop.time() > deadline:
            assert value, "condition not met in time"
            return value
        await asyncio.sleep(0.005)


async def settle() -> None:
    """Let tasks that are ready run (flights finishing, store writes starting)."""
    for _ in range(10):
        await asyncio.sleep(0)
