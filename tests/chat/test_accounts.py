"""Accounts: single-user mode's "does a user with a password exist?" is asked once, however
many requests ask at the same moment when the remembered answer has expired."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event

from chatgate.chat.accounts import Accounts
from chatgate.storage import Database, upgrade


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
