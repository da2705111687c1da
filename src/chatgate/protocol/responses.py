"""OpenAI Responses API wire format: requests into chat-completions bodies, answers back out.

The gateway's one path speaks chat completions, so the Responses door translates at its edges:
``parse_request`` checks a ``POST /v1/responses`` body, ``chat_body`` turns it (and the items of
the response it continues) into a chat-completions body. Answers go back out through
:mod:`~chatgate.protocol.responses_render` (whole) and :mod:`~chatgate.protocol.responses_stream`
(events). Pure functions, no I/O; the shapes are those of the official ``openai`` SDK's
``types/responses``.

Only what a chat-completions upstream can do is accepted: function tools, not OpenAI's hosted
ones (web search, file search, …), which would otherwise be dropped silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from chatgate.errors import InvalidRequestError

Item = dict[str, Any]

_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
# ``developer`` is OpenAI's newer name for ``system``; most other upstreams know only the latter.
_NUMBERS = ("temperature", "top_p")
_INTS = ("max_output_tokens", "top_logprobs", "max_tool_calls")


@dataclass(slots=True)
class ResponsesRequest:
    """A checked ``POST /v1/responses`` body; ``body`` is the client's JSON, untouched."""

    body: dict[str, Any]
    model: str
    stream: bool
    store: bool
    previous_response_id: str | None
    input: list[Item]  # this request's input as items (a string input becomes one message)


def new_id() -> str:
    """A response id: ``resp_`` and 48 hex digits (items derive their ids from it)."""
    return "resp_" + os.urandom(24).hex()


def _bad(message: str, param: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value" if param else None)


def parse_request(data: Any) -> ResponsesRequest:
    """Check the fields the gateway reads or translates, as OpenAI would reject them."""
    if not isinstance(data, dict):
        raise InvalidRequestError("Request body must be a JSON object.")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("`model` is required and must be a non-empty string.", "model")
    raw = data.get("input")
    items: list[Item]
    if isinstance(raw, str):
        items = [{"type": "message", "role": "user", "content": raw}]
    elif isinstance(raw, list):
        items = raw
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise _bad(f"input[{i}] must be an object.", f"input[{i}]")
    elif raw is None:
        items = []
    else:
        raise _bad("`input` must be a string or an array of items.", "input")
    previous = data.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):
        raise _bad("`previous_response_id` must be a string.", "previous_response_id")
    if not items and previous is None:
        raise _bad("`input` is required.", "input")
    instructions = data.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _bad("`instructions` must be a string.", "instructions")
    stream = _flag(data, "stream", False)
    store = _flag(data, "store", True)
    _flag(data, "parallel_tool_calls", True)
    for name in _NUMBERS:
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _bad(f"`{name}` must be a number.", name)
    for name in _INTS:
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _bad(f"`{name}` must be an integer.", name)
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _bad("`metadata` must be an object.", "metadata")
    return ResponsesRequest(data, model, stream, store, previous, items)


def _flag(data: dict[str, Any], name: str, default: bool) -> bool:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(f"`{name}` must be a boolean.", name)
    return value


