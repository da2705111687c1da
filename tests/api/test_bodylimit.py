"""The body limit (``server.max_body_bytes``) on every route and every transfer encoding,
counted while reading (``api.bodylimit``, ``api.asgi.read_body``): 413 as soon as it is passed,
before the body has been read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from robustness.rawhttp import Reply, request

from chatgate.app import create_app
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

LIMIT = 64 * 1024
CHAT = orjson.dumps({"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]})
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def url(fake_server: FakeUpstream) -> Iterator[str]:
    config = gateway_config(fake_server.base_url, server={"max_body_bytes": LIMIT})
    with ServerThread(create_app(config)) as base:
        yield base


def call(url: str, method: str, path: str, **kw: Any) -> Reply:
    return asyncio.run(request(url, method, path, **kw))


def _chunks(total: int, size: int = 16 * 1024) -> Iterator[bytes]:
    piece = b'{"x": "' + b"a" * (size - 8) + b'"}'
    for _ in range(total // len(piece) + 1):
        yield piece


@pytest.mark.parametrize(
    "path", ["/api/auth/login", "/v1/chat/completions", "/chatgpt/", "/api/conversations"]
)
def test_chunked_body_over_the_limit_is_413_while_reading(url: str, path: str) -> None:
    total = 400 * LIMIT  # 25 MiB: more than the sockets' buffers hold
    started = time.monotonic()
    reply = call(url, "POST", path, headers=JSON, chunks=_chunks(total))
    assert reply.status == 413, reply
    assert f"larger than the limit of {LIMIT} bytes".encode() in reply.body  # each door's shape
    assert reply.sent < total // 2, "the server read on past the limit before answering"
    assert time.monotonic() - started < 10


def test_declared_length_over_the_limit_is_413_before_reading(url: str) -> None:
    reply = call(url, "POST", "/api/auth/login", headers={**JSON, "content-length": "999999999"})
    assert reply.status == 413


def test_bodies_within_the_limit_still_work(url: str) -> None:
    body = orjson.dumps({"name": "nobody", "password": "x" * 100})
    chunked = call(url, "POST", "/api/auth/login", headers=JSON, chunks=[body[:10], body[10:]])
    assert chunked.status == 401  # read whole, judged: wrong name or password
    whole = call(url, "POST", "/v1/chat/completions", headers=JSON, chunks=[CHAT])
    assert whole.status == 200


@pytest.mark.parametrize(
    ("method", "counted"),
    [("GET", False), ("HEAD", False), ("OPTIONS", False), ("POST", True), ("DELETE", True)],
)
def test_only_requests_with_a_body_are_counted(method: str, counted: bool) -> None:
    """The counter costs two extra hops per message: a GET (most of FastAPI's routes, e.g.
    ``/v1/models``) gets the server's own ``receive`` and ``send``."""
    app = create_app(gateway_config("http://127.0.0.1:9"))
    seen: dict[str, Any] = {}

    async def api(scope: Any, receive: Any, send: Any) -> None:
        seen.update(receive=receive, send=send)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    app.api = api  # type: ignore[assignment]
    headers = [(b"host", b"127.0.0.1")]
    scope = {"type": "http", "method": method, "path": "/v1/models", "headers": headers}
    asyncio.run(app(scope, receive, send))
    assert (seen["receive"] is not receive) is counted
    assert (seen["send"] is not send) is counted
