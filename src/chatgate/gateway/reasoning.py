"""Reasoning handling: a streaming ``<think>…</think>`` splitter and the strip/separate/keep modes.

DeepSeek-R1 and its distills (served by Ollama, vLLM, llama.cpp) write their chain of thought
inline between ``<think>`` tags; DeepSeek's own API sends it apart as ``reasoning_content``.

:class:`ThinkSplitter` is one incremental parser for streams and whole texts alike (a whole text
is one ``feed`` and a ``flush``), so both give the same answer however the text is cut. It holds
back only a tail that could still become a tag (at most 8 characters), so content is never
delayed longer than that. Handled: tags split anywhere, several blocks, an answer that starts
inside reasoning with the opening tag left in the prompt template (``starts_inside``), stray
tags (dropped, never leaked), and whitespace right after a tag (dropped).
"""

from __future__ import annotations

import re
from typing import Any, get_args

from chatgate.config import ReasoningMode
from chatgate.errors import InvalidRequestError
from chatgate.protocol.openai import ChunkBatch

MODES: frozenset[str] = frozenset(get_args(ReasoningMode))

OPEN = "<think>"
CLOSE = "</think>"
_WS = " \t\r\n"


class ThinkSplitter:
    """Splits text into (content, reasoning) as it arrives."""

    __slots__ = ("_held", "_inside", "_skip_ws")

    def __init__(self, starts_inside: bool = False) -> None:
        self._inside = starts_inside
        self._held = ""
        self._skip_ws = starts_inside  # whitespace right after a tag is the tag's, not the text's

    def feed(self, text: str) -> tuple[str, str]:
        if self._held:
            text = self._held + text
            self._held = ""
        elif "<" not in text and not self._skip_ws:
            return (text, "") if not self._inside else ("", text)  # the common, fast case
        content: list[str] = []
        reasoning: list[str] = []
        pos = 0
        while True:
            lt = text.find("<", pos)
            if lt == -1:
                self._emit(text[pos:], content, reasoning)
                return "".join(content), "".join(reasoning)
            self._emit(text[pos:lt], content, reasoning)
            if text.startswith(OPEN, lt):
                self._inside = True
                self._skip_ws = True
                pos = lt + len(OPEN)
            elif text.startswith(CLOSE, lt):
                self._inside = False
                self._skip_ws = True
                pos = lt + len(CLOSE)
            else:
                rest = text[lt:]
                if len(rest) < len(CLOSE) and (OPEN.startswith(rest) or CLOSE.startswith(rest)):
                    self._held = rest  # may still become a tag: wait for the next piece
                    return "".join(content), "".join(reasoning)
                self._emit("<", content, reasoning)
                pos = lt + 1

    def flush(self) -> tuple[str, str]:
        """The end of the text: a held-back tail was no tag after all."""
        held, self._held = self._held, ""
        content: list[str] = []
        reasoning: list[str] = []
        self._emit(held, content, reasoning)
        return "".join(content), "".join(reasoning)

    def _emit(self, piece: str, content: list[str], reasoning: list[str]) -> None:
        if not piece:
            return
        if self._skip_ws:
            piece = piece.lstrip(_WS)
            if not piece:
                return
            self._skip_ws = False
        (reasoning if self._inside else content).append(piece)


def split_text(text: str, starts_inside: bool = False) -> tuple[str, str]:
    splitter = ThinkSplitter(starts_inside)
    content, reasoning = splitter.feed(text)
    tail_c, tail_r = splitter.flush()
    return content + tail_c, reasoning + tail_r


def apply_to_message(
    message: dict[str, Any], mode: ReasoningMode, starts_inside: bool
) -> dict[str, Any]:
    """``message`` with ``mode`` applied (a new dict; the given one may be shared)."""
    if mode == "keep":
        return message
    message = dict(message)
    text = message.get("content")
    upstream = message.get("reasoning_content")
    reasoning = ""
    if isinstance(text, str):
        content, reasoning = split_text(text, starts_inside)
        message["content"] = content
    if mode == "strip":
        message.pop("reasoning_content", None)
        return message
    joined = (upstream or "") + reasoning
    if joined or "reasoning_content" in message:
        message["reasoning_content"] = joined or None
    return message


