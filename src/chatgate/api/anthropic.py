"""Anthropic Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens`` (raw ASGI).

The door reads the chatgate key from ``x-api-key`` or ``Authorization: Bearer`` (the SDKs send
the first), maps the model name (a chatgate model, else an ``anthropic.model_aliases`` pattern),
translates the body (``protocol.anthropic``), walks the one path as ``api="anthropic"`` and
renders a Message or its event stream. ``anthropic-version`` and ``anthropic-beta`` are accepted
and need not be sent. Errors come in Anthropic's shape, in-band as ``event: error`` once a
stream has begun.
"""

from __future__ import annotations

from typing import Any

import orjson

from chatgate.api import asgi
from chatgate.api.asgi import (
    ClientGone,
    Receive,
    Scope,
    Send,
    chatgate_headers,
    read_body,
    send_json,
)
from chatgate.api.door import Door, Wanted
from chatgate.api.schema import error_response, json_request
from chatgate.chat.tokens import PER_MESSAGE, TokenCounter
from chatgate.config import Config
from chatgate.errors import GatewayError, InvalidRequestError, ModelNotFoundError
from chatgate.gateway.auth import Identity, bearer
from chatgate.gateway.path import CLIENT_GONE, Exchange
from chatgate.gateway.reasoning import parse_mode
from chatgate.protocol import anthropic
from chatgate.protocol.openai import ChatRequest, parse_json, validate_chat_request
from chatgate.state import AppState, Runtime

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


def credential(wanted: dict[bytes, str]) -> str | None:
    """The chatgate key: ``x-api-key`` (what the Anthropic SDKs send), else a bearer token."""
    key = wanted.get(b"x-api-key")
    return key.strip() or None if key else bearer(wanted.get(b"authorization"))


async def send_error(send: Send, exc: GatewayError, headers: list[tuple[bytes, bytes]]) -> None:
    await asgi.send_error(send, exc, headers, anthropic.error_body)


def resolve(state: AppState, body: Any, aliases: anthropic.Aliases) -> tuple[str, str]:
    """(the name the client asked for, the chatgate model it means)."""
    name = body.get("model") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("`model` is required and must be a string.", param="model")
    router = state.router
    return name, anthropic.resolve_model(name, lambda m: router.get(m) is not None, aliases)


class Messages(Door):
    """ASGI endpoint for ``POST /v1/messages``."""

    api = "anthropic"
    # Anthropic's error shape, also for refusals made before the door (``asgi.ErrorShapes``).
    error_body = staticmethod(anthropic.error_body)
    echo_request_id = True

    def __init__(self, runtime: Runtime, config: Config) -> None:
        super().__init__(runtime)
        self.aliases = anthropic.compile_aliases(config.anthropic.model_aliases)

    def credential(self, wanted: Wanted) -> str | None:
        return credential(wanted)

    def turn(self, exchange: Exchange) -> _Turn:
        return _Turn(self.aliases)

    def openapi(self) -> dict[str, Any]:
        return _operation(
            "Create a message (Anthropic Messages API; stream or not)",
            "create_message",
            "Anthropic's Messages API (what Claude Code speaks), translated to chat completions "
            "and walked along chatgate's one path as `api=anthropic`. The key comes as "
            "`x-api-key` or `Authorization: Bearer`; a model is any chatgate model, or a name "
            "`anthropic.model_aliases` maps to one (e.g. `claude-*`).",
            {
                "description": "A `message` object, or with `stream: true` an SSE stream: "
                "`message_start`, `ping`, `content_block_start` / `content_block_delta` / "
                "`content_block_stop` per block, `message_delta` (stop_reason, usage), "
                "`message_stop`; an `error` event if the upstream fails mid-stream.",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            },
        )


class _Turn:
    """A Messages request: the model name the client asked for, which its answer carries."""

    __slots__ = ("aliases", "asked")

    error_body = staticmethod(anthropic.error_body)

    def __init__(self, aliases: anthropic.Aliases) -> None:
        self.aliases = aliases
        self.asked = ""

    async def parse(
        self, state: AppState, identity: Identity, wanted: Wanted, raw: bytes
    ) -> ChatRequest:
        body = parse_json(raw)
        self.asked, model = resolve(state, body, self.aliases)
        mode = parse_mode(wanted.get(b"x-chatgate-reasoning"))
        return validate_chat_request(
            anthropic.to_chat_body(body, model), mode or anthropic.reasoning_mode(body)
        )

    def whole(self, req: ChatRequest, completion: dict[str, Any]) -> bytes:
        return orjson.dumps(anthropic.to_message(completion, self.asked, req.body.get("stop")))

    def stream(self, req: ChatRequest) -> anthropic.MessageStream:
        return anthropic.MessageStream(self.asked, req.body.get("stop"))


