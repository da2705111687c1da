"""Retrieval over a conversation's documents: cosine similarity of the question's embedding
to every chunk (brute force in numpy; a chunk embedded as several windows, embed.py, scores
the mean of its whole vector's cosine and its best row's: 3,000 chunks of ~4 rows of 512
floats is a 24 MB product, about a millisecond), plus a share of a lexical score that
depends on the model (see ``LEXICAL_WEIGHT``): the idf-weighted fraction of the question's
terms (words and CJK character bigrams) the chunk holds. The share is absolute, not scaled
to the best chunk: a question in another language than the documents shares only stray
terms (a number, a name) with any chunk, and then the words add almost nothing instead of a
full boost to whichever chunk holds that number. BM25 (scaled to 1 for the best chunk) ranks
the chunks alone when vectors are missing.

Each process caches each document's vectors and term index (``files.cache_bytes``, least
recently used out first). A document's chunks never change once embedded, so such an entry is
only ever dropped — when the file is deleted here, or re-indexed — and a file deleted through
another replica is never asked for again (the request names the files from the database). An
entry still waiting for some of its vectors (embedding runs after the text is searchable, on
whichever replica took the upload) is read again once it is ``STALE_SECONDS`` old.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from chatgate.files.embed import Matrix, unpack

_WORD = re.compile(r"\w+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
STALE_SECONDS = 5.0
# The lexical score's share beside the cosine when nothing else is said: score = cosine +
# weight × the idf-weighted share of the question's terms the chunk holds. How much the words
# help depends on the model: it is the embedding provider's ``search_lexical_weight``
# (providers/usem3.py: 0.15, measured), else ``files.lexical_weight``, else this. With
# multilingual-e5-small any share lowered recall@5 (0.97 → 0.93 on bench/documents.py's 30
# questions, with BM25 scaled to the best chunk; ranks fused instead of scores: 0.87): BM25
# misses every question asked in another language than its document and pulls up word-alike
# distractors, so it serves alone only while vectors are missing.
LEXICAL_WEIGHT = 0.0
_BM25_K1, _BM25_B = 1.2, 0.75


def terms(text: str) -> list[str]:
    """Lower-cased words (their first 6 letters: a crude stem that joins Russian and English
    word forms) and CJK character bigrams."""
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        if _CJK.search(word):
            chars = _CJK.findall(word)
            out += chars if len(chars) == 1 else [a + b for a, b in itertools.pairwise(chars)]
        elif len(word) > 1 or word.isdigit():
            out.append(word[:6])
    return out


@dataclass
class Entry:
    """One document's chunks, ready to search."""

    file_id: str
    ns: list[int]
    pages: list[int | None]
    texts: list[str]
    vectors: Matrix | None  # (windows, dims), normalised; None: lexical only
    complete: bool = True  # every chunk has its vector
    loaded_at: float = 0.0
    tag: bytes | None = None  # the model whose vectors were looked for (embed.space_tag)
    stale: bool = False  # some chunks have vectors of another model: to embed again
    # The term index, built on first lexical use: term → (chunk indexes, term frequencies).
    _postings: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] | None = None
    _lengths: npt.NDArray[np.float32] | None = None
    # Where each chunk's rows start in ``vectors`` (None: one row each).
    starts: npt.NDArray[np.int64] | None = None

    @property
    def nbytes(self) -> int:
        text = sum(len(t) for t in self.texts) * 2
        return text * 2 + (self.vectors.nbytes if self.vectors is not None else 0)

    @property
    def postings(self) -> dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
        if self._postings is None:
            self._build_terms()
        assert self._postings is not None
        return self._postings

    @property
    def lengths(self) -> npt.NDArray[np.float32]:
        if self._lengths is None:
            self._build_terms()
        assert self._lengths is not None
        return self._lengths

    def _build_terms(self) -> None:
        lengths = []
        postings: dict[str, list[tuple[int, int]]] = {}
        for i, text in enumerate(self.texts):
            counts = Counter(terms(text))
            lengths.append(sum(counts.values()))
            for term, tf in counts.items():
                postings.setdefault(term, []).append((i, tf))
        self._postings = {
            term: (np.asarray([p[0] for p in found], np.int64),
                   np.asarray([p[1] for p in found], np.float64))
            for term, found in postings.items()
        }  # fmt: skip
        self._lengths = np.asarray(lengths, dtype=np.float32)


