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
        description="`status`: `ready`, `degraded` (Redis is down: served with local "
        "fallbacks, listed in `redis`) or `unavailable` (503: starting, shutting down, or the "
        "database does not answer); `detail` says what is wrong in words.",
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
    """The /ready body: ``unavailable`` without the database, ``degraded`` while anything that
    uses Redis has fallen back to its local mode (``redis`` says which; still 200: served)."""
    redis = state.config.redis.url is not None
    degraded = state.limiter.degraded
    parts = redis_parts(state) if redis else {}
    down = sorted(name for name, ok in parts.items() if not ok)
    if not database:
        status = "unavailable"
    elif down:
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
    if redis:
        body["redis"] = {name: "ok" if ok else "down" for name, ok in parts.items()}
    problems = []
    if not database:
        problems.append(
            "the database does not answer: requests that need it are answered 503 "
            "(web-chat answers being written are kept and saved when it is back)"
        )
    if degraded:
        replicas = state.config.rate_limits.replicas
        problems.append(
            "Redis is down: requests are still served, with local rate limits "
            f"(each limit / {replicas} replica{'s' if replicas != 1 else ''} in this process)"
        )
    if "cache" in down:
        problems.append("the shared cache tier (Redis) is down: it misses; memory and disk serve")
    if "chat" in down:
        problems.append(
            "chat events and generation logs are kept on this replica (Redis is down); "
            "followers on other replicas read the database"
        )
    if problems:
        body["detail"] = "; ".join(problems)
    return body


def redis_parts(state: AppState) -> dict[str, bool]:
    """Each user of Redis: whether it is using it now (False: on its local fallback)."""
    parts = {"rate_limits": not state.limiter.degraded}
    for store in state.tiers.stores if state.tiers is not None else []:
        degraded = getattr(store, "degraded", None)
        if isinstance(degraded, bool):
            parts["cache"] = not degraded
    link = state.chat.link if state.chat is not None else None
    if link is not None:
        parts["chat"] = link.up
    return parts
