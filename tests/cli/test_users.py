"""``chatgate users create|list``: argon2-hashed passwords, --password-stdin, clear errors."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from sqlalchemy import text

from chatgate.chat.accounts import Accounts
from chatgate.cli import main
from chatgate.storage import Database


def run(argv: list[str], stdin: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


def test_create_list_and_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    args = ["users", "create", "root", "--admin", "--password-stdin", "--database-url", url]
    assert run(args, "a long secret\n", monkeypatch) == 0
    assert "Created administrator root" in capsys.readouterr().out
    assert run(args, "a long secret\n", monkeypatch) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    short = ["users", "create", "bob", "--password-stdin", "--database-url", url]
    assert run(short, "short\n", monkeypatch) == 2
    assert "at least 8" in capsys.readouterr().err
    assert run(["users", "list", "--database-url", url], "", monkeypatch) == 0
    assert "root  (admin)" in capsys.readouterr().out

    async def login() -> None:
        async with Database(url) as db:
            accounts = Accounts(db, "auto", True)
            account, token = await accounts.login("root", "a long secret")
            assert account.is_admin and len(token) > 30
            assert await accounts.implicit_user() is None  # a password user ends single-user
            async with db.session() as s:
                stored = (await s.execute(text("select password_hash from users"))).scalar_one()
            assert stored.startswith("$argon2id$")

    asyncio.run(login())