# -- request: items → chat messages ------------------------------------------------------------
def chat_body(req: ResponsesRequest, history: list[Item] | None = None) -> dict[str, Any]:
    """The chat-completions body of ``req``, continuing ``history`` (the input and output
    items of the response named by ``previous_response_id``)."""
    body = req.body
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions:
        messages.append({"role": "system", "content": instructions})
    if history:
        messages += to_messages(history, "history")
    messages += to_messages(req.input, "input")
    if not messages:
        raise _bad("`input` is required.", "input")
    chat: dict[str, Any] = {"model": req.model, "messages": messages}
    if req.stream:
        chat["stream"] = True
        # The usage chunk becomes the usage of ``response.completed``.
        chat["stream_options"] = {"include_usage": True}
    for name in _NUMBERS:
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        # ``max_tokens``: what DeepSeek, GigaChat, Ollama and llama.cpp all read.
        chat["max_tokens"] = body["max_output_tokens"]
    if isinstance(body.get("user"), str):
        chat["user"] = body["user"]
    if body.get("top_logprobs") is not None:
        chat["logprobs"] = True
        chat["top_logprobs"] = body["top_logprobs"]
    tools = body.get("tools")
    if tools:
        chat["tools"] = _tools(tools)
        if body.get("parallel_tool_calls") is not None:
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    choice = body.get("tool_choice")
    if choice is not None:
        _tool_choice(choice, chat)
    text = body.get("text")
    if text is not None:
        _text(text, chat)
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise _bad("`reasoning` must be an object.", "reasoning")
        effort = reasoning.get("effort")
        if effort is not None:
            if not isinstance(effort, str):
                raise _bad("`reasoning.effort` must be a string.", "reasoning.effort")
            chat["reasoning_effort"] = effort
    return chat


def to_messages(items: list[Item], where: str) -> list[dict[str, Any]]:
    """Chat messages of Responses items. Function calls join the assistant message before
    them (one turn with text and tool calls), reasoning goes to the next assistant message as
    ``reasoning_content`` (the pipeline decides whether the upstream gets it back)."""
    out: list[dict[str, Any]] = []
    reasoning: str | None = None
    for i, item in enumerate(items):
        kind = item.get("type", "message")
        param = f"{where}[{i}]"
        if kind == "message":
            role = _ROLES.get(str(item.get("role")))
            if role is None:
                raise _bad(f"{param}.role must be user, assistant, system or developer.", param)
            if role == "assistant":
                msg: dict[str, Any] = {
                    "role": "assistant",
                    "content": _assistant_text(item.get("content"), param),
                }
                if reasoning is not None:
                    msg["reasoning_content"], reasoning = reasoning, None
                out.append(msg)
            else:
                out.append({"role": role, "content": _user_content(item.get("content"), param)})
        elif kind == "function_call":
            call = _call(item, param)
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and reasoning is None:
                last.setdefault("tool_calls", []).append(call)
            else:
                msg = {"role": "assistant", "content": None, "tool_calls": [call]}
                if reasoning is not None:
                    msg["reasoning_content"], reasoning = reasoning, None
                out.append(msg)
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise _bad(f"{param}.call_id is required.", f"{param}.call_id")
            content = _output_text(item.get("output"), param)
            out.append({"role": "tool", "tool_call_id": call_id, "content": content})
        elif kind == "reasoning":
            text = _reasoning_text(item)
            reasoning = text if reasoning is None else reasoning + text
        else:
            raise _bad(
                f"{param}: items of type `{kind}` are not supported here (chatgate takes "
                "messages, function calls, function call outputs and reasoning).",
                f"{param}.type",
            )
    return out


