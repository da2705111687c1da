"""The path's operations: legacy completions and embeddings through the one pipeline.

An in-process provider counts its calls, so the cache, single-flight and the dispatch to the
operation's provider method are seen directly (the HTTP doors are tested in tests/api).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chatgate.errors import InvalidRequestError
from chatgate.gateway.cache.keys import cache_key
from chatgate.gateway.cache.memory import MemoryStore
from chatgate.gateway.caching import ResponseCache
from chatgate.gateway.caller import UpstreamCaller
from chatgate.gateway.path import estimate_tokens
from chatgate.gateway.pipeline import Pipeline
from chatgate.gateway.router import Deployment, Router
from chatgate.protocol.completions import validate_completions_request
from chatgate.protocol.embeddings import render, validate_embeddings_request
from chatgate.protocol.openai import ChunkBatch, validate_chat_request
from chatgate.providers.base import supports


class ChatOnly:
    name = "chat-only"

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def chat(self, body: dict[str, Any], model: str, api_key: str | None = None) -> Any:
        self.calls.append("chat")
        return {"id": "chatcmpl-1", "object": "chat.completion", "choices": [], "usage": None}

    async def stream(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> AsyncIterator[ChunkBatch]:
        self.calls.append("stream")
        yield [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]

    async def list_models(self) -> list[str]:
        return ["m"]


class Everything(ChatOnly):
    name = "everything"

    async def completions(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        self.calls.append("completions")
        text = "<" + str(body["prompt"]) + "|" + str(body.get("suffix")) + ">"
        return {
            "id": "cmpl-up",
            "object": "text_completion",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }

    async def completions_stream(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> AsyncIterator[ChunkBatch]:
        self.calls.append("completions_stream")
        base = {"id": "cmpl-up", "object": "text_completion", "created": 1, "model": model}
        yield [{**base, "choices": [{"index": 0, "text": "ab", "finish_reason": None}]}]
        yield [
            {**base, "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]},
            {**base, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
        ]

    async def embeddings(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        self.calls.append("embeddings")
        assert "encoding_format" not in body  # floats are always asked for
        await asyncio.sleep(0.05)  # long enough for a second caller to join the flight
        items = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.5, -1.0, float(len(t))]}
                for i, t in enumerate(items)
            ],
            "model": model,
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        }


def _pipeline(first: ChatOnly, second: ChatOnly | None = None, cached: bool = True) -> Pipeline:
    router = Router()
    router.add(Deployment("m", first.name, first, "up-m", fallbacks=("n",) if second else ()))
    if second is not None:
        router.add(Deployment("n", second.name, second, "up-n"))
    cache = ResponseCache(MemoryStore(1 << 20), 60.0) if cached else None
    return Pipeline(router, UpstreamCaller({}, {}, retries=0), cache=cache)


async def test_embeddings_are_cached_and_share_a_flight() -> None:
    provider = Everything()
    pipeline = _pipeline(provider)
    body = {"model": "m", "input": ["hello", "мир"], "encoding_format": "base64"}

    async def ask() -> Any:
        answer = await pipeline.open(validate_embeddings_request(dict(body)))
        return answer.cache, answer.completion

    (s1, a1), (s2, a2) = await asyncio.gather(ask(), ask())
    assert provider.calls == ["embeddings"]  # two callers, one upstream call
    assert {s1, s2} == {"miss"} and a1 == a2
    await asyncio.sleep(0.01)  # the store is written in the background
    status, again = await ask()
    assert status == "hit" and again == a1 and provider.calls == ["embeddings"]
    assert again["data"][1]["embedding"] == [0.5, -1.0, 3.0]
    assert "id" not in again  # a replay does not grow fields embeddings do not have
    # a float request is answered from the same entry: the format is the door's business
    as_float = validate_embeddings_request({**body, "encoding_format": "float"})
    assert (await pipeline.open(as_float)).cache == "hit"
    await pipeline.cache.close()  # type: ignore[union-attr]


async def test_completions_dispatch_and_are_keyed_by_kind() -> None:
    provider = Everything()
    pipeline = _pipeline(provider)
    body = {"model": "m", "prompt": "def f(", "suffix": "return x"}
    whole = await pipeline.open(validate_completions_request(dict(body)))
    assert whole.completion is not None
    assert whole.completion["choices"][0]["text"] == "<def f(|return x>"
    streamed = await pipeline.open(validate_completions_request({**body, "stream": True}))
    assert streamed.cache == "miss"  # a stream is not served from a whole answer's entry
    batches = [b async for b in streamed]
    assert "".join(c["choices"][0]["text"] for b in batches for c in b if c["choices"]) == "ab"
    assert provider.calls == ["completions", "completions_stream"]
    await asyncio.sleep(0.01)
    replay = await pipeline.open(validate_completions_request({**body, "stream": True}))
    chunks = [c async for b in replay for c in b]
    assert replay.cache == "hit" and chunks[0]["id"].startswith("cmpl-")
    assert chunks[0]["id"] != "cmpl-up"
    hit = await pipeline.open(validate_completions_request(dict(body)))
    assert hit.cache == "hit" and hit.completion is not None
    assert hit.completion["id"].startswith("cmpl-")
    assert len(provider.calls) == 2
    await pipeline.cache.close()  # type: ignore[union-attr]


async def test_a_provider_without_the_operation_is_refused_or_passed_over() -> None:
    pipeline = _pipeline(ChatOnly(), cached=False)
    with pytest.raises(InvalidRequestError) as caught:
        await pipeline.open(validate_embeddings_request({"model": "m", "input": "x"}))
    assert caught.value.status == 400
    assert caught.value.message == "The model `m` does not support embeddings."
    with pytest.raises(InvalidRequestError, match="legacy completions"):
        await pipeline.open(validate_completions_request({"model": "m", "prompt": "x"}))
    # with a fallback that can, the fallback answers
    second = Everything()
    pipeline = _pipeline(ChatOnly(), second, cached=False)
    answer = await pipeline.open(validate_embeddings_request({"model": "m", "input": "x"}))
    assert answer.completion is not None and second.calls == ["embeddings"]
    assert supports(second, "embeddings") and not supports(ChatOnly(), "completions")


def test_estimate_tokens_per_operation() -> None:
    chat = validate_chat_request(
        {"model": "m", "messages": [{"role": "user", "content": "x" * 40}]}
    )
    assert estimate_tokens(chat, 100) == 10 + 100
    fim = validate_completions_request(
        {"model": "m", "prompt": "p" * 40, "suffix": "s" * 20, "max_tokens": 7, "n": 2}
    )
    assert estimate_tokens(fim, 100) == 15 + 14
    best = validate_completions_request({"model": "m", "prompt": [1, 2, 3, 4], "best_of": 3})
    assert estimate_tokens(best, 10) == 4 + 30
    emb = validate_embeddings_request({"model": "m", "input": ["a" * 40, [1, 2, 3]]})
    assert estimate_tokens(emb, 100) == (40 + 12) // 4  # no completion tokens


def test_cache_keys_keep_operations_apart() -> None:
    body = {"model": "m", "input": "x"}
    assert cache_key(body, "p/m") == cache_key(body, "p/m", "")  # chat keys are unchanged
    assert cache_key(body, "p/m", "embeddings") != cache_key(body, "p/m")
    assert cache_key(body, "p/m", "completions") != cache_key(body, "p/m", "completions+stream")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": 5}, "prompt"),
        ({"model": "m", "prompt": []}, "prompt"),
        ({"model": "m", "prompt": ["a", 1]}, "prompt[1]"),
        ({"model": "m", "prompt": "a", "suffix": 1}, "suffix"),
        ({"model": "m", "prompt": "a", "echo": "yes"}, "echo"),
        ({"model": "m", "prompt": "a", "n": 0}, "n"),
        ({"model": "m", "prompt": "a", "logprobs": 9}, "logprobs"),
        ({"model": "m", "prompt": "a", "stop": [1]}, "stop"),
        ({"model": "", "prompt": "a"}, "model"),
    ],
)
def test_completions_validation(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        validate_completions_request(body)
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "input"),
        ({"model": "m", "input": ""}, "input"),
        ({"model": "m", "input": ["a", ""]}, "input[1]"),
        ({"model": "m", "input": [[1], []]}, "input[1]"),
        ({"model": "m", "input": ["a"] * 2049}, "input"),
        ({"model": "m", "input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "m", "input": "a", "dimensions": 0}, "dimensions"),
        ({"model": "m", "input": "a", "stream": True}, "stream"),
    ],
)
def test_embeddings_validation(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        validate_embeddings_request(body)
    assert caught.value.param == param


def test_base64_is_little_endian_float32() -> None:
    import base64
    import struct

    out = render({"data": [{"embedding": [1.0, -0.5]}]}, "base64")
    raw = base64.b64decode(out["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (1.0, -0.5)
    assert render({"data": []}, "float") == {"data": []}
