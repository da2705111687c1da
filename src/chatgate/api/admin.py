"""Admin API under ``/admin/``: client keys, usage, upstream key health, cache stats and flush
(the users' routes are in :mod:`chatgate.api.admin_users`).

Who may call it (:func:`require_admin`): ``Authorization: Bearer <auth.admin_key>``, or the
session cookie of a signed-in account with the admin role; with no admin key configured, also
the implicit user of single-user mode (the zero-config loopback run, where that one user is the
admin). Anything else is 401 (no or wrong credentials) or 403 (signed in, not an admin).
Cookie and single-user calls follow the CSRF rules of ``/api`` (a state change needs a JSON body
or ``X-Requested-With``, and a browser's ``Origin`` must be this server); a bearer key cannot be
sent cross-site, so it needs neither.
"""

from __future__ import annotations

import hmac
from datetime import date, datetime
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from chatgate.api.admin_money import SAVED, SPEND, BudgetCost, money
from chatgate.api.auth import csrf_guard, resolve_account
from chatgate.api.deps import app_state
from chatgate.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from chatgate.gateway.pricing import from_nanos, to_nanos
from chatgate.state import AppState
from chatgate.storage import ANONYMOUS, NO_USER, ClientKey, KeyTotals
from chatgate.storage.keys import MAX_BUDGET, MAX_EXPIRES_DAYS, MAX_RATE


def _state(request: Request) -> AppState:
    return app_state(request)


async def require_admin(request: Request) -> AppState:
    """The app state if the caller is an admin (see the module docstring), else 401 / 403."""
    state = _state(request)
    key = state.config.auth.admin_key
    given = request.headers.get("authorization", "")
    token = given[7:].strip() if given[:7].lower() == "bearer " else ""
    if key is not None and token:
        if hmac.compare_digest(token.encode(), key.get_secret_value().encode()):
            return state
        raise AuthenticationError("Wrong admin key.")
    account = await resolve_account(state.chat, request) if state.chat else None
    if account is not None and account.implicit and key is not None:
        account = None  # a configured admin key is not waived for the no-login local user
    if account is None:
        raise AuthenticationError(
            "This endpoint needs the admin key (Authorization: Bearer …) or an admin's sign-in.",
            code="admin_required",
        )
    if not account.is_admin:
        raise PermissionDeniedError("This endpoint is for admins only.", code="admin_required")
    csrf_guard(request)
    return state


