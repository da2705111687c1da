"""``GET /metrics``: Prometheus text format — the counters, plus gauges read from live state.

With ``server.metrics_token`` set, only a bearer of that token (or of the admin key) may read it.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from pydantic import SecretStr

from chatgate.api.deps import runtime_of
from chatgate.errors import AuthenticationError
from chatgate.gateway.auth import bearer
from chatgate.observability.metrics import escape
from chatgate.state import AppState


def metrics_router(*tokens: SecretStr | None) -> APIRouter:
    """``tokens``: bearer tokens that may read the metrics (``server.metrics_token``, the admin
    key); none configured: open, as Prometheus scrapes expect by default."""
    accepted = [t.get_secret_value().encode() for t in tokens if t is not None]
    required = tokens[0] is not None if tokens else False
    router = APIRouter(tags=["Operations"])

    @router.get("/metrics", summary="Prometheus metrics")
    async def metrics(request: Request) -> PlainTextResponse:
        if required:
            given = (bearer(request.headers.get("authorization")) or "").encode()
            if not any(hmac.compare_digest(given, token) for token in accepted):
                raise AuthenticationError(
                    "GET /metrics needs `Authorization: Bearer <server.metrics_token>`.",
                    code="metrics_token_required",
                )
        runtime = runtime_of(request.app)
        state = runtime.state
        live = [*live_state(state), *await cache_lines(state)] if state is not None else []
        text = runtime.metrics.render(live)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return router


def live_state(state: AppState) -> list[str]:
    lines = [
        "# HELP chatgate_queue_depth Requests waiting for an upstream slot.",
        "# TYPE chatgate_queue_depth gauge",
    ]
    for name, queue in state.queues.items():
        lines.append(f'chatgate_queue_depth{{provider="{escape(name)}"}} {queue.depth}')
    lines += [
        "# HELP chatgate_upstream_keys Upstream keys by provider and state.",
        "# TYPE chatgate_upstream_keys gauge",
    ]
    for name, pool in state.pools.items():
        counts = {"ok": 0, "cooling": 0, "disabled": 0}
        for key in pool.snapshot():
            counts[str(key["state"])] = counts.get(str(key["state"]), 0) + 1
        for key_state, n in counts.items():
            lines.append(
                f'chatgate_upstream_keys{{provider="{escape(name)}",state="{key_state}"}} {n}'
            )
    lines += [
        "# HELP chatgate_rate_limit_degraded 1 while Redis is down and limits are local.",
        "# TYPE chatgate_rate_limit_degraded gauge",
        f"chatgate_rate_limit_degraded {int(state.limiter.degraded)}",
    ]
    return lines


async def cache_lines(state: AppState) -> list[str]:
    """Cache tier numbers (async: the disk and Redis tiers are asked)."""
    if state.tiers is None:
        return []
    stats = await state.tiers.stats()
    lines: list[str] = []
    for metric, field, kind in (
        ("chatgate_cache_hits_total", "hits", "counter"),
        ("chatgate_cache_misses_total", "misses", "counter"),
        ("chatgate_cache_entries", "entries", "gauge"),
        ("chatgate_cache_bytes", "bytes", "gauge"),
    ):
        lines += [f"# HELP {metric} Response cache {field} per tier.", f"# TYPE {metric} {kind}"]
        for tier, s in stats.items():
            lines.append(f'{metric}{{tier="{escape(tier)}"}} {getattr(s, field)}')
    return lines
