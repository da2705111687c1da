"""GigaChat's wire format ↔ OpenAI's: requests out, completions and stream chunks back.

GigaChat has functions where OpenAI has tools. ``tools`` go as ``functions`` and
``tool_choice`` as ``function_call``; an assistant turn's ``tool_calls`` become one
``function_call`` message each (arguments as an object, GigaChat takes one call per message),
each followed by its result as a ``function`` message (content a JSON object). A
``function_call`` answer, whole or streamed, comes back as ``tool_calls``. GigaChat's
``functions_state_id`` travels in the tool call's id (``call_<uuid>``) and is handed back with
the call in the next request.

Images: GigaChat takes none inline. Each ``image_url`` part is uploaded to its file storage
first (:mod:`chatgate.providers.gigachat`, with ``image_urls`` here listing them) and the user
message refers to the file by id in ``attachments`` (its content text only). GigaChat reads one
image per message: a message with several becomes one message per image, the text with the last.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

# OpenAI fields GigaChat has no equivalent for; sent as they are they only risk a 422.
_DROP = frozenset(
    {"stream_options", "seed", "stop", "presence_penalty", "frequency_penalty", "logit_bias",
     "logprobs", "top_logprobs", "user", "parallel_tool_calls", "service_tier", "store",
     "metadata", "modalities", "audio", "prediction", "tools", "tool_choice",
     "max_completion_tokens"}
)  # fmt: skip
_FINISH = {"function_call": "tool_calls", "blacklist": "content_filter"}
_CALL = "call_"


def _image_url(part: Any) -> str | None:
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return None
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    return url if isinstance(url, str) else ""


def image_urls(body: dict[str, Any]) -> list[str]:
    """The image URLs of ``body``'s messages, in order, each once: what goes to GigaChat's
    storage before the request can be sent."""
    urls: dict[str, None] = {}
    for msg in body.get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list):
            urls.update((u, None) for u in map(_image_url, content) if u is not None)
    return list(urls)


def _text(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts: GigaChat takes text only
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def _json(text: str, default: Any) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return default


def call_id(state: str | None, cid: str) -> str:
    """The OpenAI tool call id for a GigaChat call: its ``functions_state_id`` when it sent one
    (so the next request can hand it back), else one made from the completion id."""
    if state:
        return _CALL + state
    return _CALL + uuid.uuid5(uuid.NAMESPACE_URL, cid).hex[:24]  # stable across a stream


def state_of(tool_call_id: Any) -> str | None:
    """The ``functions_state_id`` a tool call id carries (see ``call_id``), if any."""
    if not isinstance(tool_call_id, str) or not tool_call_id.startswith(_CALL):
        return None
    state = tool_call_id.removeprefix(_CALL)
    try:
        return state if str(uuid.UUID(state)) == state else None
    except ValueError:
        return None


def _message(msg: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    role = msg.get("role")
    content = _text(msg.get("content"))
    new: dict[str, Any] = {"role": "system" if role == "developer" else role, "content": content}
    if "attachments" in msg:
        new["attachments"] = msg["attachments"]
    if calls := msg.get("tool_calls"):  # one call here: _messages splits the others off
        fn = calls[0].get("function") or {}
        names[str(calls[0].get("id"))] = str(fn.get("name"))
        args = _json(fn.get("arguments") or "{}", {})  # GigaChat takes the object, not a string
        new["function_call"] = {"name": fn.get("name"), "arguments": args}
        if state := msg.get("functions_state_id") or state_of(calls[0].get("id")):
            new["functions_state_id"] = state
    elif msg.get("function_call"):
        call = dict(msg["function_call"])
        if isinstance(call.get("arguments"), str):  # OpenAI's legacy function_call
            call["arguments"] = _json(call["arguments"], {})
        new["function_call"] = call
        if msg.get("functions_state_id"):
            new["functions_state_id"] = msg["functions_state_id"]
    if role in ("tool", "function"):
        new["role"] = "function"
        new["name"] = msg.get("name") or names.get(str(msg.get("tool_call_id")), "")
        if not isinstance(_json(new["content"], None), dict):  # GigaChat wants a JSON object
            new["content"] = orjson.dumps({"result": new["content"]}).decode()
    return new


def _with_images(msg: dict[str, Any], files: Mapping[str, str]) -> list[dict[str, Any]]:
    """``msg`` with its images as ``attachments`` (file ids from ``files``, image URL -> id):
    one image per message, the earlier ones each in a message of its own before the text."""
    content = msg.get("content")
    if not isinstance(content, list):
        return [msg]
    urls = [u for u in map(_image_url, content) if u is not None]
    if not urls:
        return [msg]
    ids = [files[u] for u in urls]
    text = [p for p in content if _image_url(p) is None]
    out = [{"role": msg.get("role"), "content": "", "attachments": [i]} for i in ids[:-1]]
    return [*out, {**msg, "content": text, "attachments": [ids[-1]]}]


def _messages(
    messages: list[dict[str, Any]], files: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """OpenAI messages as GigaChat's. GigaChat takes one function call per assistant message:
    a turn with several tool calls becomes one assistant message per call, each followed by
    that call's result. Images become ``attachments`` (see ``_with_images``)."""
    names: dict[str, str] = {}  # tool_call_id -> function name, for the tool results
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(messages):
        msg = messages[i]
        calls = msg.get("tool_calls") if isinstance(msg, dict) else None
        i += 1
        if not isinstance(calls, list) or len(calls) < 2:
            out += [_message(m, names) for m in _with_images(msg, files or {})]
            continue
        results: dict[str, list[dict[str, Any]]] = {}
        while i < len(messages) and messages[i].get("role") == "tool":
            results.setdefault(str(messages[i].get("tool_call_id")), []).append(messages[i])
            i += 1
        for n, call in enumerate(calls):
            part = {**msg, "tool_calls": [call], "content": msg.get("content") if n == 0 else ""}
            out.append(_message(part, names))
            out += [_message(r, names) for r in results.pop(str(call.get("id")), [])]
        out += [_message(r, names) for rest in results.values() for r in rest]
    return out