class KeyCreate(BaseModel):
    """A new client key; every limit is optional (none: unlimited, all models, no expiry)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "ci-bot", "rpm": 60, "models": ["local"]}]},
    )

    name: str = Field(min_length=1, max_length=200, description="Who or what the key is for.")
    rpm: int | None = Field(None, ge=1, le=MAX_RATE, description="Requests per minute.")
    tpm: int | None = Field(None, ge=1, le=MAX_RATE, description="Tokens per minute.")
    budget_tokens: int | None = Field(
        None, ge=1, le=MAX_BUDGET, description="Total token budget, all time."
    )
    models: list[str] | None = Field(
        None, min_length=1, description="Models the key may use (default: all)."
    )
    expires_days: float | None = Field(
        None, gt=0, le=MAX_EXPIRES_DAYS, description="Expire after this many days."
    )
    budget_cost: BudgetCost = None


class KeyRecord(BaseModel):
    """A client key as stored: never its secret (``prefix`` is its first characters)."""

    id: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool
    rpm: int | None
    tpm: int | None
    budget_tokens: int | None
    tokens_used: int
    models: list[str] | None
    budget_cost: float | None = Field(None, description="In `pricing.currency`.")
    cost_used: float = Field(0.0, description="Spend counted against `budget_cost`.")
    spend: dict[str, float] = Field(default_factory=dict, description=SPEND)
    saved: dict[str, float] = Field(default_factory=dict, description=SAVED)

    @classmethod
    def of(cls, key: ClientKey, totals: KeyTotals | None = None) -> KeyRecord:
        return cls(
            **money(key.budget_cost_nanos, key.cost_used_nanos, totals),
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            active=key.is_active(),
            rpm=key.rpm,
            tpm=key.tpm,
            budget_tokens=key.budget_tokens,
            tokens_used=key.tokens_used,
            models=key.models,
        )


class KeyCreated(KeyRecord):
    key: str = Field(description="The key itself: returned this once, never stored or shown.")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyRecord]


class UsageCounters(BaseModel):
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class UsageDay(UsageCounters):
    key_id: str | None = Field(description="None: requests made without a client key.")
    user_id: str | None = Field(description="None: requests made without a signed-in user.")
    model: str
    day: date
    cost: float = Field(0.0, description="What the upstream charged, in `currency`.")
    saved: float = Field(0.0, description="What chatgate's cache saved, in `currency`.")
    currency: str | None = Field(None, description="None: the model had no price.")


class UsageTotal(UsageCounters):
    key_id: str | None
    name: str | None
    spend: dict[str, float] = Field(default_factory=dict, description=SPEND)
    saved: dict[str, float] = Field(default_factory=dict, description=SAVED)


class UsageUserTotal(UsageCounters):
    user_id: str | None = Field(description="None: requests made without a signed-in user.")
    name: str | None
    spend: dict[str, float] = Field(default_factory=dict, description=SPEND)
    saved: dict[str, float] = Field(default_factory=dict, description=SAVED)


class UsageReport(BaseModel):
    since: date | None
    until: date | None
    data: list[UsageDay] = Field(description="Per key, user, model and UTC day.")
    totals: list[UsageTotal] = Field(description="Per key over the period.")
    users: list[UsageUserTotal] = Field(description="Per user over the period.")


def counters(requests: int, prompt: int, completion: int) -> dict[str, int]:
    return {
        "requests": requests,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _public_url(url: str | None) -> str | None:
    """The URL without any user:password part."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def admin_router() -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["Admin"], dependencies=[Depends(require_admin)])

    @router.get("/keys", summary="List client keys (never their secrets)")
    async def list_keys(request: Request) -> KeyList:
        state = _state(request)
        await state.usage.flush()  # what this replica has not written yet
        keys = await state.auth.keys.list()
        totals = await state.usage.repo.totals_by_key()
        return KeyList(data=[KeyRecord.of(k, totals.get(k.id)) for k in keys])

    @router.post("/keys", status_code=201, summary="Create a client key (its secret shown once)")
    async def create_key(request: Request, body: KeyCreate) -> KeyCreated:
        key, secret = await _state(request).auth.keys.create(
            body.name,
            rpm=body.rpm,
            tpm=body.tpm,
            budget_tokens=body.budget_tokens,
            models=body.models,
            expires_days=body.expires_days,
            budget_cost_nanos=None if body.budget_cost is None else to_nanos(body.budget_cost),
        )
        return KeyCreated(**KeyRecord.of(key).model_dump(), key=secret)

    @router.get("/keys/{key_id}", summary="One client key")
    async def get_key(request: Request, key_id: str) -> KeyRecord:
        key = await _state(request).auth.keys.get(key_id)
        if key is None:
            raise NotFoundError(f"No key with id `{key_id}`.", param="key_id")
        return KeyRecord.of(key)

    @router.delete("/keys/{key_id}", summary="Revoke a client key")
    async def revoke_key(request: Request, key_id: str) -> KeyRecord:
        state = _state(request)
        if not await state.auth.keys.revoke(key_id):
            raise NotFoundError(f"No key with id `{key_id}`.", param="key_id")
        state.auth.forget()  # this replica at once; the others within auth.key_cache_ttl
        key = await state.auth.keys.get(key_id)
        if key is None:
            raise NotFoundError(f"No key with id `{key_id}`.", param="key_id")
        return KeyRecord.of(key)

    @router.get(
        "/usage", summary="Tokens per key, user, model and UTC day; totals per key and user"
    )
    async def usage(
        request: Request,
        key_id: str | None = None,
        user_id: str | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> UsageReport:
        """`key_id=anonymous` selects requests made without a key, `user_id=none` those made
        without a signed-in user; days are inclusive. `key_id` narrows `data` and `totals`,
        `user_id` narrows `data` and `users`."""
        if since is not None and until is not None and since > until:
            raise InvalidRequestError("`since` is after `until`.", param="since")
        state = _state(request)
        await state.usage.flush()  # what this replica has not written yet
        wanted = ANONYMOUS if key_id == "anonymous" else key_id or None
        wanted_user = NO_USER if user_id == "none" else user_id or None
        rows = await state.usage.repo.query(wanted, since, until, user_id=wanted_user)
        totals = await state.usage.repo.totals_by_key(since, until)
        user_totals = await state.usage.repo.totals_by_user(since, until)
        names = {k.id: k.name for k in await state.auth.keys.list()}
        user_names = (
            {a.id: a.name for a in await state.chat.accounts.list_users()} if state.chat else {}
        )
        return UsageReport(
            since=since,
            until=until,
            data=[
                UsageDay(
                    key_id=r.key_id or None,
                    user_id=r.user_id or None,
                    model=r.model,
                    day=r.day,
                    cost=from_nanos(r.cost_nanos),
                    saved=from_nanos(r.saved_nanos),
                    currency=r.currency or None,
                    **counters(r.requests, r.prompt_tokens, r.completion_tokens),
                )
                for r in rows
            ],
            totals=[
                UsageTotal(
                    key_id=t.key_id or None,
                    name=names.get(t.key_id, "anonymous" if t.key_id == ANONYMOUS else None),
                    spend=money(None, 0, t)["spend"],
                    saved=money(None, 0, t)["saved"],
                    **counters(t.requests, t.prompt_tokens, t.completion_tokens),
                )
                for t in sorted(totals.values(), key=lambda t: t.key_id)
                if wanted is None or t.key_id == wanted
            ],
            users=[
                UsageUserTotal(
                    user_id=u.user_id or None,
                    name=user_names.get(u.user_id),
                    spend=money(None, 0, u)["spend"],
                    saved=money(None, 0, u)["saved"],
                    **counters(u.requests, u.prompt_tokens, u.completion_tokens),
                )
                for u in sorted(user_totals.values(), key=lambda u: u.user_id)
                if wanted_user is None or u.user_id == wanted_user
            ],
        )

    @router.get("/upstreams", summary="Each provider's upstream keys (masked) and queue")
    async def upstreams(request: Request) -> dict[str, Any]:
        state = _state(request)
        data = []
        for name, cfg in sorted(state.config.providers.items()):
            pool = state.pools.get(name)
            queue = state.queues.get(name)
            data.append(
                {
                    "name": name,
                    "type": cfg.type,
                    "base_url": _public_url(cfg.base_url),
                    "keys": pool.snapshot() if pool is not None else [],
                    "queue": queue.snapshot() if queue is not None else None,
                }
            )
        return {"object": "list", "data": data}

    @router.get("/cache", summary="Cache statistics per tier")
    async def cache_stats(request: Request) -> dict[str, Any]:
        state = _state(request)
        if state.tiers is None:
            return {"enabled": False, "tiers": []}
        stats = await state.tiers.stats()
        return {
            "enabled": True,
            "in_flight": len(state.pipeline.cache.flights) if state.pipeline.cache else 0,
            "tiers": [{"name": name, **s.as_dict()} for name, s in stats.items()],
        }

    @router.delete("/cache", summary="Remove every cached answer")
    async def cache_flush(request: Request) -> dict[str, Any]:
        state = _state(request)
        if state.tiers is None:
            raise NotFoundError("The cache is not enabled (serve --enable-cache).")
        removed = await state.tiers.clear()
        return {"removed": max(removed.values(), default=0), "per_tier": removed}

    return router
