"""The raw doors' shared frame (``api.door``), through a door of its own made for the test: the
frame's contract as a new door would meet it. The ASGI messages are read as sent, so what the
wire would carry (and what it would not: empty writes) is visible."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from chatgate.api.door import Door, Wanted
from chatgate.app import Gateway, create_app
from chatgate.errors import GatewayError, InvalidRequestError
from chatgate.gateway.auth import Identity
from chatgate.gateway.path import Exchange
from chatgate.protocol.openai import ChatRequest, ChunkBatch, validate_chat_request
from chatgate.state import AppState
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream


class Shout:
    """Content upper-cased between ``<`` and ``>``; a batch without content gives nothing."""

    def start(self) -> bytes:
        return b"<"

    def feed(self, batch: ChunkBatch) -> bytes:
        text = "".join(
            (c["choices"][0].get("delta") or {}).get("content") or ""
            for c in batch
            if c.get("choices")
        )
        return text.upper().encode()

    def finish(self) -> bytes:
        return b">"

    def failed(self, exc: GatewayError) -> bytes:
        return b"!" + exc.message.encode()


class ShoutTurn:
    @staticmethod
    def error_body(exc: GatewayError) -> Any:
        return {"oops": exc.message}

    async def parse(
        self, state: AppState, identity: Identity, wanted: Wanted, raw: bytes
    ) -> ChatRequest | bytes:
        if raw == b"ping":
            return b'"pong"'  # answered without the path
        if raw == b"bad":
            raise InvalidRequestError("bad body")
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "x"}]}
        return validate_chat_request({**body, "stream": raw == b"stream"}, None)

    def whole(self, req: ChatRequest, completion: dict[str, Any]) -> bytes:
        return completion["choices"][0]["message"]["content"].upper().encode()

    def stream(self, req: ChatRequest) -> Shout:
        return Shout()


class ShoutDoor(Door):
    api = "shout"

    def turn(self, exchange: Exchange) -> ShoutTurn:
        return ShoutTurn()


@pytest.fixture
async def gateway(fake: FakeUpstream) -> AsyncIterator[Gateway]:
    app = create_app(gateway_config(fake.base_url))
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    life = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    yield app
    await inbox.put({"type": "lifespan.shutdown"})
    await life


async def call(app: Gateway, body: bytes) -> list[dict[str, Any]]:
    """The messages ``ShoutDoor`` sends for one request with ``body``."""
    door = ShoutDoor(app.runtime)
    sent: list[dict[str, Any]] = []
    never = asyncio.Event()
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def receive() -> dict[str, Any]:
        message = next(messages, None)
        if message is None:
            await never.wait()  # the client stays connected
        assert message is not None
        return message

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": [(b"x-request-id", b"rid-1")]}
    await door(scope, receive, send)
    return sent


async def test_a_stream_is_framed_by_the_door_with_no_empty_writes(
    gateway: Gateway, fake: FakeUpstream
) -> None:
    fake.configure(chunks=3, chunk_delay_ms=20)  # a batch a chunk: the last has no content
    start, *bodies = await call(gateway, b"stream")
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert headers[b"x-request-id"] == b"rid-1" and headers[b"x-chatgate-cache"] == b"bypass"
    assert bodies[0]["body"].startswith(b"<TOK0")  # the head travels with the first batch
    assert all(m["body"] for m in bodies)  # the finish_reason chunk had nothing to say
    assert [m.get("more_body", False) for m in bodies] == [True] * (len(bodies) - 1) + [False]
    assert b"".join(m["body"] for m in bodies) == b"<TOK0 TOK1 TOK2 >"


async def test_a_stream_that_breaks_off_ends_with_the_framings_failure(
    gateway: Gateway, fake: FakeUpstream
) -> None:
    fake.configure(chunks=10, error_event_after=2)
    _, *bodies = await call(gateway, b"stream")
    whole = b"".join(m["body"] for m in bodies)
    assert whole.startswith(b"<TOK0 TOK1 ") and whole.endswith(b"!fake: fake error event")
    assert b">" not in whole and bodies[-1].get("more_body", False) is False


async def test_a_whole_answer_errors_and_an_answer_without_the_path(
    gateway: Gateway, fake: FakeUpstream
) -> None:
    fake.configure(content="hello there")
    start, body = await call(gateway, b"whole")
    assert start["status"] == 200 and body["body"] == b"HELLO THERE"
    start, body = await call(gateway, b"bad")  # the turn's own error shape
    assert start["status"] == 400 and orjson.loads(body["body"]) == {"oops": "bad body"}
    fake.configure(status=500)
    start, body = await call(gateway, b"whole")
    assert start["status"] == 502 and set(orjson.loads(body["body"])) == {"oops"}
    calls = fake.count()
    start, body = await call(gateway, b"ping")
    assert start["status"] == 200 and body["body"] == b'"pong"'
    assert fake.count() == calls  # no upstream call
