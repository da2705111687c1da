"""The pooled HTTP/1.1 client against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest

from chatgate.providers.http1 import HTTP1Pool, ProtocolError, origin_of
from chatgate.providers.proxies import ProxyError, parse_proxy
from tests.fakes.upstream import FakeUpstream

JSON = [("content-type", "application/json")]
BODY = orjson.dumps({"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]})
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


@pytest.fixture
async def pool_for() -> AsyncIterator[Callable[..., HTTP1Pool]]:
    pools: list[HTTP1Pool] = []

    def make(origin: str, **kw: Any) -> HTTP1Pool:
        pool = HTTP1Pool(origin, **kw)  # type: ignore[arg-type]
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()


async def test_keep_alive_reuses_one_connection(
    fake: FakeUpstream, pool_for: Callable[..., HTTP1Pool]
) -> None:
    pool = pool_for(fake.base_url)
    for _ in range(5):
        resp = await pool.request("POST", "/v1/chat/completions", JSON, BODY)
        assert resp.status == 200
        assert orjson.loads(await resp.read())["object"] == "chat.completion"
    assert len(pool._all) == 1


async def test_streamed_chunked_body(
    fake: FakeUpstream, pool_for: Callable[..., HTTP1Pool]
) -> None:
    pool = pool_for(fake.base_url)
    body = orjson.dumps({**orjson.loads(BODY), "stream": True})
    resp = await pool.request("POST", "/v1/chat/completions", JSON, body)
    assert resp.headers["content-type"].startswith("text/event-stream")
    text = b"".join([piece async for piece in resp.iter_pieces()])
    assert text.endswith(b"data: [DONE]\n\n")
    assert text.count(b"data: ") == 26  # 24 content chunks, the finish chunk, [DONE]


async def test_connection_cap_makes_requests_wait(
    fake: FakeUpstream, pool_for: Callable[..., HTTP1Pool]
) -> None:
    fake.configure(latency_ms=100)
    pool = pool_for(fake.base_url, max_connections=2)
    peak = 0

    async def one() -> int:
        nonlocal peak
        resp = await pool.request("POST", "/v1/chat/completions", JSON, BODY)
        peak = max(peak, len(pool._all))
        await resp.read()
        return resp.status

    assert await asyncio.gather(*(one() for _ in range(6))) == [200] * 6
    assert peak <= 2
    assert fake.count() == 6


async def test_stale_keep_alive_connection_is_retried_once(
    pool_for: Callable[..., HTTP1Pool],
) -> None:
    requests = 0

    async def once_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Answers one request as keep-alive, then closes: the pool's idle connection is dead.
        nonlocal requests
        await read_request(reader)
        requests += 1
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server, url = await serve(once_then_close)
    async with server:
        pool = pool_for(url)
        for _ in range(3):
            resp = await pool.request("POST", "/x", JSON, b"{}")
            assert await resp.read() == b"ok"
            await asyncio.sleep(0.05)  # let the close arrive before the next request
    assert requests == 3


@pytest.mark.parametrize(("method", "requests_seen"), [("POST", 2), ("GET", 3)])
async def test_a_request_the_server_read_is_sent_again_only_if_idempotent(
    pool_for: Callable[..., HTTP1Pool], method: str, requests_seen: int
) -> None:
    requests = 0

    async def answer_once_then_drop(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # The first request is answered (keep-alive); the next one on the same connection is
        # read and then dropped unanswered, as by a server that crashed while working on it.
        nonlocal requests
        await read_request(reader)
        requests += 1
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        await read_request(reader)
        requests += 1
        writer.transport.abort()

    server, url = await serve(answer_once_then_drop)
    async with server:
        pool = pool_for(url)
        resp = await pool.request(method, "/x", JSON, b"{}" if method == "POST" else b"")
        assert await resp.read() == b"ok"
        if method == "POST":  # it may be running there: not sent twice
            with pytest.raises(OSError):
                await pool.request(method, "/x", JSON, b"{}")
        else:  # a GET is sent again, on a new connection
            resp = await pool.request(method, "/x", JSON)
            assert await resp.read() == b"ok"
    assert requests == requests_seen


async def test_read_timeout(pool_for: Callable[..., HTTP1Pool]) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    server, url = await serve(silent)
    async with server:
        pool = pool_for(url, read_timeout=0.2)
        with pytest.raises(TimeoutError):
            await pool.request("POST", "/x", JSON, b"{}")
        assert not pool._all  # the timed-out connection is not kept


async def test_read_timeout_is_inactivity_not_total(pool_for: Callable[..., HTTP1Pool]) -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(6):
            await asyncio.sleep(0.1)
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    server, url = await serve(trickle)
    async with server:
        pool = pool_for(url, read_timeout=0.3)
        resp = await pool.request("POST", "/x", JSON, b"{}")
        assert await resp.read() == b"x" * 6  # 0.6 s in all, never 0.3 s of silence


async def test_garbage_response_is_protocol_error(pool_for: Callable[..., HTTP1Pool]) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SPDY/9 what\r\n\r\n")
        await writer.drain()

    server, url = await serve(garbage)
    async with server:
        with pytest.raises(ProtocolError):
            await pool_for(url).request("POST", "/x", JSON, b"{}")


async def test_refused_connection_is_oserror(pool_for: Callable[..., HTTP1Pool]) -> None:
    with pytest.raises(OSError):
        await pool_for("http://127.0.0.1:9").request("GET", "/", [])


async def test_abandoned_stream_drops_the_connection(
    fake: FakeUpstream, pool_for: Callable[..., HTTP1Pool]
) -> None:
    fake.configure(chunks=50, chunk_delay_ms=20)
    pool = pool_for(fake.base_url)
    body = orjson.dumps({**orjson.loads(BODY), "stream": True})
    resp = await pool.request("POST", "/v1/chat/completions", JSON, body)
    pieces = resp.iter_pieces()
    assert await anext(pieces)
    await pieces.aclose()  # type: ignore[attr-defined]
    assert not pool._all  # half-read: never handed to the next request
    for _ in range(100):
        if fake.cancelled:
            break
        await asyncio.sleep(0.02)
    assert fake.cancelled == 1


def test_origin_of() -> None:
    assert origin_of("https://api.deepseek.com/chat/completions?x=1") == (
        "https://api.deepseek.com",
        "/chat/completions?x=1",
    )
    assert origin_of("http://127.0.0.1:8080") == ("http://127.0.0.1:8080", "/")


async def keep_alive_server() -> tuple[asyncio.Server, str, list[int]]:
    """Answers every request on a connection, keep-alive; counts requests per connection."""
    per_connection: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        per_connection.append(0)
        index = len(per_connection) - 1
        try:
            while True:
                await read_request(reader)
                per_connection[index] += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nx-one: 1\r\n"
                    b"set-cookie: b=2\r\nSet-Cookie: c=3\r\ncontent-length: 2\r\n\r\nok"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server, url = await serve(answer)
    return server, url, per_connection


async def test_idle_connections_expire(pool_for: Callable[..., HTTP1Pool]) -> None:
    server, url, per_connection = await keep_alive_server()
    async with server:
        pool = pool_for(url, keepalive_expiry=0.2)
        for pause in (0, 0.05, 0.4, 0.05):  # only the 0.4 s pause outlives the expiry
            await asyncio.sleep(pause)
            resp = await pool.request("GET", "/", [])
            assert await resp.read() == b"ok"
        assert per_connection == [2, 2]
        assert len(pool._all) == 1  # the expired one was closed, not left open


async def test_repeated_response_headers_are_kept(pool_for: Callable[..., HTTP1Pool]) -> None:
    server, url, _ = await keep_alive_server()
    async with server:
        resp = await pool_for(url).request("GET", "/", [])
        await resp.read()
    assert resp.headers.get_list("set-cookie") == ["a=1", "b=2", "c=3"]
    assert resp.headers.get("set-cookie") == "a=1, b=2, c=3"
    assert resp.headers.get_list("x-one") == ["1"] and resp.headers["x-one"] == "1"
    assert resp.headers.get_list("absent") == []
    assert resp.headers.multi_items().count(("set-cookie", "b=2")) == 1
    assert len(resp.headers.multi_items()) == 5  # three cookies, x-one, content-length


async def test_body_delimited_by_close(pool_for: Callable[..., HTTP1Pool]) -> None:
    """No length, no chunking: the body ends with the connection (as a proxy's 407 may)."""

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nconnection: close\r\n\r\n")
        writer.write(b"go away")
        await writer.drain()
        writer.close()

    server, url = await serve(until_close)
    async with server:
        pool = pool_for(url)
        resp = await pool.request("GET", "/", [])
        assert (resp.status, await resp.read()) == (407, b"go away")
        assert not pool._all


async def test_through_an_http_proxy_on_the_wire(pool_for: Callable[..., HTTP1Pool]) -> None:
    """http origins: absolute-form to the proxy with its credentials; https: CONNECT first."""
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        if head.startswith(b"CONNECT "):
            writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()

    server, url = await serve(proxy)
    creds = parse_proxy(url.replace("http://", "http://user:pa%3Ass@"))
    async with server:
        pool = pool_for("http://api.example:8080", proxy=creds)
        resp = await pool.request("POST", "/v1/x?y=1", JSON, b"{}")
        assert await resp.read() == b"ok"
        tls = pool_for("https://api.example", proxy=creds)
        with pytest.raises(ProxyError, match=r"refused the tunnel: HTTP/1\.1 403 Forbidden") as e:
            await tls.request("GET", "/", [])
        assert "pa:ss" not in str(e.value) and "user" not in str(e.value)
        assert not tls._all
    auth = b"proxy-authorization: Basic dXNlcjpwYTpzcw==\r\n"  # base64("user:pa:ss")
    assert seen[0].startswith(b"POST http://api.example:8080/v1/x?y=1 HTTP/1.1\r\n")
    assert b"host: api.example:8080\r\n" in seen[0] and auth in seen[0]
    assert seen[1] == b"CONNECT api.example:443 HTTP/1.1\r\nhost: api.example:443\r\n" + auth + (
        b"\r\n"
    )
