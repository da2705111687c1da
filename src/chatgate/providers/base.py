"""The ``Provider`` seam: one object per configured upstream, speaking OpenAI chunks to the gateway.

A provider takes an OpenAI-shaped request body and the upstream model name, and returns an
OpenAI-shaped completion (``chat``) or an async iterator of OpenAI chunk dicts (``stream``).
It raises only :mod:`chatgate.errors` exceptions: HTTP-client exceptions end at its boundary.
A provider may also offer legacy completions and embeddings (:class:`CompletionsProvider`,
:class:`EmbeddingsProvider`); the gateway asks with :func:`supports` before calling them.

A provider type is a :class:`ProviderPlugin`: its name, its config model (a
:class:`~chatgate.config.ProviderConfig` subclass) and a factory. Built-in types and outside
packages publish one the same way, see :mod:`chatgate.providers.registry`.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

import orjson

from chatgate.protocol.openai import ChunkBatch
from chatgate.providers.settings import ProviderConfig

C = TypeVar("C", bound=ProviderConfig)


@runtime_checkable
class Provider(Protocol):
    name: str

    async def start(self) -> None:
        """Open connection pools / load weights. Called once from the app's lifespan."""

    async def close(self) -> None:
        """Release everything ``start`` opened."""

    async def chat(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        """One whole completion for ``body`` sent to upstream ``model``."""

    def stream(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> AsyncIterator[ChunkBatch]:
        """The completion as batches of chunks (see ``ChunkBatch``); ends normally only after
        the upstream's last chunk."""

    async def list_models(self) -> list[str]:
        """Upstream model names this provider can serve right now."""


@runtime_checkable
class CompletionsProvider(Protocol):
    """Optional: OpenAI legacy completions (``prompt``, ``suffix`` for fill-in-the-middle)."""

    async def completions(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        """One whole ``text_completion`` for ``body`` sent to upstream ``model``."""

    def completions_stream(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> AsyncIterator[ChunkBatch]:
        """The ``text_completion`` chunks, in batches, ending with the usage chunk."""


@runtime_checkable
class EmbeddingsProvider(Protocol):
    """Optional: OpenAI embeddings, answered with float vectors."""

    async def embeddings(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        """OpenAI's embeddings ``list`` object for ``body`` (``encoding_format`` float)."""


@runtime_checkable
class ModelKinds(Protocol):
    """Optional: a provider whose list mixes chat and embedding models (GigaChat's does)."""

    def model_kind(self, model: str) -> Literal["chat", "embeddings"]:
        """What the listed ``model`` is for."""


def supports(provider: Provider, op: str) -> bool:
    """Whether ``provider`` can serve operation ``op`` (chat, completions, embeddings)."""
    if op == "completions":
        return isinstance(provider, CompletionsProvider)
    if op == "embeddings":
        return isinstance(provider, EmbeddingsProvider)
    return True


@dataclass(frozen=True, slots=True)
class ProviderPlugin(Generic[C]):
    """One provider type: ``providers.<name>`` with ``type: <type>`` is validated by
    ``config_model`` and built by ``factory(name, config)``.

    Publish it as an entry point in the group ``chatgate.providers`` (the entry point's name is
    the type), or hand it to ``ProviderRegistry.register``. Keep the module that defines it
    cheap to import: configuration loads it, so heavy libraries belong in ``factory`` or later.
    """

    type: str
    config_model: builtins.type[C]  # (`type` is the field above)
    factory: Callable[[str, C], Provider]


def redact(text: str, secrets: Iterable[str]) -> str:
    """Remove any of ``secrets`` from ``text`` (upstream error messages sometimes echo keys)."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, "***")
    return text


def upstream_error_message(raw: bytes, limit: int = 500) -> str:
    """The human part of an upstream error body: its ``error.message`` if it is JSON."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:limit].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail") or err.get("msg")
            if msg is not None:
                return str(msg)[:limit]
        elif isinstance(err, str):
            return err[:limit]
        if "message" in data:
            return str(data["message"])[:limit]
    return raw[:limit].decode("utf-8", "replace").strip()


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: rare for APIs; the key pool falls back to its own backoff
