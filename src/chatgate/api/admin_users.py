"""Admin API for chat users under ``/admin/users``: limits, all-time usage, password, disable,
sign out everywhere. Who may call it is :func:`chatgate.api.admin.require_admin`'s rule, as for
every admin route.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from chatgate.api.admin import UsageCounters, counters, require_admin
from chatgate.api.admin_money import SAVED, SPEND, BudgetCost, money
from chatgate.api.deps import app_state
from chatgate.chat.accounts import MAX_MODEL_NAME, UNSET, Account, Accounts
from chatgate.chat.passwords import MIN_LENGTH
from chatgate.errors import NotFoundError
from chatgate.gateway.pricing import to_nanos
from chatgate.state import AppState
from chatgate.storage import UserTotals
from chatgate.storage.keys import MAX_BUDGET, MAX_RATE


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
            usage=UsageCounters(**counters(*counts)),
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
    budget_cost: BudgetCost = None


class NewPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=MIN_LENGTH, max_length=1024)


class SessionsEnded(BaseModel):
    user_id: str
    sessions_ended: int


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


def admin_users_router() -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["Admin"], dependencies=[Depends(require_admin)])

    @router.get("/users", summary="Chat users with their limits and all-time usage")
    async def list_users(request: Request) -> UserList:
        state = app_state(request)
        await state.usage.flush()  # what this replica has not written yet
        accounts = await _accounts(state).list_users()
        totals = await state.usage.repo.totals_by_user()
        return UserList(data=[UserRecord.of(a, totals.get(a.id)) for a in accounts])

    @router.get("/users/{user_id}", summary="One chat user")
    async def get_user(request: Request, user_id: str) -> UserRecord:
        state = app_state(request)
        account = await _accounts(state).get(user_id)
        if account is None:
            raise NotFoundError(f"No user with id `{user_id}`.", param="user_id")
        return await _user_record(state, account)

    @router.patch("/users/{user_id}", summary="Set (a value) or clear (null) a user's limits")
    async def update_user(request: Request, user_id: str, body: UserPolicyUpdate) -> UserRecord:
        state = app_state(request)
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
        state = app_state(request)
        account = await _accounts(state).set_password(user_id, body.password)
        return await _changed(state, user_id, account)

    @router.post(
        "/users/{user_id}/disable",
        summary="Disable a user: no sign-in, sessions end, running answers stop",
    )
    async def disable_user(request: Request, user_id: str) -> UserRecord:
        state = app_state(request)
        account = await _accounts(state).set_disabled(user_id, True)
        if account is not None and state.chat is not None:
            await state.chat.stop_all(user_id)
        return await _changed(state, user_id, account)

    @router.post("/users/{user_id}/enable", summary="Enable a disabled user again")
    async def enable_user(request: Request, user_id: str) -> UserRecord:
        state = app_state(request)
        account = await _accounts(state).set_disabled(user_id, False)
        return await _changed(state, user_id, account)

    @router.post("/users/{user_id}/sign-out", summary="Sign a user out everywhere")
    async def sign_out(request: Request, user_id: str) -> SessionsEnded:
        state = app_state(request)
        accounts = _accounts(state)
        if await accounts.get(user_id) is None:
            raise NotFoundError(f"No user with id `{user_id}`.", param="user_id")
        ended = await accounts.end_sessions(user_id)
        _sessions_changed(state)
        return SessionsEnded(user_id=user_id, sessions_ended=ended)

    return router