def make_entry(file_id: str, rows: Sequence[dict[str, Any]], tag: bytes | None) -> Entry:
    """A document's entry; its vectors only when every chunk has one made by the model tagged
    ``tag`` (the one questions are embedded with now)."""
    found = [unpack(tag, r["vector"]) for r in rows] if tag is not None else []
    complete = bool(found) and all(v is not None for v in found)
    stale = tag is not None and any(
        v is None and r["vector"] is not None for v, r in zip(found, rows, strict=True)
    )
    vectors = np.vstack([v for v in found if v is not None]) if complete else None
    starts = None
    if complete:
        counts = [len(v) for v in found if v is not None]
        starts = np.concatenate([[0], np.cumsum(counts[:-1])]).astype(np.int64)
    return Entry(file_id, [r["n"] for r in rows], [r["page"] for r in rows],
                 [r["text"] for r in rows], vectors, complete, time.monotonic(), tag,
                 stale, starts=starts)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Hit:
    file_id: str
    n: int
    page: int | None
    text: str
    score: float


Loader = Callable[[Sequence[str]], Awaitable[list[dict[str, Any]]]]


class Index:
    """The per-process cache of entries and the search over several of them. ``tag`` tells
    which model's vectors to use now (None: lexical only); ``on_stale`` hears of each document
    found with another model's vectors."""

    def __init__(
        self,
        load: Loader,
        max_bytes: int,
        tag: Callable[[], bytes | None] = lambda: None,
        on_stale: Callable[[str], None] = lambda _file_id: None,
    ) -> None:
        self._load = load
        self.max_bytes = max_bytes
        self._tag = tag
        self._on_stale = on_stale
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0

    def forget(self, file_id: str) -> None:
        entry = self._entries.pop(file_id, None)
        if entry is not None:
            self._bytes -= entry.nbytes

    async def entries(self, file_ids: Sequence[str]) -> list[Entry]:
        """The files' entries (those with chunks), loading what the cache does not hold."""
        loaded: dict[str, Entry] = {}
        now = time.monotonic()
        tag = self._tag()
        for fid in file_ids:
            entry = self._entries.get(fid)
            if entry is None:
                continue
            if entry.tag != tag or (not entry.complete and now - entry.loaded_at > STALE_SECONDS):
                self.forget(fid)
        missing = [f for f in file_ids if f not in self._entries]
        if missing:
            by_file: dict[str, list[dict[str, Any]]] = {f: [] for f in missing}
            for row in await self._load(missing):
                by_file[row["file_id"]].append(row)
            loaded = {fid: make_entry(fid, rows, tag) for fid, rows in by_file.items() if rows}
            for entry in loaded.values():
                if entry.stale:
                    self._on_stale(entry.file_id)
        found = []
        for fid in file_ids:
            entry = loaded.get(fid) or self._entries.get(fid)
            if entry is None:
                continue
            if fid in loaded:
                self._keep(entry)
            else:
                self._entries.move_to_end(fid)
            found.append(entry)
        return found

    def _keep(self, entry: Entry) -> None:
        self.forget(entry.file_id)
        self._entries[entry.file_id] = entry
        self._bytes += entry.nbytes
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, old = self._entries.popitem(last=False)
            self._bytes -= old.nbytes


