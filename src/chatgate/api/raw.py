"""What /docs shows for a raw-ASGI door (FastAPI cannot infer it from a route it never sees)."""

from __future__ import annotations

from typing import Any

from chatgate.api.schema import ERROR_SCHEMA


def path_item(
    summary: str,
    operation_id: str,
    request_schema: dict[str, Any],
    answer: str,
    streams: bool,
) -> dict[str, Any]:
    """The OpenAPI path item of an OpenAI-style POST door: its body, its answer and the errors
    every door has."""
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
        "post": {
            "tags": ["OpenAI-compatible"],
            "summary": summary,
            "operationId": operation_id,
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
        }
    }
