"""Ollama API answers: whole ``/api/chat`` and ``/api/generate`` responses, their NDJSON
streams (:class:`NdjsonStream`), and the model listings (``tags``, ``show``, ``ps``).

Durations are nanoseconds, as Ollama gives them: ``total_duration`` from the request's arrival,
``prompt_eval_duration`` until the first token, ``eval_duration`` after it; ``load_duration``
is 0 (nothing is loaded here). Counts are the upstream's usage.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from chatgate.errors import GatewayError

VERSION = "0.12.0"
"""The Ollama version ``/api/version`` reports: the API these doors follow (clients check it
before using ``think``, structured outputs and tool calls)."""


def timestamp() -> str:
    """Now as Ollama writes ``created_at`` (RFC 3339, UTC)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class Timing:
    """``perf_counter`` readings: the request's arrival and its first token (None: not yet)."""

    started: float
    first: float | None = None

    def stats(self, usage: dict[str, Any] | None) -> dict[str, int]:
        now = time.perf_counter()
        # A whole answer has no first-token time: all of it counts as generation, so a
        # client's tokens-per-second never divides by zero.
        first = self.first if self.first is not None else self.started
        usage = usage or {}
        return {
            "total_duration": int((now - self.started) * 1e9),
            "load_duration": 0,
            "prompt_eval_count": int(usage.get("prompt_tokens") or 0),
            "prompt_eval_duration": int((first - self.started) * 1e9),
            "eval_count": int(usage.get("completion_tokens") or 0),
            "eval_duration": int((now - first) * 1e9),
        }


def done_reason(finish: Any) -> str:
    """Ollama says ``length`` when the limit cut the answer, else ``stop`` (tool calls too)."""
    return "length" if finish == "length" else "stop"


def _arguments(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}  # a model's broken JSON, kept rather than lost
    return parsed if isinstance(parsed, dict) else {"arguments": parsed}


