"""OpenAI-compatible API: ``POST /v1/chat/completions`` (raw ASGI: the hot path), ``/v1/models``.

The door parses the wire format into a ``ChatRequest``, walks it along the request path
(``gateway.path``: key, allow-list, budget, rate limit, cache, upstream, usage, metrics, log) and
renders the answer as JSON or SSE.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter

from chatgate.api.deps import State
from chatgate.api.door import OPENAI_EVENTS, Door, OpenAIEvents, Wanted
from chatgate.api.schema import chat_completions_openapi
from chatgate.files.vision import sees_images
from chatgate.gateway.auth import Identity
from chatgate.gateway.path import Exchange
from chatgate.gateway.reasoning import parse_mode
from chatgate.gateway.router import Deployment, known_context_window
from chatgate.protocol.openai import ChatRequest, parse_json, validate_chat_request
from chatgate.state import AppState, Runtime

Validate = Callable[[Any, str | None], ChatRequest]
Render = Callable[[ChatRequest, dict[str, Any]], dict[str, Any]]


class ChatCompletions(Door):
    """ASGI endpoint for ``POST /v1/chat/completions``, and for the other OpenAI doors that
    differ only in the body they accept (``validate``), their ``api`` label and how a whole
    answer is rendered (``render``): ``/v1/completions``, ``/v1/embeddings``. It keeps nothing
    per request, so it is its own :class:`~chatgate.api.door.Turn`."""

    def __init__(
        self,
        runtime: Runtime,
        api: str = "chat_completions",
        validate: Validate = validate_chat_request,
        render: Render | None = None,
        openapi: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(runtime)
        self.api = api
        self.validate = validate
        self.render = render
        self._openapi = openapi

    def openapi(self) -> dict[str, Any]:
        return self._openapi if self._openapi is not None else chat_completions_openapi()

    def turn(self, exchange: Exchange) -> ChatCompletions:
        return self

    async def parse(
        self, state: AppState, identity: Identity, wanted: Wanted, raw: bytes
    ) -> ChatRequest:
        reasoning = parse_mode(wanted.get(b"x-chatgate-reasoning"))
        return self.validate(parse_json(raw), reasoning)

    def whole(self, req: ChatRequest, completion: dict[str, Any]) -> bytes:
        if self.render is not None:
            completion = self.render(req, completion)
        return orjson.dumps(completion)

    def stream(self, req: ChatRequest) -> OpenAIEvents:
        return OPENAI_EVENTS


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
