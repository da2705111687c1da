"""KeyRepository: secrets are shown once and stored only as a hash; lookup, list, revoke, budget."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from chatgate.storage import Database, KeyRepository
from chatgate.storage.keys import PREFIX_LENGTH


async def _raw_rows(db: Database) -> list[tuple[object, ...]]:
    async with db.engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(text("SELECT * FROM client_keys"))]


async def test_create_stores_only_the_hash(db: Database, db_url: str) -> None:
    key, secret = await KeyRepository(db).create("alice")
    assert re.fullmatch(r"sk-cg-[A-Za-z0-9]{40}", secret)
    assert re.fullmatch(r"key_[0-9a-f]{16}", key.id)
    assert key.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert key.prefix == secret[:PREFIX_LENGTH] == secret[:10]

    hidden = secret[PREFIX_LENGTH:]  # everything the displayed prefix does not already show
    rows = await _raw_rows(db)
    assert len(rows) == 1
    for value in rows[0]:
        assert hidden not in str(value)
    if db_url.startswith("sqlite"):
        await db.close()  # checkpoint, then look at every byte SQLite wrote
        path = Path(db_url.split(":///", 1)[1])
        for file in path.parent.glob(path.name + "*"):
            assert hidden.encode() not in file.read_bytes()


async def test_secrets_and_ids_are_unique(db: Database) -> None:
    repo = KeyRepository(db)
    created = [await repo.create(f"k{i}") for i in range(20)]
    assert len({k.id for k, _ in created}) == len({s for _, s in created}) == 20


async def test_find_by_secret(db: Database) -> None:
    repo = KeyRepository(db)
    key, secret = await repo.create("alice")
    await repo.create("bob")
    found = await repo.find_by_secret(secret)
    assert found is not None and found.id == key.id and found.name == "alice"
    assert await repo.find_by_secret(secret[:-1] + ("x" if secret[-1] != "x" else "y")) is None
    assert await repo.find_by_secret("sk-cg-" + "A" * 40) is None
    assert await repo.find_by_secret("") is None
    assert await repo.find_by_secret(key.key_hash) is None  # the hash is not a credential


async def test_limits_models_and_expiry_round_trip(db: Database) -> None:
    repo = KeyRepository(db)
    before = datetime.now(UTC)
    key, _ = await repo.create(
        "limited",
        rpm=60,
        tpm=10_000,
        budget_tokens=5_000_000_000,
        models=("deepseek-chat", "local"),
        expires_days=7,
    )
    stored = await repo.get(key.id)
    assert stored is not None
    assert (stored.rpm, stored.tpm, stored.budget_tokens) == (60, 10_000, 5_000_000_000)
    assert stored.models == ["deepseek-chat", "local"]
    assert stored.allows_model("local") and not stored.allows_model("gpt-4o")
    assert stored.created_at.tzinfo is not None and stored.expires_at is not None
    assert before <= stored.created_at <= datetime.now(UTC)
    assert stored.expires_at - stored.created_at == timedelta(days=7)
    assert stored.is_active()
    assert not stored.is_active(now=stored.created_at + timedelta(days=8))

    plain = await repo.get((await repo.create("plain"))[0].id)
    assert plain is not None
    assert plain.models is None and plain.allows_model("anything")
    assert plain.expires_at is None and plain.budget_left is None and plain.tokens_used == 0


async def test_get_and_list(db: Database) -> None:
    repo = KeyRepository(db)
    first, _ = await repo.create("first")
    second, _ = await repo.create("second")
    assert await repo.get("key_missing") is None
    assert [k.id for k in await repo.list()] == [first.id, second.id]
    await repo.revoke(first.id)
    assert [k.id for k in await repo.list(include_revoked=False)] == [second.id]


async def test_revoke(db: Database) -> None:
    repo = KeyRepository(db)
    key, secret = await repo.create("leaked")
    assert await repo.revoke(key.id) is True
    revoked = await repo.find_by_secret(secret)
    assert revoked is not None and revoked.revoked_at is not None and not revoked.is_active()
    first_revocation = revoked.revoked_at
    assert await repo.revoke(key.id) is True  # idempotent: keeps the first time
    again = await repo.get(key.id)
    assert again is not None and again.revoked_at == first_revocation
    assert await repo.revoke("key_missing") is False


async def test_add_tokens_used(db: Database) -> None:
    repo = KeyRepository(db)
    key, _ = await repo.create("budgeted", budget_tokens=100)
    await repo.add_tokens_used(key.id, 60)
    await repo.add_tokens_used(key.id, 30)
    stored = await repo.get(key.id)
    assert stored is not None and stored.tokens_used == 90 and stored.budget_left == 10
    await repo.add_tokens_used(key.id, 50)
    stored = await repo.get(key.id)
    assert stored is not None and stored.tokens_used == 140 and stored.budget_left == 0
    await repo.add_tokens_used("key_missing", 5)  # no such key: nothing happens
