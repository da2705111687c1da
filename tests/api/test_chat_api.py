"""The chat API against a running server, on SQLite and PostgreSQL: accounts and sessions, CSRF,
conversations CRUD, per-user isolation, export and import, single-user mode."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from chatgate.app import create_app
from chatgate.chat.accounts import is_loopback
from tests.chat.conftest import (
    HEADERS,
    PASSWORD,
    ChatServer,
    alice,
    chat_server,
    new_conversation,
    pg_server,
    send,
    wait_status,
)
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

__all__ = ["alice", "chat_server", "pg_server"]


# -- accounts ------------------------------------------------------------------------------------
def test_login_sets_a_safe_session_cookie(chat_server: ChatServer) -> None:
    name = asyncio.run(chat_server.user(admin=True))
    with httpx.Client(base_url=chat_server.url, headers=HEADERS) as client:
        assert client.get("/api/me").status_code == 401
        r = client.post("/api/auth/login", json={"name": name, "password": PASSWORD})
        assert r.status_code == 200
        assert r.json() == {
            "id": r.json()["id"],
            "name": name,
            "is_admin": True,
            "single_user": False,
        }
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
        assert "max-age=" in cookie and "secure" not in cookie  # plain http here
        assert client.get("/api/me").json()["name"] == name
        token = client.cookies["chatgate_session"]
        assert client.post("/api/auth/logout").status_code == 204
        assert client.get("/api/me").status_code == 401
    # The token of an ended session is worthless.
    with httpx.Client(base_url=chat_server.url, cookies={"chatgate_session": token}) as client:
        assert client.get("/api/me").status_code == 401


def test_secure_cookie_behind_https_proxy(chat_server: ChatServer) -> None:
    name = asyncio.run(chat_server.user())
    with httpx.Client(base_url=chat_server.url, headers=HEADERS) as client:
        r = client.post(
            "/api/auth/login",
            json={"name": name, "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert "secure" in r.headers["set-cookie"].lower()


def test_wrong_password_or_name_is_401(chat_server: ChatServer) -> None:
    name = asyncio.run(chat_server.user())
    with httpx.Client(base_url=chat_server.url, headers=HEADERS) as client:
        for body in (
            {"name": name, "password": "wrong-password"},
            {"name": "nobody", "password": "x"},
        ):
            r = client.post("/api/auth/login", json=body)
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "invalid_credentials"
            assert "set-cookie" not in r.headers


def test_csrf_needs_json_or_custom_header_and_same_origin(
    chat_server: ChatServer, alice: httpx.Client
) -> None:
    cookies = alice.cookies
    with httpx.Client(base_url=chat_server.url, cookies=cookies) as bare:
        # A cross-site form can only send form-encoded or text/plain bodies: not JSON (415).
        r = bare.post("/api/conversations", content="title=x", headers={
            "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
        assert bare.post("/api/auth/logout").status_code == 403
        r = bare.post("/api/conversations", json={"model": "fake-model"},
                      headers={"Origin": "https://evil.example"})  # fmt: skip
        assert r.status_code == 403
        host = chat_server.url.removeprefix("http://")
        r = bare.post("/api/conversations", json={"model": "fake-model"},
                      headers={"Origin": f"http://{host}"})  # fmt: skip
        assert r.status_code == 201
        assert bare.get("/api/conversations").status_code == 200  # reads need nothing


# -- conversations -------------------------------------------------------------------------------
def test_conversation_crud(alice: httpx.Client, fake: FakeUpstream) -> None:
    conv = new_conversation(
        alice, title="First", system_prompt="Be brief.", params={"temperature": 0.2}
    )
    assert conv["title"] == "First" and conv["pinned"] is False
    assert conv["params"] == {"temperature": 0.2}
    other = new_conversation(alice)
    listed = alice.get("/api/conversations").json()["data"]
    assert [c["id"] for c in listed[:2]] == [other["id"], conv["id"]]  # newest first

    r = alice.patch(f"/api/conversations/{conv['id']}", json={"title": "Renamed", "pinned": True})
    assert r.status_code == 200 and r.json()["title"] == "Renamed" and r.json()["pinned"]
    listed = alice.get("/api/conversations").json()["data"]
    assert listed[0]["id"] == conv["id"]  # pinned first

    assert (
        alice.patch(f"/api/conversations/{conv['id']}", json={"model": "nope"}).status_code == 404
    )
    assert alice.post("/api/conversations", json={"model": "nope"}).status_code == 404

    started = send(alice, conv["id"], "hello")
    wait_status(alice, conv["id"], started["message_id"])
    sent = fake.requests[-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["temperature"] == 0.2 and sent["stream"] is True

    assert alice.delete(f"/api/conversations/{conv['id']}").status_code == 204
    assert alice.get(f"/api/conversations/{conv['id']}").status_code == 404
    assert alice.delete(f"/api/conversations/{conv['id']}").status_code == 404


def test_first_message_titles_the_conversation(alice: httpx.Client) -> None:
    conv = new_conversation(alice)
    started = send(alice, conv["id"], "How do I bake sourdough bread at home without a fancy oven?")
    wait_status(alice, conv["id"], started["message_id"])
    title = alice.get(f"/api/conversations/{conv['id']}").json()["title"]
    assert title == "How do I bake sourdough bread at home…"  # the first words


def test_users_cannot_touch_each_others_conversations(
    chat_server: ChatServer, alice: httpx.Client, fake: FakeUpstream
) -> None:
    conv = new_conversation(alice, title="secret plans")
    started = send(alice, conv["id"], "the password is swordfish")
    wait_status(alice, conv["id"], started["message_id"])
    mid, gid = started["message_id"], started["generation_id"]
    with chat_server.signed_in(asyncio.run(chat_server.user())) as bob:
        cid = conv["id"]
        assert bob.get(f"/api/conversations/{cid}").status_code == 404
        assert bob.patch(f"/api/conversations/{cid}", json={"title": "mine"}).status_code == 404
        assert bob.delete(f"/api/conversations/{cid}").status_code == 404
        assert bob.get(f"/api/conversations/{cid}/export").status_code == 404
        assert (
            bob.post(f"/api/conversations/{cid}/messages", json={"content": "hi"}).status_code
            == 404
        )
        r = bob.patch(f"/api/conversations/{cid}/messages/{mid}", json={"content": "x"})
        assert r.status_code == 404
        assert bob.get(f"/api/generations/{gid}/events").status_code == 404
        assert bob.get(f"/api/generations/{gid}").status_code == 404
        assert bob.post(f"/api/generations/{gid}/stop").status_code == 404
        assert bob.get("/api/search", params={"q": "swordfish"}).json()["data"] == []
        assert all(c["id"] != cid for c in bob.get("/api/conversations").json()["data"])
    assert alice.get(f"/api/conversations/{conv['id']}").json()["title"] == "secret plans"
    assert len(alice.get("/api/search", params={"q": "swordfish"}).json()["data"]) == 1


# -- export and import ---------------------------------------------------------------------------
def test_export_import_round_trip(alice: httpx.Client) -> None:
    conv = new_conversation(alice, title="Trip", system_prompt="You are a guide.")
    first = send(alice, conv["id"], "Plan a day in Kazan")
    wait_status(alice, conv["id"], first["message_id"])
    second = send(alice, conv["id"], "cheaper please")
    wait_status(alice, conv["id"], second["message_id"])
    # a second branch: edit of the first question
    edited = send(alice, conv["id"], "Plan a day in Moscow", edit_of=first["user_message_id"])
    wait_status(alice, conv["id"], edited["message_id"])

    exported = alice.get(f"/api/conversations/{conv['id']}/export").json()
    assert exported["format"] == "chatgate.conversation" and len(exported["messages"]) == 6
    r = alice.post("/api/conversations/import", json=exported)
    assert r.status_code == 201, r.text
    imported = r.json()
    assert imported["id"] != conv["id"] and imported["title"] == "Trip"
    assert imported["system_prompt"] == "You are a guide." and imported["message_count"] == 6
    assert imported["messages"][0]["content"] == "Plan a day in Moscow"
    assert len(imported["messages"][0]["sibling_ids"]) == 2  # both branches came along

    md = alice.get(f"/api/conversations/{conv['id']}/export", params={"format": "markdown"})
    assert md.headers["content-type"].startswith("text/markdown")
    assert md.text.startswith("# Trip") and "## User\n\nPlan a day in Moscow" in md.text
    assert "Kazan" not in md.text  # only the active branch


def test_import_plain_message_list(alice: httpx.Client) -> None:
    body: dict[str, Any] = {
        "title": "From elsewhere",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
        ],
    }
    r = alice.post("/api/conversations/import", json=body)
    assert r.status_code == 201
    assert [m["content"] for m in r.json()["messages"]] == ["hi", "hello"]
    r = alice.post("/api/conversations/import", json={"messages": [{"role": "wizard"}]})
    assert r.status_code == 400


# -- single-user mode ----------------------------------------------------------------------------
def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.1.1"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "::"))


@pytest.mark.parametrize("host,mode,implicit", [
    ("127.0.0.1", "auto", True), ("0.0.0.0", "auto", False), ("0.0.0.0", "on", True),
    ("127.0.0.1", "off", False),
])  # fmt: skip
def test_single_user_mode(fake_server: FakeUpstream, host: str, mode: str, implicit: bool) -> None:
    config = gateway_config(fake_server.base_url, server={"host": host}, auth={"single_user": mode})
    with ServerThread(create_app(config)) as url, httpx.Client(base_url=url, headers=HEADERS) as c:
        r = c.get("/api/me")
        if not implicit:
            assert r.status_code == 401
            return
        assert r.json()["name"] == "local" and r.json()["single_user"] is True
        assert c.post("/api/conversations", json={"model": "fake-model"}).status_code == 201
        assert len(c.get("/api/conversations").json()["data"]) == 1


def test_unstorable_params_and_huge_offset_are_400_not_500(gateway_url: str) -> None:
    """Found by schemathesis: an integer beyond 64 bits in params used to be stored, then
    break every later listing; a huge offset overflowed the database."""
    headers = {"X-Requested-With": "test"}
    huge = {"title": "x", "params": {"n": 10**20}}
    resp = httpx.post(gateway_url + "/api/conversations", json=huge, headers=headers)
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "params"
    assert httpx.get(gateway_url + "/api/conversations").status_code == 200
    resp = httpx.get(gateway_url + "/api/conversations", params={"offset": 10**22})
    assert resp.status_code == 400
