"""Ollama API requests: ``/api/chat`` and ``/api/generate`` bodies as OpenAI chat bodies.

``options`` map to the sampling fields OpenAI-compatible servers take (``num_predict`` is
``max_tokens``); load-time and llama.cpp-only options (``num_ctx``, ``repeat_penalty``,
``mirostat``…) are left to the upstream's own settings. ``format`` becomes ``response_format``,
base64 ``images`` become image parts, ``think`` picks the reasoning mode. ``keep_alive``,
``template``, ``raw`` and ``context`` have no counterpart on a chat API: the prompt always goes
as a chat message and the upstream applies its own template.
"""

from __future__ import annotations

from typing import Any

import orjson

from chatgate.errors import InvalidRequestError

_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "min_p")
_INTEGERS = ("top_k", "seed")
_IMAGE_TYPES = (  # base64 prefixes of the formats vision models take
    ("iVBORw0KGgo", "image/png"),
    ("/9j/", "image/jpeg"),
    ("R0lGOD", "image/gif"),
    ("UklGR", "image/webp"),
)


def _bad(message: str, param: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def resolve_model(model: str, known: Any) -> str:
    """Ollama names carry a tag, ``:latest`` when none is given; a client that adds it to a
    chatgate name that has none still reaches that model."""
    if not known(model) and model.endswith(":latest") and known(model[: -len(":latest")]):
        return model[: -len(":latest")]
    return model


def image_part(data: Any, where: str) -> dict[str, Any]:
    """A base64 image (Ollama sends bare base64, no media type) as an OpenAI image part."""
    if not isinstance(data, str) or not data:
        raise _bad(f"{where} must be a base64 string.", where)
    if data.startswith("data:"):
        url = data
    else:
        kind = next((t for prefix, t in _IMAGE_TYPES if data.startswith(prefix)), "image/png")
        url = f"data:{kind};base64,{data}"
    return {"type": "image_url", "image_url": {"url": url}}


def _content(text: str, images: Any, where: str) -> str | list[dict[str, Any]]:
    if not images:
        return text
    if not isinstance(images, list):
        raise _bad(f"{where}.images must be an array of base64 strings.", f"{where}.images")
    parts = [image_part(img, f"{where}.images[{j}]") for j, img in enumerate(images)]
    return [{"type": "text", "text": text}, *parts] if text else parts


def to_messages(messages: Any) -> list[dict[str, Any]]:
    """Ollama chat messages as OpenAI's. Ollama's tool calls have no ids: each gets one from
    its position, and a ``tool`` message answers the earliest open call of its ``tool_name``
    (else the earliest open one), so the same history always gives the same ids."""
    if not isinstance(messages, list):
        raise _bad("`messages` must be an array.", "messages")
    out: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (id, name) of calls not answered yet
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad(f"{where} must be an object.", where)
        role = message.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise _bad(f"{where}.role must be system, user, assistant or tool.", f"{where}.role")
        text = message.get("content") or ""
        if not isinstance(text, str):
            raise _bad(f"{where}.content must be a string.", f"{where}.content")
        converted: dict[str, Any] = {
            "role": role,
            "content": _content(text, message.get("images"), where),
        }
        if role == "assistant":
            calls = _tool_calls(message.get("tool_calls"), i, where)
            if calls:
                converted["tool_calls"] = calls
                pending = [(c["id"], c["function"]["name"]) for c in calls]
            if isinstance(message.get("thinking"), str) and message["thinking"]:
                converted["reasoning_content"] = message["thinking"]
        elif role == "tool":
            converted["tool_call_id"] = _answering(message, pending, i)
        out.append(converted)
    return out


def _tool_calls(calls: Any, turn: int, where: str) -> list[dict[str, Any]]:
    if not calls:
        return []
    if not isinstance(calls, list):
        raise _bad(f"{where}.tool_calls must be an array.", f"{where}.tool_calls")
    out = []
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _bad(f"{where}.tool_calls[{j}].function.name is required.", where)
        arguments = function.get("arguments") or {}
        out.append(
            {
                "id": str(call.get("id") or f"call_{turn}_{j}"),
                "type": "function",
                "function": {
                    "name": function["name"],
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else orjson.dumps(arguments).decode(),
                },
            }
        )
    return out


def _answering(message: dict[str, Any], pending: list[tuple[str, str]], turn: int) -> str:
    if isinstance(message.get("tool_call_id"), str):
        return str(message["tool_call_id"])
    name = message.get("tool_name")
    for k, (call_id, call_name) in enumerate(pending):
        if call_name == name:
            del pending[k]
            return call_id
    return pending.pop(0)[0] if pending else f"call_{turn}"


def _options(options: Any, out: dict[str, Any]) -> None:
    if options is None:
        return
    if not isinstance(options, dict):
        raise _bad("`options` must be an object.", "options")
    for name in _NUMBERS:
        value = options.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _bad(f"`options.{name}` must be a number.", f"options.{name}")
            out[name] = value
    for name in (*_INTEGERS, "num_predict"):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _bad(f"`options.{name}` must be an integer.", f"options.{name}")
    for name in _INTEGERS:
        if options.get(name) is not None:
            out[name] = options[name]
    limit = options.get("num_predict")
    if isinstance(limit, int) and limit > 0:  # -1: no limit, -2: fill the context
        out["max_tokens"] = limit
    stop = options.get("stop")
    if stop:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _bad("`options.stop` must be an array of strings.", "options.stop")
        out["stop"] = stop


def _format(fmt: Any, out: dict[str, Any]) -> None:
    if fmt in (None, ""):
        return
    if fmt == "json":
        out["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        schema = {"name": "response", "schema": fmt}
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    else:
        raise _bad('`format` must be "json" or a JSON schema.', "format")


def _common(body: dict[str, Any], model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "messages": messages}
    if is_stream(body):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # the final line's counts
    _options(body.get("options"), out)
    _format(body.get("format"), out)
    think = body.get("think")
    if think in ("low", "medium", "high"):
        out["reasoning_effort"] = think
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise _bad("`tools` must be an array.", "tools")
        out["tools"] = tools  # Ollama's tools are OpenAI's function tools
    return out


def is_stream(body: dict[str, Any]) -> bool:
    """Ollama streams unless told ``"stream": false``."""
    stream = body.get("stream")
    if stream is None:
        return True
    if not isinstance(stream, bool):
        raise _bad("`stream` must be a boolean.", "stream")
    return stream


def reasoning_mode(body: dict[str, Any]) -> str | None:
    """``think: false`` drops the reasoning; otherwise it goes to ``thinking`` (chatgate's
    ``separate`` mode, unless the model or ``X-Chatgate-Reasoning`` says otherwise)."""
    return "strip" if body.get("think") is False else None


def chat_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An ``/api/chat`` request as an OpenAI chat body for ``model`` (already resolved)."""
    messages = to_messages(body.get("messages"))
    if not messages:
        raise _bad("`messages` must not be empty.", "messages")
    return _common(body, model, messages)


def generate_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An ``/api/generate`` request: ``system`` and ``prompt`` (with its images) as a chat."""
    prompt = body.get("prompt") or ""
    system = body.get("system")
    if not isinstance(prompt, str):
        raise _bad("`prompt` must be a string.", "prompt")
    if body.get("suffix"):
        raise _bad(
            "`suffix` (fill-in-the-middle) needs a completions model; this endpoint "
            "answers through chat.",
            "suffix",
        )
    messages: list[dict[str, Any]] = []
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": _content(prompt, body.get("images"), "request")})
    return _common(body, model, messages)


def is_load_request(body: dict[str, Any], kind: str) -> bool:
    """No prompt (generate) or no messages (chat): Ollama's way to load a model, answered at
    once with ``done_reason: "load"``."""
    if kind == "chat":
        return not body.get("messages")
    return not body.get("prompt") and not body.get("images")
