"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from chatgate.api.deps import runtime_of
from chatgate.state import AppState


def health_router() -> APIRouter:
    router = APIRouter(tags=["Operations"])

    @router.get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/ready",
        summary="Readiness: started, the database answers; Redis down is `degraded` (still 200)",
    )
    async def ready(request: Request) -> Any:
        runtime = runtime_of(request.app)
        state = runtime.state
        if state is None or runtime.stopping:
            detail = "shutting down" if runtime.stopping else "starting"
            return JSONResponse({"status": "unavailable", "detail": detail}, status_code=503)
        database = await state.db.ping()
        body = readiness(state, database)
        return JSONResponse(body, status_code=200 if database else 503)

    return router


def readiness(state: AppState, database: bool) -> dict[str, Any]:
    """The /ready body: ``unavailable`` without the database, ``degraded`` with Redis down."""
    redis = state.config.redis.url is not None
    degraded = state.limiter.degraded
    if not database:
        status = "unavailable"
    elif degraded:
        status = "degraded"
    else:
        status = "ready"
    body: dict[str, Any] = {
        "status": status,
        "database": "ok" if database else "down",
        "rate_limits": ("local (redis down)" if degraded else "redis") if redis else "local",
        "cache": {
            "enabled": state.tiers is not None,
            "tiers": [store.name for store in state.tiers.stores] if state.tiers else [],
        },
        "providers": sorted(state.providers),
        "models": len(state.router.public_models()),
    }
    problems = []
    if not database:
        problems.append("the database does not answer")
    if degraded:
        replicas = state.config.rate_limits.replicas
        problems.append(
            "Redis is down: requests are still served, with local rate limits "
            f"(each limit / {replicas} replica{'s' if replicas != 1 else ''} in this process)"
        )
    if problems:
        body["detail"] = "; ".join(problems)
    return body
