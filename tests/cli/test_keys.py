"""`chatgate keys create|list|revoke` and `chatgate db upgrade` as real processes, on SQLite and
PostgreSQL; a created key is used against a real `chatgate serve --require-keys`."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from chatgate.gateway.pricing import Cost, to_nanos
from chatgate.storage import Database, UsageRepository, UsageRow, head_revision
from tests.cli.process import chatgate, free_port, wait_healthy
from tests.fakes.upstream import FakeUpstream
from tests.storage.conftest import PgServer, pg_server, require_pg

__all__ = ["pg_server"]  # the shared PostgreSQL fixture, used by name


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = chatgate(*args, env=env)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    code, out = run(*args, env=env)
    assert code == 0, out
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_server: PgServer | str
) -> AsyncIterator[str]:
    """An empty database: a SQLite file (sync URL spelling, as people paste it) or PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'keys.db'}"
        return
    server = require_pg(pg_server)
    url = await server.create_database()
    try:
        yield url
    finally:
        await server.drop_database(url)


def create(db_url: str, *options: str) -> tuple[str, str]:
    """(key id, secret) of a new key."""
    out = ok("keys", "create", "--database-url", db_url, *options)
    secret = out.rstrip("\n").splitlines()[-1]
    assert re.fullmatch(r"sk-cg-[A-Za-z0-9]{40}", secret), out
    key_id = re.search(r"\bkey_[0-9a-f]+\b", out)
    assert key_id is not None, out
    return key_id.group(0), secret


def test_keys_round_trip(db_url: str) -> None:
    key_id, secret = create(
        db_url,
        "--name",
        "ci bot",
        "--rpm",
        "60",
        "--tpm",
        "5000",
        "--budget-tokens",
        "100000",
        "--models",
        "fake-model, local",
        "--expires-days",
        "30",
    )
    other_id, other = create(db_url, "--name", "plain")

    table = ok("keys", "list", "--database-url", db_url)
    assert secret not in table and other not in table
    header, *rows = table.strip().splitlines()
    assert header.split() == [
        "ID",
        "NAME",
        "PREFIX",
        "CREATED",
        "EXPIRES",
        "REVOKED",
        "RPM",
        "TPM",
        "BUDGET",
        "USED",
        "COST-BUDGET",
        "COST-USED",
        "SPEND",
        "SAVED",
        "MODELS",
    ]
    (mine,) = [r for r in rows if r.startswith(key_id)]
    assert "ci bot" in mine and secret[:10] in mine and "fake-model,local" in mine
    assert " 60 " in mine and " 5000 " in mine and " 100000 " in mine

    records = {
        r["id"]: r for r in json.loads(ok("keys", "list", "--json", "--database-url", db_url))
    }
    assert set(records) == {key_id, other_id}
    assert records[key_id]["models"] == ["fake-model", "local"]
    assert records[key_id]["expires_at"] and records[other_id]["expires_at"] is None
    assert records[key_id]["active"] and records[key_id]["revoked_at"] is None
    assert secret not in json.dumps(records)

    out = ok("keys", "revoke", key_id, "--database-url", db_url)
    assert out.count("\n") == 1 and key_id in out and "Revoked" in out
    assert "already" in ok("keys", "revoke", key_id, "--database-url", db_url)
    records = {
        r["id"]: r for r in json.loads(ok("keys", "list", "--json", "--database-url", db_url))
    }
    assert records[key_id]["revoked_at"] and not records[key_id]["active"]
    assert records[other_id]["active"]

    code, out = run("keys", "revoke", "key_0123456789abcdef", "--database-url", db_url)
    assert code == 1 and out.count("\n") == 1 and "key_0123456789abcdef" in out, out


def test_database_from_env_and_config(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'env.db'}"
    key_id, _ = create(url, "--name", "by option")
    config = tmp_path / "chatgate.yaml"
    config.write_text(f"database: {{url: '{url}'}}\n", encoding="utf-8")
    assert key_id in ok("keys", "list", "--config", str(config))
    assert key_id in ok("keys", "list", env={"CHATGATE_DATABASE_URL": url})
    # the option beats the env var, which beats the file
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert key_id not in ok(
        "keys", "list", "--config", str(config), env={"CHATGATE_DATABASE_URL": other}
    )


