"""/api/ws with a real WebSocket client (the ``websockets`` package) against a running server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.chat.conftest import ChatServer, alice, chat_server, new_conversation, pg_server, send
from tests.fakes.upstream import FakeUpstream

__all__ = ["alice", "chat_server", "pg_server"]


def ws_url(server: ChatServer) -> str:
    return server.url.replace("http://", "ws://") + "/api/ws"


def cookie_header(client: httpx.Client) -> dict[str, str]:
    return {"Cookie": f"chatgate_session={client.cookies['chatgate_session']}"}


async def until_done(ws: ClientConnection, gid: str) -> list[dict[str, Any]]:
    events = []
    async with asyncio.timeout(10):
        while True:
            event = json.loads(await ws.recv())
            if event.get("generation_id") != gid:
                continue
            events.append(event)
            if event["type"] in ("done", "error"):
                return events


async def test_subscribe_resume_and_send(
    chat_server: ChatServer, alice: httpx.Client, fake: FakeUpstream
) -> None:
    fake.configure(chunks=12, chunk_delay_ms=10)
    cid = new_conversation(alice)["id"]
    gid = send(alice, cid, "over the socket")["generation_id"]
    async with websockets.connect(
        ws_url(chat_server), additional_headers=cookie_header(alice)
    ) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
        await ws.send(json.dumps({"type": "subscribe", "generation_id": gid}))
        events = await until_done(ws, gid)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        text = "".join(e.get("content", "") for e in events if e["type"] == "delta")
        assert text == "".join(f"tok{i} " for i in range(12))
        # resume: only what comes after seq 3, same events as over SSE
        await ws.send(json.dumps({"type": "subscribe", "generation_id": gid, "after": 3}))
        assert await until_done(ws, gid) == events[3:]
        # send over the socket: started, then the events of the new generation
        await ws.send(json.dumps({"type": "send", "conversation_id": cid, "content": "again"}))
        started = json.loads(await ws.recv())
        assert started["type"] == "started" and started["conversation_id"] == cid
        new = await until_done(ws, started["generation_id"])
        assert new[0]["type"] == "start" and new[-1]["status"] == "done"
        # errors are answered in-band
        await ws.send(json.dumps({"type": "subscribe", "generation_id": "g-unknown"}))
        error = json.loads(await ws.recv())
        assert error["type"] == "error" and error["error"]["code"] == "generation_not_found"


async def test_stop_over_the_socket(
    chat_server: ChatServer, alice: httpx.Client, fake: FakeUpstream
) -> None:
    fake.configure(chunks=300, chunk_delay_ms=20)
    cid = new_conversation(alice)["id"]
    gid = send(alice, cid, "long")["generation_id"]
    async with websockets.connect(
        ws_url(chat_server), additional_headers=cookie_header(alice)
    ) as ws:
        await ws.send(json.dumps({"type": "subscribe", "generation_id": gid}))
        while json.loads(await ws.recv())["type"] != "delta":
            pass
        await ws.send(json.dumps({"type": "stop", "generation_id": gid}))
        events = await until_done(ws, gid)
        assert events[-1]["status"] == "stopped"
    for _ in range(200):
        if fake.cancelled:
            break
        await asyncio.sleep(0.02)
    assert fake.cancelled == 1


async def test_other_users_and_strangers_are_refused(
    chat_server: ChatServer, alice: httpx.Client, fake: FakeUpstream
) -> None:
    cid = new_conversation(alice)["id"]
    gid = send(alice, cid, "mine")["generation_id"]
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(ws_url(chat_server)):
            pass
    assert refused.value.response.status_code == 403  # nobody signed in
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(
            ws_url(chat_server),
            additional_headers=cookie_header(alice),
            origin="https://evil.example",  # type: ignore[arg-type]
        ):
            pass
    bob = await chat_server.user()
    with chat_server.signed_in(bob) as client:
        headers = cookie_header(client)
    async with websockets.connect(ws_url(chat_server), additional_headers=headers) as ws:
        for request in ("subscribe", "stop"):
            await ws.send(json.dumps({"type": request, "generation_id": gid}))
            error = json.loads(await ws.recv())
            assert error["type"] == "error" and error["error"]["code"] == "generation_not_found"
        await ws.send(json.dumps({"type": "send", "conversation_id": cid, "content": "x"}))
        assert json.loads(await ws.recv())["error"]["code"] == "conversation_not_found"