def to_gigachat(
    body: dict[str, Any], model: str, stream: bool, files: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """An OpenAI request as GigaChat takes it: ``tools`` as ``functions``, tool results as
    ``function`` messages, images as ``attachments`` (``files``: each image URL's file id in
    GigaChat's storage), fields GigaChat has no equivalent for dropped."""
    out = {k: v for k, v in body.items() if k not in _DROP}
    out["model"], out["stream"] = model, stream
    if out.get("max_tokens") is None and body.get("max_completion_tokens") is not None:
        out["max_tokens"] = body["max_completion_tokens"]
    if tools := body.get("tools"):
        out["functions"] = [t["function"] for t in tools if isinstance(t, dict) and "function" in t]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out["function_call"] = {"name": choice["function"].get("name")}
    elif isinstance(choice, str) and tools:
        # GigaChat has no "required": with one function it is that function, else "auto"
        functions = out.get("functions") or []
        if choice == "required" and len(functions) == 1:
            out["function_call"] = {"name": functions[0].get("name")}
        else:
            out["function_call"] = "none" if choice == "none" else "auto"
    out["messages"] = _messages(body.get("messages", []), files)
    return out


def to_openai(data: dict[str, Any], model: str, obj: str, cid: str) -> dict[str, Any]:
    """A GigaChat completion or chunk in OpenAI's shape: an ``id`` (GigaChat sends none), the
    right ``object``, ``function_call`` as ``tool_calls``, OpenAI's finish reasons."""
    data["id"] = data.get("id") or cid
    data["object"] = obj  # GigaChat labels its stream chunks "chat.completion" too
    data.setdefault("created", int(time.time()))
    data.setdefault("model", model)
    for i, choice in enumerate(data.get("choices") or []):
        choice.setdefault("index", i)
        msg = choice.get("message" if obj == "chat.completion" else "delta")
        if not isinstance(msg, dict):
            continue
        state = msg.pop("functions_state_id", None)
        if isinstance(msg.get("function_call"), dict):
            fn = msg.pop("function_call")
            args = fn.get("arguments") or {}
            args = args if isinstance(args, str) else orjson.dumps(args).decode()
            call: dict[str, Any] = {"id": call_id(state, cid), "type": "function"}
            call["function"] = {"name": fn.get("name"), "arguments": args}
            if obj != "chat.completion":
                call["index"] = 0
            msg["tool_calls"], msg["content"] = [call], msg.get("content") or None
        reason = choice.get("finish_reason")
        choice["finish_reason"] = _FINISH.get(reason, reason) if reason else None
    return data
