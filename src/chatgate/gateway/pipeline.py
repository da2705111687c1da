"""The request path, composed in one place (ARCHITECTURE.md: "one request path, small stages").

    prepare (model defaults, history rules) → cache lookup → single-flight
      → caller: router's deployments (+ fallbacks) → key pool → queue → provider
      → [cache store] → reasoning filter → usage shaping → chunks out

Auth, rate limits and usage accounting wrap this at the API edge. Each stage is its own object.
Streams are async iterators of batches of parsed chunks (``ChunkBatch``); framing is the API's.
Fallbacks happen only before the first chunk: once a byte has reached the client, an error ends
the stream instead of silently switching models mid-answer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from chatgate.config import ReasoningMode
from chatgate.gateway.cache.keys import cache_key
from chatgate.gateway.caching import ResponseCache
from chatgate.gateway.caller import UpstreamCaller
from chatgate.gateway.reasoning import StreamFilter, apply_to_message, clean_history
from chatgate.gateway.router import Deployment, Router
from chatgate.protocol.openai import ChatRequest, ChunkBatch, wants_usage


def prepare_body(body: dict[str, Any], dep: Deployment) -> dict[str, Any]:
    """The body as this deployment should get it: earlier turns' reasoning removed, the model's
    system prompt first when the client sent none. The client's dict is never modified."""
    messages = body["messages"]
    cleaned = clean_history(messages)
    if cleaned is not None:
        messages = cleaned
    settings = dep.settings
    if (
        settings is not None
        and settings.system_prompt
        and not any(m.get("role") in ("system", "developer") for m in messages)
    ):
        messages = [{"role": "system", "content": settings.system_prompt}, *messages]
    return body if messages is body["messages"] else {**body, "messages": messages}


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

    def route(self, req: ChatRequest, route: list[Deployment] | None) -> list[Deployment]:
        return route if route is not None else self.router.candidates(req.model)

    def reasoning_for(self, req: ChatRequest, dep: Deployment) -> tuple[ReasoningMode, bool]:
        """The mode (request header, else the model's, else the default) and whether the
        model's answer starts inside a <think> block."""
        settings = dep.settings
        mode = req.reasoning or (settings.reasoning if settings else None) or self.reasoning
        return mode, bool(settings and settings.reasoning_starts_inside)  # type: ignore[return-value]

    # -- whole answers ---------------------------------------------------------------------------
    async def complete(
        self, req: ChatRequest, route: list[Deployment] | None = None
    ) -> dict[str, Any]:
        deps = self.route(req, route)
        bodies = [prepare_body(req.body, d) for d in deps]  # once: for the key and the call
        if self.cache is None:
            result = await self.caller.complete(deps, bodies)
        else:
            key = cache_key(bodies[0], deps[0].qualified_name)
            result = await self.cache.complete(key, req, lambda: self.caller.complete(deps, bodies))
        usage = result.get("usage")
        req.usage = usage if isinstance(usage, dict) else None
        mode, starts_inside = self.reasoning_for(req, deps[0])
        if mode == "keep":
            return result
        choices = [
            {**c, "message": apply_to_message(c["message"], mode, starts_inside)}
            if isinstance(c, dict) and isinstance(c.get("message"), dict)
            else c
            for c in result.get("choices") or ()
        ]
        return {**result, "choices": choices}

    # -- streams ---------------------------------------------------------------------------------
    async def stream(
        self, req: ChatRequest, route: list[Deployment] | None = None
    ) -> AsyncGenerator[ChunkBatch, None]:
        deps = self.route(req, route)
        bodies = [prepare_body(req.body, d) for d in deps]
        if self.cache is None:
            source: AsyncIterator[ChunkBatch] = self.caller.stream(deps, bodies)
        else:
            key = cache_key(bodies[0], deps[0].qualified_name)
            source = self.cache.stream(key, req, lambda: self.caller.stream(deps, bodies))
        mode, starts_inside = self.reasoning_for(req, deps[0])
        filt = StreamFilter(mode, starts_inside) if mode != "keep" else None
        usage = wants_usage(req.body)
        try:
            async for batch in source:
                last = batch[-1].get("usage")
                if isinstance(last, dict):  # usage comes last: one look per batch finds it
                    req.usage = last
                if filt is not None:
                    batch = filt.batch(batch)
                if not usage:  # asked upstream for our own accounting; the client did not
                    batch = [c for c in batch if c.get("choices") or not c.get("usage")]
                if batch:
                    yield batch
        finally:
            await _aclose(source)


async def _aclose(it: AsyncIterator[ChunkBatch]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()
