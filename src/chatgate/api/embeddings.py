"""``POST /v1/embeddings``: OpenAI embeddings from any provider that offers them.

The chat door's machinery (``api.openai.ChatCompletions``) with the embeddings body (``input``:
a string, strings, token ids or arrays of them; ``dimensions`` passed through): the request walks
the one path as ``api="embeddings"`` — cached like chat answers — and the answer is rendered in
the ``encoding_format`` the client asked for (upstreams are always asked for floats).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from chatgate.api.completions import TEXT_OR_TOKENS
from chatgate.api.deps import runtime_of
from chatgate.api.openai import ChatCompletions
from chatgate.api.raw import RawDoor, openapi_extra
from chatgate.protocol import embeddings
from chatgate.protocol.openai import ChatRequest

REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["model", "input"],
    "additionalProperties": True,
    "description": "Any OpenAI embeddings field is accepted and passed through unchanged.",
    "properties": {
        "model": {"type": "string", "examples": ["text-embedding-3-small"]},
        "input": TEXT_OR_TOKENS,
        "encoding_format": {"type": "string", "enum": ["float", "base64"], "default": "float"},
        "dimensions": {"type": "integer", "minimum": 1},
        "user": {"type": "string"},
    },
}


def _render(req: ChatRequest, result: dict[str, Any]) -> dict[str, Any]:
    return embeddings.render(result, req.body.get("encoding_format"))


def embeddings_router() -> APIRouter:
    router = APIRouter(tags=["OpenAI-compatible"])

    @router.post(
        "/v1/embeddings",
        summary="Create embeddings (OpenAI-compatible)",
        operation_id="create_embeddings",
        **openapi_extra(REQUEST, "OpenAI's embeddings `list` object.", streams=False),
    )
    async def create_embeddings(request: Request) -> Response:
        runtime = runtime_of(request.app)
        door = ChatCompletions(
            runtime, "embeddings", embeddings.validate_embeddings_request, _render
        )
        return RawDoor(door)

    return router