def tool_calls(calls: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tool calls as Ollama's: the function and its arguments as an object."""
    out = []
    for call in calls:
        function = call.get("function") or {}
        out.append(
            {
                "function": {
                    "name": function.get("name") or "",
                    "arguments": _arguments(function.get("arguments")),
                }
            }
        )
    return out


def _first(completion: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    return choice.get("message") or {}, choice.get("finish_reason")


def chat_response(completion: dict[str, Any], model: str, timing: Timing) -> dict[str, Any]:
    """A whole ``chat.completion`` as ``/api/chat`` answers with ``stream: false``."""
    message, finish = _first(completion)
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    if message.get("reasoning_content"):
        out["thinking"] = message["reasoning_content"]
    if message.get("tool_calls"):
        out["tool_calls"] = tool_calls(message["tool_calls"])
    return {
        "model": model,
        "created_at": timestamp(),
        "message": out,
        "done": True,
        "done_reason": done_reason(finish),
        **timing.stats(completion.get("usage")),
    }


def generate_response(completion: dict[str, Any], model: str, timing: Timing) -> dict[str, Any]:
    """A whole ``chat.completion`` as ``/api/generate`` answers with ``stream: false``."""
    message, finish = _first(completion)
    out: dict[str, Any] = {
        "model": model,
        "created_at": timestamp(),
        "response": message.get("content") or "",
    }
    if message.get("reasoning_content"):
        out["thinking"] = message["reasoning_content"]
    return {
        **out,
        "done": True,
        "done_reason": done_reason(finish),
        **timing.stats(completion.get("usage")),
    }


def load_response(model: str, kind: str) -> dict[str, Any]:
    """The answer to a request without a prompt: the model is "loaded" (it always is)."""
    out: dict[str, Any] = {"model": model, "created_at": timestamp()}
    if kind == "chat":
        out["message"] = {"role": "assistant", "content": ""}
    else:
        out["response"] = ""
    return {**out, "done": True, "done_reason": "load"}


class NdjsonStream:
    """OpenAI chunks in, Ollama's stream out: one JSON object a line, ``done: false`` for each
    piece of text or thinking, the tool calls whole once the upstream has finished them, then
    one ``done: true`` line with the reason, durations and counts. ``kind`` is ``chat``
    (pieces under ``message``) or ``generate`` (pieces as ``response``)."""

    __slots__ = ("_calls", "_finish", "_model", "_usage", "kind", "timing")

    def __init__(self, model: str, kind: str, timing: Timing) -> None:
        self.kind = kind
        self.timing = timing
        self._model = orjson.dumps(model)
        self._calls: dict[int, dict[str, Any]] = {}  # OpenAI index → the call so far
        self._finish: Any = None
        self._usage: dict[str, Any] | None = None

    def _line(self, created: bytes, fields: dict[str, Any], done: bool = False) -> bytes:
        payload: dict[str, Any]
        if self.kind == "chat":
            payload = {"message": {"role": "assistant", "content": "", **fields}}
        else:
            payload = {"response": "", **fields}
        return (
            b'{"model":'
            + self._model
            + b',"created_at":"'
            + created
            + b'",'
            + orjson.dumps(payload)[1:-1]
            + (b',"done":true' if done else b',"done":false')
            + b"}\n"
        )

    def start(self) -> bytes:
        return b""  # Ollama's stream has no opening line

    def feed(self, batch: Iterable[dict[str, Any]]) -> bytes:
        if self.timing.first is None:
            self.timing.first = time.perf_counter()
        created = timestamp().encode()
        out: list[bytes] = []
        text_field = "content" if self.kind == "chat" else "response"
        for chunk in batch:
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                self._usage = usage
            choices = chunk.get("choices")
            if not choices:
                continue
            choice = choices[0]
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                out.append(self._line(created, {"thinking": delta["reasoning_content"]}))
            if delta.get("content"):
                out.append(self._line(created, {text_field: delta["content"]}))
            for call in delta.get("tool_calls") or ():
                self._add_call(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return b"".join(out)

    def _add_call(self, piece: dict[str, Any]) -> None:
        call = self._calls.setdefault(piece.get("index", 0), {"function": {"arguments": ""}})
        function = piece.get("function") or {}
        if function.get("name"):
            call["function"]["name"] = function["name"]
        if function.get("arguments"):
            call["function"]["arguments"] += function["arguments"]

    def finish(self) -> bytes:
        created = timestamp().encode()
        out = []
        if self._calls and self.kind == "chat":
            calls = tool_calls(self._calls[i] for i in sorted(self._calls))
            out.append(self._line(created, {"tool_calls": calls}))
        stats = {"done_reason": done_reason(self._finish), **self.timing.stats(self._usage)}
        last = self._line(created, {}, done=True)
        out.append(last[:-2] + b"," + orjson.dumps(stats)[1:-1] + b"}\n")
        return b"".join(out)

    def failed(self, exc: GatewayError) -> bytes:
        """The answer broke off after the first byte: an error line, no ``done: true`` one."""
        return error_line(exc.message)


def error_line(message: str) -> bytes:
    """An error after the stream began: the line Ollama's clients raise on."""
    return orjson.dumps({"error": message}) + b"\n"


# -- model listings ----------------------------------------------------------------------------
_DETAILS = {
    "parent_model": "",
    "format": "",
    "family": "",
    "families": [],
    "parameter_size": "",
    "quantization_level": "",
}


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def tags(names: Iterable[str]) -> dict[str, Any]:
    """``/api/tags``: every model chatgate routes. Sizes are 0: none is stored here."""
    now = timestamp()
    return {
        "models": [
            {
                "name": name,
                "model": name,
                "modified_at": now,
                "size": 0,
                "digest": _digest(name),
                "details": dict(_DETAILS),
            }
            for name in names
        ]
    }


def show(name: str, context_window: int | None) -> dict[str, Any]:
    """``/api/show``: what is known; ``chatgate.context_length`` when the window is known
    (clients read ``<general.architecture>.context_length``)."""
    info: dict[str, Any] = {"general.architecture": "chatgate", "general.basename": name}
    if context_window:
        info["chatgate.context_length"] = context_window
    return {
        "modelfile": f"# served by chatgate\nFROM {name}\n",
        "parameters": "",
        "template": "{{ .Prompt }}",
        "details": dict(_DETAILS),
        "model_info": info,
        "capabilities": ["completion", "tools"],
        "modified_at": timestamp(),
    }


def ps(models: Iterable[tuple[str, int | None]]) -> dict[str, Any]:
    """``/api/ps``: every routable model is ready to answer, so every one is "running"."""
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = []
    for name, window in models:
        model: dict[str, Any] = {
            "name": name,
            "model": name,
            "size": 0,
            "digest": _digest(name),
            "details": dict(_DETAILS),
            "expires_at": expires,
            "size_vram": 0,
        }
        if window:
            model["context_length"] = window
        out.append(model)
    return {"models": out}
