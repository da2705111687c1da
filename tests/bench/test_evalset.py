"""The retrieval evaluation sets (``bench/files/evalset.py``, ``bench/files/heldout.py``): every
question's phrase is in exactly one chunk of all the documents searched together, and that
chunk is its document's, with the default chunking — so recall@k (``bench/documents.py``)
counts a hit only on the passage that answers."""

from __future__ import annotations

from bench.files import evalset, heldout

from chatgate.files.chunking import split
from chatgate.files.config import FilesConfig
from chatgate.files.extract import Page


def _chunks() -> dict[str, list[str]]:
    config = FilesConfig()
    documents = {**evalset.DOCUMENTS, **heldout.DOCUMENTS}
    assert len(documents) == len(evalset.DOCUMENTS) + len(heldout.DOCUMENTS), "a name twice"
    return {
        name: [c.text for c in split([Page(i + 1, p) for i, p in enumerate(pages)],
                                     config.chunk_tokens, config.chunk_overlap)]
        for name, pages in documents.items()
    }  # fmt: skip


def _holders(chunks: dict[str, list[str]], phrase: str) -> list[tuple[str, int]]:
    return [(name, n) for name, texts in chunks.items() for n, t in enumerate(texts) if phrase in t]


def test_every_heldout_phrase_is_in_exactly_one_chunk_of_its_document() -> None:
    chunks = _chunks()
    for q in heldout.QUESTIONS:
        holders = _holders(chunks, q.phrase)
        assert len(holders) == 1, (q.question, q.phrase, holders)
        assert holders[0][0] == q.document, (q.question, holders)


def test_every_earlier_phrase_is_in_exactly_one_chunk() -> None:
    chunks = _chunks()
    for question, phrase in evalset.QUESTIONS + evalset.PARAPHRASES:
        assert len(_holders(chunks, phrase)) == 1, (question, phrase)


def test_heldout_is_as_large_and_mixed_as_promised() -> None:
    chunks = _chunks()
    languages = [name.rsplit("-", 1)[1].split(".")[0] for name in heldout.DOCUMENTS]
    assert sorted(languages) == ["en", "en", "ru", "ru", "zh", "zh"]
    assert all(15 <= len(chunks[name]) <= 40 for name in heldout.DOCUMENTS), {
        n: len(chunks[n]) for n in heldout.DOCUMENTS
    }
    assert len(heldout.QUESTIONS) >= 45
    kinds = [q.kind for q in heldout.QUESTIONS]
    assert set(kinds) == set(heldout.KINDS)
    assert kinds.count("cross") * 4 >= len(kinds), "about a third cross-language"
    assert len({q.question for q in heldout.QUESTIONS}) == len(heldout.QUESTIONS)
    assert {q.document for q in heldout.QUESTIONS} == set(heldout.DOCUMENTS)
