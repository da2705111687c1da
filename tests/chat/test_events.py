"""User events: a second tab (WebSocket ``watch`` or ``GET /api/events``) hears what the first
does — chats created, renamed, deleted, answers started — and nobody hears another user's."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from chatgate.chat.events import QUEUE_SIZE, RESYNC, UserEvents
from tests.chat.conftest import ChatServer, alice, chat_server, new_conversation, pg_server, send
from tests.chat.test_ws import cookie_header, until_done, ws_url
from tests.fakes.upstream import FakeUpstream

__all__ = ["alice", "chat_server", "pg_server"]


async def watching(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"type": "watch"}))
    assert json.loads(await ws.recv()) == {"type": "watching"}


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(5):
        event: dict[str, Any] = json.loads(await ws.recv())
        return event


async def test_a_second_tab_hears_the_first_and_follows_its_answer(
    chat_server: ChatServer, alice: httpx.Client, fake: FakeUpstream
) -> None:
    fake.configure(chunks=10, chunk_delay_ms=10)
    async with websockets.connect(
        ws_url(chat_server), additional_headers=cookie_header(alice)
    ) as tab:
        await watching(tab)
        cid = new_conversation(alice)["id"]  # the first tab, over HTTP
        assert await next_event(tab) == {
            "type": "conversation", "action": "created", "conversation_id": cid,
        }  # fmt: skip
        started = await asyncio.to_thread(send, alice, cid, "hello from tab one")
        event = await next_event(tab)
        assert event == {
            "type": "generation",
            "action": "started",
            "conversation_id": cid,
            "generation_id": started["generation_id"],
            "message_id": started["message_id"],
        }
        # the second tab follows the answer it heard of
        await tab.send(json.dumps({"type": "subscribe", "generation_id": event["generation_id"]}))
        events = await until_done(tab, event["generation_id"])
        text = "".join(e.get("content", "") for e in events if e["type"] == "delta")
        assert text == "".join(f"tok{i} " for i in range(10))

        r = await asyncio.to_thread(alice.patch, f"/api/conversations/{cid}", json={"title": "R"})
        assert r.status_code == 200
        assert (await next_event(tab))["action"] == "updated"
        r = await asyncio.to_thread(alice.delete, f"/api/conversations/{cid}")
        assert r.status_code == 204
        assert await next_event(tab) == {
            "type": "conversation", "action": "deleted", "conversation_id": cid,
        }  # fmt: skip


async def test_nobody_hears_another_users_events(
    chat_server: ChatServer, alice: httpx.Client
) -> None:
    with chat_server.signed_in(await chat_server.user()) as bob:
        async with websockets.connect(
            ws_url(chat_server), additional_headers=cookie_header(bob)
        ) as bobs_tab:
            await watching(bobs_tab)
            cid = new_conversation(alice)["id"]
            await asyncio.to_thread(alice.patch, f"/api/conversations/{cid}", json={"pinned": True})
            await asyncio.to_thread(alice.delete, f"/api/conversations/{cid}")
            await bobs_tab.send(json.dumps({"type": "ping"}))
            assert await next_event(bobs_tab) == {"type": "pong"}  # nothing came before it


async def test_server_sent_user_events(chat_server: ChatServer, alice: httpx.Client) -> None:
    async with (
        chat_server.aclient(alice.cookies) as client,
        client.stream("GET", "/api/events") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        assert await anext(lines) == "retry: 1000"
        cid = (await asyncio.to_thread(new_conversation, alice))["id"]
        async with asyncio.timeout(5):
            async for line in lines:
                if line.startswith("data: "):
                    assert json.loads(line[6:])["conversation_id"] == cid
                    break
    anonymous = chat_server.client()
    assert anonymous.get("/api/events").status_code == 401


async def test_a_listener_that_falls_behind_is_told_to_resync() -> None:
    events = UserEvents()
    listener = events.listen("u1")
    await events.publish("u1", {"type": "conversation", "n": 0})
    assert (await anext(listener))["n"] == 0
    for i in range(QUEUE_SIZE + 1):  # nobody reads meanwhile: the last one overflows
        await events.publish("u1", {"type": "conversation", "n": i})
    assert await anext(listener) == RESYNC  # instead of a backlog
    await events.publish("u1", {"type": "conversation", "n": -1})
    assert (await anext(listener))["n"] == -1
    assert events.listening("u1") == 1
    listener.close()
    assert events.listening("u1") == 0


async def test_an_answer_started_over_the_websocket_is_announced_too(
    chat_server: ChatServer, alice: httpx.Client, fake: FakeUpstream
) -> None:
    fake.configure(chunks=3)
    cid = new_conversation(alice)["id"]
    url, headers = ws_url(chat_server), cookie_header(alice)
    async with (
        websockets.connect(url, additional_headers=headers) as tab,
        websockets.connect(url, additional_headers=headers) as sender,
    ):
        await watching(tab)
        await sender.send(json.dumps({"type": "send", "conversation_id": cid, "content": "hi"}))
        event = await next_event(tab)
        assert event["type"] == "generation" and event["action"] == "started"
        assert event["conversation_id"] == cid
        started = json.loads(await sender.recv())
        assert started["type"] == "started"
        assert event["generation_id"] == started["generation_id"]
