"""Server-sent events: framing our own output, and an incremental parser for upstream streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def encode(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def encode_batch(objs: list[Any]) -> bytes:
    if len(objs) == 1:
        return b"data: " + orjson.dumps(objs[0]) + b"\n\n"
    return b"".join([b"data: " + orjson.dumps(o) + b"\n\n" for o in objs])


class SSEDecoder:
    """Turns arbitrary byte pieces into the ``data:`` payloads of complete events.

    Handles events split across reads, ``\\r\\n`` line ends, comments (``:`` keep-alives) and
    multi-line data fields, as the SSE spec says.
    """

    __slots__ = ("_buf", "_data")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []

    def feed(self, piece: bytes) -> list[bytes]:
        buf = self._buf + piece if self._buf else piece
        out: list[bytes] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    out.append(b"\n".join(self._data))
                    self._data = []
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                if value.startswith(b" "):
                    value = value[1:]
                self._data.append(value)
            # other fields (event:, id:, retry:, comments) carry nothing we use
        self._buf = buf[start:]
        return out

    def flush(self) -> list[bytes]:
        """Payload of a last event that ended without its blank line (some servers do that)."""
        tail = self.feed(b"\n\n") if (self._buf or self._data) else []
        self._buf = b""
        return tail


async def iter_events(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    decoder = SSEDecoder()
    async for piece in pieces:
        for data in decoder.feed(piece):
            yield data
    for data in decoder.flush():
        yield data
