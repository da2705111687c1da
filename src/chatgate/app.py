"""Application factory: ``create_app(config)`` builds the ASGI app; its lifespan builds AppState.

The top-level ASGI callable first runs the checks every request gets (``api.guard``: Host
allow-list, foreign Origin, JSON bodies, declared size), then sends the raw doors (``POST
/v1/chat/completions``, the hot path, ``/v1/responses`` and the other dialects' answering
endpoints) straight to their handlers, and everything else to FastAPI (docs, models, health,
seed endpoints, the chat API) with its body counted against the limit (``api.bodylimit``) when
the method carries one (not GET, HEAD or OPTIONS).
FastAPI's routing, dependencies and middleware cost a hot door more than its whole translation
(measured on ``/v1/responses``: ~2x the CPU per request).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatgate.api.admin import admin_router
from chatgate.api.admin_users import admin_users_router
from chatgate.api.anthropic import COUNT_TOKENS_PATH, MESSAGES_PATH, CountTokens, Messages
from chatgate.api.asgi import ErrorShapes, RawDoor, Receive, Scope, Send, send_error
from chatgate.api.auth import auth_router
from chatgate.api.bodylimit import BodyLimit
from chatgate.api.chat import IMPORT_PATH, chat_router
from chatgate.api.completions import COMPLETIONS_PATH, completions_door
from chatgate.api.embeddings import EMBEDDINGS_PATH, embeddings_door
from chatgate.api.files import FILES_PATH, files_router
from chatgate.api.guard import Guard, refuse
from chatgate.api.health import health_router
from chatgate.api.legacy import SEED_PATHS, legacy_router
from chatgate.api.legacy import error_body as seed_error
from chatgate.api.metrics import metrics_router
from chatgate.api.ollama import CHAT_PATH as OLLAMA_CHAT
from chatgate.api.ollama import GENERATE_PATH as OLLAMA_GENERATE
from chatgate.api.ollama import OLLAMA_PATHS, OllamaDoor, ollama_router
from chatgate.api.ollama import error_body as ollama_error
from chatgate.api.openai import ChatCompletions, models_router
from chatgate.api.peers import Peers
from chatgate.api.raw import with_refusals
from chatgate.api.responses import PATH as RESPONSES_PATH
from chatgate.api.responses import CreateResponse, responses_router
from chatgate.api.ui import ui_router
from chatgate.api.ws import ws_router
from chatgate.config import Config
from chatgate.discovery import read_env, with_discovered
from chatgate.drain import Drain, on_stop_signal
from chatgate.errors import (
    GatewayError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
)
from chatgate.observability.metrics import Metrics
from chatgate.providers.registry import ProviderRegistry
from chatgate.state import Runtime, build_state, close_state, single_user_notice

log = logging.getLogger("chatgate")

CHAT_PATH = "/v1/chat/completions"
# Methods whose requests carry no body: FastAPI gets the server's own receive and send.
BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


class Gateway:
    """The ASGI application."""

    def __init__(self, config: Config, registry: ProviderRegistry | None = None) -> None:
        self.config = config
        self.registry = registry
        self.runtime = Runtime(Metrics())
        self.peers = Peers(config.server.trusted_proxies)
        # Bodies with a limit of their own: an import carries the conversation's files.
        self.limits = {IMPORT_PATH: config.files.import_limit(config.server.max_body_bytes)}
        self.guard = Guard(config.server, self.peers, self.limits)
        # POST doors served raw (no FastAPI request machinery): path → ASGI handler
        self.raw: dict[str, RawDoor] = {
            CHAT_PATH: ChatCompletions(self.runtime),
            COMPLETIONS_PATH: completions_door(self.runtime),
            EMBEDDINGS_PATH: embeddings_door(self.runtime),
            MESSAGES_PATH: Messages(self.runtime, config),
            COUNT_TOKENS_PATH: CountTokens(self.runtime, config),
            OLLAMA_CHAT: OllamaDoor(self.runtime, "chat"),
            OLLAMA_GENERATE: OllamaDoor(self.runtime, "generate"),
            RESPONSES_PATH: CreateResponse(self.runtime),
        }
        # Each door's error shape by path, for the answers given before a door runs (guard,
        # body limit, wrong method, FastAPI's handlers); OpenAI's for any other path.
        self.shapes = ErrorShapes(
            {
                **{path: door.error_body for path, door in self.raw.items()},
                **{path: ollama_error for path in OLLAMA_PATHS},
                **{path: seed_error for path in SEED_PATHS},
            }
        )
        self.api = self._build_api()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            refused = self.guard.check(scope)
            if refused is not None:
                await refuse(scope, send, refused, self.shapes.for_path(scope["path"]))
                return
            door = self.raw.get(scope["path"])
            if door is not None:
                if scope["method"] == "POST":
                    await door(scope, receive, send)
                else:
                    wrong = MethodNotAllowedError("Only POST is allowed here.")
                    await send_error(send, wrong, [(b"allow", b"POST")], door.error_body)
                return
            # The internal-error handler logs an unexpected error and answers 500 in the door's
            # shape; Starlette then re-raises it only for the server to log it a second time.
            if scope["method"] in BODILESS:
                # No route reads a body here (a declared one over the limit was refused above):
                # no counter, so no two extra hops per message in and out.
                with contextlib.suppress(Exception):
                    await self.api(scope, receive, send)
                return
            limit = self.limits.get(scope["path"], self.config.server.max_body_bytes)
            if scope["path"] == FILES_PATH:  # counted by the route too, as file_too_large
                limit = max(limit, self.config.files.max_bytes + 65536)
            body = BodyLimit(receive, send, limit, scope["path"], self.shapes)
            with contextlib.suppress(Exception):
                await self.api(scope, body.receive, body.send)
            return
        if kind == "websocket":
            refused = self.guard.check(scope)
            if refused is not None:
                await refuse(scope, send, refused, self.shapes.for_path(scope["path"]))
                return
        await self.api(scope, receive, send)

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        runtime = self.runtime
        runtime.state = state = await build_state(self.config, self.registry, runtime.metrics)
        runtime.stopping = False
        runtime.drain = drain = Drain()
        if state.chat is not None:  # running answers end (saved) before streams are cut
            drain.on_deadline(state.chat.end_answers)
        on_stop_signal(lambda: drain.begin(self.config.server.drain_seconds))
        models = [name for name, _ in state.router.public_models()]
        log.info("chatgate ready: %d models (%s)", len(models), ", ".join(models[:8]))
        log.info("accepting requests for: %s (server.allowed_hosts)", self.guard.hosts.describe())
        if state.chat is not None:
            log.log(*await single_user_notice(self.config, state.chat.accounts))
        # Everything built so far lives as long as the process: keep the collector from
        # walking it on every full collection (a p99 cost under load).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            runtime.stopping = True
            await drain.close()
            await close_state(state)
            runtime.state = None

    def _build_api(self) -> FastAPI:
        api = FastAPI(
            title="chatgate",
            summary="OpenAI-compatible LLM gateway and chat service",
            version=_version(),
            lifespan=self.lifespan,
        )
        api.state.runtime = self.runtime
        api.state.peers = self.peers
        api.include_router(health_router())
        api.include_router(models_router())
        api.include_router(responses_router())
        api.include_router(legacy_router())
        api.include_router(ollama_router())
        api.include_router(admin_router())
        api.include_router(admin_users_router())
        server, auth = self.config.server, self.config.auth
        api.include_router(metrics_router(server.metrics_token, auth.admin_key))
        api.include_router(auth_router())
        api.include_router(chat_router())
        api.include_router(files_router())
        api.include_router(ws_router())
        # Last: `/` and the UI's own paths; every API route above wins.
        api.include_router(ui_router())
        _install_error_handlers(api, self.shapes)
        _document_raw_doors(api, self.raw)
        return api


def _install_error_handlers(api: FastAPI, shapes: ErrorShapes) -> None:
    def render(request: Request, exc: GatewayError) -> JSONResponse:
        body = shapes.for_path(request.url.path)(exc)
        return JSONResponse(body, status_code=exc.status, headers=exc.headers())

    @api.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        return render(request, exc)

    @api.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        message = str(first.get("msg", "Invalid request"))
        if first.get("type") == "json_invalid":
            message = "Request body is not valid JSON."
        error = InvalidRequestError(f"{param}: {message}" if param else message, param=param)
        return render(request, error)

    @api.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return render(request, GatewayError("Internal error; see the server log."))

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return render(request, NotFoundError("Not found."))
        if exc.status_code == 405:
            wrong = render(request, MethodNotAllowedError(str(exc.detail)))
            wrong.headers.update(exc.headers or {})  # Allow
            return wrong
        body = {
            "error": {
                "message": str(exc.detail),
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def _document_raw_doors(api: FastAPI, doors: dict[str, RawDoor]) -> None:
    """Describe the raw-ASGI doors in the OpenAPI schema FastAPI serves at /docs."""
    original = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = original()
            paths = schema.setdefault("paths", {})
            for path, door in doors.items():
                paths[path] = with_refusals(door.openapi())
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chatgate")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(config: Config, registry: ProviderRegistry | None = None) -> Gateway:
    return Gateway(config, registry)


def app_from_env() -> Gateway:
    """Entry point for uvicorn workers: settings come back from ``CHATGATE_*`` (set by the CLI)."""
    from chatgate.config import load_config, load_settings

    env = read_env(dict(os.environ))
    config = with_discovered(load_config(load_settings(), env), env)
    return create_app(config)
