"""OpenAI chat-completions wire format: request validation and response/chunk builders.

Requests stay plain dicts end to end so every field, known or not, reaches the upstream unchanged;
validation here checks only the types of the fields the gateway itself reads or that OpenAI would
reject, and it is hand-written because it runs on every request (pydantic costs ~10x more here).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from chatgate.errors import InvalidRequestError

Chunk = dict[str, Any]
"""One parsed ``chat.completion.chunk`` object."""

Operation = Literal["chat", "completions", "embeddings"]
"""What a request asks of the upstream: a chat completion, a legacy (text) completion, or
embeddings. Every operation walks the same path; the stages that only make sense for chat
(message preparation, reasoning) skip the others."""

ChunkBatch = list[Chunk]
"""The chunks that arrived together (one upstream read). Streams carry batches so that the
chunks of one read cost one write to the client, not one each: per-chunk writes were the
largest single cost of streaming. A batch is never empty."""

_NUMBER_FIELDS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_INT_FIELDS = ("max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs")
_ROLES = frozenset({"system", "user", "assistant", "tool", "function", "developer"})


@dataclass(slots=True)
class ChatRequest:
    """A validated chat-completions request; ``body`` is the client's JSON, untouched. Set
    by the door while parsing, never written by the path (its record is the ``Exchange``)."""

    body: dict[str, Any]
    model: str
    stream: bool
    reasoning: str | None = None  # X-Chatgate-Reasoning, already checked
    cache_lookup: bool = True  # False with Cache-Control: no-cache
    cache_store: bool = True  # False with Cache-Control: no-store
    cache_ttl: float | None = None  # X-Chatgate-Cache-TTL
    op: Operation = "chat"  # the body is an OpenAI completions / embeddings body otherwise

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages (chat requests only)."""
        msgs: list[dict[str, Any]] = self.body["messages"]
        return msgs


def _bad(message: str, param: str | None) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value" if param else None)


def parse_json(raw: bytes) -> Any:
    if not raw:
        raise InvalidRequestError("Request body is empty; expected a JSON object.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"Request body is not valid JSON: {exc}") from None


def validate_chat_request(data: Any, reasoning: str | None = None) -> ChatRequest:
    """Check the shape OpenAI would check and return a :class:`ChatRequest`."""
    if not isinstance(data, dict):
        raise InvalidRequestError("Request body must be a JSON object.")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("`model` is required and must be a non-empty string.", "model")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("`messages` is required and must be a non-empty array.", "messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _bad(f"messages[{i}] must be an object.", f"messages[{i}]")
        role = msg.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise _bad(
                f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}.",
                f"messages[{i}].role",
            )
        content = msg.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _bad(
                f"messages[{i}].content must be a string or an array of parts.",
                f"messages[{i}].content",
            )
    stream = data.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad("`stream` must be a boolean.", "stream")
    for name in _NUMBER_FIELDS:
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _bad(f"`{name}` must be a number.", name)
    for name in _INT_FIELDS:
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _bad(f"`{name}` must be an integer.", name)
    n = data.get("n")
    if n is not None and n < 1:
        raise _bad("`n` must be at least 1.", "n")
    stop = data.get("stop")
    if stop is not None and not isinstance(stop, str | list):
        raise _bad("`stop` must be a string or an array of strings.", "stop")
    opts = data.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise _bad("`stream_options` must be an object.", "stream_options")
    return ChatRequest(body=data, model=model, stream=stream, reasoning=reasoning)


def wants_usage(body: dict[str, Any]) -> bool:
    opts = body.get("stream_options")
    return isinstance(opts, dict) and bool(opts.get("include_usage"))


MAX_CACHE_TTL = 30 * 86400.0  # cache.max_ttl's default


def parse_cache_headers(
    req: ChatRequest,
    cache_control: str | None,
    ttl: str | None,
    max_ttl: float = MAX_CACHE_TTL,
) -> ChatRequest:
    """Apply ``Cache-Control`` (no-cache, no-store) and ``X-Chatgate-Cache-TTL`` (positive
    seconds up to ``max_ttl``, else 400) to ``req``."""
    if cache_control:
        tokens = {t.strip().lower() for t in cache_control.split(",")}
        req.cache_lookup = "no-cache" not in tokens
        req.cache_store = "no-store" not in tokens
    if ttl is not None:
        try:
            seconds = float(ttl)
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= max_ttl:  # NaN and infinity fail this too
            raise InvalidRequestError(
                f"X-Chatgate-Cache-TTL must be a positive number of seconds up to {max_ttl:g}.",
                param="X-Chatgate-Cache-TTL",
            )
        req.cache_ttl = seconds
    return req


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def make_chunk(
    cid: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    index: int = 0,
) -> Chunk:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
    }


def make_completion(
    model: str,
    content: str,
    finish_reason: str = "stop",
    usage: dict[str, Any] | None = None,
    cid: str | None = None,
) -> dict[str, Any]:
    return {
        "id": cid or completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
    }


def usage_dict(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
