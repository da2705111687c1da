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

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from chatgate.api.deps import State
from chatgate.api.door import Door, Wanted
from chatgate.api.schema import error_response, json_request
from chatgate.errors import GatewayError, InvalidRequestError, ModelNotFoundError
from chatgate.gateway.auth import Identity
from chatgate.gateway.path import Exchange
from chatgate.gateway.reasoning import parse_mode
from chatgate.gateway.router import known_context_window
from chatgate.protocol import ollama
from chatgate.protocol.openai import ChatRequest, parse_json, validate_chat_request
from chatgate.state import AppState, Runtime

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


def _model(state: AppState, body: Any) -> tuple[str, str]:
    """(the name the client asked for, the chatgate model it means)."""
    if not isinstance(body, dict):
        raise InvalidRequestError("Request body must be a JSON object.")
    name = body.get("model") or body.get("name")  # `name`: older clients
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("`model` is required.", param="model")
    return name, ollama.resolve_model(name, lambda m: state.router.get(m) is not None)


class OllamaDoor(Door):
    """ASGI endpoint for ``POST /api/chat`` (``kind="chat"``) or ``/api/generate``."""

    api = "ollama"
    stream_headers = NDJSON_HEADERS
    error_body = staticmethod(error_body)

    def __init__(self, runtime: Runtime, kind: str) -> None:
        super().__init__(runtime)
        self.kind = kind
        chat = kind == "chat"
        self.translate = ollama.chat_body if chat else ollama.generate_body
        self.render = ollama.chat_response if chat else ollama.generate_response

    def turn(self, exchange: Exchange) -> _Turn:
        return _Turn(self, ollama.Timing(exchange.started))

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


class _Turn:
    """An Ollama request: the model name the client asked for (its answer and its "not found"
    carry it) and the timing its durations are measured by."""

    __slots__ = ("asked", "door", "timing")

    def __init__(self, door: OllamaDoor, timing: ollama.Timing) -> None:
        self.door = door
        self.timing = timing
        self.asked = ""  # until the body names it

    def error_body(self, exc: GatewayError) -> dict[str, str]:
        return error_body(exc, self.asked or None)

    async def parse(
        self, state: AppState, identity: Identity, wanted: Wanted, raw: bytes
    ) -> ChatRequest | bytes:
        body = parse_json(raw)
        self.asked, model = _model(state, body)
        kind = self.door.kind
        if ollama.is_load_request(body, kind):
            identity.check_model(model)
            if state.router.get(model) is None:
                raise ModelNotFoundError(model)
            return orjson.dumps(ollama.load_response(self.asked, kind))
        mode = parse_mode(wanted.get(b"x-chatgate-reasoning"))
        return validate_chat_request(
            self.door.translate(body, model), mode or ollama.reasoning_mode(body)
        )

    def whole(self, req: ChatRequest, completion: dict[str, Any]) -> bytes:
        return orjson.dumps(self.door.render(completion, self.asked, self.timing))

    def stream(self, req: ChatRequest) -> ollama.NdjsonStream:
        return ollama.NdjsonStream(self.asked, self.door.kind, self.timing)


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
