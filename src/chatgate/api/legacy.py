"""The seed service's endpoints: ``POST /chatgpt/`` and ``POST /gigachat/`` (seeds/001_*.txt).

``{model, messages}`` in; the default system prompt is put first when the client sent none; the
same ``{model, messages}`` out with the assistant's message appended. A door like any other: the
request walks the one path (key when required, allow-list, budget, limits, cache, usage, metrics
as ``api="seed"``, access log). A model the router does not know goes verbatim to the first
provider of the endpoint's kind (``openai`` / ``gigachat``), as the seed passed it straight to
its one upstream. Errors come in the seed's simple shape, ``{"detail": "…"}``, with the status
(and ``Retry-After``) of the underlying error.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from chatgate.api.deps import State
from chatgate.errors import GatewayError, InvalidRequestError, ModelNotFoundError, UpstreamError
from chatgate.gateway.auth import bearer
from chatgate.gateway.router import Deployment
from chatgate.protocol.openai import validate_chat_request
from chatgate.state import AppState


class LegacyMessage(BaseModel):
    role: str = Field(examples=["user"])
    content: str = Field(examples=["Привет!"])


class LegacyChat(BaseModel):
    model: str = Field(examples=["gpt-3.5-turbo"])
    messages: list[LegacyMessage]


class LegacyError(BaseModel):
    detail: str = Field(examples=["A chatgate API key is required (Authorization: Bearer …)."])


def _deployment(state: AppState, model: str, provider_type: str) -> Deployment:
    dep = state.router.get(model)
    if dep is not None:
        return dep
    for name, cfg in state.config.providers.items():
        if cfg.type == provider_type:
            return Deployment(
                name=model, provider_name=name, provider=state.providers[name], upstream_model=model
            )
    raise ModelNotFoundError(model)


def _parse(raw: bytes) -> LegacyChat:
    try:
        return LegacyChat.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if not errors:
            raise InvalidRequestError("Invalid request.") from None
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"]
        if first["type"] == "json_invalid":
            message, where = "Request body is not valid JSON.", ""
        raise InvalidRequestError(f"{where}: {message}" if where else message) from None


async def _answer(request: Request, state: AppState, provider_type: str) -> LegacyChat:
    async with state.path.begin("seed", request.headers.get("x-request-id")) as exchange:
        await exchange.authenticate(bearer(request.headers.get("authorization")))
        payload = _parse(await request.body())
        messages: list[dict[str, Any]] = [m.model_dump() for m in payload.messages]
        if not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": state.config.legacy.system_prompt})
        req = validate_chat_request({"model": payload.model, "messages": messages})
        await exchange.admit(req)
        dep = _deployment(state, payload.model, provider_type)
        route = None if state.router.get(payload.model) is dep else [dep]
        answer = await exchange.open(route=route)
        try:
            message = (answer.completion or {})["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise UpstreamError("upstream answer has no message") from None
    messages.append({"role": "assistant", "content": message.get("content") or ""})
    return LegacyChat.model_validate({"model": payload.model, "messages": messages})


SEED_PATHS = ("/chatgpt/", "/gigachat/")


def error_body(exc: GatewayError) -> dict[str, str]:
    """The seed's error shape, ``{"detail": "…"}``: also for refusals made before the door
    (``asgi.ErrorShapes``)."""
    return {"detail": exc.message}


async def _respond(request: Request, state: AppState, provider_type: str) -> Response:
    try:
        result = await _answer(request, state, provider_type)
    except GatewayError as exc:
        return JSONResponse(error_body(exc), status_code=exc.status, headers=exc.headers())
    return JSONResponse(result.model_dump())


_DOCS: dict[str, Any] = {
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/LegacyChat"}}
            },
        }
    },
    "response_model": LegacyChat,
    "responses": {
        status: {"model": LegacyError, "description": description}
        for status, description in (
            (400, "Bad input"),
            (401, "A chatgate key is required"),
            (403, "The key may not use this model"),
            (429, "Rate limit or budget"),
            (502, "Upstream failed"),
        )
    },
}


def legacy_router() -> APIRouter:
    router = APIRouter(tags=["Seed compatibility"])

    @router.post("/chatgpt/", summary="Chat via an OpenAI-type provider (seed API)", **_DOCS)
    async def chatgpt(request: Request, state: AppState = State) -> Response:
        return await _respond(request, state, "openai")

    @router.post("/gigachat/", summary="Chat via GigaChat (seed API)", **_DOCS)
    async def gigachat(request: Request, state: AppState = State) -> Response:
        return await _respond(request, state, "gigachat")

    return router
