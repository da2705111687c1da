"""The seed service's endpoints: ``POST /chatgpt/`` and ``POST /gigachat/`` (seeds/001_*.txt).

``{model, messages}`` in; the default system prompt is put first when the client sent none; the
same ``{model, messages}`` out with the assistant's message appended. Routed through the same
pipeline as ``/v1``. A model the router does not know goes verbatim to the first provider of the
endpoint's kind (``openai`` / ``gigachat``), as the seed passed it straight to its one upstream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from chatgate.errors import ModelNotFoundError, UpstreamError
from chatgate.gateway.router import Deployment
from chatgate.protocol.openai import validate_chat_request

if TYPE_CHECKING:
    from chatgate.state import AppState


class LegacyMessage(BaseModel):
    role: str = Field(examples=["user"])
    content: str = Field(examples=["Привет!"])


class LegacyChat(BaseModel):
    model: str = Field(examples=["gpt-3.5-turbo"])
    messages: list[LegacyMessage]


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


async def _answer(request: Request, payload: LegacyChat, provider_type: str) -> LegacyChat:
    state: AppState = request.app.state.gateway.require_state()
    messages: list[dict[str, Any]] = [m.model_dump() for m in payload.messages]
    if not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": state.config.legacy.system_prompt})
    req = validate_chat_request({"model": payload.model, "messages": messages})
    dep = _deployment(state, payload.model, provider_type)
    route = None if state.router.get(payload.model) is dep else [dep]
    result = await state.pipeline.complete(req, route)
    try:
        message = result["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise UpstreamError("upstream answer has no message") from None
    messages.append({"role": "assistant", "content": message.get("content") or ""})
    return LegacyChat.model_validate({"model": payload.model, "messages": messages})


def legacy_router() -> APIRouter:
    router = APIRouter(tags=["Seed compatibility"])

    @router.post("/chatgpt/", summary="Chat via an OpenAI-type provider (seed API)")
    async def chatgpt(payload: LegacyChat, request: Request) -> LegacyChat:
        return await _answer(request, payload, "openai")

    @router.post("/gigachat/", summary="Chat via GigaChat (seed API)")
    async def gigachat(payload: LegacyChat, request: Request) -> LegacyChat:
        return await _answer(request, payload, "gigachat")

    return router
