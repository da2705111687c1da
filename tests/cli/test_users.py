"""``chatgate users create|list``: argon2-hashed passwords, --password-stdin, clear errors."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from sqlalchemy import text

from chatgate.chat.accounts import Accounts
from chatgate.cli import main
from chatgate.errors import GatewayError
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


def test_update_password_disable_enable_sign_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    db = ["--database-url", url]
    create = ["users", "create", "eve", "--password-stdin", *db]
    assert run(create, "first secret\n", monkeypatch) == 0

    async def sessions(n: int) -> list[str]:
        async with Database(url) as database:
            accounts = Accounts(database, "off", True)
            return [(await accounts.login("eve", "first secret"))[1] for _ in range(n)]

    tokens = asyncio.run(sessions(2))
    capsys.readouterr()

    update = ["users", "update", "eve", "--rpm", "30", "--budget-tokens", "1000", "--models", "a,b"]
    assert run([*update, *db], "", monkeypatch) == 0
    assert "rpm=30 tpm=- budget=1000 used=0 models=a,b" in capsys.readouterr().out
    assert run(["users", "update", "eve", "--clear", "rpm,models", *db], "", monkeypatch) == 0
    assert "rpm=- tpm=- budget=1000 used=0 models=all" in capsys.readouterr().out
    both = ["users", "update", "eve", "--rpm", "5", "--clear", "rpm", *db]
    assert run(both, "", monkeypatch) == 2
    assert "contradict" in capsys.readouterr().err
    assert run(["users", "update", "eve", *db], "", monkeypatch) == 2
    assert run(["users", "update", "nobody", "--rpm", "5", *db], "", monkeypatch) == 2
    assert "no user named 'nobody'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["users", "update", "eve", "--clear", "colour", *db])

    assert run(["users", "sign-out", "eve", *db], "", monkeypatch) == 0
    assert "(2 sessions ended)" in capsys.readouterr().out

    async def alive(token: str) -> bool:
        async with Database(url) as database:
            return await Accounts(database, "off", True).for_token(token) is not None

    assert not any(asyncio.run(alive(t)) for t in tokens)

    assert run(["users", "password", "eve", "--password-stdin", *db], "x\n", monkeypatch) == 2
    passwd = ["users", "passwd", "eve", "--password-stdin", *db]
    assert run(passwd, "second secret\n", monkeypatch) == 0

    assert run(["users", "disable", "eve", *db], "", monkeypatch) == 0
    assert run(["users", "list", *db], "", monkeypatch) == 0
    assert "eve  (disabled)  rpm=- tpm=- budget=1000" in capsys.readouterr().out

    async def login(password: str) -> str:
        async with Database(url) as database:
            try:
                await Accounts(database, "off", True).login("eve", password)
            except GatewayError as exc:
                return f"{exc.status} {exc.code}"
            return "ok"

    assert asyncio.run(login("second secret")) == "403 account_disabled"
    assert run(["users", "enable", "eve", *db], "", monkeypatch) == 0
    assert asyncio.run(login("first secret")) == "401 invalid_credentials"
    assert asyncio.run(login("second secret")) == "ok"
