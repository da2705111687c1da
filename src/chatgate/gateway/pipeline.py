"""The answering half of the request path: from an admitted request to the answer.

    prepare (model defaults, history rules) → cache lookup → single-flight
      → caller: router's deployments (+ fallbacks) → key pool → queue → provider
      → [cache store] → reasoning filter → usage shaping → ``Answer``

The policy half (authenticate, model access, budget, rate-limit reserve; then reconcile, usage,
metrics, access log) wraps this in :mod:`chatgate.gateway.path`. Each stage is its own object,
written once for whole answers and streams: a whole answer travels as a stream of one batch,
``[completion]``. The wire format is the door's.

Legacy completions and embeddings (``req.op``) walk the same stages; the chat-only ones (message
preparation, the reasoning filter) pass them through untouched.

``Pipeline.open`` returns once the first batch is in hand, so every failure before the first
byte is raised from it (and fallbacks stay possible); after that an error ends the stream
instead of silently switching models mid-answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from chatgate.config import ReasoningMode
from chatgate.errors import UpstreamError
from chatgate.gateway.cache.keys import cache_key
from chatgate.gateway.caching import CacheStatus, ResponseCache
from chatgate.gateway.caller import UpstreamCaller
from chatgate.gateway.reasoning import StreamFilter, apply_to_message, clean_history
from chatgate.gateway.router import Deployment, Router
from chatgate.protocol.embeddings import upstream_body
from chatgate.protocol.openai import ChatRequest, ChunkBatch, wants_usage


def prepare_body(body: dict[str, Any], dep: Deployment) -> dict[str, Any]:
    """The body as this deployment should get it: earlier turns' reasoning removed, the model's
    system prompt first when the client sent none, the model's ``params`` for fields the client
    did not set. The client's dict is never modified."""
    settings = dep.settings
    if settings is not None and settings.params:
        missing = {k: v for k, v in settings.params.items() if k not in body}
        if missing:
            body = {**body, **missing}
    messages = body["messages"]
    cleaned = clean_history(messages)
    if cleaned is not None:
        messages = cleaned
    if (
        settings is not None
        and settings.system_prompt
        and not any(m.get("role") in ("system", "developer") for m in messages)
    ):
        messages = [{"role": "system", "content": settings.system_prompt}, *messages]
    return body if messages is body["messages"] else {**body, "messages": messages}


def prepare(req: ChatRequest, dep: Deployment) -> dict[str, Any]:
    """``req``'s body as ``dep`` should get it, for any operation."""
    if req.op == "chat":
        return prepare_body(req.body, dep)
    if req.op == "embeddings":
        return upstream_body(req.body)
    return req.body


def cache_kind(req: ChatRequest) -> str:
    """What besides the body and deployment keys ``req``'s answer (see ``cache.keys``)."""
    if req.op == "chat":
        return ""
    if req.op == "completions" and req.stream:
        return "completions+stream"
    return req.op


class Answer:
    """The pipeline's result record: the answer in the request's kind and what it cost.

    ``cache`` is known at once; ``usage`` (the upstream's, as reported) once the answer has been
    read to its end. A whole answer is ``completion``; a stream is iterated for batches of
    chunks (already filtered for reasoning and usage), and must be closed (``aclose``).
    """

    __slots__ = ("_filter", "_first", "_source", "_strip_usage", "cache", "completion", "usage")

    def __init__(self, cache: CacheStatus) -> None:
        self.cache = cache
        self.usage: dict[str, Any] | None = None
        self.completion: dict[str, Any] | None = None
        self._first: ChunkBatch | None = None
        self._source: AsyncIterator[ChunkBatch] | None = None
        self._filter: StreamFilter | None = None
        self._strip_usage = False

    def __aiter__(self) -> Answer:
        return self

    async def __anext__(self) -> ChunkBatch:
        if self._first is not None:
            batch, self._first = self._first, None
            return batch
        source = self._source
        if source is None:
            raise StopAsyncIteration
        while True:
            batch = self._shape(await source.__anext__())
            if batch:
                return batch

    def _shape(self, batch: ChunkBatch) -> ChunkBatch:
        last = batch[-1].get("usage")
        if isinstance(last, dict):  # usage comes last: one look per batch finds it
            self.usage = last
        if self._filter is not None:
            batch = self._filter.batch(batch)
        if self._strip_usage:  # asked upstream for our own accounting; the client did not
            batch = [c for c in batch if c.get("choices") or not c.get("usage")]
        return batch

    async def aclose(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            await _aclose(source)


class Pipeline:
    def __init__(
        self,
        router: Router,
        caller: UpstreamCaller,
        reasoning: ReasoningMode = "separate",
        cache: ResponseCache | None = None,
    ) -> None:
        self.router = router
        self.caller = caller
        self.reasoning = reasoning
        self.cache = cache

    def reasoning_for(self, req: ChatRequest, dep: Deployment) -> tuple[ReasoningMode, bool]:
        """The mode (request header, else the model's, else the default) and whether the
        model's answer starts inside a <think> block."""
        settings = dep.settings
        mode = req.reasoning or (settings.reasoning if settings else None) or self.reasoning
        return mode, bool(settings and settings.reasoning_starts_inside)  # type: ignore[return-value]

    async def open(
        self, req: ChatRequest, route: list[Deployment] | None = None, partition: str = ""
    ) -> Answer:
        """The answer to ``req``, its first batch in hand (``route``: deployments to use
        instead of the router's for ``req.model``; ``partition``: the caller's share of the
        cache and of single-flight, see ``cache.scope``)."""
        deps = route if route is not None else self.router.candidates(req.model)
        bodies = [prepare(req, d) for d in deps]  # once: for the key and the call
        stream, op = req.stream, req.op
        if self.cache is None:
            answer = Answer("bypass")
            source: AsyncIterator[ChunkBatch] = self.caller.call(deps, bodies, stream, op)
        else:
            key = cache_key(bodies[0], deps[0].qualified_name, cache_kind(req), partition)
            status, source = await self.cache.open(
                key, req, lambda: self.caller.call(deps, bodies, stream, op)
            )
            answer = Answer(status)
        if op == "chat":
            mode, starts_inside = self.reasoning_for(req, deps[0])
        else:
            mode, starts_inside = "keep", False  # reasoning is a chat thing
        try:
            if not stream:
                answer.completion = _whole(await anext(source), mode, starts_inside)
                usage = answer.completion.get("usage")
                answer.usage = usage if isinstance(usage, dict) else None
                if await anext(source, None) is not None:  # ends it normally: no GeneratorExit
                    await _aclose(source)
                return answer
            answer._source = source
            answer._filter = StreamFilter(mode, starts_inside) if mode != "keep" else None
            answer._strip_usage = not wants_usage(req.body)
            answer._first = await anext(answer, None)
            if answer._first is None:
                raise UpstreamError("upstream sent an empty stream")
        except BaseException:
            await _aclose(source)
            raise
        return answer


def _whole(batch: ChunkBatch, mode: ReasoningMode, starts_inside: bool) -> dict[str, Any]:
    result = batch[0]
    if mode == "keep":
        return result
    choices = [
        {**c, "message": apply_to_message(c["message"], mode, starts_inside)}
        if isinstance(c, dict) and isinstance(c.get("message"), dict)
        else c
        for c in result.get("choices") or ()
    ]
    return {**result, "choices": choices}


async def _aclose(it: AsyncIterator[ChunkBatch]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()
