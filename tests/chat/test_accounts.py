"""Accounts: single-user mode's "does a user with a password exist?" is asked once, however
many requests ask at the same moment when the remembered answer has expired; users' policy
(rpm, tpm, token budget, model allow-list) is set, cleared and validated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from chatgate.chat.accounts import Accounts
from chatgate.errors import InvalidRequestError
from chatgate.storage import Database, upgrade
from chatgate.storage.keys import MAX_BUDGET, MAX_RATE


async def test_requests_at_once_share_one_look(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    await upgrade(url)
    async with Database(url) as db:
        counts: list[str] = []

        @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
        def _seen(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
            if "count(" in statement.lower():
                counts.append(statement)

        accounts = Accounts(db, "auto", loopback=True)
        assert (
            await asyncio.gather(*(accounts.single_user_active() for _ in range(50))) == [True] * 50
        )
        assert len(counts) == 1
        await accounts.create_user("someone", "a long enough password")
        assert (
            await asyncio.gather(*(accounts.single_user_active() for _ in range(50)))
            == [False] * 50
        )
        assert len(counts) == 2  # the new user cleared the remembered answer: asked again


@pytest.fixture
async def accounts(tmp_path: Path) -> AsyncIterator[Accounts]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'policy.db'}"
    await upgrade(url)
    async with Database(url) as db:
        yield Accounts(db, "auto", loopback=True)


async def test_a_new_user_has_no_limits(accounts: Accounts) -> None:
    ann = await accounts.create_user("ann", "a long enough password")
    assert (ann.rpm, ann.tpm, ann.budget_tokens, ann.models, ann.tokens_used) == (
        None,
        None,
        None,
        None,
        0,
    )
    assert ann.allows_model("anything") and ann.budget_left is None
    assert ann.created_at is not None


async def test_update_policy_sets_clears_and_leaves_fields(accounts: Accounts) -> None:
    ann = await accounts.create_user("ann", "a long enough password")
    updated = await accounts.update_policy(
        ann.id, rpm=30, tpm=MAX_RATE, budget_tokens=MAX_BUDGET, models=[" local ", "m2", "local"]
    )
    assert updated is not None
    assert (updated.rpm, updated.tpm, updated.budget_tokens) == (30, MAX_RATE, MAX_BUDGET)
    assert updated.models == frozenset({"local", "m2"})
    assert updated.allows_model("m2") and not updated.allows_model("m3")
    assert updated.budget_left == MAX_BUDGET
    # Only what is given changes; None clears.
    cleared = await accounts.update_policy(ann.id, rpm=None, models=None)
    assert cleared is not None
    assert (cleared.rpm, cleared.tpm, cleared.budget_tokens, cleared.models) == (
        None,
        MAX_RATE,
        MAX_BUDGET,
        None,
    )
    assert await accounts.get(ann.id) == cleared
    assert [a for a in await accounts.list_users() if a.id == ann.id] == [cleared]
    assert await accounts.update_policy(ann.id) == cleared  # nothing given: nothing changes
    assert await accounts.update_policy("u_nobody", rpm=1) is None


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"rpm": 0}, "rpm"),
        ({"rpm": MAX_RATE + 1}, "rpm"),
        ({"tpm": -5}, "tpm"),
        ({"tpm": True}, "tpm"),
        ({"rpm": 1.5}, "rpm"),
        ({"rpm": "10"}, "rpm"),
        ({"budget_tokens": 0}, "budget_tokens"),
        ({"budget_tokens": MAX_BUDGET + 1}, "budget_tokens"),
        ({"models": []}, "models"),
        ({"models": [""]}, "models"),
        ({"models": ["ok", "  "]}, "models"),
        ({"models": ["ok", 3]}, "models"),
        ({"models": "local"}, "models"),
        ({"models": ["x" * 201]}, "models"),
        ({"models": ["bad\nname"]}, "models"),
    ],
)
async def test_update_policy_rejects_bad_values(
    accounts: Accounts, changes: dict[str, Any], param: str
) -> None:
    ann = await accounts.create_user("ann", "a long enough password")
    with pytest.raises(InvalidRequestError) as caught:
        await accounts.update_policy(ann.id, **changes)
    assert caught.value.param == param
    unchanged = await accounts.get(ann.id)
    assert unchanged is not None and (unchanged.rpm, unchanged.models) == (None, None)


async def test_the_implicit_user_has_a_policy_too(accounts: Accounts) -> None:
    local = await accounts.implicit_user()
    assert local is not None and local.implicit and local.rpm is None
    await accounts.update_policy(local.id, rpm=5, models=["local"])
    again = await accounts.implicit_user()  # the remembered account follows the change
    assert again is not None and again.rpm == 5 and again.models == frozenset({"local"})
