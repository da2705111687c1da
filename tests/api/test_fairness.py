"""Fairness: one user cannot take every upstream slot with concurrent web-chat answers (429 past
``chat.max_generations_per_user``), and ``n`` is bounded (400 above ``rate_limits.max_n``) on
every door, on top of being counted in the token estimate."""

from __future__ import annotations

import asyncio

import httpx

from chatgate.gateway.path import estimate_tokens
from chatgate.protocol.openai import validate_chat_request
from tests.chat.conftest import ChatServer, alice, chat_server, new_conversation, pg_server, send
from tests.fakes.upstream import FakeUpstream

__all__ = ["alice", "chat_server", "pg_server"]

CAP = 8  # chat.max_generations_per_user's default


def test_concurrent_generations_per_user_are_capped(
    chat_server: ChatServer, alice: httpx.Client, fake: FakeUpstream
) -> None:
    fake.configure(hang=True)
    started = [send(alice, new_conversation(alice)["id"], "go") for _ in range(CAP)]
    one_more = alice.post(
        f"/api/conversations/{new_conversation(alice)['id']}/messages", json={"content": "go"}
    )
    assert one_more.status_code == 429, one_more.text
    assert one_more.json()["error"]["code"] == "too_many_generations"
    assert int(one_more.headers["retry-after"]) >= 1
    # Someone else is not held back by alice's answers.
    bob = asyncio.run(chat_server.user())
    with chat_server.signed_in(bob) as other:
        gid = send(other, new_conversation(other)["id"], "mine")["generation_id"]
        other.post(f"/api/generations/{gid}/stop")
    # One of alice's ends: she may start another.
    stopped = alice.post(f"/api/generations/{started[0]['generation_id']}/stop")
    assert stopped.status_code == 200
    again = send(alice, new_conversation(alice)["id"], "go")
    for gen in (*started[1:], again):
        alice.post(f"/api/generations/{gen['generation_id']}/stop")


def test_n_is_bounded_on_v1(chat_server: ChatServer, fake: FakeUpstream) -> None:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    too_many = httpx.post(chat_server.url + "/v1/chat/completions", json={**body, "n": 9})
    assert too_many.status_code == 400, too_many.text
    assert too_many.json()["error"]["param"] == "n"
    assert "at most 8" in too_many.json()["error"]["message"]
    assert fake.count() == 0
    ok = httpx.post(chat_server.url + "/v1/chat/completions", json={**body, "n": 8})
    assert ok.status_code == 200


def test_n_is_counted_in_the_estimate() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 100}
    one = estimate_tokens(validate_chat_request(body), 512)
    eight = estimate_tokens(validate_chat_request({**body, "n": 8}), 512)
    assert (one, eight) == (200, 900)
