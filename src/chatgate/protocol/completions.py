"""OpenAI legacy completions wire format (``POST /v1/completions``): request validation.

The body stays the client's dict (every field reaches the upstream unchanged, as with chat);
only the fields OpenAI itself would reject are checked. Answers are the upstream's own
``text_completion`` objects and chunks, passed through.
"""

from __future__ import annotations

from typing import Any

from chatgate.errors import InvalidRequestError
from chatgate.protocol.openai import ChatRequest

_NUMBER_FIELDS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_INT_FIELDS = ("max_tokens", "n", "best_of", "seed", "logprobs")


def bad(message: str, param: str | None) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value" if param else None)


def is_tokens(value: Any) -> bool:
    """An array of token ids (integers, not booleans)."""
    return isinstance(value, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value
    )


def check_text_or_tokens(value: Any, param: str, allow_empty_string: bool) -> None:
    """``value`` is a string, an array of strings, an array of token ids, or an array of such
    arrays — what both ``prompt`` and ``input`` accept."""
    what = f"`{param}` must be a string, an array of strings, or an array of token arrays."
    if isinstance(value, str):
        if not value and not allow_empty_string:
            raise bad(f"`{param}` must not be an empty string.", param)
        return
    if not isinstance(value, list) or not value:
        raise bad(what, param)
    if is_tokens(value):
        return
    for i, item in enumerate(value):
        if isinstance(item, str):
            if not item and not allow_empty_string:
                raise bad(f"`{param}[{i}]` must not be an empty string.", f"{param}[{i}]")
        elif not (is_tokens(item) and item):
            raise bad(what, f"{param}[{i}]")


def check_common(data: Any) -> tuple[str, bool]:
    """The checks every OpenAI body shares: an object with a ``model`` and a boolean
    ``stream``. Returns both."""
    if not isinstance(data, dict):
        raise InvalidRequestError("Request body must be a JSON object.")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise bad("`model` is required and must be a non-empty string.", "model")
    stream = data.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad("`stream` must be a boolean.", "stream")
    return model, stream


def validate_completions_request(data: Any, reasoning: str | None = None) -> ChatRequest:
    """Check a ``/v1/completions`` body as OpenAI would; ``prompt`` (+ ``suffix``: fill in the
    middle) is the input."""
    model, stream = check_common(data)
    if "prompt" not in data or data["prompt"] is None:
        raise bad("`prompt` is required.", "prompt")
    check_text_or_tokens(data["prompt"], "prompt", allow_empty_string=True)
    suffix = data.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise bad("`suffix` must be a string.", "suffix")
    echo = data.get("echo")
    if echo is not None and not isinstance(echo, bool):
        raise bad("`echo` must be a boolean.", "echo")
    for name in _NUMBER_FIELDS:
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise bad(f"`{name}` must be a number.", name)
    for name in _INT_FIELDS:
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise bad(f"`{name}` must be an integer.", name)
    n = data.get("n")
    if n is not None and n < 1:
        raise bad("`n` must be at least 1.", "n")
    max_tokens = data.get("max_tokens")
    if max_tokens is not None and max_tokens < 0:
        raise bad("`max_tokens` must not be negative.", "max_tokens")
    logprobs = data.get("logprobs")
    if logprobs is not None and not 0 <= logprobs <= 5:
        raise bad("`logprobs` must be between 0 and 5.", "logprobs")
    stop = data.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise bad("`stop` must be a string or an array of strings.", "stop")
    opts = data.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise bad("`stream_options` must be an object.", "stream_options")
    return ChatRequest(body=data, model=model, stream=stream, reasoning=reasoning, op="completions")


def prompt_chars(value: Any) -> int:
    """Characters of a prompt or embeddings input (a token id counts as 4: one token)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(4 if isinstance(v, int) else prompt_chars(v) for v in value)
    return 0
