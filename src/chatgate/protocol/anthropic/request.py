"""Anthropic Messages requests: a ``/v1/messages`` body as an OpenAI chat-completions body,
model-name aliases, and errors in Anthropic's shape.

Anthropic-only features with no chat-completions counterpart (server tools, prompt-cache
breakpoints, citations, thinking signatures) are dropped on the way in; PDF documents are
refused rather than silently lost.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

import orjson

from chatgate.errors import GatewayError, InvalidRequestError

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}
_SAMPLING = ("temperature", "top_p", "top_k")


def error_body(exc: GatewayError) -> dict[str, Any]:
    """``exc`` in Anthropic's shape; the type follows the status as Anthropic's own does."""
    kind = ERROR_TYPES.get(exc.status) or (
        "invalid_request_error" if exc.status < 500 else "api_error"
    )
    return {"type": "error", "error": {"type": kind, "message": exc.message}}


# -- model names -------------------------------------------------------------------------------
Aliases = list[tuple[re.Pattern[str], str]]


def compile_aliases(aliases: dict[str, str]) -> Aliases:
    """``{"claude-*": "deepseek-chat"}`` (glob patterns, first match wins) compiled once."""
    return [(re.compile(fnmatch.translate(pattern)), model) for pattern, model in aliases.items()]


def resolve_model(model: str, known: Callable[[str], bool], aliases: Aliases) -> str:
    """The chatgate model a client's name means: a model chatgate knows by that name, else the
    first alias whose pattern matches, else the name itself (the router then says 404)."""
    if known(model):
        return model
    for pattern, target in aliases:
        if pattern.match(model):
            return target
    return model


# -- requests ----------------------------------------------------------------------------------
def _bad(message: str, param: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _text_of(blocks: Any, where: str) -> str:
    """The text of a string or a list of text blocks (a system prompt, a tool result)."""
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        raise _bad(f"{where} must be a string or an array of content blocks.", where)
    texts = []
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "text":
            texts.append(str(block.get("text", "")))
    return "\n".join(texts)


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _bad(f"{where}.source is required.", where)
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        raise _bad(f"{where}.source.type must be base64 or url.", where)
    return {"type": "image_url", "image_url": {"url": url}}


def _document_text(block: dict[str, Any], where: str) -> str:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if isinstance(source, dict) and kind == "text":
        text = str(source.get("data", ""))
    elif isinstance(source, dict) and kind == "content":
        text = _text_of(source.get("content"), where)
    else:
        raise _bad(f"{where}: only plain-text documents can be passed on, not `{kind}`.", where)
    title = block.get("title")
    return f"{title}\n\n{text}" if isinstance(title, str) and title else text


def _user_turn(content: list[Any], where: str) -> list[dict[str, Any]]:
    """A user turn's blocks: tool results first, as ``tool`` messages (OpenAI wants them right
    after the assistant's calls), then the rest as one user message."""
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        at = f"{where}.content[{i}]"
        if not isinstance(block, dict):
            raise _bad(f"{at} must be an object.", at)
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "document":
            parts.append({"type": "text", "text": _document_text(block, at)})
        elif kind == "tool_result":
            out.append(_tool_message(block, at, parts))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise _bad(f"{at}.type `{kind}` is not supported here.", at)
    if parts:
        if all(p["type"] == "text" for p in parts):
            out.append({"role": "user", "content": "\n".join(p["text"] for p in parts)})
        else:
            out.append({"role": "user", "content": parts})
    return out


