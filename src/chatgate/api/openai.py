"""OpenAI-compatible API: ``POST /v1/chat/completions`` (raw ASGI: the hot path), ``/v1/models``."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request

from chatgate.api.asgi import (
    SSE_HEADERS,
    ClientGone,
    DisconnectWatch,
    Receive,
    Scope,
    Send,
    chatgate_headers,
    read_body,
    send_error,
    send_json,
)
from chatgate.errors import GatewayError, ServiceUnavailableError, UpstreamError
from chatgate.gateway.reasoning import parse_mode
from chatgate.gateway.router import Deployment, known_context_window
from chatgate.gateway.usage import usage_tokens
from chatgate.observability.logging import AccessLog
from chatgate.protocol import sse
from chatgate.protocol.openai import (
    ChatRequest,
    parse_cache_headers,
    parse_json,
    validate_chat_request,
)

if TYPE_CHECKING:
    from chatgate.app import Gateway
    from chatgate.config import Config
    from chatgate.gateway.auth import Identity
    from chatgate.gateway.ratelimit import Reservation
    from chatgate.state import AppState


log = logging.getLogger(__name__)

CLIENT_GONE = 499  # logged status of a request whose client disconnected (nginx's convention)


class ChatCompletions:
    """ASGI endpoint for ``POST /v1/chat/completions``."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.access = AccessLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        wanted = chatgate_headers(scope)
        request_id = wanted.get(b"x-request-id") or os.urandom(16).hex()
        headers = [(b"x-request-id", request_id.encode("latin-1"))]
        req: ChatRequest | None = None
        identity: Identity | None = None
        reservation: Reservation | None = None
        status, error, code = 200, None, None
        state = self.gateway.state
        metrics = self.gateway.metrics
        metrics.in_flight += 1
        try:
            state = self.gateway.require_state()
            identity = await state.auth.authenticate(wanted.get(b"authorization"))
            raw = await read_body(receive, state.config.server.max_body_bytes)
            reasoning = parse_mode(wanted.get(b"x-chatgate-reasoning"))
            req = validate_chat_request(parse_json(raw), reasoning)
            parse_cache_headers(
                req, wanted.get(b"cache-control"), wanted.get(b"x-chatgate-cache-ttl")
            )
            identity.check_model(req.model)
            state.auth.check_budget(identity)
            reservation = await state.limiter.reserve(
                identity.key_id, identity.limit, estimate_tokens(req, state.config)
            )
            headers += reservation.headers
            if req.stream:
                error = await self._stream(state, req, receive, send, headers, started)
            else:
                async with DisconnectWatch(receive) as watch:
                    result = await state.pipeline.complete(req)
                    headers.append(_cache_header(req))
                    await send_json(send, 200, orjson.dumps(result), headers)
                if watch.gone:
                    status = CLIENT_GONE
        except ClientGone:
            status = CLIENT_GONE
        except GatewayError as exc:
            status, error, code = exc.status, exc.message, exc.code
            await send_error(send, exc, headers)
        except Exception as exc:  # a bug of ours: still an answer in the API's own shape
            log.exception("chat completion %s failed", request_id)
            status, error = 500, f"internal error ({type(exc).__name__})"
            with contextlib.suppress(Exception):  # fails only if the response had begun
                await send_error(send, GatewayError("Internal error; see the server log."), headers)
        finally:
            metrics.in_flight -= 1
        if state is not None and req is not None and identity is not None:
            await self._account(state, req, identity, reservation)
        if req is not None and state is not None:
            prompt, completion = usage_tokens(req.usage) if req.cache_status != "hit" else (0, 0)
            model = req.model if state.router.get(req.model) is not None else "other"
            metrics.observe_request(
                model,
                status,
                req.cache_status,
                req.stream,
                time.perf_counter() - started,
                prompt,
                completion,
                code,
            )
        self.access.request(
            request_id,
            req.model if req is not None else None,
            status,
            started,
            req.cache_status if req is not None else None,
            req.stream if req is not None else False,
            error,
        )

    @staticmethod
    async def _account(
        state: AppState, req: ChatRequest, identity: Identity, reservation: Reservation | None
    ) -> None:
        """Usage per key/model/day, the key's budget, and the rate limiter's token estimate
        corrected to what was really used. A cache hit cost the upstream nothing."""
        prompt, completion = usage_tokens(req.usage) if req.cache_status != "hit" else (0, 0)
        if reservation is None:
            return
        state.usage.record(identity.key_id, req.model, prompt, completion)
        state.auth.spend(identity.key_id, prompt + completion)
        await state.limiter.reconcile(reservation, prompt + completion)

    async def _stream(
        self,
        state: AppState,
        req: ChatRequest,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        started: float,
    ) -> str | None:
        """Send the stream; the error that ended it after it began, if one did."""
        async with DisconnectWatch(receive):
            chunks = state.pipeline.stream(req)
            try:
                # Nothing is sent before the first chunk, so an error up to here is a normal
                # HTTP error response and fallbacks stay possible.
                try:
                    first = await anext(chunks)
                except StopAsyncIteration:
                    raise UpstreamError("upstream sent an empty stream") from None
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [*SSE_HEADERS, *headers, _cache_header(req)],
                    }
                )
                body = sse.encode_batch(first)
                await send({"type": "http.response.body", "body": body, "more_body": True})
                metrics = self.gateway.metrics
                label = (req.model,) if state.router.get(req.model) is not None else ("other",)
                last = time.perf_counter()
                metrics.ttft.observe(label, last - started)
                try:
                    async for batch in chunks:
                        body = sse.encode_batch(batch)
                        await send({"type": "http.response.body", "body": body, "more_body": True})
                        now = time.perf_counter()
                        metrics.inter_chunk.observe(label, now - last)
                        last = now
                except Exception as exc:
                    # Headers are gone: the error travels in-band, then the stream closes
                    # without [DONE] so no client mistakes it for a whole answer.
                    if not isinstance(exc, GatewayError):
                        log.exception("stream failed")
                        exc = GatewayError("Internal error; see the server log.")
                    await send({"type": "http.response.body", "body": sse.encode(exc.to_body())})
                    return exc.message
                await send({"type": "http.response.body", "body": sse.DONE})
            finally:
                await chunks.aclose()
        return None


