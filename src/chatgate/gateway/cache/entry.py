"""Cached answers: what is stored, and the conversions between streamed and whole answers.

An entry is the upstream's answer as it came: the list of chunks of a stream (content,
reasoning, tool-call deltas, finish reasons, usage — replayed chunk for chunk), or a whole
completion. A streamed answer is assembled into a completion for a non-streamed request, and a
completion is cut into chunks for a streamed one. Only finished answers are stored.
Legacy ``text_completion`` answers and embeddings are stored the same way, but only ever
replayed in the kind they were stored in (their cache keys differ, see ``keys``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from chatgate.protocol.openai import Chunk, completion_id

_FORMAT = 1


@dataclass(slots=True)
class Entry:
    chunks: list[Chunk] | None = None
    completion: dict[str, Any] | None = None

    def encode(self) -> bytes:
        if self.chunks is not None:
            return orjson.dumps({"v": _FORMAT, "chunks": self.chunks})
        return orjson.dumps({"v": _FORMAT, "completion": self.completion})

    @staticmethod
    def decode(raw: bytes) -> Entry | None:
        """The entry, or None when ``raw`` is not one (corrupt, or from another version)."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("v") != _FORMAT:
            return None
        chunks, completion = data.get("chunks"), data.get("completion")
        if isinstance(chunks, list) and chunks and all(isinstance(c, dict) for c in chunks):
            return Entry(chunks=chunks)
        if isinstance(completion, dict) and (
            isinstance(completion.get("choices"), list) or isinstance(completion.get("data"), list)
        ):
            return Entry(completion=completion)
        return None

    def as_completion(self) -> dict[str, Any]:
        if self.completion is not None:
            return fresh_completion(self.completion)
        assert self.chunks is not None
        return assemble(self.chunks)

    def as_chunks(self) -> list[Chunk]:
        if self.chunks is not None:
            return fresh_chunks(self.chunks)
        assert self.completion is not None
        return explode(self.completion)


def is_finished(chunks: list[Chunk]) -> bool:
    """A stream is worth storing only if every choice it had got a finish_reason."""
    seen: set[int] = set()
    finished: set[int] = set()
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            seen.add(index)
            if choice.get("finish_reason"):
                finished.add(index)
    return bool(seen) and seen == finished


def _new_id(old: Any) -> str:
    """A new response id in the family of ``old`` (``cmpl-`` for legacy completions)."""
    if isinstance(old, str) and old.startswith("cmpl-"):
        return "cmpl-" + uuid.uuid4().hex
    return completion_id()


def fresh_chunks(chunks: list[Chunk]) -> list[Chunk]:
    """Copies with a new id and timestamp: a replay is a new response."""
    cid, created = _new_id(chunks[0].get("id")), int(time.time())
    return [{**chunk, "id": cid, "created": created} for chunk in chunks]


def fresh_completion(completion: dict[str, Any]) -> dict[str, Any]:
    if "id" not in completion:  # embeddings carry no id
        return dict(completion)
    return {**completion, "id": _new_id(completion["id"]), "created": int(time.time())}


def assemble(chunks: list[Chunk]) -> dict[str, Any]:
    """A ``chat.completion`` equal to what the streamed ``chunks`` say."""
    first = chunks[0]
    choices: dict[int, dict[str, Any]] = {}
    usage: Any = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            acc = choices.setdefault(
                index, {"index": index, "message": {"role": "assistant"}, "finish_reason": None}
            )
            delta = choice.get("delta") or {}
            message = acc["message"]
            for field in ("content", "reasoning_content", "refusal"):
                piece = delta.get(field)
                if piece:
                    message[field] = (message.get(field) or "") + piece
            for call in delta.get("tool_calls") or ():
                _merge_tool_call(message, call)
            if delta.get("role"):
                message["role"] = delta["role"]
            if choice.get("finish_reason"):
                acc["finish_reason"] = choice["finish_reason"]
            logprobs = choice.get("logprobs")
            if logprobs and logprobs.get("content"):
                acc.setdefault("logprobs", {"content": []})["content"] += logprobs["content"]
    for acc in choices.values():
        acc["message"].setdefault("content", None)
    result: dict[str, Any] = {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": first.get("model"),
        "choices": [choices[i] for i in sorted(choices)],
        "usage": usage,
    }
    if first.get("system_fingerprint"):
        result["system_fingerprint"] = first["system_fingerprint"]
    return result


def _merge_tool_call(message: dict[str, Any], delta: dict[str, Any]) -> None:
    calls: list[dict[str, Any]] = message.setdefault("tool_calls", [])
    index = delta.get("index", len(calls))
    while len(calls) <= index:
        calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    call = calls[index]
    if delta.get("id"):
        call["id"] = delta["id"]
    if delta.get("type"):
        call["type"] = delta["type"]
    function = delta.get("function") or {}
    if function.get("name"):
        call["function"]["name"] += function["name"]
    if function.get("arguments"):
        call["function"]["arguments"] += function["arguments"]


def explode(completion: dict[str, Any]) -> list[Chunk]:
    """Chunks that stream ``completion``: each choice's message, then its finish, then usage."""
    cid, created = completion_id(), int(time.time())
    base = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": completion.get("model"),
    }
    chunks: list[Chunk] = []
    for choice in completion.get("choices") or ():
        index = choice.get("index", 0)
        message = dict(choice.get("message") or {})
        delta: dict[str, Any] = {"role": message.pop("role", "assistant")}
        for field, value in message.items():
            if value is None:
                continue
            if field == "tool_calls":
                value = [{**call, "index": i} for i, call in enumerate(value)]
            delta[field] = value
        first: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": None}
        if choice.get("logprobs"):
            first["logprobs"] = choice["logprobs"]
        chunks.append({**base, "choices": [first]})
        chunks.append(
            {
                **base,
                "choices": [
                    {
                        "index": index,
                        "delta": {},
                        "finish_reason": choice.get("finish_reason") or "stop",
                    }
                ],
            }
        )
    if completion.get("usage"):
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks
