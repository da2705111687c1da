"""Who may use `/admin/`: the admin key, an admin's session (with /api's CSRF rules), the
implicit user of single-user mode — and nobody else, once accounts are on."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chatgate.app import create_app
from chatgate.chat.accounts import Accounts
from chatgate.storage import Database
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

ADMIN_KEY = "admin-key-for-access-tests-0123"
PASSWORD = "correct horse battery"
XRW = {"X-Requested-With": "chatgate-tests"}
READ_AND_WRITE = (("GET", "/admin/keys"), ("GET", "/admin/cache"), ("DELETE", "/admin/cache"))


@dataclass
class Server:
    url: str

    @contextlib.contextmanager
    def client(self, name: str | None = None, **kwargs: Any) -> Iterator[httpx.Client]:
        """A client signed in as ``name`` (or anonymous); no CSRF header unless given."""
        with httpx.Client(base_url=self.url, timeout=30, **kwargs) as client:
            if name is not None:
                r = client.post("/api/auth/login", json={"name": name, "password": PASSWORD})
                assert r.status_code == 200, r.text
            yield client


async def _users(db_url: str) -> None:
    async with Database(db_url) as db:
        accounts = Accounts(db, "off", True)
        await accounts.create_user("root", PASSWORD, is_admin=True)
        await accounts.create_user("alice", PASSWORD)


def _serve(fake_url: str, **auth: Any) -> Iterator[Server]:
    """A loopback server in the default `single_user: auto`, with two users made after it
    started (migrations first): accounts are on, single-user mode is off."""
    db_url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='chatgate-')}/db"
    config = gateway_config(fake_url, database={"url": db_url}, auth=auth)
    with ServerThread(create_app(config)) as url:
        asyncio.run(_users(db_url))
        yield Server(url)


@pytest.fixture(scope="module")
def accounts(fake_server: FakeUpstream) -> Iterator[Server]:
    """Accounts on, no admin key."""
    yield from _serve(fake_server.base_url)


@pytest.fixture(scope="module")
def keyed(fake_server: FakeUpstream) -> Iterator[Server]:
    """Accounts on and an admin key."""
    yield from _serve(fake_server.base_url, admin_key=ADMIN_KEY)


def error_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_no_credentials_with_accounts_on_is_401(accounts: Server) -> None:
    with accounts.client(headers=XRW) as anonymous:
        assert anonymous.get("/api/me").status_code == 401  # accounts are really on
        for method, path in READ_AND_WRITE:
            error = error_of(anonymous.request(method, path), 401)
            assert error["type"] == "authentication_error" and error["code"] == "admin_required"
        # A client key or made-up bearer is no admin key.
        made_up = anonymous.get("/admin/keys", headers={"authorization": "Bearer sk-cg-nope"})
        error_of(made_up, 401)


def test_admin_session_is_let_in(accounts: Server) -> None:
    with accounts.client("root", headers=XRW) as root:
        assert root.get("/api/me").json()["is_admin"] is True
        assert root.get("/admin/keys").status_code == 200
        created = root.post("/admin/keys", json={"name": "from-session", "rpm": 5})
        assert created.status_code == 201, created.text
        revoked = root.delete(f"/admin/keys/{created.json()['id']}")
        assert revoked.status_code == 200 and revoked.json()["active"] is False
        assert root.get("/admin/usage").status_code == 200
        assert root.get("/admin/upstreams").status_code == 200
        assert root.get("/admin/cache").json() == {"enabled": False, "tiers": []}
        root.post("/api/auth/logout")
        error_of(root.get("/admin/keys"), 401)  # the ended session no longer counts


def test_admin_session_writes_follow_the_csrf_rules(accounts: Server) -> None:
    with accounts.client("root") as root:  # no X-Requested-With by default here
        assert root.get("/admin/keys").status_code == 200  # reads need nothing more
        # A JSON body is enough for a write, as on /api ...
        assert root.post("/admin/keys", json={"name": "json-body"}).status_code == 201
        # ... a DELETE without a body needs X-Requested-With ...
        bare = root.delete("/admin/keys/key_nosuchkey")
        assert error_of(bare, 403)["code"] == "csrf"
        assert root.delete("/admin/keys/key_nosuchkey", headers=XRW).status_code == 404
        # ... and a browser's Origin must be this very server.
        foreign = {**XRW, "origin": "https://evil.example"}
        assert (
            error_of(root.post("/admin/keys", json={"name": "x"}, headers=foreign), 403)["code"]
            == "csrf"
        )
        own = {**XRW, "origin": accounts.url}
        assert root.post("/admin/keys", json={"name": "own"}, headers=own).status_code == 201


def test_non_admin_session_is_403(accounts: Server) -> None:
    with accounts.client("alice", headers=XRW) as alice:
        assert alice.get("/api/me").json()["is_admin"] is False
        for method, path in (*READ_AND_WRITE, ("POST", "/admin/keys")):
            body = {"name": "x"} if method == "POST" else None
            error = error_of(alice.request(method, path, json=body), 403)
            assert error["type"] == "permission_error" and error["code"] == "admin_required"


def test_admin_key_with_accounts_on(keyed: Server) -> None:
    with keyed.client() as anonymous:
        bearer = {"authorization": f"Bearer {ADMIN_KEY}"}
        assert anonymous.get("/admin/keys", headers=bearer).status_code == 200
        # A bearer cannot be sent cross-site: a write needs no CSRF header with it.
        assert anonymous.delete("/admin/keys/key_nosuchkey", headers=bearer).status_code == 404
        wrong = anonymous.get("/admin/keys", headers={"authorization": "Bearer wrong"})
        assert error_of(wrong, 401)["type"] == "authentication_error"
        error_of(anonymous.get("/admin/keys"), 401)


def test_admin_session_works_beside_an_admin_key(keyed: Server) -> None:
    with keyed.client("root", headers=XRW) as root:
        assert root.get("/admin/keys").status_code == 200
    with keyed.client("alice", headers=XRW) as alice:
        error_of(alice.get("/admin/keys"), 403)


def test_single_user_mode_is_the_admin(fake_server: FakeUpstream) -> None:
    config = gateway_config(fake_server.base_url)  # loopback, no users, no admin key
    with ServerThread(create_app(config)) as url, httpx.Client(base_url=url) as local:
        me = local.get("/api/me").json()
        assert me["single_user"] is True and me["is_admin"] is True
        assert local.get("/admin/keys").status_code == 200
        assert local.post("/admin/keys", json={"name": "local"}).status_code == 201
        assert local.delete("/admin/keys/key_nosuchkey", headers=XRW).status_code == 404
        # The implicit user is a cookie-less ambient authority: the CSRF rules hold for it too.
        assert error_of(local.delete("/admin/keys/key_nosuchkey"), 403)["code"] == "csrf"
        foreign = local.post(
            "/admin/keys", json={"name": "x"}, headers={"origin": "http://evil.example"}
        )
        assert error_of(foreign, 403)["code"] == "csrf"


def test_single_user_mode_with_an_admin_key_needs_the_key(fake_server: FakeUpstream) -> None:
    config = gateway_config(fake_server.base_url, auth={"admin_key": ADMIN_KEY})
    with ServerThread(create_app(config)) as url, httpx.Client(base_url=url, headers=XRW) as c:
        assert c.get("/api/me").json()["single_user"] is True
        error_of(c.get("/admin/keys"), 401)
        bearer = {"authorization": f"Bearer {ADMIN_KEY}"}
        assert c.get("/admin/keys", headers=bearer).status_code == 200


def test_single_user_mode_off_is_closed(fake_server: FakeUpstream) -> None:
    config = gateway_config(fake_server.base_url, auth={"single_user": "off"})
    with ServerThread(create_app(config)) as url:
        error_of(httpx.get(url + "/admin/keys"), 401)