class CountTokens:
    """ASGI endpoint for ``POST /v1/messages/count_tokens``: the prompt's tokens by the model's
    own tokenizer where one ships offline (``chat.tokens``), calibrated by what the upstream
    reported for earlier prompts; otherwise about four bytes a token. No upstream call, but
    along the request path like every door (api ``anthropic_count_tokens``): the key, its
    allow-list and budget, one request of its rate limit (counting is work here: a flood of
    large bodies is held back like any other), metrics and the access log."""

    api = "anthropic_count_tokens"
    error_body = staticmethod(anthropic.error_body)

    def __init__(self, runtime: Runtime, config: Config) -> None:
        self.runtime = runtime
        self.aliases = anthropic.compile_aliases(config.anthropic.model_aliases)

    def openapi(self) -> dict[str, Any]:
        return _operation(
            "Count a message's input tokens (Anthropic Messages API)",
            "count_message_tokens",
            "The prompt's input tokens, counted here: by the model's own tokenizer where one "
            "ships offline, calibrated by what the upstream reported, else about four bytes a "
            "token. No upstream call; the key, its allow-list and budget apply, and it counts "
            "as one request of the key's rate limit (no tokens).",
            {
                "description": '`{"input_tokens": N}`',
                "content": {"application/json": {"schema": _COUNT}},
            },
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted = chatgate_headers(scope)
        try:
            state = self.runtime.require()
        except GatewayError as exc:
            await send_error(send, exc, [])
            return
        async with state.path.begin(self.api, wanted.get(b"x-request-id")) as exchange:
            rid = exchange.request_id.encode("latin-1")
            headers = [(b"x-request-id", rid), (b"request-id", rid)]
            try:
                await exchange.authenticate(credential(wanted))
                body = parse_json(await read_body(receive, state.config.server.max_body_bytes))
                _, model = resolve(state, body, self.aliases)
                if state.router.get(model) is None:
                    raise ModelNotFoundError(model)
                await exchange.admit(ChatRequest(body, model, stream=False), tokens=0)
                headers += exchange.headers
                texts, messages = anthropic.count_texts(body)
                counter = state.chat.tokens if state.chat is not None else TokenCounter()
                await counter.warm(model, texts)
                total = sum(counter.count(model, t) for t in texts) + PER_MESSAGE * messages
                await send_json(send, 200, orjson.dumps({"input_tokens": total}), headers)
            except ClientGone:
                exchange.status = CLIENT_GONE
            except GatewayError as exc:
                exchange.fail(exc)
                await send_error(send, exc, headers)


_ERROR = {
    "type": "object",
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "properties": {
                "type": {
                    "type": "string",
                    "enum": [*anthropic.ERROR_TYPES.values(), "api_error"],
                },
                "message": {"type": "string"},
            },
            "required": ["type", "message"],
        },
    },
    "required": ["type", "error"],
}
_REQUEST = {
    "type": "object",
    "required": ["model", "messages", "max_tokens"],
    "additionalProperties": True,
    "description": "Anthropic's Messages request. `model`: a chatgate model, or a name that "
    "`anthropic.model_aliases` maps to one. Server tools, cache_control and citations are "
    "ignored; PDF documents are refused.",
    "properties": {
        "model": {"type": "string", "examples": ["local"]},
        "max_tokens": {"type": "integer", "minimum": 1},
        "messages": {"type": "array", "minItems": 1, "items": {"type": "object"}},
        "system": {"type": ["string", "array"]},
        "stream": {"type": "boolean", "default": False},
        "stop_sequences": {"type": "array", "items": {"type": "string"}},
        "temperature": {"type": "number"},
        "top_p": {"type": "number"},
        "top_k": {"type": "integer"},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"type": "object"},
        "thinking": {"type": "object"},
        "metadata": {"type": "object"},
    },
}
_COUNT = {
    "type": "object",
    "properties": {"input_tokens": {"type": "integer"}},
    "required": ["input_tokens"],
}


def _operation(
    summary: str, operation: str, description: str, ok: dict[str, Any]
) -> dict[str, Any]:
    return {
        "post": {
            "tags": ["Anthropic-compatible"],
            "summary": summary,
            "description": description,
            "operationId": operation,
            "parameters": [
                {
                    "name": "x-api-key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "The chatgate key (or `Authorization: Bearer`).",
                },
                {"name": "anthropic-version", "in": "header", "schema": {"type": "string"}},
            ],
            "requestBody": json_request(_REQUEST),
            "responses": {
                "200": ok,
                "400": error_response("Invalid request (`invalid_request_error`)", _ERROR),
                "401": error_response("Missing or invalid key", _ERROR),
                "403": error_response("The key may not use this model", _ERROR),
                "404": error_response("Unknown model", _ERROR),
                "413": error_response("Request body too large", _ERROR),
                "429": error_response("Rate limit or budget (see Retry-After)", _ERROR),
                "502": error_response("Upstream failed (`api_error`)", _ERROR),
                "503": error_response("Overloaded or not ready (`overloaded_error`)", _ERROR),
                "504": error_response("Upstream timed out (`timeout_error`)", _ERROR),
            },
        }
    }
