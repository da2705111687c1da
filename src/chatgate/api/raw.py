"""What /docs shows for a raw-ASGI door (FastAPI cannot infer it from a route it never sees):
its path item (:func:`path_item` for OpenAI-style doors) with the guard's refusals added
(:func:`with_refusals`, by the app for every door)."""

from __future__ import annotations

import copy
from typing import Any

from chatgate.api.schema import ERROR_SCHEMA


def path_item(
    summary: str,
    operation_id: str,
    request_schema: dict[str, Any],
    answer: str,
    streams: bool,
    description: str,
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
            "description": description,
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


# The refusals ``api.guard`` makes before any door, in the door's own error shape.
REFUSALS = {
    "403": "Another site's request (a foreign `Origin`) without a key",
    "413": "Request body larger than `server.max_body_bytes`",
    "415": "The body is not JSON (send `Content-Type: application/json`)",
    "421": "The `Host` is not in `server.allowed_hosts`",
}


def with_refusals(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` with the guard's refusals among its POST's responses, each in the schema of the
    door's own errors (its 400's); a status the door already documents gets the refusal added
    to its description."""
    item = copy.deepcopy(item)
    responses: dict[str, Any] = item["post"]["responses"]
    shape = responses["400"]["content"]["application/json"]["schema"]
    for status, text in REFUSALS.items():
        known = responses.get(status)
        if known is None:
            content = {"application/json": {"schema": shape}}
            responses[status] = {"description": text, "content": content}
        elif text not in known["description"]:
            known["description"] += f"; or: {text[0].lower()}{text[1:]}"
    responses = dict(sorted(responses.items()))
    item["post"]["responses"] = responses
    return item