def _tool_message(block: dict[str, Any], where: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``tool_result`` as a ``tool`` message; its images travel in the user message after it
    (a tool message holds text only)."""
    result = block.get("content", "")
    texts: list[str] = []
    if isinstance(result, str):
        texts.append(result)
    elif isinstance(result, list):
        for j, item in enumerate(result):
            if isinstance(item, dict) and item.get("type") == "image":
                parts.append(_image_part(item, f"{where}.content[{j}]"))
            elif isinstance(item, dict) and item.get("type") == "text":
                texts.append(str(item.get("text", "")))
    text = "\n".join(texts)
    if block.get("is_error") and not text.lower().startswith("error"):
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text}


def _assistant_turn(content: list[Any], where: str) -> dict[str, Any]:
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        at = f"{where}.content[{i}]"
        if not isinstance(block, dict):
            raise _bad(f"{at} must be an object.", at)
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {"name": str(block.get("name", "")), "arguments": arguments},
                }
            )
        elif kind == "thinking":
            thinking.append(str(block.get("thinking", "")))
        elif kind == "redacted_thinking":
            continue
        else:
            raise _bad(f"{at}.type `{kind}` is not supported in an assistant turn.", at)
    # null content is valid only beside tool calls; a thinking-only turn keeps an empty text
    joined = "".join(texts) or (None if calls else "")
    message: dict[str, Any] = {"role": "assistant", "content": joined}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    return message


def to_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation (system prompt and turns) as OpenAI chat messages."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        text = _text_of(system, "system")
        if text:
            messages.append({"role": "system", "content": text})
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        raise _bad("`messages` is required and must be a non-empty array.", "messages")
    for i, turn in enumerate(turns):
        where = f"messages[{i}]"
        if not isinstance(turn, dict):
            raise _bad(f"{where} must be an object.", where)
        role, content = turn.get("role"), turn.get("content")
        if role not in ("user", "assistant"):
            raise _bad(f"{where}.role must be `user` or `assistant`.", f"{where}.role")
        if isinstance(content, str):
            messages.append({"role": role, "content": content})
        elif isinstance(content, list):
            if role == "user":
                messages.extend(_user_turn(content, where))
            else:
                messages.append(_assistant_turn(content, where))
        else:
            raise _bad(f"{where}.content must be a string or an array.", f"{where}.content")
    return messages


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("`tools` must be an array.", "tools")
    out = []
    for tool in tools:
        # Server tools (web search, code execution, ...) run at Anthropic: no schema, and no
        # other model can call them. Only client tools pass.
        if not isinstance(tool, dict) or "input_schema" not in tool:
            continue
        function: dict[str, Any] = {"name": tool.get("name"), "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    """(OpenAI ``tool_choice``, ``parallel_tool_calls`` or None to leave it out)."""
    if not isinstance(choice, dict):
        raise _bad("`tool_choice` must be an object.", "tool_choice")
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}, parallel
    raise _bad("`tool_choice.type` must be auto, any, tool or none.", "tool_choice.type")


def to_chat_body(body: Any, model: str) -> dict[str, Any]:
    """A Messages request as an OpenAI chat-completions body for ``model`` (already resolved).

    ``max_tokens`` is required, as Anthropic requires it. A stream always asks for usage: the
    final ``message_delta`` carries it."""
    if not isinstance(body, dict):
        raise _bad("Request body must be a JSON object.")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _bad("`max_tokens` is required and must be a positive integer.", "max_tokens")
    out: dict[str, Any] = {
        "model": model,
        "messages": to_messages(body),
        "max_tokens": max_tokens,
    }
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("`stream` must be a boolean.", "stream")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    for name in _SAMPLING:
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _bad(f"`{name}` must be a number.", name)
            out[name] = value
    stop = body.get("stop_sequences")
    if stop:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _bad("`stop_sequences` must be an array of strings.", "stop_sequences")
        out["stop"] = stop
    if body.get("tools"):
        tools = _tools(body["tools"])
        if tools:
            out["tools"] = tools
    if body.get("tool_choice") is not None and "tools" in out:
        choice, parallel = _tool_choice(body["tool_choice"])
        out["tool_choice"] = choice
        if parallel is not None:
            out["parallel_tool_calls"] = parallel
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    config = body.get("output_config")
    config = config if isinstance(config, dict) else {}
    fmt = config.get("format") or body.get("output_format")  # the beta's older name
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {"name": "output", "schema": fmt.get("schema") or {}}
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    if config.get("effort") in ("low", "medium", "high"):
        out["reasoning_effort"] = config["effort"]
    return out


def reasoning_mode(body: Any) -> str | None:
    """``thinking: {"type": "disabled"}`` asks for no thinking blocks: strip the reasoning
    (the X-Chatgate-Reasoning header, when sent, decides instead)."""
    thinking = body.get("thinking") if isinstance(body, dict) else None
    if isinstance(thinking, dict) and thinking.get("type") == "disabled":
        return "strip"
    return None


def count_texts(body: dict[str, Any]) -> tuple[list[str], int]:
    """Every text of a request that the model reads (for counting its tokens), and the number
    of messages they make (each adds a few tokens of framing)."""
    messages = to_messages(body)
    texts: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(str(p.get("text", "")) for p in content if p.get("type") == "text")
        for call in message.get("tool_calls") or ():
            texts.append(call["function"]["name"] + call["function"]["arguments"])
        if message.get("reasoning_content"):
            texts.append(message["reasoning_content"])
    if isinstance(body.get("tools"), list):
        texts.extend(orjson.dumps(tool["function"]).decode() for tool in _tools(body["tools"]))
    return texts, len(messages)
