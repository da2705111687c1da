"""The Responses API's stream: chat-completion chunks in, ``response.*`` server-sent events out.

    response.created, response.in_progress
    per output item, in order: reasoning (reasoning_text deltas, and reasoning_summary_text
      ones when a summary was asked for), message (output_text deltas),
      function calls (argument deltas) — each opened by output_item.added (+ content_part.added)
      and closed by its .done events before the next one opens
    response.completed (or response.incomplete) with the whole response and its usage
    on a failure after the start: error, then response.failed

Every event carries its ``sequence_number``. The hot events (text and argument deltas) are
written from byte templates made once per item, so a chunk costs one small ``orjson.dumps``.
"""

from __future__ import annotations

from typing import Any

import orjson

from chatgate.errors import GatewayError, RateLimitError
from chatgate.protocol.openai import ChunkBatch
from chatgate.protocol.responses_render import (
    call_item,
    finish,
    item_ids,
    message_item,
    output_text_part,
    reasoning_item,
    wants_summary,
)


def event(kind: str, seq: int, payload: dict[str, Any]) -> bytes:
    """One SSE event; ``type`` and ``sequence_number`` go first."""
    name = kind.encode()
    fields = orjson.dumps(payload)[1:]  # the payload's members and its closing brace
    return _EVENT % (name, name, seq, fields)


_EVENT = b'event: %b\ndata: {"type":"%b","sequence_number":%d,%b\n\n'


def _response_event(kind: str, seq: int, response: bytes) -> bytes:
    name = kind.encode()
    return _RESPONSE_EVENT % (name, name, seq, response)


_RESPONSE_EVENT = b'event: %b\ndata: {"type":"%b","sequence_number":%d,"response":%b}\n\n'


class _Open:
    """The output item being streamed: its kind, index, id, text so far, and the template of
    its delta events (``% (sequence_number, JSON of the delta)``)."""

    __slots__ = ("call_id", "delta", "id", "index", "kind", "name", "pieces", "summary")

    def __init__(self, kind: str, index: int, item_id: str, delta_type: str) -> None:
        self.kind = kind
        self.index = index
        self.id = item_id
        self.pieces: list[str] = []
        self.call_id = ""
        self.name = ""
        content = ',"content_index":0' if kind != "call" else ""
        # Only text deltas carry logprobs (none: upstream logprobs are not passed on).
        logprobs = ',"logprobs":[]' if kind == "message" else ""
        self.delta = (
            f'event: {delta_type}\ndata: {{"type":"{delta_type}","sequence_number":%d,'
            f'"item_id":"{item_id}","output_index":{index}{content},"delta":%b{logprobs}}}\n\n'
        ).encode()
        self.summary: bytes | None = None  # reasoning given as its summary too: that template

    def summarized(self) -> None:
        kind = "response.reasoning_summary_text.delta"
        self.summary = (
            f'event: {kind}\ndata: {{"type":"{kind}","sequence_number":%d,'
            f'"item_id":"{self.id}","output_index":{self.index},"summary_index":0,"delta":%b}}\n\n'
        ).encode()