def test_created_key_works_against_serve(db_url: str, tmp_path: Path, fake: FakeUpstream) -> None:
    key_id, secret = create(db_url, "--name", "serve test", "--models", "fake-model")
    config = tmp_path / "serve.yaml"
    config.write_text(
        "discover_env: false\nlocal_model: false\nauth: {key_cache_ttl: 0}\n"
        f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}/v1', "
        "models: [fake-model]}\n",
        encoding="utf-8",
    )
    port = free_port()
    proc = chatgate(
        "serve",
        "--config",
        str(config),
        "--database-url",
        db_url,
        "--require-keys",
        "--port",
        str(port),
    )
    url = f"http://127.0.0.1:{port}"
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}

    def call(key: str | None) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=30)

    try:
        wait_healthy(url, proc)
        assert call(secret).status_code == 200
        assert call(None).status_code == 401
        assert call("sk-cg-" + "x" * 40).status_code == 401
        ok("keys", "revoke", key_id, "--database-url", db_url)
        # another process revoked it: with auth.key_cache_ttl 0 the next request sees it
        resp = call(secret)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_db_upgrade_twice(db_url: str) -> None:
    head = head_revision()
    first = ok("db", "upgrade", "--database-url", db_url)
    assert "Revision before: none" in first and f"Revision after:  {head} (head)" in first
    assert "already" not in first
    second = ok("db", "upgrade", "--database-url", db_url)
    assert f"Revision before: {head}" in second and "already up to date" in second
    assert "password" not in second


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "create", "--name", "x", "--rpm", "0"],
        ["keys", "create", "--name", "x", "--rpm", "abc"],
        ["keys", "create", "--name", "x", "--tpm", "-5"],
        ["keys", "create", "--name", "x", "--budget-tokens", "1.5"],
        ["keys", "create", "--name", "x", "--expires-days", "0"],
        ["keys", "create", "--name", "x", "--models", " , "],
        ["keys", "create", "--rpm", "5"],
        ["keys", "revoke"],
        ["keys", "frobnicate"],
        ["db", "downgrade"],
        ["keys", "list", "--database-url", "nosuchdriver://x"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    code, out = run(*args, env={"CHATGATE_DATABASE_URL": f"sqlite:///{tmp_path}/db"})
    assert code == 2, out
    if args[0] == "keys" and len(args) > 2:  # the command's own options: one line
        assert out.count("\n") == 1, out
    assert "Traceback" not in out
    assert not (tmp_path / "db").exists()  # nothing was written


@pytest.mark.parametrize("command", [["keys", "list"], ["db", "upgrade"]])
def test_unreachable_database_is_one_line_and_exit_1(command: list[str]) -> None:
    url = f"postgresql://chatgate:secret-pw@127.0.0.1:{free_port()}/chatgate"
    code, out = run(*command, "--database-url", url)
    assert code == 1, out
    assert out.count("\n") == 1 and "Traceback" not in out
    assert "127.0.0.1" in out and "secret-pw" not in out


@pytest.mark.parametrize(
    "command",
    [
        ["keys"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
        ["db"],
        ["db", "upgrade"],
        ["serve"],
    ],
)
def test_help(command: list[str]) -> None:
    out = ok(*command, "-h")
    assert out.startswith("usage: chatgate " + " ".join(command))
    if command[-1] in ("create", "list", "revoke", "upgrade", "serve"):
        assert "--database-url" in out and "--config" in out
    if command == ["serve"]:
        assert "--require-keys" in out and "--admin-key" in out


async def test_a_spending_budget_and_the_spend_are_listed(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'keys.db'}"
    key_id, _ = create(db_url, "--name", "spender", "--budget-cost", "2.5")
    async_url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    async with Database(async_url) as db:
        usd = Cost(to_nanos("0.25"), "USD", to_nanos("0.25"))
        await UsageRepository(db).add_batch(
            [
                UsageRow(
                    key_id,
                    "m",
                    1,
                    1,
                    cost_nanos=usd.nanos,
                    currency="USD",
                    budget_nanos=usd.budget_nanos,
                ),
                UsageRow(key_id, "giga", 1, 1, cost_nanos=to_nanos(12), currency="RUB"),
                UsageRow(key_id, "m", saved_nanos=to_nanos("1.5"), currency="USD"),
            ]
        )
    (record,) = json.loads(ok("keys", "list", "--json", "--database-url", db_url))
    assert (record["budget_cost"], record["cost_used"]) == (2.5, 0.25)
    assert record["spend"] == {"USD": 0.25, "RUB": 12.0} and record["saved"] == {"USD": 1.5}
    table = ok("keys", "list", "--database-url", db_url)
    assert "12 RUB + 0.25 USD" in table and "1.5 USD" in table and " 2.5 " in table
    code, out = run("keys", "create", "--database-url", db_url, "--name", "x", "--budget-cost", "0")
    assert code == 2 and "budget-cost" in out
