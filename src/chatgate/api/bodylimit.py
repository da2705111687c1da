"""``server.max_body_bytes`` for every route and every transfer encoding, counted while reading.

The declared ``Content-Length`` is checked up front (``api.guard``), but a chunked body declares
nothing, and Starlette reads whatever comes into one buffer. :class:`BodyLimit` wraps one
request's ``receive`` and ``send``: once the bytes received pass the limit it answers 413 at
once, stops handing the route any more of the body, and drops whatever the route tries to
answer after that (uvicorn discards the rest of the body as it arrives, keeping the connection
usable, rather than closing it under a client that is still writing: a reset would lose the
413 before the client read it). Memory is bounded by the limit, not by the body. (The raw
hot path, ``/v1/chat/completions``, counts in ``api.asgi.read_body``.)
"""

from __future__ import annotations

from chatgate.api.asgi import ErrorShapes, Message, Receive, Send, send_error
from chatgate.errors import PayloadTooLargeError


class BodyLimit:
    __slots__ = ("_receive", "_send", "limit", "over", "path", "received", "shapes", "started")

    def __init__(
        self, receive: Receive, send: Send, limit: int, path: str, shapes: ErrorShapes
    ) -> None:
        self._receive = receive
        self._send = send
        self.limit = limit
        self.path = path
        self.shapes = shapes  # the 413 comes in the shape of the door at `path`
        self.received = 0
        self.over = False
        self.started = False

    async def receive(self) -> Message:
        if self.over:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.over = True
                error = PayloadTooLargeError(
                    f"Request body is larger than the limit of {self.limit} bytes."
                )
                if not self.started:
                    self.started = True
                    await send_error(self._send, error, [], self.shapes.for_path(self.path))
                # A route reading the body directly gets the error (rendered by no one: the
                # answer is out); FastAPI's body parsing turns it into a 400 that is dropped.
                raise error
        return message

    async def send(self, message: Message) -> None:
        if self.over:
            return  # the 413 is the answer; the route's own is dropped
        self.started = True
        await self._send(message)
