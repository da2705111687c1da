"""Anthropic Messages answers: an OpenAI ``chat.completion`` as a Message, and OpenAI chunks
as Anthropic's stream events (:class:`MessageStream`, a small state machine)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import orjson

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
    return "msg_" + uuid.uuid4().hex


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
                "id": call.get("id") or "toolu_" + uuid.uuid4().hex,
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


class MessageStream:
    """OpenAI chunks in, Anthropic stream events out (first choice only).

    ``start`` gives ``message_start`` and a ``ping``; ``feed`` each batch; ``finish`` closes
    the open block and gives ``message_delta`` (stop reason, usage) and ``message_stop``.
    Reasoning becomes a thinking block, content a text block and each tool call a
    ``tool_use`` block whose arguments arrive as ``input_json_delta``; a block is closed when
    the next kind begins, as Anthropic streams them one after another.
    """

    __slots__ = ("_finish", "_kind", "_open", "_tools", "_usage", "index", "model", "stops")

    def __init__(self, model: str, stops: Any = None) -> None:
        self.model = model
        self.stops = stops
        self.index = -1  # of the current block
        self._kind: str | None = None  # "thinking" | "text" | "tool" while a block is open
        self._open = False
        self._tools: dict[int, int] = {}  # OpenAI tool-call index → block index
        self._finish: tuple[str | None, dict[str, Any]] = (None, {})
        self._usage: dict[str, Any] | None = None

    def start(self) -> list[Event]:
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
        return [
            ("message_start", {"type": "message_start", "message": message}),
            ("ping", {"type": "ping"}),
        ]

    def _begin(self, events: list[Event], kind: str, block: dict[str, Any]) -> None:
        self._close(events)
        self.index += 1
        self._kind, self._open = kind, True
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self.index, "content_block": block},
            )
        )

    def _close(self, events: list[Event]) -> None:
        if self._open:
            events.append(
                ("content_block_stop", {"type": "content_block_stop", "index": self.index})
            )
            self._open, self._kind = False, None

    def _delta(self, events: list[Event], index: int, delta: dict[str, Any]) -> None:
        events.append(
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        )

    def feed(self, batch: Iterable[dict[str, Any]]) -> list[Event]:
        events: list[Event] = []
        for chunk in batch:
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                self._usage = usage
            choices = chunk.get("choices")
            if not choices:
                continue
            choice = choices[0]
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if reasoning:
                if self._kind != "thinking":
                    block = {"type": "thinking", "thinking": "", "signature": ""}
                    self._begin(events, "thinking", block)
                self._delta(events, self.index, {"type": "thinking_delta", "thinking": reasoning})
            text = delta.get("content")
            if text:
                if self._kind != "text":
                    self._begin(events, "text", {"type": "text", "text": ""})
                self._delta(events, self.index, {"type": "text_delta", "text": text})
            for call in delta.get("tool_calls") or ():
                self._tool_delta(events, call)
            if choice.get("finish_reason"):
                self._finish = (choice["finish_reason"], choice)
        return events

    def _tool_delta(self, events: list[Event], call: dict[str, Any]) -> None:
        position = call.get("index", 0)
        function = call.get("function") or {}
        block = self._tools.get(position)
        if block is None:
            start: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or "toolu_" + uuid.uuid4().hex,
                "name": function.get("name") or "",
                "input": {},
            }
            self._begin(events, "tool", start)
            block = self._tools[position] = self.index
        arguments = function.get("arguments")
        if arguments:
            self._delta(events, block, {"type": "input_json_delta", "partial_json": arguments})

    def finish(self) -> list[Event]:
        events: list[Event] = []
        self._close(events)
        finish, choice = self._finish
        reason, sequence = stop_reason(finish, choice, self.stops)
        if self._tools:
            reason = "tool_use"
        usage = usage_of(self._usage)
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": sequence},
                    "usage": usage,
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events


def encode(events: Iterable[Event]) -> bytes:
    """Events as SSE: an ``event:`` line naming each (the SDKs dispatch on it), then its data."""
    return b"".join(
        [
            b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
            for name, data in events
        ]
    )
