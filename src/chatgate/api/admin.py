"""Admin API under ``/admin/``: client keys, users (limits, password, disable, sign out
everywhere), usage, upstream key health, cache stats and flush.

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

from chatgate.api.admin_money import MAX_COST, SAVED, SPEND, money
from chatgate.api.auth import csrf_guard, resolve_account
from chatgate.api.deps import app_state
from chatgate.chat.accounts import MAX_MODEL_NAME, UNSET, Account, Accounts
from chatgate.chat.passwords import MIN_LENGTH
from chatgate.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from chatgate.gateway.pricing import from_nanos, to_nanos
from chatgate.state import AppState
from chatgate.storage import ANONYMOUS, NO_USER, ClientKey, KeyTotals, UserTotals
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
    budget_cost: float | None = Field(
        None, gt=0, le=MAX_COST, description="Spending budget, all time, in `pricing.currency`."
    )


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


class UserRecord(BaseModel):
    """A chat user with their limits (None: no limit / every model) and all-time usage."""

    id: str
    name: str
    is_admin: bool
    implicit: bool = Field(description="The single-user-mode user, who has no password.")
    created_at: datetime | None
    rpm: int | None
    tpm: int | None
    budget_tokens: int | None
    tokens_used: int = Field(description="Tokens counted against the budget.")
    models: list[str] | None
    disabled: bool = Field(description="May not sign in or use anything.")
    usage: UsageCounters = Field(description="All-time requests and tokens.")
    budget_cost: float | None = Field(None, description="In `pricing.currency`.")
    cost_used: float = Field(0.0, description="Spend counted against `budget_cost`.")
    spend: dict[str, float] = Field(default_factory=dict, description=SPEND)
    saved: dict[str, float] = Field(default_factory=dict, description=SAVED)

    @classmethod
    def of(cls, account: Account, totals: UserTotals | None) -> UserRecord:
        counts = (0, 0, 0)
        if totals is not None:
            counts = (totals.requests, totals.prompt_tokens, totals.completion_tokens)
        return cls(
            **money(account.budget_cost_nanos, account.cost_used_nanos, totals),
            id=account.id,
            name=account.name,
            is_admin=account.is_admin,
            implicit=account.implicit,
            created_at=account.created_at,
            rpm=account.rpm,
            tpm=account.tpm,
            budget_tokens=account.budget_tokens,
            tokens_used=account.tokens_used,
            # The account keeps a set: the stored order is not kept, so give a stable one.
            models=None if account.models is None else sorted(account.models),
            disabled=account.disabled,
            usage=UsageCounters(**_counters(*counts)),
        )


class UserList(BaseModel):
    object: Literal["list"] = "list"
    data: list[UserRecord]


class UserPolicyUpdate(BaseModel):
    """The limits to change: a value sets one, null clears it, a field left out stays."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"rpm": 30, "budget_tokens": 1_000_000, "models": ["local"], "tpm": None}]
        },
    )

    rpm: int | None = Field(None, ge=1, le=MAX_RATE, description="Requests per minute.")
    tpm: int | None = Field(None, ge=1, le=MAX_RATE, description="Tokens per minute.")
    budget_tokens: int | None = Field(
        None, ge=1, le=MAX_BUDGET, description="Total token budget, all time."
    )
    models: list[str] | None = Field(
        None,
        min_length=1,
        description=f"Models the user may use (null: all); names of 1-{MAX_MODEL_NAME} characters.",
    )
    budget_cost: float | None = Field(
        None, gt=0, le=MAX_COST, description="Spending budget, all time, in `pricing.currency`."
    )


class NewPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=MIN_LENGTH, max_length=1024)


class SessionsEnded(BaseModel):
    user_id: str
    sessions_ended: int


