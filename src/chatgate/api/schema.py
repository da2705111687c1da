"""OpenAPI descriptions of the raw doors (FastAPI cannot infer them): ``/v1/chat/completions``
and ``/v1/responses`` here, and the helpers the other raw doors describe themselves with."""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
            "required": ["message", "type", "param", "code"],
        }
    },
    "required": ["error"],
}

_REQUEST = {
    "type": "object",
    "required": ["model", "messages"],
    "additionalProperties": True,
    "description": "Any OpenAI chat-completions field is accepted and passed through unchanged.",
    "properties": {
        "model": {"type": "string", "examples": ["local"]},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role"],
                "additionalProperties": True,
                "properties": {
                    "role": {
                        "type": "string",
                        "enum": ["system", "developer", "user", "assistant", "tool", "function"],
                    },
                    "content": {"type": ["string", "array", "null"]},
                },
            },
        },
        "stream": {"type": "boolean", "default": False},
        "temperature": {"type": "number"},
        "top_p": {"type": "number"},
        "max_tokens": {"type": "integer"},
        "n": {"type": "integer", "minimum": 1},
        "stop": {"type": ["string", "array"]},
        "tools": {"type": "array"},
        "response_format": {"type": "object"},
        "stream_options": {"type": "object"},
    },
}


def error_response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON error response (OpenAI's shape unless ``schema`` says otherwise)."""
    body = ERROR_SCHEMA if schema is None else schema
    return {"description": description, "content": {"application/json": {"schema": body}}}


def json_request(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def chat_completions_openapi() -> dict[str, Any]:
    return {
        "post": {
            "tags": ["OpenAI-compatible"],
            "summary": "Create a chat completion (OpenAI-compatible; stream or not)",
            "description": "The gateway's main door: the request walks chatgate's one path "
            "(key, model allow-list, budget, rate limits, cache, reasoning mode, usage, metrics) "
            "to the model's provider. Per-request headers: `X-Chatgate-Reasoning`, "
            "`Cache-Control: no-cache`, `X-Chatgate-Cache-TTL`.",
            "operationId": "create_chat_completion",
            "requestBody": json_request(_REQUEST),
            "responses": {
                "200": {
                    "description": "A `chat.completion` object, or with `stream: true` an SSE "
                    "stream of `chat.completion.chunk` objects ending with `data: [DONE]`.",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                "400": error_response("Invalid JSON or field types"),
                "401": error_response("Missing or invalid API key"),
                "403": error_response("The key may not use this model"),
                "404": error_response("Unknown model (`model_not_found`)"),
                "429": error_response("Rate limited (see Retry-After)"),
                "502": error_response("Upstream failed"),
                "503": error_response("Queue timeout or not ready (see Retry-After)"),
                "504": error_response("Upstream timed out"),
            },
        }
    }


_RESPONSES_REQUEST = {
    "type": "object",
    "required": ["model"],
    "additionalProperties": True,
    "description": "An OpenAI Responses API request. Translated to chat completions for the "
    "upstream: function tools only (hosted tools are refused), `text.format` becomes "
    "`response_format`, `reasoning.effort` becomes `reasoning_effort`, `max_output_tokens` "
    "becomes `max_tokens`. With `store` (default true) the response is kept server-side for "
    "`GET`, `DELETE` and `previous_response_id` until `responses.retention_days` pass.",
    "properties": {
        "model": {"type": "string", "examples": ["local"]},
        "input": {
            "description": "A string (one user message) or items: messages (`input_text`, "
            "`input_image`, `input_file`, `output_text` parts), `function_call`, "
            "`function_call_output`, `reasoning`.",
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
        },
        "instructions": {"type": "string"},
        "previous_response_id": {"type": "string"},
        "store": {"type": "boolean", "default": True},
        "stream": {"type": "boolean", "default": False},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"oneOf": [{"type": "string"}, {"type": "object"}]},
        "parallel_tool_calls": {"type": "boolean"},
        "max_output_tokens": {"type": "integer"},
        "temperature": {"type": "number"},
        "top_p": {"type": "number"},
        "text": {"type": "object"},
        "reasoning": {"type": "object"},
        "metadata": {"type": "object"},
        "user": {"type": "string"},
    },
}


def responses_openapi() -> dict[str, Any]:
    return {
        "post": {
            "tags": ["OpenAI-compatible"],
            "summary": "Create a model response (OpenAI Responses API; stream or not)",
            "description": "OpenAI's Responses API (what Codex CLI speaks), translated to chat "
            "completions and walked along the same path as `api=responses`. Stored responses "
            "(`store`, the default) chain turns by `previous_response_id`; read or delete them "
            "at `/v1/responses/{id}`.",
            "operationId": "create_response",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _RESPONSES_REQUEST}},
            },
            "responses": {
                "200": {
                    "description": "A `response` object, or with `stream: true` an SSE stream "
                    "of `response.*` events (`response.created` … `response.completed`).",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                "400": error_response("Invalid request, or `previous_response_id` not found"),
                "401": error_response("Missing or invalid API key"),
                "403": error_response("The key may not use this model"),
                "404": error_response("Unknown model (`model_not_found`)"),
                "429": error_response("Rate limit or budget (see Retry-After)"),
                "502": error_response("Upstream failed"),
            },
        }
    }
