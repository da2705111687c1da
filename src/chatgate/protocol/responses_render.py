"""Responses API answers: a chat completion rendered as a ``response`` object, and the pieces
(items, usage, status) the stream renderer builds its events from. Pure functions."""

from __future__ import annotations

import time
from typing import Any

from chatgate.protocol.responses import Item, ResponsesRequest

_BLANK: dict[str, Any] = {
    "id": "",
    "object": "response",
    "created_at": 0,
    "status": "in_progress",
    "background": False,
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "model": "",
    "output": None,
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": None,
    "store": True,
    "temperature": None,
    "text": None,
    "tool_choice": "auto",
    "tools": None,
    "top_p": None,
    "truncation": "disabled",
    "usage": None,
    "user": None,
    "metadata": None,
}
# Request fields a response echoes as they came (when given and not null).
_ECHOED = frozenset(
    {
        "instructions",
        "max_output_tokens",
        "max_tool_calls",
        "parallel_tool_calls",
        "temperature",
        "tool_choice",
        "top_p",
        "truncation",
        "user",
        "tools",
        "metadata",
    }
)


def skeleton(req: ResponsesRequest, rid: str, created_at: int) -> dict[str, Any]:
    """The ``response`` object before its output: what the request asked for, echoed. (Built
    from a blank copy plus the few fields a request sets: it runs on every request.)"""
    response = _BLANK.copy()
    response["id"] = rid
    response["created_at"] = created_at
    response["model"] = req.model
    response["output"] = []
    response["previous_response_id"] = req.previous_response_id
    response["store"] = req.store
    response["tools"] = []
    response["metadata"] = {}
    body = req.body
    for key in _ECHOED.intersection(body):
        value = body[key]
        if value is not None:
            response[key] = value
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict):
        summary = reasoning.get("summary") or reasoning.get("generate_summary")
        response["reasoning"] = {"effort": reasoning.get("effort"), "summary": summary}
    else:
        response["reasoning"] = {"effort": None, "summary": None}
    text = body.get("text")
    response["text"] = (
        text if isinstance(text, dict) and "format" in text else {"format": {"type": "text"}}
    )
    return response


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def finish(response: dict[str, Any], finish_reason: Any, usage: Any) -> dict[str, Any]:
    """Fill in how the answer ended: status, incomplete details, usage (in place)."""
    reason = _INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    if reason is not None:
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": reason}
    else:
        response["status"] = "completed"
        response["completed_at"] = int(time.time())
    response["usage"] = usage_of(usage)
    return response


def usage_of(usage: Any) -> dict[str, Any] | None:
    """Chat-completions usage in the Responses shape (DeepSeek's cache-hit count included)."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if cached is None:
        cached = usage.get("prompt_cache_hit_tokens")
    out_details = usage.get("completion_tokens_details")
    reasoning = out_details.get("reasoning_tokens") if isinstance(out_details, dict) else None
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached or 0, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning or 0},
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


def item_ids(rid: str) -> tuple[str, str, str]:
    """The ids of a response's reasoning, message and function-call items (the last one a
    prefix, numbered per call): derived from the response id, so unique without new randomness."""
    tail = rid[5:]
    return "rs_" + tail, "msg_" + tail, "fc_" + tail


def output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def render(req: ResponsesRequest, rid: str, completion: dict[str, Any]) -> dict[str, Any]:
    """The ``response`` object of a whole chat completion."""
    response = skeleton(req, rid, int(completion.get("created") or time.time()))
    choices = completion.get("choices") or ()
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    finish_reason = choice.get("finish_reason")
    done = "incomplete" if finish_reason in _INCOMPLETE else "completed"
    rs_id, msg_id, fc_id = item_ids(rid)
    output: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        output.append(reasoning_item(rs_id, reasoning, wants_summary(response)))
    content = message.get("content")
    calls = message.get("tool_calls")
    refusal = message.get("refusal")
    if content or refusal or not calls:
        parts = []
        if isinstance(content, str) and (content or not refusal):
            parts.append(output_text_part(content))
        if isinstance(refusal, str) and refusal:
            parts.append({"type": "refusal", "refusal": refusal})
        output.append(message_item(msg_id, parts, done))
    if isinstance(calls, list):
        for n, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                output.append(
                    call_item(
                        f"{fc_id}{n}",
                        call.get("id") or f"call_{rid[5:29]}{n}",
                        str(function.get("name") or ""),
                        str(function.get("arguments") or ""),
                        done,
                    )
                )
    response["output"] = output
    return finish(response, finish_reason, completion.get("usage"))


def wants_summary(response: dict[str, Any]) -> bool:
    """Whether the request asked for a reasoning summary (``reasoning.summary``). Upstreams give
    their reasoning whole, never a summary, so the whole text is given as the summary too:
    clients that show only summaries (Codex) then show the reasoning."""
    return response["reasoning"]["summary"] in ("auto", "concise", "detailed")


def reasoning_item(item_id: str, text: str | None, summary: bool = False) -> dict[str, Any]:
    """A reasoning item: the model's own reasoning text (``content``), and as its summary when
    one was asked for."""
    content = [] if text is None else [{"type": "reasoning_text", "text": text}]
    summaries = [{"type": "summary_text", "text": text}] if summary and text else []
    return {"id": item_id, "type": "reasoning", "summary": summaries, "content": content}


def message_item(item_id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": parts,
    }


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> Item:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}


def listed_items(items: list[Item], rid: str) -> list[Item]:
    """A stored response's input items as ``input_items`` lists them: each with an id (one
    derived from the response's for an item sent without) and messages in their long form."""
    out = []
    tail = rid.removeprefix("resp_")
    for i, item in enumerate(items):
        kind = item.get("type", "message")
        entry = {**item, "type": kind}
        if kind == "message":
            content = item.get("content")
            if isinstance(content, str):
                assistant = item.get("role") == "assistant"
                entry["content"] = [
                    output_text_part(content)
                    if assistant
                    else {"type": "input_text", "text": content}
                ]
            entry.setdefault("status", "completed")
        elif kind in ("function_call", "function_call_output"):
            entry.setdefault("status", "completed")
        if not entry.get("id"):
            entry["id"] = f"{_PREFIXES.get(kind, 'item')}_{tail}{i:04x}"
        out.append(entry)
    return out
