"""The conversation store's grouped writes, through the API on SQLite and PostgreSQL: messages
sent at once (their writes merged into shared transactions) are all kept, each where it
belongs, and a long import keeps its order."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.chat.conftest import (
    ChatServer,
    alice,
    chat_server,
    new_conversation,
    pg_server,
    wait_status,
)

__all__ = ["alice", "chat_server", "pg_server"]

CHAT_CONFIG = {"max_generations_per_user": 32}  # one user sends 24 at once below


def test_messages_sent_at_once_are_all_kept(chat_server: ChatServer, alice: httpx.Client) -> None:
    convs = [new_conversation(alice) for _ in range(24)]

    async def send_all() -> list[dict[str, Any]]:
        async with chat_server.aclient(alice.cookies) as client:

            async def one(cid: str, text: str) -> dict[str, Any]:
                r = await client.post(f"/api/conversations/{cid}/messages", json={"content": text})
                assert r.status_code == 202, r.text
                started: dict[str, Any] = r.json()
                return started

            return await asyncio.gather(*(one(c["id"], f"question {c['id']}") for c in convs))

    for conv, started in zip(convs, asyncio.run(send_all()), strict=True):
        answer = wait_status(alice, conv["id"], started["message_id"])
        assert answer["status"] == "done" and answer["content"]
        view = alice.get(f"/api/conversations/{conv['id']}").json()
        assert view["title"] == f"question {conv['id']}"
        assert view["active_leaf_id"] == started["message_id"]
        assert [(m["id"], m["role"]) for m in view["messages"]] == [
            (started["user_message_id"], "user"),
            (started["message_id"], "assistant"),
        ]
        assert view["messages"][0]["content"] == f"question {conv['id']}"


def test_a_long_import_keeps_its_order(alice: httpx.Client) -> None:
    messages = [
        {"role": ("user", "assistant")[i % 2], "content": f"message {i}"} for i in range(500)
    ]
    r = alice.post("/api/conversations/import", json={"title": "long", "messages": messages})
    assert r.status_code == 201, r.text
    imported = r.json()
    assert [m["content"] for m in imported["messages"]] == [m["content"] for m in messages]
    opened = alice.get(f"/api/conversations/{imported['id']}").json()
    assert opened["messages"] == imported["messages"]
