"""OpenAI Responses API: ``POST /v1/responses`` (raw ASGI, like chat completions: a hot path),
``GET`` and ``DELETE /v1/responses/{id}``, ``GET /v1/responses/{id}/input_items``.

The door parses a Responses body, prepends the items of ``previous_response_id`` (stored
server-side, by owner), walks the chat-completions request it translates to along the one path
as ``api="responses"`` (key, allow-list, budget, limits, cache, reasoning, usage, metrics) and
renders the answer as a ``response`` object or its event stream. With ``store`` (the default, as
at OpenAI) the response and the input it answered are saved behind the request, readable at
once. A stored response belongs to its caller's key (or user, or to anonymous callers): anyone
else gets a 404.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

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
from chatgate.api.deps import State
from chatgate.api.schema import responses_openapi
from chatgate.drain import Drain, shutting_down
from chatgate.errors import GatewayError, InvalidRequestError, NotFoundError
from chatgate.gateway.auth import Identity, bearer
from chatgate.gateway.path import CLIENT_GONE, Exchange
from chatgate.gateway.reasoning import parse_mode
from chatgate.protocol.openai import ChatRequest, parse_cache_headers, parse_json
from chatgate.protocol.responses import (
    Item,
    ResponsesRequest,
    chat_body,
    new_id,
    parse_request,
)
from chatgate.protocol.responses_render import listed_items, render, skeleton
from chatgate.protocol.responses_stream import ResponseStream
from chatgate.state import AppState, Runtime
from chatgate.storage import ResponseRepository

log = logging.getLogger(__name__)

PATH = "/v1/responses"
_CACHE_HEADERS = {
    status: (b"x-chatgate-cache", status.encode()) for status in ("hit", "miss", "bypass")
}


def owner_of(identity: Identity) -> str:
    """Whose stored responses a caller sees: its key's, its user's, or anonymous callers'."""
    return identity.subject or ""


class _Turn:
    """What a stored response needs besides the answer: who, and the input it answered."""

    __slots__ = ("input", "owner", "req", "rid", "store")

    def __init__(
        self, req: ResponsesRequest, owner: str, history: list[Item], store: ResponseRepository
    ) -> None:
        self.req = req
        self.rid = new_id()
        self.owner = owner
        self.store = store if req.store else None
        self.input = (history + req.input) if history else req.input

    def save(self, response: bytes) -> None:
        """Store the response (written behind the request: see ``storage.responses``)."""
        if self.store is not None:
            req = self.req
            self.store.save(
                self.rid,
                self.owner,
                req.model,
                req.previous_response_id,
                orjson.dumps(self.input).decode(),
                response.decode(),
            )