class ResponseStream:
    """Renders one response's stream. ``start`` once, ``feed`` every batch of chunks, then
    ``close`` (the items' closing events; ``response`` is then whole) and ``completed`` —
    or ``failed`` when the answer broke off."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.seq = 0
        self.output: list[dict[str, Any]] = response["output"]
        self._open: _Open | None = None
        self._calls: dict[int, _Open] = {}
        self._finish_reason: Any = None
        self.usage: Any = None
        self._rs_id, self._msg_id, self._fc_id = item_ids(response["id"])
        self._summary = wants_summary(response)

    def _next(self) -> int:
        seq = self.seq
        self.seq = seq + 1
        return seq

    def start(self) -> bytes:
        snapshot = orjson.dumps(self.response)
        return _response_event("response.created", self._next(), snapshot) + _response_event(
            "response.in_progress", self._next(), snapshot
        )

    def feed(self, batch: ChunkBatch) -> bytes:
        # Runs once per chunk, so text deltas take a short way: a few lookups and one
        # template fill each; the batch's events are joined once.
        out: list[bytes] = []
        dumps = orjson.dumps
        for chunk in batch:
            choices = chunk.get("choices")
            if not choices:
                continue
            choice = choices[0]  # one answer per response (``n`` is not a Responses field)
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                item = self._open
                if content and len(delta) == 1 and item is not None and item.kind == "message":
                    item.pieces.append(content)
                    out.append(item.delta % (self.seq, dumps(content)))
                    self.seq += 1
                else:
                    self._delta(delta, content, out)
            finish = choice.get("finish_reason")
            if finish:
                self._finish_reason = finish
        usage = batch[-1].get("usage")  # usage comes last (as the pipeline reads it too)
        if usage:
            self.usage = usage
        return b"".join(out)

    def _delta(self, delta: dict[str, Any], content: Any, out: list[bytes]) -> None:
        reasoning = delta.get("reasoning_content")
        if reasoning:
            self._text("reasoning", reasoning, out)
        if content:
            self._text("message", content, out)
        calls = delta.get("tool_calls")
        if calls:
            for call in calls:
                self._call(call, out)

    def _text(self, kind: str, text: str, out: list[bytes]) -> None:
        item = self._open
        if item is None or item.kind != kind:
            item = self._begin(kind, out)
        item.pieces.append(text)
        dumped = orjson.dumps(text)
        out.append(item.delta % (self._next(), dumped))
        if item.summary is not None:
            out.append(item.summary % (self._next(), dumped))

    def _begin(self, kind: str, out: list[bytes]) -> _Open:
        self._end(out)
        index = len(self.output)
        if kind == "reasoning":
            item = _Open(kind, index, self._rs_id, "response.reasoning_text.delta")
            added = reasoning_item(item.id, None)
            part: dict[str, Any] = {"type": "reasoning_text", "text": ""}
        else:
            item = _Open(kind, index, self._msg_id, "response.output_text.delta")
            added = message_item(item.id, [], "in_progress")
            part = output_text_part("")
        self.output.append(added)
        self._open = item
        out.append(
            event(
                "response.output_item.added",
                self._next(),
                {"output_index": index, "item": added},
            )
        )
        out.append(
            event(
                "response.content_part.added",
                self._next(),
                {"item_id": item.id, "output_index": index, "content_index": 0, "part": part},
            )
        )
        if kind == "reasoning" and self._summary:
            item.summarized()
            out.append(
                event(
                    "response.reasoning_summary_part.added",
                    self._next(),
                    {
                        "item_id": item.id,
                        "output_index": index,
                        "summary_index": 0,
                        "part": {"type": "summary_text", "text": ""},
                    },
                )
            )
        return item

    def _call(self, call: dict[str, Any], out: list[bytes]) -> None:
        n = call.get("index", 0)
        item = self._calls.get(n)
        function = call.get("function") or {}
        if item is None:
            self._end(out)
            index = len(self.output)
            item = _Open(
                "call", index, f"{self._fc_id}{n}", "response.function_call_arguments.delta"
            )
            item.call_id = call.get("id") or f"call_{self.response['id'][5:29]}{n}"
            item.name = function.get("name") or ""
            added = call_item(item.id, item.call_id, item.name, "", "in_progress")
            self.output.append(added)
            self._calls[n] = self._open = item
            out.append(
                event(
                    "response.output_item.added",
                    self._next(),
                    {"output_index": index, "item": added},
                )
            )
        arguments = function.get("arguments")
        if arguments:
            item.pieces.append(arguments)
            out.append(item.delta % (self._next(), orjson.dumps(arguments)))

    def _end(self, out: list[bytes], status: str = "completed") -> None:
        """Close the open item: its .done events, and its final form in ``output``."""
        item, self._open = self._open, None
        if item is None:
            return
        text = "".join(item.pieces)
        extra: dict[str, Any] = {}
        where = {"item_id": item.id, "output_index": item.index}
        if item.kind == "call":
            done = call_item(item.id, item.call_id, item.name, text, status)
            out.append(
                event(
                    "response.function_call_arguments.done",
                    self._next(),
                    {**where, "arguments": text},
                )
            )
        else:
            if item.kind == "reasoning":
                done = reasoning_item(item.id, text, item.summary is not None)
                part: dict[str, Any] = {"type": "reasoning_text", "text": text}
                kind = "response.reasoning_text.done"
                if item.summary is not None:
                    summary = {**where, "summary_index": 0}
                    out.append(
                        event(
                            "response.reasoning_summary_text.done",
                            self._next(),
                            {**summary, "text": text},
                        )
                    )
                    out.append(
                        event(
                            "response.reasoning_summary_part.done",
                            self._next(),
                            {**summary, "part": {"type": "summary_text", "text": text}},
                        )
                    )
            else:
                part = output_text_part(text)
                done = message_item(item.id, [part], status)
                kind, extra = "response.output_text.done", {"logprobs": []}
            out.append(
                event(kind, self._next(), {**where, "content_index": 0, "text": text, **extra})
            )
            out.append(
                event(
                    "response.content_part.done",
                    self._next(),
                    {**where, "content_index": 0, "part": part},
                )
            )
        self.output[item.index] = done
        out.append(
            event(
                "response.output_item.done",
                self._next(),
                {"output_index": item.index, "item": done},
            )
        )

    def close(self) -> bytes:
        """The open item's closing events; afterwards ``response`` is the whole answer."""
        out: list[bytes] = []
        status = "incomplete" if self._finish_reason in ("length", "content_filter") else None
        self._end(out, status or "completed")
        finish(self.response, self._finish_reason, self.usage)
        return b"".join(out)

    def completed(self, response: bytes | None = None) -> bytes:
        """The last event; ``response``: the whole response's JSON when the caller has it."""
        status = self.response["status"]
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        return _response_event(kind, self._next(), response or orjson.dumps(self.response))

    def failed(self, exc: GatewayError) -> bytes:
        """The answer broke off: an ``error`` event, then ``response.failed``."""
        code = "rate_limit_exceeded" if isinstance(exc, RateLimitError) else "server_error"
        out = [
            event(
                "error",
                self._next(),
                {"code": exc.code or code, "message": exc.message, "param": exc.param},
            )
        ]
        response = self.response
        response["status"] = "failed"
        response["error"] = {"code": code, "message": exc.message}
        out.append(_response_event("response.failed", self._next(), orjson.dumps(response)))
        return b"".join(out)
