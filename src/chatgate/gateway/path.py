"""The request path, whole: the policy stages around the pipeline, composed in one place.

    door (parse) → authenticate → bound on n → model access → budget → rate-limit reserve
      → pipeline (cache, single-flight, router, key pool, queue, provider, reasoning)
      → reconcile + usage + cost + metrics + access log → door (render)

Every door (``/v1/chat/completions``, the seed endpoints, the web chat, …) is a thin adapter:
it opens an :class:`Exchange` with its ``api`` name, hands over the caller's credential and the
parsed request, opens the answer and renders it; ``finish`` closes the books whatever happened.
The exchange is the request's record on the path (identity, reservation, answer, status), so
nothing is written back onto the request itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from chatgate.config import CacheScope
from chatgate.errors import GatewayError, InvalidRequestError
from chatgate.gateway.auth import ANONYMOUS_IDENTITY, Authenticator, Identity
from chatgate.gateway.pipeline import Answer, Pipeline
from chatgate.gateway.pricing import Cost, Pricing, format_amount
from chatgate.gateway.ratelimit import RateLimiter, Reservation
from chatgate.gateway.router import Deployment
from chatgate.gateway.usage import UsageRecorder, usage_tokens
from chatgate.observability.logging import AccessLog
from chatgate.observability.metrics import Metrics
from chatgate.protocol.completions import prompt_chars
from chatgate.protocol.openai import ChatRequest, ChunkBatch

CLIENT_GONE = 499  # logged status of a request whose client disconnected (nginx's convention)


def estimate_tokens(req: ChatRequest, default_max_tokens: int) -> int:
    """Tokens to reserve before the call: ~4 characters a token for the prompt, plus the
    completion limit the request sets (or the configured default) for each of its ``n``
    choices (none for embeddings). Reconciled with the real usage afterwards."""
    body = req.body
    if req.op == "embeddings":
        return prompt_chars(body.get("input")) // 4
    chars = 0
    if req.op == "completions":
        chars = prompt_chars(body.get("prompt")) + prompt_chars(body.get("suffix"))
    for message in req.messages if req.op == "chat" else ():
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(
                len(str(part.get("text", ""))) for part in content if isinstance(part, dict)
            )
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    completion = limit if isinstance(limit, int) and limit > 0 else default_max_tokens
    n = body.get("n")
    if req.op == "completions":  # best_of candidates are generated (and billed) too
        best_of = body.get("best_of")
        if isinstance(best_of, int) and best_of > (n if isinstance(n, int) else 1):
            n = best_of
    return chars // 4 + completion * (n if isinstance(n, int) and n > 1 else 1)


class RequestPath:
    """The stages, built once (``state.build_state``) and shared by every door."""

    def __init__(
        self,
        auth: Authenticator,
        limiter: RateLimiter,
        pipeline: Pipeline,
        usage: UsageRecorder,
        metrics: Metrics,
        default_max_tokens: int = 512,
        cache_scope: CacheScope = "global",
        max_n: int = 8,
        pricing: Pricing | None = None,
    ) -> None:
        self.auth = auth
        self.limiter = limiter
        self.pipeline = pipeline
        self.usage = usage
        self.metrics = metrics
        self.access = AccessLog()
        self.default_max_tokens = default_max_tokens
        self.cache_scope = cache_scope
        self.max_n = max_n
        self.pricing = pricing

    def partition(self, identity: Identity) -> str:
        """The caller's cache partition under ``cache.scope`` ("" is the shared cache).
        ``key``: the client key, else the user; ``user``: the user, else the client key.
        Anonymous callers share one partition either way."""
        scope = self.cache_scope
        if scope == "global":
            return ""
        if scope == "user" and identity.user_id is not None:
            return "u:" + identity.user_id
        return identity.subject or ""

    def begin(self, api: str, request_id: str | None = None) -> Exchange:
        """A new request through ``api`` (the door's name in metrics and logs)."""
        return Exchange(self, api, request_id or os.urandom(16).hex())


class Exchange:
    """One request's trip along the path, and its record.

    Call in order: ``authenticate`` (or ``as_user`` / ``trust``), ``admit``, ``open``, then
    iterate a stream through the exchange (``async for batch in exchange``) so its timing is
    measured. Used as ``async with``, an error escaping the block is recorded (a gateway error
    with its status, a disconnect as 499, anything else as 500) and the books are closed on the
    way out; a job that outlives its request calls ``finish`` itself. ``status`` is 200 unless
    ``fail`` or the door set it.
    """

    __slots__ = (
        "_label",
        "_last",
        "_priced",
        "answer",
        "api",
        "cost",
        "error",
        "finished",
        "identity",
        "path",
        "req",
        "request_id",
        "reservation",
        "saved",
        "started",
        "status",
    )

    def __init__(self, path: RequestPath, api: str, request_id: str) -> None:
        self.path = path
        self.api = api
        self.request_id = request_id
        self.started = time.perf_counter()
        self.identity: Identity | None = None
        self.req: ChatRequest | None = None
        self.reservation: Reservation | None = None
        self.answer: Answer | None = None
        self.status = 200
        self.error: GatewayError | str | None = None
        self.finished = False
        self.cost: Cost | None = None  # what the upstream charged for the answer
        self.saved: Cost | None = None  # an answer from chatgate's cache: what it would have
        self._priced = False
        self._label: tuple[str] = ("other",)
        self._last = 0.0
        path.metrics.in_flight += 1

    async def __aenter__(self) -> Exchange:
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None and not self.finished:
            if isinstance(exc, GatewayError):
                self.fail(exc)
            elif isinstance(exc, asyncio.CancelledError):
                self.fail("client gone", CLIENT_GONE)
            else:
                self.fail(f"internal error ({type(exc).__name__})", 500)
        try:
            await self.aclose()
        finally:
            await self.finish()

    # -- policy ----------------------------------------------------------------------------------
    async def authenticate(self, secret: str | None) -> Identity:
        """A client key's secret (``None``: the caller sent none)."""
        self.identity = await self.path.auth.authenticate(secret)
        return self.identity

    async def as_user(self, user_id: str, name: str) -> Identity:
        """A signed-in user (the door checked the session)."""
        self.identity = await self.path.auth.user(user_id, name)
        return self.identity

    def trust(self, identity: Identity = ANONYMOUS_IDENTITY) -> None:
        """An identity established elsewhere (the operator's own process, a running job)."""
        self.identity = identity

    async def admit(self, req: ChatRequest, tokens: int | None = None) -> None:
        """Bound on ``n`` → model access → budget → rate-limit reserve (``tokens``: the door's
        own estimate)."""
        identity = self.identity
        assert identity is not None, "authenticate first"
        self.req = req
        path = self.path
        n = req.body.get("n")
        if isinstance(n, int) and n > path.max_n:  # each choice is a whole answer upstream
            raise InvalidRequestError(
                f"`n` may be at most {path.max_n} here.", param="n", code="invalid_value"
            )
        identity.check_model(req.model)
        path.auth.check_budget(identity)
        if tokens is None:
            tokens = estimate_tokens(req, path.default_max_tokens)
        holder: str | None
        if identity.key_id is not None:
            holder, scope = identity.key_id, "key"
        else:
            holder, scope = identity.user_id, "user"
        self.reservation = await path.limiter.reserve(holder, identity.limit, tokens, scope)

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The ``x-ratelimit-*`` response headers of the reservation."""
        return self.reservation.headers if self.reservation is not None else []

    # -- the answer ------------------------------------------------------------------------------
    async def open(
        self, req: ChatRequest | None = None, route: list[Deployment] | None = None
    ) -> Answer:
        """The answer (first batch in hand) to the admitted request, or to ``req``: the one
        really sent when the door admitted an outline of it (the web chat's context is built
        after admission). Failures before the first byte are raised here."""
        if req is not None:
            self.req = req
        assert self.req is not None and self.reservation is not None, "admit first"
        path = self.path
        model = self.req.model
        self._label = (model,) if path.pipeline.router.get(model) is not None else ("other",)
        partition = ""
        if path.pipeline.cache is not None and self.identity is not None:
            partition = path.partition(self.identity)
        self.answer = answer = await path.pipeline.open(self.req, route, partition)
        if answer.completion is not None:
            self._price()
        if self.req.stream:
            self._last = now = time.perf_counter()
            path.metrics.ttft.observe(self._label, now - self.started)
        return answer

    def __aiter__(self) -> Exchange:
        return self

    async def __anext__(self) -> ChunkBatch:
        assert self.answer is not None
        batch = await self.answer.__anext__()
        now = time.perf_counter()
        self.path.metrics.inter_chunk.observe(self._label, now - self._last)
        self._last = now
        return batch

    async def aclose(self) -> None:
        if self.answer is not None:
            await self.answer.aclose()

    # -- money -----------------------------------------------------------------------------------
    def _price(self) -> None:
        """Price the answer once its usage is known: ``cost``, or ``saved`` for a cache hit."""
        if self._priced:
            return
        self._priced = True
        pricing, answer, req = self.path.pricing, self.answer, self.req
        if pricing is None or answer is None or req is None or answer.usage is None:
            return
        cost = pricing.cost(req.model, answer.usage)
        if cost is None:
            return
        if answer.cache == "hit":
            self.saved = cost
        else:
            self.cost = cost

    @property
    def cost_headers(self) -> list[tuple[bytes, bytes]]:
        """``x-chatgate-cost`` (+ ``-currency``, and ``x-chatgate-cost-saved`` for a cache hit)
        of a whole answer whose model has a price; a stream's cost is known only at its end."""
        cost, saved = self.cost, self.saved
        if saved is not None:
            return [
                (b"x-chatgate-cost", b"0"),
                (b"x-chatgate-cost-currency", saved.currency.encode()),
                (b"x-chatgate-cost-saved", format_amount(saved.nanos).encode()),
            ]
        if cost is None:
            return []
        return [
            (b"x-chatgate-cost", format_amount(cost.nanos).encode()),
            (b"x-chatgate-cost-currency", cost.currency.encode()),
        ]

    # -- the books -------------------------------------------------------------------------------
    def fail(self, error: GatewayError | str, status: int | None = None) -> None:
        """The request ended in ``error`` (a gateway error, or a message with ``status``)."""
        self.error = error
        if isinstance(error, GatewayError):
            self.status = error.status if status is None else status
        elif status is not None:
            self.status = status

    @property
    def usage(self) -> tuple[int, int]:
        """(prompt, completion) tokens the upstream spent on this request; a cache hit cost it
        nothing."""
        answer = self.answer
        if answer is None or answer.cache == "hit":
            return 0, 0
        return usage_tokens(answer.usage)

    async def finish(self) -> None:
        """Reconcile the reservation, record usage, count metrics, write the access line.
        Safe to call more than once (the first call counts) and never raises."""
        if self.finished:
            return
        self.finished = True
        path = self.path
        path.metrics.in_flight -= 1
        req, identity, answer = self.req, self.identity, self.answer
        prompt, completion = self.usage
        self._price()
        cost, saved = self.cost, self.saved
        if self.reservation is not None and req is not None and identity is not None:
            path.usage.record(
                identity.key_id, req.model, prompt, completion, identity.user_id, cost, saved
            )
            path.auth.spend(identity, prompt + completion, cost.budget_nanos if cost else 0)
            # The limiter degrades on its own; a missed correction is small.
            with contextlib.suppress(Exception):
                await path.limiter.reconcile(self.reservation, prompt + completion)
        error = self.error
        code = error.code if isinstance(error, GatewayError) else None
        message = error.message if isinstance(error, GatewayError) else error
        cache = answer.cache if answer is not None else "bypass"
        stream = req.stream if req is not None else False
        path.metrics.observe_request(
            self.api,
            _label(path, req.model) if req is not None else "other",
            self.status,
            cache,
            stream,
            time.perf_counter() - self.started,
            prompt,
            completion,
            code,
        )
        if cost is not None or saved is not None:
            path.metrics.observe_cost(
                _label(path, req.model) if req is not None else "other", cost, saved
            )
        path.access.request(
            self.api,
            self.request_id,
            req.model if req is not None else None,
            self.status,
            self.started,
            cache if req is not None else None,
            stream,
            message,
            identity.key_id if identity is not None else None,
            identity.user_id if identity is not None else None,
        )


def _label(path: RequestPath, model: str) -> str:
    return model if path.pipeline.router.get(model) is not None else "other"