_CACHE_HEADERS = {
    status: (b"x-chatgate-cache", status.encode()) for status in ("hit", "miss", "bypass")
}


def _cache_header(req: ChatRequest) -> tuple[bytes, bytes]:
    return _CACHE_HEADERS[req.cache_status]


def estimate_tokens(req: ChatRequest, config: Config) -> int:
    """Tokens to reserve before the call: ~4 characters a token for the prompt, plus the
    completion limit the request sets (or the configured default). Reconciled afterwards."""
    chars = 0
    for message in req.messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(
                len(str(part.get("text", ""))) for part in content if isinstance(part, dict)
            )
    body = req.body
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    completion = (
        limit if isinstance(limit, int) and limit > 0 else config.rate_limits.default_max_tokens
    )
    return chars // 4 + completion


def models_router() -> APIRouter:
    router = APIRouter(tags=["OpenAI-compatible"])

    @router.get("/v1/models", summary="List routable models")
    async def list_models(request: Request) -> dict[str, Any]:
        state: AppState = request.app.state.gateway.require_state()
        return {
            "object": "list",
            "data": [model_card(state, name, dep) for name, dep in state.router.public_models()],
        }

    @router.get("/v1/models/{model:path}", summary="Describe one model")
    async def get_model(model: str, request: Request) -> dict[str, Any]:
        state: AppState = request.app.state.gateway.require_state()
        return model_card(state, model, state.router.resolve(model))

    return router


def model_card(state: AppState, name: str, dep: Deployment) -> dict[str, Any]:
    """A model as OpenAI lists it, plus ``context_window`` when it is known (configured, or the
    bundled model's ``n_ctx``): the web UI's local mode measures its context gauge against it.
    Unknown windows are left out rather than guessed."""
    card: dict[str, Any] = {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": dep.provider_name,
    }
    window = known_context_window(dep, state.config.providers)
    if window:
        card["context_window"] = window
    return card


def not_ready() -> ServiceUnavailableError:
    return ServiceUnavailableError("chatgate is starting up or shutting down", retry_after=1)
