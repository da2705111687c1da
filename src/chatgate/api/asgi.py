"""Raw-ASGI helpers for the hot path: body reading, JSON/SSE responses, disconnect watching.

``/v1/chat/completions`` runs on these instead of FastAPI's request machinery: per request that
saves the dependency solver, two middleware hops and a Response object, which is most of the
gateway's own overhead at a few thousand requests per second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol

import orjson

from chatgate.errors import GatewayError, PayloadTooLargeError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


ErrorBody = Callable[[GatewayError], Any]
"""A door's error renderer: a :class:`GatewayError` as the JSON its clients parse."""


def openai_error(exc: GatewayError) -> Any:
    """OpenAI's ``{"error": {"message", "type", "param", "code"}}``: every door's but the
    dialects' and the seed's."""
    return exc.to_body()


class RawDoor(Protocol):
    """A door served straight from the top-level ASGI app, with its own OpenAPI path item
    (FastAPI cannot infer one for it) and its error renderer (for refusals made before it)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    def openapi(self) -> dict[str, Any]: ...

    def error_body(self, exc: GatewayError) -> Any: ...


class ErrorShapes:
    """Which error renderer answers for a path: the door at that path or at the nearest path
    above it (``/v1/messages/x`` → the Messages door's), else OpenAI's. One table, built by the
    app from its doors, used by every answer given before a door runs (``api.guard``,
    ``api.bodylimit``, a wrong method, FastAPI's error handlers)."""

    __slots__ = ("_doors",)

    def __init__(self, doors: Mapping[str, ErrorBody]) -> None:
        self._doors = {path.rstrip("/"): shape for path, shape in doors.items()}

    def for_path(self, path: str) -> ErrorBody:
        key = path.rstrip("/")
        while key:
            shape = self._doors.get(key)
            if shape is not None:
                return shape
            key = key.rpartition("/")[0]
        return openai_error


JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class ClientGone(Exception):
    """The client closed the connection while we were still working for it."""


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        body = message.get("body", b"")
        if body:
            size += len(body)
            if size > limit:
                raise PayloadTooLargeError(
                    f"Request body is larger than the limit of {limit} bytes."
                )
            chunks.append(body)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def chatgate_headers(scope: Scope) -> dict[bytes, str]:
    """The request headers the gateway acts on, in one pass (``x-request-id``,
    ``x-chatgate-*``, ``cache-control``, ``authorization``)."""
    found: dict[bytes, str] = {}
    for key, value in scope["headers"]:
        if key.startswith(b"x-") or key in _WANTED:
            found[key] = value.decode("latin-1")
    return found


_WANTED = frozenset({b"cache-control", b"authorization"})


async def send_json(
    send: Send,
    status: int,
    payload: bytes,
    headers: list[tuple[bytes, bytes]],
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*JSON_HEADERS, *headers],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def send_error(
    send: Send,
    exc: GatewayError,
    headers: list[tuple[bytes, bytes]],
    shape: ErrorBody = openai_error,
) -> None:
    """Answer ``exc`` with its status and ``Retry-After``, its body in ``shape``."""
    extra = [(k.lower().encode(), v.encode()) for k, v in exc.headers().items()]
    await send_json(send, exc.status, orjson.dumps(shape(exc)), [*headers, *extra])


class DisconnectWatch:
    """Cancels the current task when the client disconnects (uvicorn's ``send`` would just
    drop our writes, leaving the upstream call running for nobody).

    Use after the request body has been read completely, as ``async with``; ``gone`` tells
    afterwards whether the cancellation came from a disconnect.
    """

    __slots__ = ("_receive", "_task", "_watcher", "gone")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._watcher: asyncio.Task[None] | None = None
        self._task: asyncio.Task[Any] | None = None
        self.gone = False

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.gone = True
                if self._task is not None:
                    self._task.cancel()
                return

    async def __aenter__(self) -> DisconnectWatch:
        self._task = asyncio.current_task()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> bool:
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()
        if self.gone and exc_type is asyncio.CancelledError:
            task = self._task
            if task is not None:
                task.uncancel()
            return True  # we cancelled ourselves because nobody is listening: not an error
        return False
