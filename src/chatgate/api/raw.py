"""A FastAPI route that hands the request to a raw-ASGI door (documented, but not parsed).

The route declares no body parameters, so FastAPI reads nothing; the returned response runs
the door on the connection itself (body, disconnects, SSE), exactly as the hot chat door does.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response

from chatgate.api.asgi import Receive, Scope, Send
from chatgate.api.schema import ERROR_SCHEMA

Door = Any  # an ASGI callable: ``await door(scope, receive, send)``


class RawDoor(Response):
    """Run ``door`` as the response."""

    def __init__(self, door: Door) -> None:  # no body of its own: the door sends everything
        self.door = door
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.door(scope, receive, send)


def openapi_extra(request_schema: dict[str, Any], answer: str, streams: bool) -> dict[str, Any]:
    """What /docs shows for a raw door: its body, its answer and the errors every door has."""
    content: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if streams:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    errors = {
        "400": "Invalid JSON or field types",
        "401": "Missing or invalid API key",
        "403": "The key may not use this model",
        "404": "Unknown model (`model_not_found`)",
        "429": "Rate limited or budget spent (see Retry-After)",
        "502": "Upstream failed",
    }
    return {
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request_schema}},
            },
            "responses": {
                "200": {"description": answer, "content": content},
                **{
                    code: {
                        "description": text,
                        "content": {"application/json": {"schema": ERROR_SCHEMA}},
                    }
                    for code, text in errors.items()
                },
            },
        },
        "response_model": None,
    }
