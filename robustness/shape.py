"""What a correct chatgate error looks like: the OpenAI error object (Anthropic's and Ollama's
at their doors), SSE and NDJSON endings, 5xx policy.

Pure functions, shared by the schemathesis checks (:mod:`robustness.st_checks`), the fault run
and the soak run.
"""

from __future__ import annotations

from typing import Any

import orjson

UPSTREAM_STATUSES = frozenset({502, 503, 504})
UPSTREAM_TYPES = frozenset({"upstream_error", "service_unavailable"})


def error_shape_problem(payload: Any) -> str | None:
    """Why ``payload`` (parsed JSON) is not an OpenAI error object, or ``None`` when it is."""
    if not isinstance(payload, dict) or set(payload) != {"error"}:
        return 'expected exactly {"error": {...}} at the top level'
    error = payload["error"]
    if not isinstance(error, dict):
        return '"error" is not an object'
    missing = {"message", "type", "param", "code"} - set(error)
    if missing:
        return f'"error" lacks {sorted(missing)}'
    if not isinstance(error["message"], str) or not error["message"]:
        return '"error.message" is not a non-empty string'
    if not isinstance(error["type"], str) or not error["type"]:
        return '"error.type" is not a non-empty string'
    for field in ("param", "code"):
        if error[field] is not None and not isinstance(error[field], str):
            return f'"error.{field}" is neither a string nor null'
    return None


def body_problem(content: bytes) -> str | None:
    """Why an error response body is not an OpenAI error object."""
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        return f"error body is not JSON: {content[:200]!r}"
    return error_shape_problem(payload)


SEED_PATHS = ("/chatgpt/", "/gigachat/")


def seed_body_problem(content: bytes) -> str | None:
    """Why an error body of a seed endpoint is not the seed's ``{"detail": "…"}``."""
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        return f"error body is not JSON: {content[:200]!r}"
    if not isinstance(payload, dict) or set(payload) != {"detail"}:
        return 'expected exactly {"detail": "…"} at the top level'
    if not isinstance(payload["detail"], str) or not payload["detail"]:
        return "detail must be a non-empty string"
    return None


ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")


def anthropic_shape_problem(payload: Any) -> str | None:
    """Why ``payload`` is not Anthropic's ``{"type": "error", "error": {"type", "message"}}``."""
    if not isinstance(payload, dict) or set(payload) != {"type", "error"}:
        return 'expected exactly {"type": "error", "error": {...}} at the top level'
    error = payload["error"]
    if payload["type"] != "error" or not isinstance(error, dict):
        return '"type" is not "error" or "error" is not an object'
    for field in ("type", "message"):
        if not isinstance(error.get(field), str) or not error[field]:
            return f'"error.{field}" is not a non-empty string'
    return None


def anthropic_body_problem(content: bytes) -> str | None:
    """Why an error response body of the Anthropic door is not in Anthropic's shape."""
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        return f"error body is not JSON: {content[:200]!r}"
    return anthropic_shape_problem(payload)


def anthropic_sse_problem(text: str, *, complete: bool = True) -> str | None:
    """Why a 200 Anthropic event stream is wrong: it must end with ``message_stop``, or with
    one ``error`` event and nothing after it."""
    events = sse_events(text)
    for i, data in enumerate(events):
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return f"event {i} is not JSON: {data[:200]!r}"
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind in ("message_stop", "error"):
            if kind == "error" and (problem := anthropic_shape_problem(payload)):
                return f"error event {i}: {problem}"
            if i != len(events) - 1:
                return f"{kind} event {i} is followed by {len(events) - 1 - i} more event(s)"
            return None
    if not complete:
        return None
    return "stream ended without message_stop or an error event (silent truncation)"


OLLAMA_PATHS = ("/api/chat", "/api/generate", "/api/show", "/api/tags", "/api/version", "/api/ps")


def ollama_body_problem(content: bytes) -> str | None:
    """Why an error body of an Ollama door is not Ollama's ``{"error": "…"}``."""
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        return f"error body is not JSON: {content[:200]!r}"
    if not isinstance(payload, dict) or set(payload) != {"error"}:
        return 'expected exactly {"error": "…"} at the top level'
    if not isinstance(payload["error"], str) or not payload["error"]:
        return "error must be a non-empty string"
    return None


def shape_of(content: bytes) -> str | None:
    """Which API's error shape an error body is in: "OpenAI", "Anthropic", "Ollama", "seed"."""
    checks = (
        ("OpenAI", body_problem),
        ("Anthropic", anthropic_body_problem),
        ("Ollama", ollama_body_problem),
        ("seed", seed_body_problem),
    )
    return next((name for name, problem in checks if problem(content) is None), None)


def ndjson_problem(text: str, *, complete: bool = True) -> str | None:
    """Why a 200 Ollama NDJSON stream is wrong: every line an object, ending with the one
    ``done: true`` line or one ``{"error": …}`` line."""
    lines = [line for line in text.split("\n") if line.strip()]
    for i, line in enumerate(lines):
        try:
            payload = orjson.loads(line)
        except orjson.JSONDecodeError:
            return f"line {i} is not JSON: {line[:200]!r}"
        if not isinstance(payload, dict):
            return f"line {i} is not an object"
        if "error" in payload or payload.get("done") is True:
            if i != len(lines) - 1:
                return f"line {i} ends the stream but {len(lines) - 1 - i} more follow"
            return None
    if not complete:
        return None
    return "stream ended without a done line or an error line (silent truncation)"


def sse_events(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order (one per event)."""
    events: list[str] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip(" ") for line in block.split("\n") if line.startswith("data:")]
        if data:
            events.append("\n".join(data))
    return events


def sse_problem(text: str, *, complete: bool = True) -> str | None:
    """Why a 200 event stream is not a correct chatgate stream: it ends with ``[DONE]``, or with
    one OpenAI-shaped error event and nothing after it. ``complete=False``: the reader stopped
    early, so a missing end is not a fault."""
    events = sse_events(text)
    for i, data in enumerate(events):
        if data == "[DONE]":
            if i != len(events) - 1:
                return "events after [DONE]"
            return None
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return f"event {i} is not JSON: {data[:200]!r}"
        if isinstance(payload, dict) and "error" in payload:
            problem = error_shape_problem(payload)
            if problem:
                return f"error event {i}: {problem}"
            if i != len(events) - 1:
                return f"error event {i} is followed by {len(events) - 1 - i} more event(s)"
            return None
    if not complete:
        return None
    return "stream ended without [DONE] or an error event (silent truncation)"


def server_error_problem(status: int, content: bytes, body: Any) -> str | None:
    """Why a 5xx answer to a request with JSON ``body`` is not explained by the upstream."""
    if status < 500:
        return None
    if status not in UPSTREAM_STATUSES:
        return f"server error {status}"
    explained = isinstance(body, dict) and "fake" in body
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    if not explained or kind not in UPSTREAM_TYPES:
        return f"{status} ({kind}) although the upstream was healthy and told to succeed"
    return None
