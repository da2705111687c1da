"""Sign-in under attack: wrong passwords are throttled per account and per client address with
growing delays (429 + Retry-After), and a flood of sign-ins is shed (503) by the bounded
hashing pool instead of exhausting memory or starving other requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from chatgate.app import create_app
from chatgate.chat.accounts import Accounts
from chatgate.storage import Database
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

PASSWORD = "correct horse battery"
XRW = {"X-Requested-With": "tests"}


def _serve(fake: FakeUpstream, tmp: Any, **server: Any) -> Iterator[str]:
    db_url = f"sqlite+aiosqlite:///{tmp / 'db'}"
    config = gateway_config(fake.base_url, database={"url": db_url}, server=server)

    async def users() -> None:
        async with Database(db_url) as db:
            for name in ("alice", "bob"):
                await Accounts(db, "off", True).create_user(name, PASSWORD)

    with ServerThread(create_app(config)) as url:
        asyncio.run(users())
        yield url


@pytest.fixture(scope="module")
def plain(fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The default configuration: every client is 127.0.0.1."""
    yield from _serve(fake_server, tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def server(fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Behind a trusted proxy on loopback, so tests can speak for many client addresses."""
    yield from _serve(
        fake_server, tmp_path_factory.mktemp("proxied"), trusted_proxies=["127.0.0.1"]
    )


def login(url: str, name: str, password: str, address: str | None = None) -> httpx.Response:
    headers = {**XRW, "X-Forwarded-For": address} if address else XRW
    return httpx.post(
        url + "/api/auth/login", json={"name": name, "password": password}, headers=headers
    )


def after_waiting(refused: httpx.Response, attempt: Callable[[], httpx.Response]) -> int:
    """The status of ``attempt`` once the wait ``refused`` asked for is over (a slow machine
    may still be a moment early: the wait is asked for again)."""
    for _ in range(3):
        time.sleep(float(refused.headers["retry-after"]))
        refused = attempt()
        if refused.status_code != 429:
            break
    return refused.status_code


def test_wrong_passwords_lock_the_account_with_growing_delays(plain: str) -> None:
    statuses = [login(plain, "alice", "wrong").status_code for i in range(6)]
    assert statuses == [401] * 6  # 5 free, the 6th judged and locking
    refused = login(plain, "alice", "wrong")
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "login_throttled"
    first_wait = int(refused.headers["retry-after"])
    assert first_wait >= 1
    # Locked means locked: the right password waits too.
    assert login(plain, "alice", PASSWORD).status_code == 429
    time.sleep(first_wait)
    assert login(plain, "alice", "wrong").status_code == 401
    again = login(plain, "alice", PASSWORD)
    assert again.status_code == 429 and int(again.headers["retry-after"]) >= first_wait
    assert after_waiting(again, lambda: login(plain, "alice", PASSWORD)) == 200
    # ... which starts the account afresh. Other accounts were never touched.
    assert login(plain, "alice", "wrong").status_code == 401
    assert login(plain, "bob", PASSWORD).status_code == 200


def test_the_lock_is_per_account_not_per_address(server: str) -> None:
    """Guesses at one account from many addresses lock it all the same."""
    for i in range(6):
        assert login(server, "alice", "wrong", f"198.51.100.{i}").status_code == 401
    assert login(server, "alice", PASSWORD, "198.51.100.50").status_code == 429


def test_one_address_guessing_many_names_is_throttled(server: str) -> None:
    address = "203.0.113.9"
    statuses = [login(server, f"nobody-{i}", "x", address).status_code for i in range(21)]
    assert statuses == [401] * 21
    refused = login(server, "bob", PASSWORD, address)
    assert refused.status_code == 429 and "retry-after" in refused.headers
    assert login(server, "bob", PASSWORD, "203.0.113.10").status_code == 200  # another client


async def test_a_flood_is_shed_and_other_requests_stay_fast(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, headers=XRW, timeout=60) as client:

        async def guess(i: int) -> httpx.Response:
            return await client.post(
                "/api/auth/login",
                json={"name": f"flood-{i}", "password": "x"},
                headers={"X-Forwarded-For": f"192.0.2.{i % 250}"},
            )

        flood = asyncio.gather(*(guess(i) for i in range(120)))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        health = await client.get("/health")
        latency = time.monotonic() - started
        replies = await flood
    statuses = [r.status_code for r in replies]
    assert health.status_code == 200
    # Generous: client, server and hashing share this process and a busy machine.
    assert latency < 5.0, f"/health took {latency:.2f} s during the flood"
    busy = [r for r in replies if r.status_code == 503]
    assert busy, statuses  # shed, not queued without bound
    assert busy[0].json()["error"]["code"] == "login_busy" and busy[0].headers["retry-after"]
    assert set(statuses) <= {401, 503}
