"""The frame every raw-ASGI door that walks the request path runs in, written once.

A door (chat completions, completions, embeddings, Anthropic Messages, Ollama, Responses) brings
only its own pieces, as a :class:`Turn`: how its body becomes the path's ``ChatRequest``, how a
whole answer and a stream are written in its wire format (a :class:`Framing`), and its error
shape. :class:`Door` does the rest for all of them: the key, the body, the cache headers,
admission, opening the answer under the drain's and the client's watch, the response headers
(request id, rate limit, cache, cost), the stream's lifecycle and the error arms.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Protocol

from chatgate.api.asgi import (
    SSE_HEADERS,
    ClientGone,
    DisconnectWatch,
    Receive,
    Scope,
    Send,
    chatgate_headers,
    openai_error,
    read_body,
    send_error,
    send_json,
)
from chatgate.drain import Drain, shutting_down
from chatgate.errors import GatewayError
from chatgate.gateway.auth import Identity, bearer
from chatgate.gateway.path import CLIENT_GONE, Exchange
from chatgate.protocol import sse
from chatgate.protocol.openai import ChatRequest, ChunkBatch, parse_cache_headers
from chatgate.state import AppState, Runtime

log = logging.getLogger(__name__)

Wanted = dict[bytes, str]
"""The request headers the gateway acts on (``asgi.chatgate_headers``)."""


class Framing(Protocol):
    """One stream's wire format: ``start`` travels with the first batch, each batch is ``feed``
    (``b""``: nothing to send for it), then ``finish``; or, when the answer broke off after
    the first byte (an upstream error, a bug, the drain deadline), ``failed`` instead."""

    def start(self) -> bytes: ...

    def feed(self, batch: ChunkBatch, /) -> bytes: ...

    def finish(self) -> bytes: ...

    def failed(self, exc: GatewayError, /) -> bytes: ...


class Turn(Protocol):
    """One request at a door: what the door keeps of it between parsing and rendering."""

    async def parse(
        self, state: AppState, identity: Identity, wanted: Wanted, raw: bytes
    ) -> ChatRequest | bytes:
        """The body as the path's request, or a whole answer given without the path."""
        ...

    def whole(self, req: ChatRequest, completion: dict[str, Any]) -> bytes: ...

    def stream(self, req: ChatRequest) -> Framing: ...

    def error_body(self, exc: GatewayError) -> Any: ...


class Door:
    """A raw-ASGI door along the one request path. Subclasses give ``api`` (the door's name in
    metrics and logs), ``turn`` and ``openapi``, and where they differ from OpenAI's, the
    credential, the echoed request id, the stream's content type and the error shape."""

    api: str
    stream_headers = SSE_HEADERS
    error_body = staticmethod(openai_error)
    # Anthropic's clients read the request id as ``request-id`` too.
    echo_request_id = False

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def turn(self, exchange: Exchange) -> Turn:
        """The request's own pieces: a fresh object, or the door when it keeps nothing."""
        raise NotImplementedError

    def credential(self, wanted: Wanted) -> str | None:
        return bearer(wanted.get(b"authorization"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted = chatgate_headers(scope)
        try:
            state = self.runtime.require()
        except GatewayError as exc:
            await send_error(send, exc, [], self.error_body)
            return
        async with state.path.begin(self.api, wanted.get(b"x-request-id")) as exchange:
            rid = exchange.request_id.encode("latin-1")
            headers = [(b"x-request-id", rid)]
            if self.echo_request_id:
                headers.append((b"request-id", rid))
            turn = self.turn(exchange)
            try:
                identity = await exchange.authenticate(self.credential(wanted))
                raw = await read_body(receive, state.config.server.max_body_bytes)
                req = await turn.parse(state, identity, wanted, raw)
                if isinstance(req, bytes):  # answered without the path (Ollama's model load)
                    await send_json(send, 200, req, headers)
                    return
                parse_cache_headers(
                    req,
                    wanted.get(b"cache-control"),
                    wanted.get(b"x-chatgate-cache-ttl"),
                    state.config.cache.max_ttl,
                )
                await exchange.admit(req)
                headers += exchange.headers
                drain = self.runtime.drain
                async with DisconnectWatch(receive) as watch:
                    async with drain.watch() as opening:
                        answer = await exchange.open()
                    if opening.cut:  # the drain deadline came first: no answer begun to end
                        raise shutting_down()
                    headers.append(_CACHE_HEADERS[answer.cache])
                    headers += exchange.cost_headers
                    if answer.completion is not None:
                        await send_json(send, 200, turn.whole(req, answer.completion), headers)
                    else:
                        await self._stream(exchange, turn.stream(req), send, headers, drain)
                if watch.gone:
                    exchange.status = CLIENT_GONE
            except ClientGone:
                exchange.status = CLIENT_GONE
            except GatewayError as exc:
                exchange.fail(exc)
                await send_error(send, exc, headers, turn.error_body)
            except Exception as exc:  # a bug of ours: still an answer in the API's own shape
                log.exception("%s %s failed", self.api, exchange.request_id)
                exchange.fail(f"internal error ({type(exc).__name__})", 500)
                with contextlib.suppress(Exception):  # fails only if the response had begun
                    err = GatewayError("Internal error; see the server log.")
                    await send_error(send, err, headers, turn.error_body)

    async def _stream(
        self,
        exchange: Exchange,
        framing: Framing,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        drain: Drain,
    ) -> None:
        """Send the opened stream, one write per batch. An error after the first byte travels
        in-band (``framing.failed``) and the stream ends without its closing events, so no
        client mistakes it for a whole answer; so does the server's stop, at its drain
        deadline."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*self.stream_headers, *headers],
            }
        )
        head = framing.start()
        feed = framing.feed
        try:
            async with drain.watch() as deadline:
                async for batch in exchange:
                    body = feed(batch)
                    if head:
                        body, head = head + body, b""
                    if body:
                        await send({"type": "http.response.body", "body": body, "more_body": True})
            if deadline.cut:
                raise shutting_down()
            tail = framing.finish()
        except Exception as exc:
            if not isinstance(exc, GatewayError):
                log.exception("stream failed")
                exc = GatewayError("Internal error; see the server log.")
            exchange.fail(exc, 200)  # the status line said 200; the log keeps the error
            tail = framing.failed(exc)
        await send({"type": "http.response.body", "body": head + tail})


class OpenAIEvents:
    """OpenAI's stream framing: a ``data:`` event per chunk, ``data: [DONE]`` after the last;
    an error in-band as ``data: {"error": …}`` with no ``[DONE]`` after it."""

    __slots__ = ()

    feed = staticmethod(sse.encode_batch)  # straight to the encoder: it runs once per batch

    def start(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        return sse.DONE

    def failed(self, exc: GatewayError) -> bytes:
        return sse.encode(exc.to_body())


OPENAI_EVENTS = OpenAIEvents()

_CACHE_HEADERS = {
    status: (b"x-chatgate-cache", status.encode()) for status in ("hit", "miss", "bypass")
}
