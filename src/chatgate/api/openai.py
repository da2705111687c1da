"""OpenAI-compatible API: ``POST /v1/chat/completions`` (raw ASGI: the hot path), ``/v1/models``.

The door parses the wire format into a ``ChatRequest``, walks it along the request path
(``gateway.path``: key, allow-list, budget, rate limit, cache, upstream, usage, metrics, log) and
renders the answer as JSON or SSE.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter

from chatgate.api.asgi import (
    SSE_HEADERS,
    ClientGone,
    DisconnectWatch,
    Receive,
    Scope,
    Send,
    chatgate_headers,
    openai_error,
    read_body,
    send_error,
    send_json,
)
from chatgate.api.deps import State
from chatgate.api.schema import chat_completions_openapi
from chatgate.drain import Drain, shutting_down
from chatgate.errors import GatewayError
from chatgate.files.vision import sees_images
from chatgate.gateway.auth import bearer
from chatgate.gateway.path import CLIENT_GONE, Exchange
from chatgate.gateway.reasoning import parse_mode
from chatgate.gateway.router import Deployment, known_context_window
from chatgate.protocol import sse
from chatgate.protocol.openai import (
    ChatRequest,
    parse_cache_headers,
    parse_json,
    validate_chat_request,
)
from chatgate.state import AppState, Runtime

log = logging.getLogger(__name__)


Validate = Callable[[Any, str | None], ChatRequest]
Render = Callable[[ChatRequest, dict[str, Any]], dict[str, Any]]


class ChatCompletions:
    """ASGI endpoint for ``POST /v1/chat/completions``, and for the other OpenAI doors that
    differ only in the body they accept (``validate``), their ``api`` label and how a whole
    answer is rendered (``render``): ``/v1/completions``, ``/v1/embeddings``."""

    error_body = staticmethod(openai_error)

    def __init__(
        self,
        runtime: Runtime,
        api: str = "chat_completions",
        validate: Validate = validate_chat_request,
        render: Render | None = None,
        openapi: dict[str, Any] | None = None,
    ) -> None:
        self.runtime = runtime
        self.api = api
        self.validate = validate
        self.render = render
        self._openapi = openapi

    def openapi(self) -> dict[str, Any]:
        return self._openapi if self._openapi is not None else chat_completions_openapi()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted = chatgate_headers(scope)
        try:
            state = self.runtime.require()
        except GatewayError as exc:
            await send_error(send, exc, [])
            return
        async with state.path.begin(self.api, wanted.get(b"x-request-id")) as exchange:
            headers = [(b"x-request-id", exchange.request_id.encode("latin-1"))]
            try:
                await exchange.authenticate(bearer(wanted.get(b"authorization")))
                raw = await read_body(receive, state.config.server.max_body_bytes)
                reasoning = parse_mode(wanted.get(b"x-chatgate-reasoning"))
                req = self.validate(parse_json(raw), reasoning)
                parse_cache_headers(
                    req,
                    wanted.get(b"cache-control"),
                    wanted.get(b"x-chatgate-cache-ttl"),
                    state.config.cache.max_ttl,
                )
                await exchange.admit(req)
                headers += exchange.headers
                drain = self.runtime.drain
                async with DisconnectWatch(receive) as watch:
                    async with drain.watch() as opening:
                        answer = await exchange.open()
                    if opening.cut:  # the drain deadline came first: no answer begun to end
                        raise shutting_down()
                    headers.append(_CACHE_HEADERS[answer.cache])
                    headers += exchange.cost_headers
                    if answer.completion is not None:
                        whole = answer.completion
                        if self.render is not None:
                            whole = self.render(req, whole)
                        await send_json(send, 200, orjson.dumps(whole), headers)
                    else:
                        await _stream(exchange, send, headers, drain)
                if watch.gone:
                    exchange.status = CLIENT_GONE
            except ClientGone:
                exchange.status = CLIENT_GONE
            except GatewayError as exc:
                exchange.fail(exc)
                await send_error(send, exc, headers)
            except Exception as exc:  # a bug of ours: still an answer in the API's own shape
                log.exception("%s %s failed", self.api, exchange.request_id)
                exchange.fail(f"internal error ({type(exc).__name__})", 500)
                with contextlib.suppress(Exception):  # fails only if the response had begun
                    err = GatewayError("Internal error; see the server log.")
                    await send_error(send, err, headers)


async def _stream(
    exchange: Exchange, send: Send, headers: list[tuple[bytes, bytes]], drain: Drain
) -> None:
    """Send the opened stream. An error after the first byte travels in-band, then the
    stream closes without [DONE] so no client mistakes it for a whole answer; so does the
    server's stop, at its drain deadline."""
    answer = exchange.answer
    assert answer is not None
    await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]})
    try:
        async with drain.watch() as deadline:
            async for batch in exchange:
                body = sse.encode_batch(batch)
                await send({"type": "http.response.body", "body": body, "more_body": True})
        if deadline.cut:
            raise shutting_down()
    except Exception as exc:
        if not isinstance(exc, GatewayError):
            log.exception("stream failed")
            exc = GatewayError("Internal error; see the server log.")
        exchange.fail(exc, 200)  # the status line said 200; the log keeps the error
        await send({"type": "http.response.body", "body": sse.encode(exc.to_body())})
        return
    await send({"type": "http.response.body", "body": sse.DONE})


_CACHE_HEADERS = {
    status: (b"x-chatgate-cache", status.encode()) for status in ("hit", "miss", "bypass")
}


def models_router() -> APIRouter:
    router = APIRouter(tags=["OpenAI-compatible"])

    @router.get("/v1/models", summary="List routable models")
    async def list_models(state: AppState = State) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [model_card(state, name, dep) for name, dep in state.router.public_models()],
        }

    @router.get("/v1/models/{model:path}", summary="Describe one model")
    async def get_model(model: str, state: AppState = State) -> dict[str, Any]:
        return model_card(state, model, state.router.resolve(model))

    return router


def model_card(state: AppState, name: str, dep: Deployment) -> dict[str, Any]:
    """A model as OpenAI lists it, plus ``context_window`` when it is known (configured, or the
    bundled model's ``n_ctx``): the web UI's local mode measures its context gauge against it.
    Unknown windows are left out rather than guessed. An embedding-only model carries
    ``capabilities: ["embeddings"]``; a chat model ``capabilities: {"vision": bool}`` (whether
    the web chat sends it images: ``chatgate.files.vision``)."""
    card: dict[str, Any] = {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": dep.provider_name,
    }
    window = known_context_window(dep, state.config.providers)
    if window:
        card["context_window"] = window
    provider = state.config.providers.get(dep.provider_name)
    if dep.kind == "embeddings" or (provider is not None and provider.embeddings_only):
        card["capabilities"] = ["embeddings"]  # not a chat model: chat UIs leave it out
    else:
        card["capabilities"] = {"vision": sees_images(dep, state.config.providers)}
    return card
