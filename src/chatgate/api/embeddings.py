"""``POST /v1/embeddings``: OpenAI embeddings from any provider that offers them.

The chat door's machinery (``api.openai.ChatCompletions``) with the embeddings body (``input``:
a string, strings, token ids or arrays of them; ``dimensions`` passed through): the request walks
the one path as ``api="embeddings"`` — cached like chat answers — and the answer is rendered in
the ``encoding_format`` the client asked for (upstreams are always asked for floats).
"""

from __future__ import annotations

from typing import Any

from chatgate.api.completions import TEXT_OR_TOKENS
from chatgate.api.openai import ChatCompletions
from chatgate.api.raw import path_item
from chatgate.protocol import embeddings
from chatgate.protocol.openai import ChatRequest
from chatgate.state import Runtime

EMBEDDINGS_PATH = "/v1/embeddings"

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


def embeddings_door(runtime: Runtime) -> ChatCompletions:
    """The chat door's machinery with the embeddings body, as ``api="embeddings"``."""
    openapi = path_item(
        "Create embeddings (OpenAI-compatible)",
        "create_embeddings",
        REQUEST,
        "OpenAI's embeddings `list` object.",
        streams=False,
        description="OpenAI's embeddings from any provider that offers them (OpenAI-compatible "
        "servers, Ollama, GigaChat, or the bundled multilingual `local-embed`), cached like "
        "chat answers; `encoding_format: base64` is rendered here.",
    )
    return ChatCompletions(
        runtime, "embeddings", embeddings.validate_embeddings_request, _render, openapi
    )
