"""The database down: every door answers 503 with Retry-After in its own error shape, the server
logs the incident once (no traceback per request), ``/ready`` says the database is down, and
all is served again once it is back.

PostgreSQL is reached through a TCP proxy the test cuts and restores; keys are required and
trusted for 0 s, so every ``/v1`` call reads its key (the key cache's lifetime has passed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets
from robustness.outage import TcpProxy
from websockets.exceptions import InvalidStatus

from chatgate.app import create_app
from chatgate.chat.accounts import Accounts
from chatgate.storage import Database, KeyRepository
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread
from tests.storage.conftest import PgServer, pg_address, pg_server, require_pg, through

__all__ = ["pg_server"]

PASSWORD = "correct horse battery"
MESSAGES = [{"role": "user", "content": "hi"}]


@dataclass
class Stack:
    url: str
    proxy: TcpProxy
    secret: str
    web: httpx.AsyncClient
    cookie: str
    conversation: str


@pytest.fixture(scope="module")
async def stack(fake_server: FakeUpstream, pg_server: PgServer | str) -> AsyncIterator[Stack]:
    server = require_pg(pg_server)
    direct = await server.create_database()
    proxy = TcpProxy(*pg_address(server)).start()
    url = through(proxy.port, direct)
    config = gateway_config(
        fake_server.base_url,
        database={"url": url},
        auth={"require_keys": True, "key_cache_ttl": 0},
    )
    thread = ServerThread(create_app(config))
    await asyncio.to_thread(thread.start)
    try:
        async with Database(direct) as db:
            _, secret = await KeyRepository(db).create("outage")
            name = f"u-{secrets.token_hex(4)}"
            await Accounts(db, "off", True).create_user(name, PASSWORD)
        web = httpx.AsyncClient(
            base_url=thread.base_url, headers={"X-Requested-With": "tests"}, timeout=30
        )
        r = await web.post("/api/auth/login", json={"name": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        r = await web.post("/api/conversations", json={"model": "fake-model"})
        assert r.status_code == 201, r.text
        cookie = f"chatgate_session={web.cookies['chatgate_session']}"
        yield Stack(thread.base_url, proxy, secret, web, cookie, r.json()["id"])
        await web.aclose()
    finally:
        await asyncio.to_thread(thread.stop)
        proxy.stop()
        await server.drop_database(direct)


def openai_error(resp: httpx.Response) -> dict[str, str]:
    body = resp.json()
    assert set(body) == {"error"}, body
    assert resp.status_code == 503 and int(resp.headers["retry-after"]) >= 1, resp.headers
    error: dict[str, str] = body["error"]
    assert error["type"] == "service_unavailable" and error["message"]
    return error


async def ws_send(stack: Stack) -> dict[str, object]:
    url = stack.url.replace("http://", "ws://") + "/api/ws"
    async with websockets.connect(url, additional_headers={"Cookie": stack.cookie}) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv())["type"] == "pong"
        await ws.send(
            json.dumps({"type": "send", "conversation_id": stack.conversation, "content": "x"})
        )
        async with asyncio.timeout(15):
            while True:
                reply: dict[str, object] = json.loads(await ws.recv())
                if reply["type"] in ("error", "started"):
                    return reply


async def other_doors(http: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any]) -> None:
    """The Responses, Anthropic and Ollama doors, each in its own shape."""
    r = await http.post("/v1/responses", json={"model": "fake-model", "input": "x"}, headers=auth)
    assert openai_error(r)["code"] == "database_unavailable"
    r = await http.post("/v1/messages", json={**body, "max_tokens": 10}, headers=auth)
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1, r.text
    assert r.json()["type"] == "error" and r.json()["error"]["message"], r.text
    r = await http.post("/api/chat", json={**body, "stream": False}, headers=auth)
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1, r.text
    assert set(r.json()) == {"error"} and r.json()["error"], r.text


async def test_every_door_answers_503_in_its_shape_while_the_database_is_down(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    auth = {"Authorization": f"Bearer {stack.secret}"}
    body = {"model": "fake-model", "messages": MESSAGES}
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        assert (await http.post("/v1/chat/completions", json=body, headers=auth)).status_code == 200
        async with websockets.connect(
            stack.url.replace("http://", "ws://") + "/api/ws",
            additional_headers={"Cookie": stack.cookie},
        ) as open_socket:  # opened before the outage: it stays usable
            caplog.clear()
            caplog.set_level(logging.INFO)
            stack.proxy.cut()
            try:
                for stream in (False, True, False):
                    r = await http.post(
                        "/v1/chat/completions", json={**body, "stream": stream}, headers=auth
                    )
                    assert openai_error(r)["code"] == "database_unavailable"
                r = await http.post("/chatgpt/", json=body, headers=auth)
                assert r.status_code == 503 and r.headers["retry-after"], r.text
                assert set(r.json()) == {"detail"} and r.json()["detail"]
                await other_doors(http, auth, body)
                for _ in range(2):
                    r = await stack.web.post("/api/conversations", json={"model": "fake-model"})
                    openai_error(r)
                    r = await stack.web.post(
                        f"/api/conversations/{stack.conversation}/messages", json={"content": "x"}
                    )
                    openai_error(r)
                await open_socket.send(
                    json.dumps(
                        {"type": "send", "conversation_id": stack.conversation, "content": "x"}
                    )
                )
                reply = json.loads(await open_socket.recv())
                assert reply["type"] == "error", reply
                assert reply["error"]["code"] == "database_unavailable"
                with pytest.raises(InvalidStatus) as refused:
                    await ws_send(stack)  # a new socket: its session cannot be read
                assert refused.value.response.status_code == 503
                r = await http.get("/ready")
                assert r.status_code == 503 and r.json()["database"] == "down", r.text
            finally:
                stack.proxy.restore()
        r = await http.post("/v1/chat/completions", json=body, headers=auth)
        assert r.status_code == 200, r.text
        assert (await http.get("/ready")).status_code == 200
    assert (await ws_send(stack))["type"] == "started"
    records = [r for r in caplog.records if r.name.startswith("chatgate")]
    down = [r for r in records if "database unavailable" in r.getMessage()]
    assert len(down) == 1, [r.getMessage() for r in records]
    assert not [r for r in records if r.exc_info], "a traceback was logged for an outage"
    assert not [r for r in records if r.levelno >= logging.ERROR]
