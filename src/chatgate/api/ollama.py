"""Ollama API: ``POST /api/chat`` and ``POST /api/generate`` (raw ASGI, NDJSON streams by
default, as Ollama does), ``GET /api/tags``, ``POST /api/show``, ``GET /api/version`` and
``GET /api/ps`` (FastAPI).

These six paths are Ollama's; the chat application's own ``/api/`` routes (``auth``, ``me``,
``conversations``, ``generations``, ``search``, ``events``, ``ws``) use other names. A request
walks the one path as ``api="ollama"``; the key, when keys are required, comes as
``Authorization: Bearer`` (what the ``ollama`` clients send from ``OLLAMA_API_KEY``). Errors are
Ollama's ``{"error": "…"}`` with the status; after a stream has begun, an ``{"error": …}`` line
ends it, which Ollama's clients raise.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from chatgate.api import asgi
from chatgate.api.asgi import (
    ClientGone,
    DisconnectWatch,
    Receive,
    Scope,
    Send,
    chatgate_headers,
    read_body,
    send_json,
)
from chatgate.api.deps import State
from chatgate.api.schema import error_response, json_request
from chatgate.drain import Drain, shutting_down
from chatgate.errors import GatewayError, InvalidRequestError, ModelNotFoundError
from chatgate.gateway.auth import bearer
from chatgate.gateway.path import CLIENT_GONE, Exchange
from chatgate.gateway.reasoning import parse_mode
from chatgate.gateway.router import known_context_window
from chatgate.protocol import ollama
from chatgate.protocol.openai import parse_cache_headers, parse_json, validate_chat_request
from chatgate.state import AppState, Runtime

log = logging.getLogger(__name__)

CHAT_PATH = "/api/chat"
GENERATE_PATH = "/api/generate"
NDJSON_HEADERS = [(b"content-type", b"application/x-ndjson")]
OLLAMA_PATHS = ("/api/tags", "/api/show", "/api/version", "/api/ps", CHAT_PATH, GENERATE_PATH)


def error_message(exc: GatewayError, asked: str | None) -> str:
    """Ollama's wording for an unknown model (clients look for "not found"), else ours."""
    if isinstance(exc, ModelNotFoundError) and asked is not None:
        return f'model "{asked}" not found'
    return exc.message


def error_body(exc: GatewayError, asked: str | None = None) -> dict[str, str]:
    """Ollama's error shape, ``{"error": "…"}``: every Ollama door's, also for refusals made
    before the door (``asgi.ErrorShapes``)."""
    return {"error": error_message(exc, asked)}


async def send_error(
    send: Send, exc: GatewayError, headers: list[tuple[bytes, bytes]], asked: str | None = None
) -> None:
    await asgi.send_error(send, exc, headers, lambda e: error_body(e, asked))


def _model(state: AppState, body: Any) -> tuple[str, str]:
    """(the name the client asked for, the chatgate model it means)."""
    if not isinstance(body, dict):
        raise InvalidRequestError("Request body must be a JSON object.")
    name = body.get("model") or body.get("name")  # `name`: older clients
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("`model` is required.", param="model")
    return name, ollama.resolve_model(name, lambda m: state.router.get(m) is not None)


class OllamaDoor:
    """ASGI endpoint for ``POST /api/chat`` (``kind="chat"``) or ``/api/generate``."""

    error_body = staticmethod(error_body)

    def __init__(self, runtime: Runtime, kind: str) -> None:
        self.runtime = runtime
        self.kind = kind
        chat = kind == "chat"
        self.translate = ollama.chat_body if chat else ollama.generate_body
        self.render = ollama.chat_response if chat else ollama.generate_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted = chatgate_headers(scope)
        try:
            state = self.runtime.require()
        except GatewayError as exc:
            await send_error(send, exc, [])
            return
        async with state.path.begin("ollama", wanted.get(b"x-request-id")) as exchange:
            timing = ollama.Timing(exchange.started)
            headers = [(b"x-request-id", exchange.request_id.encode("latin-1"))]
            asked: str | None = None
            try:
                identity = await exchange.authenticate(bearer(wanted.get(b"authorization")))
                body = parse_json(await read_body(receive, state.config.server.max_body_bytes))
                asked, model = _model(state, body)
                if ollama.is_load_request(body, self.kind):
                    identity.check_model(model)
                    if state.router.get(model) is None:
                        raise ModelNotFoundError(model)
                    await send_json(
                        send, 200, orjson.dumps(ollama.load_response(asked, self.kind)), headers
                    )
                    return
                mode = parse_mode(wanted.get(b"x-chatgate-reasoning"))
                req = validate_chat_request(
                    self.translate(body, model), mode or ollama.reasoning_mode(body)
                )
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
                    headers.append((b"x-chatgate-cache", answer.cache.encode()))
                    headers += exchange.cost_headers
                    if answer.completion is not None:
                        whole = self.render(answer.completion, asked, timing)
                        await send_json(send, 200, orjson.dumps(whole), headers)
                    else:
                        stream = ollama.NdjsonStream(asked, self.kind, timing)
                        await _stream(exchange, stream, send, headers, drain)
                if watch.gone:
                    exchange.status = CLIENT_GONE
            except ClientGone:
                exchange.status = CLIENT_GONE
            except GatewayError as exc:
                exchange.fail(exc)
                await send_error(send, exc, headers, asked)
            except Exception as exc:  # a bug of ours: still an answer in the API's own shape
                log.exception("ollama %s %s failed", self.kind, exchange.request_id)
                exchange.fail(f"internal error ({type(exc).__name__})", 500)
                with contextlib.suppress(Exception):  # fails only if the response had begun
                    await send_error(
                        send, GatewayError("Internal error; see the server log."), headers
                    )

    def openapi(self) -> dict[str, Any]:
        chat = self.kind == "chat"
        return {
            "post": {
                "tags": ["Ollama-compatible"],
                "summary": "Chat (Ollama API)" if chat else "Generate from a prompt (Ollama API)",
                "description": (_CHAT_TEXT if chat else _GENERATE_TEXT) + _DOOR_TEXT,
                "operationId": "ollama_chat" if chat else "ollama_generate",
                "requestBody": json_request(_CHAT if chat else _GENERATE),
                "responses": {
                    "200": {
                        "description": "With `stream` true (the default) NDJSON: a line per "
                        "piece with `done: false`, then one with `done: true`, `done_reason`, "
                        "durations (ns) and token counts; with `stream: false` that last "
                        "object with the whole answer.",
                        "content": {
                            "application/x-ndjson": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"type": "object"}},
                        },
                    },
                    **{
                        str(status): error_response(description, _ERROR)
                        for status, description in _ERRORS
                    },
                },
            }
        }


