"""Authenticator: key and user identities, the identity cache, budgets, model access.

Keys, users and usage live in real storage (SQLite and PostgreSQL, see tests/storage): the
key repository, the accounts' user lookup and the usage recorder that writes the budgets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from chatgate.chat.accounts import Account, Accounts
from chatgate.errors import AuthenticationError, PermissionDeniedError, QuotaExceededError
from chatgate.gateway.auth import ANONYMOUS_IDENTITY, Authenticator, Identity, bearer
from chatgate.gateway.pricing import Cost
from chatgate.gateway.ratelimit import Limit
from chatgate.gateway.usage import UsageRecorder
from chatgate.storage import ClientKey, Database, KeyRepository, UsageRepository
from chatgate.storage.keys import generate_secret, hash_secret

PASSWORD = "correct horse battery"


def authenticator(
    db: Database,
    require_keys: bool = True,
    ttl: float = 60.0,
    users: Callable[[str], Awaitable[Account | None]] | None = None,
) -> Authenticator:
    return Authenticator(KeyRepository(db), require_keys, ttl, users)


def recorder(db: Database, auth: Authenticator) -> UsageRecorder:
    """The real writer of budgets: ``record`` then ``flush`` (no background task here)."""
    return UsageRecorder(UsageRepository(db), on_written=auth.written)


async def test_an_active_key_is_its_identity(db: Database) -> None:
    key, secret = await KeyRepository(db).create(
        "alice", rpm=5, tpm=1000, budget_tokens=100, models=["fake-model"]
    )
    identity = await authenticator(db).authenticate(secret)
    assert identity == Identity(
        key.id, "alice", Limit(rpm=5, tpm=1000), frozenset({"fake-model"}), 100, 0
    )
    assert identity.subject == "k:" + key.id
    assert bearer("Bearer " + secret) == secret and bearer("Basic abc") is None


@pytest.mark.parametrize("require_keys", [True, False])
async def test_a_revoked_or_expired_key_is_refused_even_when_keys_are_optional(
    db: Database, require_keys: bool
) -> None:
    keys = KeyRepository(db)
    revoked, revoked_secret = await keys.create("revoked")
    await keys.revoke(revoked.id)
    _, expired_secret = await keys.create("expired", expires_days=1e-6)  # ~0.09 s
    await asyncio.sleep(0.15)
    auth = authenticator(db, require_keys)
    for secret in (revoked_secret, expired_secret):
        with pytest.raises(AuthenticationError, match="revoked or has expired"):
            await auth.authenticate(secret)


async def test_an_unknown_or_missing_key(db: Database) -> None:
    unknown = "sk-cg-" + "x" * 40
    required = authenticator(db, require_keys=True)
    for secret in (None, "sk-not-ours", unknown):
        with pytest.raises(AuthenticationError):
            await required.authenticate(secret)
    optional = authenticator(db, require_keys=False)
    for secret in (None, "sk-not-ours", unknown):  # SDKs always send some key
        assert await optional.authenticate(secret) is ANONYMOUS_IDENTITY
    assert ANONYMOUS_IDENTITY.subject is None


async def test_an_identity_is_trusted_for_the_cache_ttl(db: Database) -> None:
    keys = KeyRepository(db)
    key, secret = await keys.create("alice")
    auth = authenticator(db, ttl=0.3)
    await auth.authenticate(secret)
    await keys.revoke(key.id)
    assert (await auth.authenticate(secret)).key_id == key.id  # cached: no read
    await asyncio.sleep(0.35)
    with pytest.raises(AuthenticationError):
        await auth.authenticate(secret)

    other, other_secret = await keys.create("bob")
    await auth.authenticate(other_secret)
    await keys.revoke(other.id)
    auth.forget()  # a change made here takes effect at once
    with pytest.raises(AuthenticationError):
        await auth.authenticate(other_secret)


async def test_no_such_key_is_remembered_for_the_ttl_too(db: Database) -> None:
    secret = generate_secret()
    auth = authenticator(db, require_keys=False, ttl=60)
    assert await auth.authenticate(secret) is ANONYMOUS_IDENTITY
    async with db.session() as s:  # the key appears (another replica made it)
        s.add(ClientKey(id="key_late", name="late", key_hash=hash_secret(secret), prefix="sk-cg-"))
    assert await auth.authenticate(secret) is ANONYMOUS_IDENTITY  # made-up keys cost no reads
    auth.forget()
    assert (await auth.authenticate(secret)).key_id == "key_late"


async def test_users_come_from_the_users_lookup_and_are_cached(db: Database) -> None:
    accounts = Accounts(db, "off", True)
    alice = await accounts.create_user("alice", PASSWORD)
    await accounts.update_policy(alice.id, rpm=7, budget_tokens=50, models=["fake-model"])
    lookups: list[str] = []

    async def users(user_id: str) -> Account | None:
        lookups.append(user_id)
        return await accounts.get(user_id)

    auth = authenticator(db, users=users, ttl=60)
    identity = await auth.user(alice.id, "ignored: the store's name counts")
    assert (identity.user_id, identity.name, identity.key_id) == (alice.id, "alice", None)
    assert (identity.limit, identity.budget_tokens) == (Limit(rpm=7), 50)
    assert identity.models == frozenset({"fake-model"}) and identity.subject == "u:" + alice.id
    await auth.user(alice.id, "alice")
    assert lookups == [alice.id]  # the second came from the cache
    with pytest.raises(AuthenticationError, match="no longer exists"):
        await auth.user("u_gone", "gone")

    plain = await authenticator(db).user("u_1", "someone")  # no user store: no policy
    assert plain == Identity(None, "someone", Limit(), None, None, 0, user_id="u_1")


async def test_a_key_budget_counts_spent_written_and_read_tokens_once(db: Database) -> None:
    keys = KeyRepository(db)
    key, secret = await keys.create("alice", budget_tokens=100)
    auth = authenticator(db, ttl=60)
    usage = recorder(db, auth)
    identity = await auth.authenticate(secret)

    auth.spend(identity, 60)  # answered, not yet written
    usage.record(key.id, "m", 50, 10)
    auth.check_budget(identity)  # 60 of 100
    await usage.flush()  # written: the database says 60 now; the cached identity still 0
    assert (await keys.get(key.id)).tokens_used == 60  # type: ignore[union-attr]
    auth.check_budget(identity)  # still 60, not 0 (forgotten) and not 120 (counted twice)
    auth.spend(identity, 39)
    auth.check_budget(identity)  # 99
    auth.forget()
    fresh = await auth.authenticate(secret)
    assert fresh.tokens_used == 60
    auth.check_budget(fresh)  # 60 read + 39 unwritten = 99, again once each
    auth.spend(fresh, 1)
    with pytest.raises(QuotaExceededError, match=r"API key \(100 of 100"):
        auth.check_budget(fresh)
    usage.record(key.id, "m", 40, 0)
    await usage.flush()
    with pytest.raises(QuotaExceededError, match=r"\(100 of 100"):
        auth.check_budget(fresh)


async def test_a_cost_budget_counts_like_the_token_budget_and_runs_out_exactly(
    db: Database,
) -> None:
    keys = KeyRepository(db)
    key, secret = await keys.create("spender", budget_cost_nanos=1000)
    auth = authenticator(db, ttl=60)
    usage = recorder(db, auth)
    identity = await auth.authenticate(secret)
    assert (identity.budget_cost, identity.cost_used) == (1000, 0)
    cost = Cost(500, "USD", 500)
    auth.spend(identity, 0, 500)
    usage.record(key.id, "m", 1, 1, cost=cost)
    auth.check_budget(identity)  # 500 of 1000
    await usage.flush()
    auth.check_budget(identity)  # still 500: written, not counted twice
    auth.spend(identity, 0, 500)
    with pytest.raises(QuotaExceededError, match=r"spending budget .*\(0.000001 of 0.000001 USD"):
        auth.check_budget(identity)
    usage.record(key.id, "m", 1, 1, cost=cost)
    await usage.flush()
    auth.forget()
    fresh = await auth.authenticate(secret)
    assert fresh.cost_used == 1000
    with pytest.raises(QuotaExceededError, match="spending budget"):
        auth.check_budget(fresh)


async def test_a_user_budget_counts_like_a_key_budget(db: Database) -> None:
    accounts = Accounts(db, "off", True)
    bob = await accounts.create_user("bob", PASSWORD)
    await accounts.update_policy(bob.id, budget_tokens=10)
    auth = authenticator(db, users=accounts.get)
    usage = recorder(db, auth)
    identity = await auth.user(bob.id, "bob")
    auth.spend(identity, 10)
    usage.record(None, "m", 10, 0, bob.id)
    with pytest.raises(QuotaExceededError, match=r"account \(10 of 10"):
        auth.check_budget(identity)
    await usage.flush()
    with pytest.raises(QuotaExceededError, match=r"\(10 of 10"):
        auth.check_budget(identity)
    auth.forget()
    with pytest.raises(QuotaExceededError, match=r"\(10 of 10"):
        auth.check_budget(await auth.user(bob.id, "bob"))


async def test_a_batch_written_during_a_read_is_not_forgotten(db: Database) -> None:
    accounts = Accounts(db, "off", True)
    carol = await accounts.create_user("carol", PASSWORD)
    await accounts.update_policy(carol.id, budget_tokens=100)
    fetched, release = asyncio.Event(), asyncio.Event()

    async def slow_users(user_id: str) -> Account | None:
        account = await accounts.get(user_id)  # the database as it is now...
        fetched.set()
        await release.wait()  # ...handed over only after a usage batch was written
        return account

    auth = authenticator(db, users=accounts.get)
    usage = recorder(db, auth)
    identity = await auth.user(carol.id, "carol")
    auth.spend(identity, 100)
    usage.record(None, "m", 100, 0, carol.id)
    auth.forget()
    auth.users = slow_users
    read = asyncio.create_task(auth.user(carol.id, "carol"))
    await fetched.wait()
    await usage.flush()
    release.set()
    fresh = await read
    assert fresh.tokens_used == 0  # read before the batch landed
    with pytest.raises(QuotaExceededError, match=r"\(100 of 100"):
        auth.check_budget(fresh)


async def test_many_batches_between_two_reads_are_all_counted_once(db: Database) -> None:
    key, secret = await KeyRepository(db).create("busy", budget_tokens=20)
    auth = authenticator(db, ttl=60)
    usage = recorder(db, auth)
    identity = await auth.authenticate(secret)
    for _ in range(19):
        usage.record(key.id, "m", 1, 0)
        await usage.flush()
    auth.check_budget(identity)  # 19 of 20, from 19 batches the cached identity never saw
    assert len(auth._written_since_read["k:" + key.id]) <= 8  # kept bounded meanwhile
    usage.record(key.id, "m", 1, 0)
    await usage.flush()
    with pytest.raises(QuotaExceededError, match=r"\(20 of 20"):
        auth.check_budget(identity)
    auth.forget()
    with pytest.raises(QuotaExceededError, match=r"\(20 of 20"):  # not 40: read once
        auth.check_budget(await auth.authenticate(secret))


async def test_spending_without_a_budget_or_a_subject_is_harmless(db: Database) -> None:
    auth = authenticator(db, require_keys=False)
    auth.spend(ANONYMOUS_IDENTITY, 10**9)
    auth.check_budget(ANONYMOUS_IDENTITY)
    _, secret = await KeyRepository(db).create("unlimited")
    unlimited = await auth.authenticate(secret)
    auth.spend(unlimited, 10**9)
    auth.check_budget(unlimited)


def test_check_model() -> None:
    key = Identity("key_1", "k", Limit(), frozenset({"a"}), None, 0)
    key.check_model("a")
    with pytest.raises(PermissionDeniedError, match="API key may not use the model `b`") as e:
        key.check_model("b")
    assert (e.value.code, e.value.param, e.value.status) == ("model_not_allowed", "model", 403)
    user = Identity(None, "u", Limit(), frozenset(), None, 0, user_id="u_1")
    with pytest.raises(PermissionDeniedError, match="account may not use"):
        user.check_model("a")
    ANONYMOUS_IDENTITY.check_model("anything")