def search(
    entries: Sequence[Entry],
    query_vector: Matrix | None,
    query: str,
    k: int,
    lexical_weight: float = LEXICAL_WEIGHT,
) -> list[Hit]:
    """The ``k`` best chunks: by cosine similarity plus ``lexical_weight`` × the idf-weighted
    share of the question's terms each holds (BM25 alone when some document has no vectors
    yet, or there is no question vector);
    a chunk that neither side finds (cosine ≤ 0, no word in common) is not returned."""
    if not entries:
        return []
    offsets, total = [], 0
    for entry in entries:
        offsets.append(total)
        total += len(entry.ns)
    scores = np.zeros(total, dtype=np.float64)
    found = np.zeros(total, dtype=bool)
    dense = False
    if query_vector is not None and all(e.vectors is not None for e in entries):
        dense = True
        # One product per document, not one over a stacked matrix: no copy, and each stays
        # below the size where OpenBLAS fans out to threads (measured on a busy 2-CPU box:
        # 3,000 chunks 0.2 ms this way, 21 ms as one threaded product).
        scores += np.concatenate([_cosines(e, query_vector) for e in entries])
        found |= scores > 0
    lexical = None
    if not dense or lexical_weight > 0:
        lexical, coverage = _bm25(entries, offsets, total, terms(query))
    if lexical is not None:
        scores += lexical_weight * coverage if dense else lexical / lexical.max()
        found |= lexical > 0
    candidates = np.flatnonzero(found)
    top = candidates[np.argsort(-scores[candidates], kind="stable")[:k]]
    hits = []
    for index in top:
        e = int(np.searchsorted(offsets, index, side="right")) - 1
        entry, i = entries[e], int(index) - offsets[e]
        hits.append(Hit(entry.file_id, entry.ns[i], entry.pages[i], entry.texts[i],
                        float(scores[index])))  # fmt: skip
    return hits


def _cosines(entry: Entry, query_vector: Matrix) -> npt.NDArray[np.float64]:
    """Each chunk's cosine: with one vector, that vector's; with windows (embed.views: the
    whole chunk's row first), the mean of the whole chunk's and the best row's — what the
    passage is about, and the sentences that answer."""
    assert entry.vectors is not None
    rows = (entry.vectors @ query_vector).astype(np.float64)
    if entry.starts is None or len(rows) == len(entry.starts):
        return rows
    found: npt.NDArray[np.float64] = (rows[entry.starts]
                                      + np.maximum.reduceat(rows, entry.starts)) / 2  # fmt: skip
    return found


def _bm25(
    entries: Sequence[Entry], offsets: list[int], total: int, query_terms: list[str]
) -> tuple[npt.NDArray[np.float64] | None, npt.NDArray[np.float64]]:
    """Each chunk's BM25 score (None when no chunk holds a term of the question) and the
    share of the question's terms it holds, each weighted by its idf (a term no chunk holds
    weighs the most)."""
    covered = np.zeros(total, dtype=np.float64)
    if not query_terms:
        return None, covered
    lengths = np.concatenate([e.lengths for e in entries]).astype(np.float64)
    average = float(lengths.mean()) if total else 1.0
    norm = _BM25_K1 * (1 - _BM25_B + _BM25_B * lengths / max(average, 1.0))
    scores = np.zeros(total, dtype=np.float64)
    weights = 0.0  # the idf of every term of the question, found or not
    for term in set(query_terms):
        found = [(offsets[e] + p[0], p[1]) for e, entry in enumerate(entries)
                 if (p := entry.postings.get(term)) is not None]  # fmt: skip
        if not found:
            weights += math.log(1 + (total + 0.5) / 0.5)
            continue
        idx = np.concatenate([f[0] for f in found])
        tf = np.concatenate([f[1] for f in found])
        idf = math.log(1 + (total - len(idx) + 0.5) / (len(idx) + 0.5))
        weights += idf
        scores[idx] += idf * tf * (_BM25_K1 + 1) / (tf + norm[idx])
        covered[idx] += idf
    return (scores if scores.any() else None), covered / weights
