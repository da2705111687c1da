"""Sessions end for real: sign-out, "sign out everywhere", a password change and disabling a user
close the user's open streams (WebSocket and SSE, also when the session ended in another
process), and a disabled user is refused everywhere (sign-in, session, WebSocket, the path)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from chatgate.errors import PermissionDeniedError
from chatgate.gateway.auth import Authenticator
from tests.chat.conftest import (
    HEADERS,
    PASSWORD,
    ChatServer,
    chat_server,
    new_conversation,
    pg_server,
    send,
)
from tests.fakes.upstream import FakeUpstream

__all__ = ["chat_server", "pg_server"]

CLOSED_WITHIN = 10.0  # seconds; ends made by this server are seen at once


async def signed_in(server: ChatServer, admin: bool = False) -> tuple[str, httpx.AsyncClient]:
    name = await server.user(admin=admin)
    client = httpx.AsyncClient(base_url=server.url, headers=HEADERS, timeout=30)
    r = await client.post("/api/auth/login", json={"name": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return name, client


def ws_url(server: ChatServer) -> str:
    return server.url.replace("http://", "ws://") + "/api/ws"


def cookie(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Cookie": f"chatgate_session={client.cookies['chatgate_session']}"}


async def closed_with_session_ended(ws: websockets.ClientConnection) -> None:
    """The socket says why and closes (1008) — instead of going on serving."""
    async with asyncio.timeout(CLOSED_WITHIN):
        while True:
            try:
                frame = json.loads(await ws.recv())
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1008
                return
            if frame.get("type") == "error":
                assert frame["error"]["code"] == "session_ended"


async def sse_ends(lines: AsyncIterator[str]) -> list[str]:
    seen = []
    async with asyncio.timeout(CLOSED_WITHIN):
        async for line in lines:
            seen.append(line)
    return seen


@pytest.fixture
async def user_and_admin(
    chat_server: ChatServer,
) -> AsyncIterator[tuple[str, httpx.AsyncClient, httpx.AsyncClient]]:
    name, user = await signed_in(chat_server)
    _, admin = await signed_in(chat_server, admin=True)
    try:
        yield name, user, admin
    finally:
        await user.aclose()
        await admin.aclose()


async def user_id(admin: httpx.AsyncClient, name: str) -> str:
    users = (await admin.get("/admin/users")).json()["data"]
    return str(next(u["id"] for u in users if u["name"] == name))


async def test_logout_closes_the_websocket_and_the_event_stream(chat_server: ChatServer) -> None:
    _, client = await signed_in(chat_server)
    async with (
        websockets.connect(ws_url(chat_server), additional_headers=cookie(client)) as ws,
        client.stream("GET", "/api/events") as events,
    ):
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
        lines = events.aiter_lines()
        assert await anext(lines) == "retry: 1000"
        assert (await client.post("/api/auth/logout")).status_code == 204
        await closed_with_session_ended(ws)
        tail = await sse_ends(lines)
        assert any("session_ended" in line for line in tail), tail
    await client.aclose()


async def test_a_followed_answer_stops_streaming_at_sign_out(
    chat_server: ChatServer, fake: FakeUpstream
) -> None:
    fake.configure(chunks=400, chunk_delay_ms=20)
    _, client = await signed_in(chat_server)
    other = httpx.AsyncClient(base_url=chat_server.url, headers=HEADERS, cookies=client.cookies)
    cid = await asyncio.to_thread(lambda: new_conversation(_sync(client), title="x")["id"])
    gid = await asyncio.to_thread(lambda: send(_sync(client), cid, "long")["generation_id"])
    async with other.stream("GET", f"/api/generations/{gid}/events") as events:
        lines = events.aiter_lines()
        assert await anext(lines) == "retry: 1000"
        await client.post("/api/auth/logout")
        tail = await sse_ends(lines)
        assert "session_ended" in tail[-2], tail[-3:]
        assert not any('"type":"done"' in line for line in tail)  # cut, not finished
    await other.aclose()
    await client.aclose()


def _sync(client: httpx.AsyncClient) -> httpx.Client:
    return httpx.Client(base_url=str(client.base_url), headers=HEADERS, cookies=client.cookies)


async def test_admin_sign_out_everywhere(
    chat_server: ChatServer, user_and_admin: tuple[str, httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    name, user, admin = user_and_admin
    second = httpx.AsyncClient(base_url=chat_server.url, headers=HEADERS, timeout=30)
    r = await second.post("/api/auth/login", json={"name": name, "password": PASSWORD})
    assert r.status_code == 200
    uid = await user_id(admin, name)
    async with websockets.connect(ws_url(chat_server), additional_headers=cookie(user)) as ws:
        ended = await admin.post(f"/admin/users/{uid}/sign-out")
        assert ended.json() == {"user_id": uid, "sessions_ended": 2}
        await closed_with_session_ended(ws)
    assert (await user.get("/api/me")).status_code == 401
    assert (await second.get("/api/me")).status_code == 401
    await second.aclose()


async def test_password_change_ends_sessions(
    chat_server: ChatServer, user_and_admin: tuple[str, httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    name, user, admin = user_and_admin
    uid = await user_id(admin, name)
    short = await admin.post(f"/admin/users/{uid}/password", json={"password": "short"})
    assert short.status_code == 400
    async with websockets.connect(ws_url(chat_server), additional_headers=cookie(user)) as ws:
        r = await admin.post(f"/admin/users/{uid}/password", json={"password": "a new secret!"})
        assert r.status_code == 200 and r.json()["name"] == name
        await closed_with_session_ended(ws)
    assert (await user.get("/api/me")).status_code == 401
    old = await user.post("/api/auth/login", json={"name": name, "password": PASSWORD})
    assert old.status_code == 401
    new = await user.post("/api/auth/login", json={"name": name, "password": "a new secret!"})
    assert new.status_code == 200


async def test_a_disabled_user_is_refused_everywhere(
    chat_server: ChatServer,
    user_and_admin: tuple[str, httpx.AsyncClient, httpx.AsyncClient],
    fake: FakeUpstream,
) -> None:
    name, user, admin = user_and_admin
    uid = await user_id(admin, name)
    fake.configure(hang=True)
    cid = (await user.post("/api/conversations", json={"model": "fake-model"})).json()["id"]
    started = await user.post(f"/api/conversations/{cid}/messages", json={"content": "hi"})
    assert started.status_code == 202
    async with websockets.connect(ws_url(chat_server), additional_headers=cookie(user)) as ws:
        disabled = await admin.post(f"/admin/users/{uid}/disable")
        assert disabled.status_code == 200 and disabled.json()["disabled"] is True
        await closed_with_session_ended(ws)
    assert (await user.get("/api/me")).status_code == 401  # the session is gone
    login = await user.post("/api/auth/login", json={"name": name, "password": PASSWORD})
    assert login.status_code == 403 and login.json()["error"]["code"] == "account_disabled"
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(ws_url(chat_server), additional_headers=cookie(user)):
            pass
    message = (await user.get(f"/api/conversations/{cid}")).status_code
    assert message == 401
    # Its running answer was stopped.
    gid = started.json()["generation_id"]
    state = await admin.get(f"/admin/users/{uid}")
    assert state.json()["disabled"] is True
    for _ in range(100):  # the upstream hears the cancellation a moment later
        if fake.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    assert fake.in_flight == 0, f"{gid} still running upstream"
    enabled = await admin.post(f"/admin/users/{uid}/enable")
    assert enabled.json()["disabled"] is False
    again = await user.post("/api/auth/login", json={"name": name, "password": PASSWORD})
    assert again.status_code == 200
    assert (await admin.post("/admin/users/u_nobody/disable")).status_code == 404


class Member:
    id, name, rpm, tpm, budget_tokens, tokens_used = "u_1", "eve", None, None, None, 0
    models: Any = None
    disabled = True


async def test_the_path_refuses_a_disabled_user() -> None:
    async def lookup(user_id: str) -> Member:
        return Member()

    auth = Authenticator(None, False, 10.0, lookup)  # type: ignore[arg-type]
    with pytest.raises(PermissionDeniedError) as refused:
        await auth.user("u_1", "eve")
    assert refused.value.code == "account_disabled"