def _user_content(content: Any, param: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(f"{param}.content must be a string or an array of parts.", f"{param}.content")
    parts: list[dict[str, Any]] = []
    texts = True
    for j, part in enumerate(content):
        where = f"{param}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise _bad(f"{where}.text must be a string.", f"{where}.text")
            parts.append({"type": "text", "text": text})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise _bad(
                    f"{where}: give the image as `image_url` (a URL or a data: URL); "
                    "uploaded files (`file_id`) are not supported.",
                    f"{where}.image_url",
                )
            image: dict[str, Any] = {"url": url}
            detail = part.get("detail")
            if isinstance(detail, str):
                image["detail"] = detail
            parts.append({"type": "image_url", "image_url": image})
            texts = False
        elif kind == "input_file":
            data = part.get("file_data")
            if not isinstance(data, str) or not data:
                raise _bad(
                    f"{where}: give the file inline as `file_data`; `file_id` and "
                    "`file_url` are not supported.",
                    f"{where}.file_data",
                )
            file: dict[str, Any] = {"file_data": data}
            if isinstance(part.get("filename"), str):
                file["filename"] = part["filename"]
            parts.append({"type": "file", "file": file})
            texts = False
        else:
            raise _bad(f"{where}: content parts of type `{kind}` are not supported.", where)
    if texts:
        # Text alone travels as a string: not every upstream takes an array of parts.
        return "\n".join(p["text"] for p in parts)
    return parts


def _assistant_text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(f"{param}.content must be a string or an array of parts.", f"{param}.content")
    texts = []
    for part in content:
        if isinstance(part, dict):
            text = part.get("text") if part.get("type") != "refusal" else part.get("refusal")
            if isinstance(text, str):
                texts.append(text)
    return "".join(texts)


def _output_text(output: Any, param: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts = []
        for j, part in enumerate(output):
            if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text"):
                raise _bad(
                    f"{param}.output[{j}]: only text outputs can be passed to the model.",
                    f"{param}.output",
                )
            texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    raise _bad(f"{param}.output must be a string or an array of parts.", f"{param}.output")


def _call(item: Item, param: str) -> dict[str, Any]:
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{param}.call_id is required.", f"{param}.call_id")
    if not isinstance(name, str) or not name:
        raise _bad(f"{param}.name is required.", f"{param}.name")
    if not isinstance(arguments, str):
        raise _bad(f"{param}.arguments must be a string.", f"{param}.arguments")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _reasoning_text(item: Item) -> str:
    """The reasoning's own text, else its summary (what an OpenAI model returned)."""
    for field, kind in (("content", "reasoning_text"), ("summary", "summary_text")):
        parts = item.get(field)
        if isinstance(parts, list):
            texts = [
                p["text"]
                for p in parts
                if isinstance(p, dict) and p.get("type") == kind and isinstance(p.get("text"), str)
            ]
            if texts:
                return "\n".join(texts)
    return ""


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("`tools` must be an array.", "tools")
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise _bad(
                f"tools[{i}]: tools of type `{kind}` are not supported; chatgate passes "
                "function tools to the model.",
                f"tools[{i}].type",
            )
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"tools[{i}].name is required.", f"tools[{i}].name")
        function: dict[str, Any] = {"name": name}
        for field in ("description", "parameters", "strict"):
            value = tool.get(field)
            if value is not None:
                function[field] = value
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, chat: dict[str, Any]) -> None:
    if choice in ("auto", "none", "required"):
        chat["tool_choice"] = choice
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function" and isinstance(choice.get("name"), str):
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        return
    if kind == "allowed_tools" and choice.get("mode") in ("auto", "required"):
        allowed = {
            t.get("name")
            for t in choice.get("tools") or ()
            if isinstance(t, dict) and t.get("type") == "function"
        }
        chat["tool_choice"] = choice["mode"]
        chat["tools"] = [t for t in chat.get("tools", ()) if t["function"]["name"] in allowed]
        if not chat["tools"]:
            del chat["tools"]
            chat["tool_choice"] = "none"
        return
    raise _bad(
        "`tool_choice` must be auto, none, required, a function or allowed function tools.",
        "tool_choice",
    )


def _text(text: Any, chat: dict[str, Any]) -> None:
    if not isinstance(text, dict):
        raise _bad("`text` must be an object.", "text")
    fmt = text.get("format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "json_schema":
            schema = fmt.get("schema")
            name = fmt.get("name")
            if not isinstance(schema, dict) or not isinstance(name, str):
                raise _bad(
                    "`text.format` of type json_schema needs a `name` and a `schema`.",
                    "text.format",
                )
            spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
            chat["response_format"] = {"type": "json_schema", "json_schema": spec}
        elif kind == "json_object":
            chat["response_format"] = {"type": "json_object"}
        elif kind != "text":
            raise _bad("`text.format.type` must be text, json_schema or json_object.", "text")
    if isinstance(text.get("verbosity"), str):
        chat["verbosity"] = text["verbosity"]
