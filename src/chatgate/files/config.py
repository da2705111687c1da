"""``files:`` in the configuration: uploads in the web chat, their quota, and retrieval over
documents (see :mod:`chatgate.files.service`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from chatgate.providers.settings import Section

__all__ = ["FilesConfig"]


class FilesConfig(Section):
    """Uploads in the web chat (``/api/files``): images and documents, quota, retrieval."""

    max_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="Largest upload, bytes.")
    max_image_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest image, bytes.")
    quota_bytes: int = Field(
        500 * 1024 * 1024, ge=0, description="What one user's files may take in all, bytes."
    )
    storage: Literal["database", "disk"] = Field(
        "database",
        description="Where the bytes live: `database` (every replica reads them, nothing to "
        "share) or `disk` under `dir` (replicas then need `dir` on a shared volume).",
    )
    dir: Path = Field(
        Path("./data/files"),
        description="Uploads being received (both storages) and the bytes with `storage: disk`.",
    )
    chunk_tokens: int = Field(
        160, ge=16, le=480, description="Words (or CJK characters) a document chunk holds."
    )
    chunk_overlap: int = Field(32, ge=0, description="Words two neighbouring chunks share.")
    context_tokens: int = Field(
        4000,
        ge=0,
        description="Most prompt tokens a conversation's documents take (at most half the "
        "model's budget); a conversation's documents that fit go in whole.",
    )
    top_k: int = Field(8, ge=1, le=64, description="Most passages retrieved for one question.")
    cache_bytes: int = Field(
        256 * 1024 * 1024, ge=0, description="In-process cache of document vectors, bytes."
    )
    embedding_model: str = Field(
        "local-embed-fast",
        description="The model that embeds documents and questions (its provider is called "
        "directly; with none, retrieval is lexical only). The bundled `local-embed-fast` "
        "indexes a 100-page PDF in seconds; another model re-embeds the stored chunks.",
    )
    lexical_weight: float | None = Field(
        None,
        ge=0,
        description="The share of the words' score (the idf-weighted part of the question's "
        "terms a chunk holds: 1 for all of them) added to the cosine in a search; unset: the "
        "embedding model's own (0.15 for `local-embed-fast`, 0 for others).",
    )
    import_max_bytes: int | None = Field(
        None,
        ge=1024,
        description="Largest conversation import (`POST /api/conversations/import`: the JSON "
        "export, its files base64), counted while reading. Unset: room for two of the largest "
        "uploads, at most the quota's worth, never less than `server.max_body_bytes`.",
    )

    def import_limit(self, body_limit: int) -> int:
        """The import's body limit (``import_max_bytes`` or its default); base64 is 4/3 of
        the bytes, plus a MiB for the messages."""
        if self.import_max_bytes is not None:
            return self.import_max_bytes
        files = min(2 * self.max_bytes, self.quota_bytes)  # parsed whole: RSS +2-3.6x the body
        return max(body_limit, files * 4 // 3 + 1024 * 1024)
