"""Anthropic Messages answers: an OpenAI ``chat.completion`` as a Message, and OpenAI chunks
as Anthropic's stream events (:class:`MessageStream`, a small state machine)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import orjson

from chatgate.errors import GatewayError
from chatgate.protocol.anthropic.request import error_body

Event = tuple[str, dict[str, Any]]
"""One server-sent event: its name and its JSON data."""

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def message_id() -> str:
    return "msg_" + os.urandom(12).hex()


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's arguments as the ``input`` object Anthropic gives: parsed JSON; what is
    not a JSON object (a model's broken output) is kept under ``arguments`` rather than lost."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"arguments": parsed}


def usage_of(usage: dict[str, Any] | None) -> dict[str, int]:
    """OpenAI usage as Anthropic's: ``input_tokens`` excludes the prompt-cache reads, which
    are given apart (OpenAI's ``cached_tokens``, DeepSeek's ``prompt_cache_hit_tokens``)."""
    if not usage:
        return {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
    prompt = int(usage.get("prompt_tokens") or 0)
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if not cached:
        cached = usage.get("prompt_cache_hit_tokens")
    cached = int(cached or 0)
    return {
        "input_tokens": max(0, prompt - cached),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def stop_reason(finish: str | None, choice: dict[str, Any], stops: Any) -> tuple[str, str | None]:
    """(``stop_reason``, ``stop_sequence``). OpenAI says ``stop`` for a stop sequence too;
    servers that name the sequence (vLLM's ``stop_reason``) let us tell them apart."""
    matched = choice.get("stop_reason")
    if (
        finish == "stop"
        and isinstance(matched, str)
        and isinstance(stops, list)
        and matched in stops
    ):
        return "stop_sequence", matched
    return _STOP_REASONS.get(finish or "stop", "end_turn"), None


def to_message(completion: dict[str, Any], model: str, stops: Any = None) -> dict[str, Any]:
    """A whole OpenAI ``chat.completion`` as an Anthropic Message (first choice)."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        content.append(
            {"type": "thinking", "thinking": message["reasoning_content"], "signature": ""}
        )
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "toolu_" + os.urandom(12).hex(),
                "name": function.get("name", ""),
                "input": tool_input(function.get("arguments")),
            }
        )
    reason, sequence = stop_reason(choice.get("finish_reason"), choice, stops)
    if message.get("tool_calls"):
        reason = "tool_use"
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_of(completion.get("usage")),
    }


_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_TEXT = b',"delta":{"type":"text_delta","text":'
_THINKING = b',"delta":{"type":"thinking_delta","thinking":'
_JSON = b',"delta":{"type":"input_json_delta","partial_json":'
_END = b"}}\n\n"


def event(name: str, data: dict[str, Any]) -> bytes:
    """One event as SSE: an ``event:`` line naming it (the SDKs dispatch on it), then its data."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def encode(events: Iterable[Event]) -> bytes:
    return b"".join([event(name, data) for name, data in events])


class MessageStream:
    """OpenAI chunks in, Anthropic's stream events out as SSE bytes (first choice only).

    ``start`` gives ``message_start`` and a ``ping``; ``feed`` each batch; ``finish`` closes
    the open block and gives ``message_delta`` (stop reason, usage) and ``message_stop``, or
    ``failed`` gives the ``error`` event instead.
    Reasoning becomes a thinking block, content a text block and each tool call a
    ``tool_use`` block whose arguments arrive as ``input_json_delta``; a block is closed when
    the next kind begins, as Anthropic streams them one after another. The per-chunk deltas are
    written from byte templates: they are most of a stream, and building an event object for
    each cost this door several times chat completions' CPU per chunk.
    """

    __slots__ = (
        "_finish",
        "_index",
        "_kind",
        "_open",
        "_tools",
        "_usage",
        "index",
        "model",
        "stops",
    )

    def __init__(self, model: str, stops: Any = None) -> None:
        self.model = model
        self.stops = stops
        self.index = -1  # of the current block
        self._index = b"-1"  # the same, as JSON
        self._kind: str | None = None  # "thinking" | "text" | "tool" while a block is open
        self._open = False
        self._tools: dict[int, int] = {}  # OpenAI tool-call index → block index
        self._finish: tuple[str | None, dict[str, Any]] = (None, {})
        self._usage: dict[str, Any] | None = None

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": message_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_of(None),
        }
        return event("message_start", {"type": "message_start", "message": message}) + _PING

    def _begin(self, out: list[bytes], kind: str, block: dict[str, Any]) -> None:
        self._close(out)
        self.index += 1
        self._index = str(self.index).encode()
        self._kind, self._open = kind, True
        data = {"type": "content_block_start", "index": self.index, "content_block": block}
        out.append(event("content_block_start", data))

    def _close(self, out: list[bytes]) -> None:
        if self._open:
            out.append(
                b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'
                + self._index
                + b"}\n\n"
            )
            self._open, self._kind = False, None

    def feed(self, batch: Iterable[dict[str, Any]]) -> bytes:
        out: list[bytes] = []
        for chunk in batch:
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                self._usage = usage
            choices = chunk.get("choices")
            if not choices:
                continue
            choice = choices[0]
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if (  # the common case first: more text
                text
                and self._kind == "text"
                and not delta.get("reasoning_content")
                and not delta.get("tool_calls")
            ):
                out.append(_DELTA + self._index + _TEXT + orjson.dumps(text) + _END)
            else:
                self._other(out, delta, text)
            if choice.get("finish_reason"):
                self._finish = (choice["finish_reason"], choice)
        return b"".join(out)

    def _other(self, out: list[bytes], delta: dict[str, Any], text: str | None) -> None:
        reasoning = delta.get("reasoning_content")
        if reasoning:
            if self._kind != "thinking":
                self._begin(out, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
            out.append(_DELTA + self._index + _THINKING + orjson.dumps(reasoning) + _END)
        if text:
            self._begin(out, "text", {"type": "text", "text": ""})
            out.append(_DELTA + self._index + _TEXT + orjson.dumps(text) + _END)
        for call in delta.get("tool_calls") or ():
            self._tool_delta(out, call)

    def _tool_delta(self, out: list[bytes], call: dict[str, Any]) -> None:
        position = call.get("index", 0)
        function = call.get("function") or {}
        block = self._tools.get(position)
        if block is None:
            start: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or "toolu_" + os.urandom(12).hex(),
                "name": function.get("name") or "",
                "input": {},
            }
            self._begin(out, "tool", start)
            block = self._tools[position] = self.index
        arguments = function.get("arguments")
        if arguments:
            out.append(_DELTA + str(block).encode() + _JSON + orjson.dumps(arguments) + _END)

    def finish(self) -> bytes:
        out: list[bytes] = []
        self._close(out)
        finish, choice = self._finish
        reason, sequence = stop_reason(finish, choice, self.stops)
        if self._tools:
            reason = "tool_use"
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        data = {"type": "message_delta", "delta": delta, "usage": usage_of(self._usage)}
        out.append(event("message_delta", data))
        out.append(_STOP)
        return b"".join(out)

    def failed(self, exc: GatewayError) -> bytes:
        """The answer broke off after the first byte: an ``error`` event, and no
        ``message_stop`` after it."""
        return event("error", error_body(exc))


_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