async def history_of(store: ResponseRepository, req: ResponsesRequest, owner: str) -> list[Item]:
    """The items ``previous_response_id`` continues: its whole input, then its output."""
    previous = req.previous_response_id
    if previous is None:
        return []
    found = await store.get(previous, owner)
    if found is None:
        raise InvalidRequestError(
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    items: list[Item] = orjson.loads(found.input)
    output = orjson.loads(found.response).get("output") or []
    return items + output


class CreateResponse:
    """ASGI endpoint for ``POST /v1/responses``."""

    error_body = staticmethod(openai_error)

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def openapi(self) -> dict[str, Any]:
        return responses_openapi()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted = chatgate_headers(scope)
        try:
            state = self.runtime.require()
        except GatewayError as exc:
            await send_error(send, exc, [])
            return
        store = state.responses
        assert store is not None
        async with state.path.begin("responses", wanted.get(b"x-request-id")) as exchange:
            headers = [(b"x-request-id", exchange.request_id.encode("latin-1"))]
            try:
                identity = await exchange.authenticate(bearer(wanted.get(b"authorization")))
                raw = await read_body(receive, state.config.server.max_body_bytes)
                reasoning = parse_mode(wanted.get(b"x-chatgate-reasoning"))
                rreq = parse_request(parse_json(raw))
                owner = owner_of(identity)
                history = await history_of(store, rreq, owner)
                req = ChatRequest(chat_body(rreq, history), rreq.model, rreq.stream, reasoning)
                parse_cache_headers(
                    req,
                    wanted.get(b"cache-control"),
                    wanted.get(b"x-chatgate-cache-ttl"),
                    state.config.cache.max_ttl,
                )
                await exchange.admit(req)
                headers += exchange.headers
                turn = _Turn(rreq, owner, history, store)
                drain = self.runtime.drain
                async with DisconnectWatch(receive) as watch:
                    async with drain.watch() as opening:
                        answer = await exchange.open()
                    if opening.cut:  # the drain deadline came first: no answer begun to end
                        raise shutting_down()
                    headers.append(_CACHE_HEADERS[answer.cache])
                    headers += exchange.cost_headers
                    if answer.completion is not None:
                        payload = orjson.dumps(render(rreq, turn.rid, answer.completion))
                        turn.save(payload)
                        await send_json(send, 200, payload, headers)
                    else:
                        await _stream(exchange, turn, send, headers, drain)
                if watch.gone:
                    exchange.status = CLIENT_GONE
            except ClientGone:
                exchange.status = CLIENT_GONE
            except GatewayError as exc:
                exchange.fail(exc)
                await send_error(send, exc, headers)
            except Exception as exc:  # a bug of ours: still an answer in the API's own shape
                log.exception("response %s failed", exchange.request_id)
                exchange.fail(f"internal error ({type(exc).__name__})", 500)
                with contextlib.suppress(Exception):  # fails only if the response had begun
                    err = GatewayError("Internal error; see the server log.")
                    await send_error(send, err, headers)


async def _stream(
    exchange: Exchange,
    turn: _Turn,
    send: Send,
    headers: list[tuple[bytes, bytes]],
    drain: Drain,
) -> None:
    """Send the opened stream as Responses events. The opening events travel with the first
    batch, the closing ones with ``response.completed``: one write each. An error after the
    first byte (or the server's drain deadline) ends the stream with ``error`` and
    ``response.failed``."""
    stream = ResponseStream(skeleton(turn.req, turn.rid, int(time.time())))
    await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]})
    head = stream.start()
    try:
        async with drain.watch() as deadline:
            async for batch in exchange:
                body = stream.feed(batch)
                if head:
                    body, head = head + body, b""
                if body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
        if deadline.cut:
            raise shutting_down()
        tail = head + stream.close()
    except Exception as exc:
        if not isinstance(exc, GatewayError):
            log.exception("stream failed")
            exc = GatewayError("Internal error; see the server log.")
        exchange.fail(exc, 200)  # the status line said 200; the log keeps the error
        await send({"type": "http.response.body", "body": head + stream.failed(exc)})
        return
    final = orjson.dumps(stream.response)
    turn.save(final)
    await send({"type": "http.response.body", "body": tail + stream.completed(final)})


async def _identity(request: Request, state: AppState) -> str:
    identity = await state.auth.authenticate(bearer(request.headers.get("authorization")))
    return owner_of(identity)


async def _found(request: Request, state: AppState, response_id: str) -> tuple[str, str]:
    """(the response's JSON, its input's JSON), or 404 when the caller has no such response."""
    assert state.responses is not None
    found = await state.responses.get(response_id, await _identity(request, state))
    if found is None:
        raise NotFoundError(f"No response found with id '{response_id}'.", param="response_id")
    return found.response, found.input


def responses_router() -> APIRouter:
    """The stored responses' routes (``POST`` is served raw: see ``app.Gateway``)."""
    router = APIRouter(tags=["OpenAI-compatible"])

    @router.get(PATH + "/{response_id}", summary="Retrieve a stored response")
    async def retrieve(response_id: str, request: Request, state: AppState = State) -> Response:
        response, _ = await _found(request, state, response_id)
        return Response(response, media_type="application/json")

    @router.delete(PATH + "/{response_id}", summary="Delete a stored response")
    async def delete(response_id: str, request: Request, state: AppState = State) -> Any:
        assert state.responses is not None
        if not await state.responses.delete(response_id, await _identity(request, state)):
            raise NotFoundError(f"No response found with id '{response_id}'.", param="response_id")
        return {"id": response_id, "object": "response", "deleted": True}

    @router.get(
        PATH + "/{response_id}/input_items", summary="List the input items of a stored response"
    )
    async def input_items(
        response_id: str,
        request: Request,
        state: AppState = State,
        limit: int = Query(20, ge=1, le=100),
        order: str = Query("desc", pattern="^(asc|desc)$"),
        after: str | None = None,
    ) -> Any:
        _, raw = await _found(request, state, response_id)
        items = listed_items(orjson.loads(raw), response_id)
        if order == "desc":
            items.reverse()
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }

    return router