def _counters(requests: int, prompt: int, completion: int) -> dict[str, int]:
    return {
        "requests": requests,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _accounts(state: AppState) -> Accounts:
    if state.chat is None:
        raise NotFoundError("The chat application (and so its users) is not running.")
    return state.chat.accounts


async def _user_record(state: AppState, account: Account) -> UserRecord:
    await state.usage.flush()  # what this replica has not written yet
    totals = await state.usage.repo.totals_by_user()
    return UserRecord.of(account, totals.get(account.id))


async def _changed(state: AppState, user_id: str, account: Account | None) -> UserRecord:
    """The user's record after a change that may have ended sessions (404 for no such user)."""
    if account is None:
        raise NotFoundError(f"No user with id `{user_id}`.", param="user_id")
    _sessions_changed(state)
    return await _user_record(state, account)


def _sessions_changed(state: AppState) -> None:
    """This replica forgets cached users and closes ended sessions' streams now (the others
    within auth.key_cache_ttl and auth.session_check_seconds)."""
    state.auth.forget()
    if state.chat is not None:
        state.chat.sessions.poke()


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

    @router.get("/users", summary="Chat users with their limits and all-time usage")
    async def list_users(request: Request) -> UserList:
        state = _state(request)
        await state.usage.flush()  # what this replica has not written yet
        accounts = await _accounts(state).list_users()
        totals = await state.usage.repo.totals_by_user()
        return UserList(data=[UserRecord.of(a, totals.get(a.id)) for a in accounts])

    @router.get("/users/{user_id}", summary="One chat user")
    async def get_user(request: Request, user_id: str) -> UserRecord:
        state = _state(request)
        account = await _accounts(state).get(user_id)
        if account is None:
            raise NotFoundError(f"No user with id `{user_id}`.", param="user_id")
        return await _user_record(state, account)

    @router.patch("/users/{user_id}", summary="Set (a value) or clear (null) a user's limits")
    async def update_user(request: Request, user_id: str, body: UserPolicyUpdate) -> UserRecord:
        state = _state(request)
        given = body.model_fields_set
        account = await _accounts(state).update_policy(
            user_id,
            rpm=body.rpm if "rpm" in given else UNSET,
            tpm=body.tpm if "tpm" in given else UNSET,
            budget_tokens=body.budget_tokens if "budget_tokens" in given else UNSET,
            models=body.models if "models" in given else UNSET,
            budget_cost_nanos=(
                (None if body.budget_cost is None else to_nanos(body.budget_cost))
                if "budget_cost" in given
                else UNSET
            ),
        )
        if account is None:
            raise NotFoundError(f"No user with id `{user_id}`.", param="user_id")
        state.auth.forget()  # this replica at once; the others within auth.key_cache_ttl
        return await _user_record(state, account)

    @router.post("/users/{user_id}/password", summary="Set a user's password (ends their sessions)")
    async def set_password(request: Request, user_id: str, body: NewPassword) -> UserRecord:
        state = _state(request)
        account = await _accounts(state).set_password(user_id, body.password)
        return await _changed(state, user_id, account)

    @router.post(
        "/users/{user_id}/disable",
        summary="Disable a user: no sign-in, sessions end, running answers stop",
    )
    async def disable_user(request: Request, user_id: str) -> UserRecord:
        state = _state(request)
        account = await _accounts(state).set_disabled(user_id, True)
        if account is not None and state.chat is not None:
            await state.chat.stop_all(user_id)
        return await _changed(state, user_id, account)

    @router.post("/users/{user_id}/enable", summary="Enable a disabled user again")
    async def enable_user(request: Request, user_id: str) -> UserRecord:
        state = _state(request)
        account = await _accounts(state).set_disabled(user_id, False)
        return await _changed(state, user_id, account)

    @router.post("/users/{user_id}/sign-out", summary="Sign a user out everywhere")
    async def sign_out(request: Request, user_id: str) -> SessionsEnded:
        state = _state(request)
        accounts = _accounts(state)
        if await accounts.get(user_id) is None:
            raise NotFoundError(f"No user with id `{user_id}`.", param="user_id")
        ended = await accounts.end_sessions(user_id)
        _sessions_changed(state)
        return SessionsEnded(user_id=user_id, sessions_ended=ended)

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
                    **_counters(r.requests, r.prompt_tokens, r.completion_tokens),
                )
                for r in rows
            ],
            totals=[
                UsageTotal(
                    key_id=t.key_id or None,
                    name=names.get(t.key_id, "anonymous" if t.key_id == ANONYMOUS else None),
                    spend=money(None, 0, t)["spend"],
                    saved=money(None, 0, t)["saved"],
                    **_counters(t.requests, t.prompt_tokens, t.completion_tokens),
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
                    **_counters(u.requests, u.prompt_tokens, u.completion_tokens),
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
