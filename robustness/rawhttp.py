"""HTTP/1.1 over a bare socket, for requests ordinary clients will not send: any Host header,
bodies streamed chunk by chunk until the server answers, no retries, no header fixing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    sent: int = 0  # body bytes written before the server answered (or closed)

    def json(self) -> object:
        return orjson.loads(self.body)

    @property
    def code(self) -> str | None:
        """The error code of an OpenAI-shaped error body, if it is one."""
        try:
            data = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None
        error = data.get("error") if isinstance(data, dict) else None
        return error.get("code") if isinstance(error, dict) else None


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def _read_reply(reader: asyncio.StreamReader) -> Reply:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    return Reply(status, headers, body)


async def request(
    url: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    chunks: Iterable[bytes] | None = None,
    deadline: float = 30.0,
) -> Reply:
    """One request. ``headers`` are sent as given (``Host`` defaults to the URL's); ``chunks``
    are sent with ``Transfer-Encoding: chunked`` until the server answers."""
    host, port = _address(url)
    given = {k.lower(): v for k, v in (headers or {}).items()}
    given.setdefault("host", f"{host}:{port}")
    if chunks is not None:
        given["transfer-encoding"] = "chunked"
    elif body is not None:
        given["content-length"] = str(len(body))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in given.items())
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(deadline):
            writer.write(head.encode("latin-1") + b"\r\n" + (body or b""))
            reply = asyncio.ensure_future(_read_reply(reader))
            sent = 0
            if chunks is not None:
                with contextlib.suppress(ConnectionError):
                    for chunk in chunks:
                        if reply.done():
                            break
                        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        await writer.drain()
                        sent += len(chunk)
                        # drain() does not yield while the server keeps reading (uvicorn
                        # discards the rest of a refused body as fast as it comes): yield so
                        # the reply is read as soon as it arrives, whatever the machine's load.
                        await asyncio.sleep(0)
                    else:
                        writer.write(b"0\r\n\r\n")
                        await writer.drain()
            result = await reply
            result.sent = sent
            return result
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def ws_handshake_headers(key: str = "dGhlIHNhbXBsZSBub25jZQ==") -> dict[str, str]:
    return {
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": key,
        "sec-websocket-version": "13",
    }
