"""Ollama API wire format: ``/api/chat`` and ``/api/generate`` bodies to OpenAI chat bodies
(:mod:`.request`), and the OpenAI answer or stream back to Ollama's JSON or NDJSON, plus the
model listings (:mod:`.answer`). Pure functions and one small state machine; the doors are
``api/ollama.py``.
"""

from chatgate.protocol.ollama.answer import (
    VERSION,
    NdjsonStream,
    Timing,
    chat_response,
    done_reason,
    error_line,
    generate_response,
    load_response,
    ps,
    show,
    tags,
    timestamp,
    tool_calls,
)
from chatgate.protocol.ollama.request import (
    chat_body,
    generate_body,
    image_part,
    is_load_request,
    is_stream,
    reasoning_mode,
    resolve_model,
    to_messages,
)

__all__ = [
    "VERSION",
    "NdjsonStream",
    "Timing",
    "chat_body",
    "chat_response",
    "done_reason",
    "error_line",
    "generate_body",
    "generate_response",
    "image_part",
    "is_load_request",
    "is_stream",
    "load_response",
    "ps",
    "reasoning_mode",
    "resolve_model",
    "show",
    "tags",
    "timestamp",
    "to_messages",
    "tool_calls",
]
