"""Anthropic Messages wire format: a ``/v1/messages`` body to an OpenAI chat body
(:mod:`.request`), and the OpenAI answer or stream back to a Message or its events
(:mod:`.answer`). Pure functions and one small state machine; the door is ``api/anthropic.py``.
"""

from chatgate.protocol.anthropic.answer import (
    Event,
    MessageStream,
    encode,
    event,
    message_id,
    stop_reason,
    to_message,
    tool_input,
    usage_of,
)
from chatgate.protocol.anthropic.request import (
    ERROR_TYPES,
    Aliases,
    compile_aliases,
    count_texts,
    error_body,
    reasoning_mode,
    resolve_model,
    to_chat_body,
    to_messages,
)

__all__ = [
    "ERROR_TYPES",
    "Aliases",
    "Event",
    "MessageStream",
    "compile_aliases",
    "count_texts",
    "encode",
    "error_body",
    "event",
    "message_id",
    "reasoning_mode",
    "resolve_model",
    "stop_reason",
    "to_chat_body",
    "to_message",
    "to_messages",
    "tool_input",
    "usage_of",
]