async def _stream(
    exchange: Exchange,
    stream: ollama.NdjsonStream,
    send: Send,
    headers: list[tuple[bytes, bytes]],
    drain: Drain,
) -> None:
    """Send the opened stream, a write per batch; an error after the first byte (or the
    server's drain deadline) is a last ``{"error": …}`` line, with no ``done: true`` line."""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [*NDJSON_HEADERS, *headers]}
    )
    try:
        async with drain.watch() as deadline:
            async for batch in exchange:
                body = stream.feed(batch)
                if body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
        if deadline.cut:
            raise shutting_down()
        tail = stream.finish()
    except Exception as exc:
        if not isinstance(exc, GatewayError):
            log.exception("stream failed")
            exc = GatewayError("Internal error; see the server log.")
        exchange.fail(exc, 200)  # the status line said 200; the log keeps the error
        tail = ollama.error_line(exc.message)
    await send({"type": "http.response.body", "body": tail})


def _error(exc: GatewayError, asked: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(exc, asked), exc.status, headers=exc.headers())


def ollama_router() -> APIRouter:
    """The listing endpoints; like ``/v1/models`` they need no key."""
    router = APIRouter(prefix="/api", tags=["Ollama-compatible"])

    @router.get("/tags", summary="List models (Ollama API)")
    async def list_tags(state: AppState = State) -> dict[str, Any]:
        return ollama.tags(name for name, _ in state.router.public_models())

    @router.get("/ps", summary="Running models (Ollama API): every routable one")
    async def list_running(state: AppState = State) -> dict[str, Any]:
        providers = state.config.providers
        return ollama.ps(
            (name, known_context_window(dep, providers))
            for name, dep in state.router.public_models()
        )

    @router.get("/version", summary="Ollama API version")
    async def version() -> dict[str, str]:
        return {"version": ollama.VERSION}

    @router.post(
        "/show",
        summary="Describe a model (Ollama API)",
        openapi_extra={"requestBody": json_request(_SHOW)},
        responses={404: error_response("Unknown model", _ERROR)},
    )
    async def show_model(request: Request, state: AppState = State) -> Response:
        asked = None
        try:
            asked, model = _model(state, parse_json(await request.body()))
            dep = state.router.get(model)
            if dep is None:
                raise ModelNotFoundError(model)
        except GatewayError as exc:
            return _error(exc, asked)
        window = known_context_window(dep, state.config.providers)
        return JSONResponse(ollama.show(asked, window))

    return router


_CHAT_TEXT = "Ollama's chat endpoint, for apps that speak only Ollama's API: messages in, "
_GENERATE_TEXT = "Ollama's generate endpoint: a `prompt` (and `system`) in, "
_DOOR_TEXT = (
    "NDJSON streamed unless `stream: false`. Any chatgate model by name (a `:latest` tag is "
    "ignored); walks chatgate's one path as `api=ollama`; the key, when required, as "
    "`Authorization: Bearer`. A request without messages or prompt loads the model."
)
_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}
_ERRORS = (
    (400, "Invalid request"),
    (401, "Missing or invalid key (Authorization: Bearer)"),
    (403, "The key may not use this model"),
    (404, "Unknown model"),
    (413, "Request body too large"),
    (429, "Rate limit or budget (see Retry-After)"),
    (502, "Upstream failed"),
    (503, "Queue timeout or not ready"),
    (504, "Upstream timed out"),
)
_COMMON = {
    "model": {"type": "string", "examples": ["local"]},
    "stream": {"type": "boolean", "default": True},
    "options": {
        "type": "object",
        "description": "temperature, top_p, top_k, num_predict, stop, seed…",
    },
    "format": {"description": '"json" or a JSON schema'},
    "think": {"type": ["boolean", "string"]},
    "keep_alive": {"type": ["string", "number"]},
}
_CHAT = {
    "type": "object",
    "required": ["model"],
    "additionalProperties": True,
    "properties": {
        **_COMMON,
        "messages": {"type": "array", "items": {"type": "object"}},
        "tools": {"type": "array", "items": {"type": "object"}},
    },
}
_GENERATE = {
    "type": "object",
    "required": ["model"],
    "additionalProperties": True,
    "properties": {
        **_COMMON,
        "prompt": {"type": "string"},
        "system": {"type": "string"},
        "images": {"type": "array", "items": {"type": "string"}},
    },
}
_SHOW = {
    "type": "object",
    "required": ["model"],
    "properties": {"model": {"type": "string", "examples": ["local"]}},
}
