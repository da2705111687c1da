"""Calling upstream: deployment → key pool → queue → provider, with retries and fallbacks.

For each deployment in the route (the model, then its fallbacks): take the best key from the
provider's pool, wait for a slot in its queue, call. A failure releases the key with its
verdict. It is retried with backoff — on another key when the pool has one — only where the
upstream cannot have started the work (:func:`retry_safe`: no connection could be made, 429,
503 with Retry-After, a refused key), unless the provider's ``retry_unsafe`` allows the rest
too: a POST that reached the upstream and then timed out or broke may be running — and billed —
there already, so sending it again would pay twice. After that the next fallback is tried. All
of it happens before the first batch is handed on; once an answer has begun, an error ends it.
A client mistake the upstream noticed (400, 404, 413, 422) is returned at once.

Whole answers and streams share the one loop: a whole answer is a stream of one batch holding
the completion (``[completion]``). Every operation (chat, legacy completions, embeddings) shares
it too: only the provider method called differs, and a deployment whose provider lacks the
operation is passed over for the next fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from chatgate.errors import (
    GatewayError,
    InvalidRequestError,
    RateLimitError,
    UpstreamError,
    client_error,
)
from chatgate.gateway.keypool import KeyPool, backoff_delays
from chatgate.gateway.queue import UpstreamQueue
from chatgate.gateway.router import Deployment
from chatgate.protocol.openai import ChunkBatch, Operation
from chatgate.providers.base import CompletionsProvider, EmbeddingsProvider, supports

_CLIENT_FAULT = frozenset({400, 404, 413, 422})
_KEY_REFUSED = frozenset({401, 403})


def retry_safe(exc: UpstreamError) -> bool:
    """Whether the upstream cannot have started work on the request: it was never sent, or the
    upstream said no before starting (429, 503 with Retry-After, our key refused)."""
    status = exc.upstream_status
    return (
        not exc.sent
        or status == 429
        or status in _KEY_REFUSED
        or (status == 503 and exc.retry_after is not None)
    )


async def _whole(
    dep: Deployment, body: dict[str, Any], key: str | None, op: Operation = "chat"
) -> AsyncGenerator[ChunkBatch, None]:
    provider = dep.provider
    if op == "embeddings":
        assert isinstance(provider, EmbeddingsProvider)
        yield [await provider.embeddings(body, dep.upstream_model, key)]
    elif op == "completions":
        assert isinstance(provider, CompletionsProvider)
        yield [await provider.completions(body, dep.upstream_model, key)]
    else:
        yield [await provider.chat(body, dep.upstream_model, key)]


def _batches(
    dep: Deployment, body: dict[str, Any], key: str | None, stream: bool, op: Operation
) -> AsyncIterator[ChunkBatch]:
    if not stream:
        return _whole(dep, body, key, op)
    if op == "completions":
        assert isinstance(dep.provider, CompletionsProvider)
        return dep.provider.completions_stream(body, dep.upstream_model, key)
    return dep.provider.stream(body, dep.upstream_model, key)


def unsupported(model: str, op: Operation) -> InvalidRequestError:
    what = "embeddings" if op == "embeddings" else "legacy completions (/v1/completions)"
    return InvalidRequestError(
        f"The model `{model}` does not support {what}.", param="model", code="unsupported_model"
    )


class UpstreamCaller:
    def __init__(
        self,
        pools: Mapping[str, KeyPool],
        queues: Mapping[str, UpstreamQueue],
        retries: int = 2,
        backoff_base: float = 0.2,
        on_error: Callable[[str, int | None], None] | None = None,
        retry_unsafe: Collection[str] = (),
    ) -> None:
        self.on_error = on_error
        self.retry_unsafe = frozenset(retry_unsafe)  # providers retried even after a send
        self.pools = pools
        self.queues = queues
        self.retries = retries
        self.backoff_base = backoff_base

    def _slot(self, dep: Deployment) -> AbstractAsyncContextManager[Any]:
        queue = self.queues.get(dep.provider_name)
        return queue.slot() if queue is not None else nullcontext()

    def _count(self, dep: Deployment, exc: UpstreamError) -> None:
        if self.on_error is not None:
            self.on_error(dep.provider_name, exc.upstream_status)

    def _pool(self, dep: Deployment) -> KeyPool:
        pool = self.pools.get(dep.provider_name)
        if pool is None:
            pool = KeyPool(dep.provider_name, [])
        return pool

    async def call(
        self,
        deps: list[Deployment],
        bodies: list[dict[str, Any]],
        stream: bool,
        op: Operation = "chat",
    ) -> AsyncGenerator[ChunkBatch, None]:
        """The answer as batches; ``bodies[i]`` is what ``deps[i]`` gets (already prepared for
        it). With ``stream`` false the one batch is ``[completion]``."""
        last: GatewayError | None = None
        for dep, body in zip(deps, bodies, strict=True):
            if op != "chat" and not supports(dep.provider, op):
                last = last or unsupported(dep.name, op)
                continue
            delays = backoff_delays(self.retries, self.backoff_base)
            for attempt in range(self.retries + 1):
                try:
                    lease = self._pool(dep).acquire()
                except (RateLimitError, UpstreamError) as exc:
                    last = exc  # no usable key here now: the next fallback may have one
                    break
                outcome: BaseException | None = None
                started = False
                try:
                    async with self._slot(dep):
                        batches = _batches(dep, body, lease.key, stream, op)
                        try:
                            first = await anext(batches, None)
                            if first is None:
                                raise UpstreamError(f"{dep.provider_name}: empty stream")
                            started = True
                            lease.accepted()
                            yield first
                            async for batch in batches:
                                yield batch
                        finally:
                            aclose = getattr(batches, "aclose", None)
                            if aclose is not None:
                                await aclose()
                except UpstreamError as exc:
                    outcome = exc
                    self._count(dep, exc)
                    if started:  # the answer has begun: no retry, no fallback; it ends here
                        raise
                    if exc.upstream_status in _CLIENT_FAULT:
                        raise client_error(exc) from None
                    last = exc
                    if not retry_safe(exc) and dep.provider_name not in self.retry_unsafe:
                        break  # it may be working on it: not again here (a fallback may serve)
                    if attempt < self.retries:
                        await asyncio.sleep(delays[attempt])
                    continue
                except BaseException as exc:
                    outcome = exc
                    raise
                finally:
                    lease.release_for(outcome)
                return
        raise _final(last)


def _final(last: GatewayError | None) -> GatewayError:
    if last is None:
        return UpstreamError("no deployment could take the request")
    return client_error(last) if isinstance(last, UpstreamError) else last
