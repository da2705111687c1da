"""GigaChat's own dialect for the fake upstream: functions instead of tools, checked strictly.

GigaChat knows no ``tools``, ``tool_choice``, ``tool_calls`` or role ``tool``: it takes
``functions`` (a list of function descriptions), ``function_call`` (``auto``, ``none`` or
``{"name": ...}``), answers a call with a message holding ``function_call`` (its arguments an
object, not JSON text) and a ``functions_state_id``, finish reason ``function_call``, and takes
the result back as a ``function`` message (``name``, content a JSON object as text). Its usage
reports ``precached_prompt_tokens``. Requests in OpenAI's dialect are refused with a 422, as
GigaChat refuses them, so a provider that forgets to translate fails its tests.

Images: no content parts; a file goes up first (``POST /files``, multipart ``file`` and
``purpose``: ``upload_problem``) and a user message names its id in ``attachments``, one image
per message; an id this server did not hand out is refused.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from typing import Any

import orjson

ROLES = frozenset({"system", "user", "assistant", "function", "search_result"})
OPENAI_ONLY = ("tools", "tool_choice", "parallel_tool_calls")
FILE_TYPES = frozenset({"image/jpeg", "image/jpg", "image/png", "image/tiff", "image/bmp"})
MAX_FILE_BYTES = 15 * 1024 * 1024
MAGIC = {"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8\xff", "image/bmp": b"BM"}


def upload_problem(purpose: Any, mime: str, data: bytes) -> str | None:
    """Why GigaChat's storage would refuse this upload (400), or None."""
    if purpose not in ("general", "assistant"):
        return "purpose: must be general or assistant"
    if mime not in FILE_TYPES:
        return f"file: unsupported type {mime!r}"
    if len(data) > MAX_FILE_BYTES:
        return "file: larger than 15 MB"
    magic = MAGIC.get("image/jpeg" if mime == "image/jpg" else mime)
    if magic and not data.startswith(magic):
        return "file: content does not match its type"
    return None


def _attachments_problem(i: int, msg: dict[str, Any], files: Collection[str]) -> str | None:
    ids = msg.get("attachments")
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(isinstance(f, str) for f in ids):
        return f"messages[{i}].attachments: must be an array of file ids"
    if len(ids) > 1:
        return f"messages[{i}].attachments: one image per message"
    if ids and msg.get("role") != "user":
        return f"messages[{i}].attachments: only in a user message"
    unknown = [f for f in ids if f not in files]
    return f"messages[{i}].attachments: unknown file {unknown[0]}" if unknown else None


def problem(body: dict[str, Any], issued: set[str], files: Collection[str] = ()) -> str | None:
    """Why GigaChat would refuse ``body`` (422), or None. ``issued``: the functions_state_ids
    this server handed out (a made-up one is refused); ``files``: the file ids it stores."""
    for name in OPENAI_ONLY:
        if name in body:
            return f"{name}: unknown field"
    functions = body.get("functions")
    names: set[str] = set()
    if functions is not None:
        if not isinstance(functions, list):
            return "functions: must be an array"
        for i, fn in enumerate(functions):
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                return f"functions[{i}].name: required"
            names.add(fn["name"])
    choice = body.get("function_call")
    if isinstance(choice, dict) and choice.get("name") not in names:
        return "function_call.name: not among functions"
    if choice is not None and not isinstance(choice, dict) and choice not in ("auto", "none"):
        return "function_call: must be auto, none or {name}"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: required"
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            return f"messages[{i}]: must be an object"
        if msg.get("role") not in ROLES:
            return f"messages[{i}].role: unknown role {msg.get('role')!r}"
        if "tool_calls" in msg or "tool_call_id" in msg:
            return f"messages[{i}]: unknown field tool_calls/tool_call_id"
        if not isinstance(msg.get("content", ""), str):
            return f"messages[{i}].content: must be a string"
        if refused := _attachments_problem(i, msg, files):
            return refused
        call = msg.get("function_call")
        if call is not None:
            if not isinstance(call, dict) or not isinstance(call.get("arguments"), dict):
                return f"messages[{i}].function_call.arguments: must be an object"
            state = msg.get("functions_state_id")
            if state is not None and state not in issued:
                return f"messages[{i}].functions_state_id: unknown"
        if msg["role"] == "function":
            if not isinstance(msg.get("name"), str) or not msg["name"]:
                return f"messages[{i}].name: required for a function result"
            try:
                result = orjson.loads(msg.get("content") or "")
            except orjson.JSONDecodeError:
                result = None
            if not isinstance(result, dict):
                return f"messages[{i}].content: a function result must be a JSON object"
    return None


def calls_function(knob: Any, body: dict[str, Any]) -> str | None:
    """The function this answer calls (the forced one, else the first), or None."""
    functions = body.get("functions")
    if not knob or not functions or body.get("function_call") == "none":
        return None
    last = body["messages"][-1]
    if knob == "once" and last.get("role") == "function":
        return None
    forced = body.get("function_call")
    return str(forced["name"] if isinstance(forced, dict) else functions[0]["name"])


def usage(body: dict[str, Any], completion: int) -> dict[str, Any]:
    prompt = max(1, len(orjson.dumps(body.get("messages"))) // 4)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "precached_prompt_tokens": 0,
    }


def function_answer(
    body: dict[str, Any], name: str, arguments: str, stream: bool, issued: set[str]
) -> bytes:
    """The call as GigaChat answers it: one message (JSON), or one SSE event then [DONE]."""
    state = str(uuid.uuid4())
    issued.add(state)
    args = orjson.loads(arguments or "{}")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "",
        "function_call": {"name": name, "arguments": args},
        "functions_state_id": state,
    }
    choice: dict[str, Any] = {"index": 0, "finish_reason": "function_call"}
    choice["delta" if stream else "message"] = message
    answer = {
        "choices": [choice],
        "created": int(time.time()),
        "model": f"{body.get('model')}:1.0.26.20",
        "object": "chat.completion",  # GigaChat labels stream chunks so too, and sends no id
        "usage": usage(body, 12),
    }
    if not stream:
        return orjson.dumps(answer)
    return b"data: " + orjson.dumps(answer) + b"\n\ndata: [DONE]\n\n"
