"""OpenAI embeddings wire format (``POST /v1/embeddings``): validation and ``encoding_format``.

Upstreams are always asked for floats, so one cached answer serves both formats; the door
encodes to base64 (little-endian float32, as OpenAI sends it) when the client asks. The
``openai`` SDKs ask for base64 by default and decode it themselves.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from chatgate.protocol.completions import bad, check_common, check_text_or_tokens
from chatgate.protocol.openai import ChatRequest

MAX_INPUTS = 2048  # OpenAI's limit on the items of one request
_FORMATS = ("float", "base64")


def validate_embeddings_request(data: Any, reasoning: str | None = None) -> ChatRequest:
    """Check a ``/v1/embeddings`` body as OpenAI would. Embeddings never stream."""
    model, stream = check_common(data)
    if stream:
        raise bad("`stream` is not supported for embeddings.", "stream")
    if "input" not in data or data["input"] is None:
        raise bad("`input` is required.", "input")
    value = data["input"]
    check_text_or_tokens(value, "input", allow_empty_string=False)
    if isinstance(value, list) and len(value) > MAX_INPUTS and not isinstance(value[0], int):
        raise bad(f"`input` may hold at most {MAX_INPUTS} items.", "input")
    fmt = data.get("encoding_format")
    if fmt is not None and fmt not in _FORMATS:
        raise bad("`encoding_format` must be `float` or `base64`.", "encoding_format")
    dimensions = data.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
    ):
        raise bad("`dimensions` must be a positive integer.", "dimensions")
    return ChatRequest(body=data, model=model, stream=False, reasoning=reasoning, op="embeddings")


def upstream_body(body: dict[str, Any]) -> dict[str, Any]:
    """The body as upstreams get it: floats asked for (the door encodes), so the format is no
    part of the cache key either."""
    if "encoding_format" not in body:
        return body
    return {k: v for k, v in body.items() if k != "encoding_format"}


def encode_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def render(result: dict[str, Any], encoding_format: Any) -> dict[str, Any]:
    """The upstream's (float) answer in the format the client asked for."""
    if encoding_format != "base64":
        return result
    data = [
        {**item, "embedding": encode_base64(item["embedding"])}
        if isinstance(item, dict) and isinstance(item.get("embedding"), list)
        else item
        for item in result.get("data") or ()
    ]
    return {**result, "data": data}
