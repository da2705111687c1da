"""``GET /metrics``: Prometheus text format."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from chatgate.observability.metrics import cache_lines

if TYPE_CHECKING:
    from chatgate.app import Gateway


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["Operations"])

    @router.get("/metrics", summary="Prometheus metrics")
    async def metrics(request: Request) -> PlainTextResponse:
        gateway: Gateway = request.app.state.gateway
        state = gateway.state
        text = gateway.metrics.render(state)
        if state is not None:
            text += "\n".join(await cache_lines(state)) + "\n"
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return router
