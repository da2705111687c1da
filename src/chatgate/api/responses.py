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

import time
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from chatgate.api.asgi import openai_error
from chatgate.api.deps import State
from chatgate.api.door import Door, Wanted
from chatgate.api.schema import responses_openapi
from chatgate.errors import InvalidRequestError, NotFoundError
from chatgate.gateway.auth import Identity, bearer
from chatgate.gateway.path import Exchange
from chatgate.gateway.reasoning import parse_mode
from chatgate.protocol.openai import ChatRequest, parse_json
from chatgate.protocol.responses import (
    Item,
    ResponsesRequest,
    chat_body,
    new_id,
    parse_request,
)
from chatgate.protocol.responses_render import listed_items, render, skeleton
from chatgate.protocol.responses_stream import ResponseStream
from chatgate.state import AppState
from chatgate.storage import ResponseRepository

PATH = "/v1/responses"


def owner_of(identity: Identity) -> str:
    """Whose stored responses a caller sees: its key's, its user's, or anonymous callers'."""
    return identity.subject or ""


class _Turn:
    """A Responses request: the request as the client sent it, who asked, the input it answers
    (with ``previous_response_id``'s items before it) and the id its stored response gets."""

    __slots__ = ("input", "owner", "req", "rid", "store")

    error_body = staticmethod(openai_error)
    req: ResponsesRequest
    owner: str
    input: list[Item]
    store: ResponseRepository | None

    def __init__(self) -> None:
        self.rid = new_id()

    async def parse(
        self, state: AppState, identity: Identity, wanted: Wanted, raw: bytes
    ) -> ChatRequest:
        store = state.responses
        assert store is not None
        reasoning = parse_mode(wanted.get(b"x-chatgate-reasoning"))
        self.req = rreq = parse_request(parse_json(raw))
        self.owner = owner_of(identity)
        history = await history_of(store, rreq, self.owner)
        self.store = store if rreq.store else None
        self.input = (history + rreq.input) if history else rreq.input
        return ChatRequest(chat_body(rreq, history), rreq.model, rreq.stream, reasoning)

    def whole(self, req: ChatRequest, completion: dict[str, Any]) -> bytes:
        payload = orjson.dumps(render(self.req, self.rid, completion))
        self.save(payload)
        return payload

    def stream(self, req: ChatRequest) -> _Stream:
        return _Stream(self)

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


class _Stream(ResponseStream):
    """The response's events; the whole response is stored as its last event is written."""

    def __init__(self, turn: _Turn) -> None:
        super().__init__(skeleton(turn.req, turn.rid, int(time.time())))
        self.turn = turn

    def finish(self) -> bytes:
        tail = self.close()
        final = orjson.dumps(self.response)
        self.turn.save(final)
        return tail + self.completed(final)


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


class CreateResponse(Door):
    """ASGI endpoint for ``POST /v1/responses``."""

    api = "responses"

    def turn(self, exchange: Exchange) -> _Turn:
        return _Turn()

    def openapi(self) -> dict[str, Any]:
        return responses_openapi()


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