class StreamFilter:
    """Applies a mode to a stream of chunk batches; one splitter per choice index.

    Chunks are never modified: they may be shared with other waiters and the cache recorder.
    """

    __slots__ = ("_mode", "_splitters", "_starts_inside")

    def __init__(self, mode: ReasoningMode, starts_inside: bool = False) -> None:
        self._mode = mode
        self._starts_inside = starts_inside
        self._splitters: dict[int, ThinkSplitter] = {}

    def batch(self, batch: ChunkBatch) -> ChunkBatch:
        if self._mode == "keep":
            return batch
        out: ChunkBatch = []
        for chunk in batch:
            filtered = self.chunk(chunk)
            if filtered is not None:
                out.append(filtered)
        return out

    def chunk(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """``chunk`` filtered (a copy where anything changed); None when nothing is left."""
        choices = chunk.get("choices")
        if not choices:
            return chunk  # usage-only and other choice-less chunks pass as they are
        new_choices = []
        keep = changed = False
        for choice in choices:
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                new_choices.append(choice)
                keep = True
                continue
            index = choice.get("index", 0)
            splitter = self._splitters.get(index)
            if splitter is None:
                splitter = self._splitters[index] = ThinkSplitter(self._starts_inside)
            text = delta.get("content")
            content, reasoning = splitter.feed(text) if isinstance(text, str) else ("", "")
            finish = choice.get("finish_reason")
            if finish is not None:
                tail_c, tail_r = splitter.flush()
                content += tail_c
                reasoning += tail_r
            unchanged = (
                not reasoning
                and content == (text if isinstance(text, str) else "")
                and not (self._mode == "strip" and "reasoning_content" in delta)
            )
            if unchanged:  # the common case (plain answer text): no copies at all
                new_choices.append(choice)
            else:
                changed = True
                delta = dict(delta)
                if isinstance(text, str) or content:
                    delta["content"] = content
                upstream = delta.get("reasoning_content")
                if self._mode == "strip":
                    delta.pop("reasoning_content", None)
                elif reasoning or upstream:
                    delta["reasoning_content"] = (upstream or "") + reasoning
                new_choices.append({**choice, "delta": delta})
            if (
                content
                or delta.get("reasoning_content")
                or delta.get("tool_calls")
                or delta.get("role")
                or delta.get("function_call")
                or finish is not None
                or choice.get("logprobs")
            ):
                keep = True
        if not keep:
            return None
        return {**chunk, "choices": new_choices} if changed else chunk


def parse_mode(value: str | None) -> ReasoningMode | None:
    """The ``X-Chatgate-Reasoning`` header's value, checked."""
    if value is None:
        return None
    mode = value.strip().lower()
    if mode not in MODES:
        raise InvalidRequestError(
            f"X-Chatgate-Reasoning must be one of {', '.join(sorted(MODES))}, not {value!r}.",
            param="X-Chatgate-Reasoning",
        )
    return mode  # type: ignore[return-value]


_THINK_BLOCK = re.compile(r"<think>.*?(?:</think>\s*|$)", re.DOTALL)


def clean_history(messages: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Earlier turns' reasoning is not sent back upstream (DeepSeek's rule, harmless elsewhere):
    ``reasoning_content`` and inline ``<think>`` blocks leave earlier assistant messages, except
    ``reasoning_content`` of a turn that made tool calls, which DeepSeek's thinking mode needs back.
    Returns the cleaned list, or None when nothing needed cleaning (the common case: no copy).
    """
    cleaned: list[dict[str, Any]] | None = None
    for i, msg in enumerate(messages):
        if msg.get("role") != "assistant":
            continue
        content = msg.get("content")
        drop_reasoning = "reasoning_content" in msg and not msg.get("tool_calls")
        has_think = isinstance(content, str) and "<think>" in content
        if not (drop_reasoning or has_think):
            continue
        if cleaned is None:
            cleaned = list(messages)
        new = dict(msg)
        if drop_reasoning:
            del new["reasoning_content"]
        if has_think:
            new["content"] = _THINK_BLOCK.sub("", str(content))
        cleaned[i] = new
    return cleaned
