"""``POST /v1/completions``: OpenAI's legacy text completions, fill-in-the-middle included.

The chat door's machinery (``api.openai.ChatCompletions``) with the completions body
(``prompt``, ``suffix``, ``echo``, ``n``, ``stop``, ``max_tokens``, …): the request walks the one
path as ``api="completions"`` and the upstream's ``text_completion`` answer or SSE chunks are
passed through. Providers without legacy completions answer 400.
"""

from __future__ import annotations

from typing import Any

from chatgate.api.openai import ChatCompletions
from chatgate.api.raw import path_item
from chatgate.protocol.completions import validate_completions_request
from chatgate.state import Runtime

COMPLETIONS_PATH = "/v1/completions"

TEXT_OR_TOKENS: dict[str, Any] = {
    "oneOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}},
        {"type": "array", "items": {"type": "integer"}},
        {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
    ]
}

REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["model", "prompt"],
    "additionalProperties": True,
    "description": "Any OpenAI completions field is accepted and passed through unchanged.",
    "properties": {
        "model": {"type": "string", "examples": ["deepseek-chat"]},
        "prompt": TEXT_OR_TOKENS,
        "suffix": {
            "type": ["string", "null"],
            "description": "Text after the completion: fill-in-the-middle.",
        },
        "stream": {"type": "boolean", "default": False},
        "echo": {"type": "boolean"},
        "n": {"type": "integer", "minimum": 1},
        "max_tokens": {"type": "integer", "minimum": 0},
        "stop": {"type": ["string", "array"]},
        "temperature": {"type": "number"},
        "top_p": {"type": "number"},
        "logprobs": {"type": "integer", "minimum": 0, "maximum": 5},
        "stream_options": {"type": "object"},
    },
}


def completions_door(runtime: Runtime) -> ChatCompletions:
    """The chat door's machinery with the completions body, as ``api="completions"``."""
    openapi = path_item(
        "Create a text completion (legacy; `suffix` for fill-in-the-middle)",
        "create_completion",
        REQUEST,
        "A `text_completion` object, or with `stream: true` an SSE stream of "
        "`text_completion` chunks ending with `data: [DONE]`.",
        streams=True,
        description="OpenAI's legacy text completions, for code-completion plugins: the "
        "request walks chatgate's one path (key, allow-list, budget, limits, cache, usage) as "
        "`api=completions`. With `suffix`, fill-in-the-middle, sent to DeepSeek's beta "
        "completions endpoint; providers without legacy completions answer 400.",
    )
    return ChatCompletions(runtime, "completions", validate_completions_request, openapi=openapi)
