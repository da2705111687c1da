"""Anthropic Messages ↔ OpenAI chat translation: requests, whole answers, stream events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from chatgate.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequestError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QuotaExceededError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from chatgate.protocol import anthropic

TOOLS = [
    {
        "name": "weather",
        "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def test_a_plain_request() -> None:
    out = anthropic.to_chat_body(body(), "resolved")
    assert out == {
        "model": "resolved",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 64,
    }


@pytest.mark.parametrize("max_tokens", [None, 0, "64", True])
def test_max_tokens_is_required(max_tokens: Any) -> None:
    request = body()
    if max_tokens is None:
        del request["max_tokens"]
    else:
        request["max_tokens"] = max_tokens
    with pytest.raises(InvalidRequestError) as caught:
        anthropic.to_chat_body(request, "m")
    assert caught.value.param == "max_tokens"


def test_system_as_a_string_or_blocks() -> None:
    assert anthropic.to_messages(body(system="Be brief."))[0] == {
        "role": "system",
        "content": "Be brief.",
    }
    blocks = [
        {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be kind."},
    ]
    assert anthropic.to_messages(body(system=blocks))[0] == {
        "role": "system",
        "content": "Be brief.\nBe kind.",
    }


def test_sampling_stop_user_and_stream() -> None:
    out = anthropic.to_chat_body(
        body(
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            stop_sequences=["END"],
            metadata={"user_id": "u-1"},
            stream=True,
        ),
        "m",
    )
    assert out["temperature"] == 0.2 and out["top_p"] == 0.9 and out["top_k"] == 40
    assert out["stop"] == ["END"]
    assert out["user"] == "u-1"
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}


def test_images_base64_and_url_become_image_parts() -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "text", "text": "What is this?"},
    ]
    [message] = anthropic.to_messages(body(messages=[{"role": "user", "content": content}]))
    assert message == {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "text", "text": "What is this?"},
        ],
    }


def test_a_tool_round_trip_in_the_history() -> None:
    turns = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Use the tool.", "signature": "sig"},
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]
    messages = anthropic.to_messages(body(messages=turns))
    assert messages[1] == {
        "role": "assistant",
        "content": "Let me look.",
        "reasoning_content": "Use the tool.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    # the tool's answer comes right after the call, before the user's new words
    assert messages[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}
    assert messages[3] == {"role": "user", "content": "And tomorrow?"}


def test_a_thinking_only_turn_keeps_an_empty_text() -> None:
    turn = {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "Hm.", "signature": ""}],
    }
    messages = anthropic.to_messages(body(messages=[*body()["messages"], turn]))
    assert messages[-1] == {"role": "assistant", "content": "", "reasoning_content": "Hm."}


def test_a_tool_result_with_blocks_an_error_and_an_image() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "eA=="},
    }
    result = {
        "type": "tool_result",
        "tool_use_id": "t",
        "is_error": True,
        "content": [{"type": "text", "text": "not found"}, image],
    }
    messages = anthropic.to_messages(body(messages=[{"role": "user", "content": [result]}]))
    assert messages[0] == {"role": "tool", "tool_call_id": "t", "content": "Error: not found"}
    assert messages[1]["content"][0]["type"] == "image_url"


def test_documents_plain_text_passes_pdf_is_refused() -> None:
    text_doc = {
        "type": "document",
        "title": "Notes",
        "source": {"type": "text", "media_type": "text/plain", "data": "abc"},
    }
    [message] = anthropic.to_messages(body(messages=[{"role": "user", "content": [text_doc]}]))
    assert message == {"role": "user", "content": "Notes\n\nabc"}
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf"}}
    with pytest.raises(InvalidRequestError):
        anthropic.to_messages(body(messages=[{"role": "user", "content": [pdf]}]))


def test_tools_and_every_tool_choice() -> None:
    server_tool = {"type": "web_search_20250305", "name": "web_search"}
    out = anthropic.to_chat_body(body(tools=[*TOOLS, server_tool]), "m")
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "parameters": TOOLS[0]["input_schema"],
                "description": "Weather in a city",
            },
        }
    ]
    cases = [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        (
            {"type": "tool", "name": "weather", "disable_parallel_tool_use": True},
            {"type": "function", "function": {"name": "weather"}},
            False,
        ),
    ]
    for choice, expected, parallel in cases:
        out = anthropic.to_chat_body(body(tools=TOOLS, tool_choice=choice), "m")
        assert out["tool_choice"] == expected
        assert out.get("parallel_tool_calls") == parallel


def test_structured_output_and_effort() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    config = {"format": {"type": "json_schema", "schema": schema}, "effort": "low"}
    out = anthropic.to_chat_body(body(output_config=config), "m")
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }
    assert out["reasoning_effort"] == "low"


def test_thinking_disabled_strips_reasoning() -> None:
    assert anthropic.reasoning_mode(body(thinking={"type": "disabled"})) == "strip"
    assert (
        anthropic.reasoning_mode(body(thinking={"type": "enabled", "budget_tokens": 2048})) is None
    )
    assert anthropic.reasoning_mode(body()) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"messages": []},
        {"messages": [{"role": "system", "content": "x"}]},
        {"messages": [{"role": "user", "content": 3}]},
        {"messages": [{"role": "user", "content": [{"type": "audio"}]}]},
        {"tool_choice": {"type": "sometimes"}, "tools": TOOLS},
        {"temperature": "hot"},
        {"stop_sequences": "END"},
    ],
)
def test_bad_requests_are_invalid_request_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        anthropic.to_chat_body(body(**bad), "m")


def test_model_aliases_match_globs_in_order_known_names_first() -> None:
    aliases = anthropic.compile_aliases({"claude-3-*": "old", "claude-*": "new"})
    known = {"claude-local", "new", "old"}.__contains__
    assert anthropic.resolve_model("claude-3-haiku-20240307", known, aliases) == "old"
    assert anthropic.resolve_model("claude-sonnet-4-5", known, aliases) == "new"
    assert anthropic.resolve_model("claude-local", known, aliases) == "claude-local"
    assert anthropic.resolve_model("gpt-4o", known, aliases) == "gpt-4o"


def test_count_texts_covers_system_messages_calls_and_tools() -> None:
    turns = [
        {"role": "user", "content": "a"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
        },
    ]
    texts, messages = anthropic.count_texts(body(system="s", messages=turns, tools=TOOLS))
    assert messages == 3
    assert texts[:2] == ["s", "a"] and "f{}" in texts and any("weather" in t for t in texts)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (InvalidRequestError("x"), "invalid_request_error"),
        (PayloadTooLargeError("x"), "request_too_large"),
        (AuthenticationError("x"), "authentication_error"),
        (PermissionDeniedError("x"), "permission_error"),
        (QuotaExceededError("x"), "rate_limit_error"),
        (ServiceUnavailableError("x"), "overloaded_error"),
        (UpstreamError("x"), "api_error"),
        (UpstreamTimeoutError("x"), "timeout_error"),
        (GatewayError("x"), "api_error"),
    ],
)
def test_errors_in_anthropic_shape(error: GatewayError, kind: str) -> None:
    assert anthropic.error_body(error) == {"type": "error", "error": {"type": kind, "message": "x"}}


# -- answers -----------------------------------------------------------------------------------
def completion(message: dict[str, Any], finish: str = "stop", **usage: Any) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, **usage},
    }


def test_a_whole_answer_with_thinking_text_and_a_tool_call() -> None:
    message = anthropic.to_message(
        completion(
            {
                "content": "Checking.",
                "reasoning_content": "Hmm.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            "tool_calls",
        ),
        "claude-x",
    )
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["model"] == "claude-x" and message["id"].startswith("msg_")
    assert message["content"] == [
        {"type": "thinking", "thinking": "Hmm.", "signature": ""},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
    ]
    assert message["stop_reason"] == "tool_use" and message["stop_sequence"] is None
    assert message["usage"] == {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_stop_reasons(finish: str | None, reason: str) -> None:
    message = anthropic.to_message(completion({"content": "x"}, finish), "m")  # type: ignore[arg-type]
    assert message["stop_reason"] == reason


def test_a_named_stop_sequence() -> None:
    answer = completion({"content": "x"})
    answer["choices"][0]["stop_reason"] = "END"  # vLLM names the sequence it stopped at
    message = anthropic.to_message(answer, "m", ["END"])
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")


def test_prompt_cache_reads_openai_and_deepseek() -> None:
    openai_usage = {"prompt_tokens_details": {"cached_tokens": 8}}
    deepseek_usage = {"prompt_cache_hit_tokens": 8, "prompt_cache_miss_tokens": 2}
    for usage in (openai_usage, deepseek_usage):
        message = anthropic.to_message(completion({"content": "x"}, **usage), "m")
        assert message["usage"]["input_tokens"] == 2
        assert message["usage"]["cache_read_input_tokens"] == 8


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ("", {}),
        (None, {}),
        ("not json", {"arguments": "not json"}),
        ("[1]", {"arguments": [1]}),
    ],
)
def test_tool_input_parsing(arguments: Any, expected: dict[str, Any]) -> None:
    assert anthropic.tool_input(arguments) == expected


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def decode(raw: bytes) -> list[tuple[str, Any]]:
    """SSE bytes back into (event name, data); every event's name is its data's type."""
    events = []
    for block in raw.decode().split("\n\n")[:-1]:
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: "), block
        events.append((name[7:], orjson.loads(data[6:])))
        assert events[-1][1]["type"] == events[-1][0]
    return events


def events_of(batches: list[list[dict[str, Any]]], stops: Any = None) -> list[tuple[str, Any]]:
    stream = anthropic.MessageStream("claude-x", stops)
    raw = stream.start() + b"".join(stream.feed(batch) for batch in batches) + stream.finish()
    return decode(raw)


def test_a_text_stream() -> None:
    usage = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}
    events = events_of(
        [
            [chunk({"role": "assistant", "content": ""})],
            [chunk({"content": "Hel"})],
            [chunk({"content": "lo"}), chunk({}, "stop"), usage],
        ]
    )
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["model"] == "claude-x" and start["content"] == [] and start["stop_reason"] is None
    assert events[2][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert events[4][1]["delta"] == {"type": "text_delta", "text": "lo"}
    assert events[6][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[6][1]["usage"]["input_tokens"] == 7
    assert events[6][1]["usage"]["output_tokens"] == 2


def test_a_stream_of_thinking_then_text_then_two_tool_calls() -> None:
    events = events_of(
        [
            [chunk({"reasoning_content": "Think"}), chunk({"reasoning_content": "ing."})],
            [chunk({"content": "Calling."})],
            [
                chunk(
                    {
                        "tool_calls": [
                            {"index": 0, "id": "c0", "function": {"name": "a", "arguments": '{"x"'}}
                        ]
                    }
                ),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
                chunk(
                    {
                        "tool_calls": [
                            {"index": 1, "id": "c1", "function": {"name": "b", "arguments": "{}"}}
                        ]
                    }
                ),
                chunk({}, "tool_calls"),
            ],
        ]
    )
    blocks = [e[1]["content_block"] for e in events if e[0] == "content_block_start"]
    assert blocks == [
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": "c0", "name": "a", "input": {}},
        {"type": "tool_use", "id": "c1", "name": "b", "input": {}},
    ]
    deltas = [(e[1]["index"], e[1]["delta"]) for e in events if e[0] == "content_block_delta"]
    assert deltas == [
        (0, {"type": "thinking_delta", "thinking": "Think"}),
        (0, {"type": "thinking_delta", "thinking": "ing."}),
        (1, {"type": "text_delta", "text": "Calling."}),
        (2, {"type": "input_json_delta", "partial_json": '{"x"'}),
        (2, {"type": "input_json_delta", "partial_json": ": 1}"}),
        (3, {"type": "input_json_delta", "partial_json": "{}"}),
    ]
    stops = [e[1]["index"] for e in events if e[0] == "content_block_stop"]
    assert stops == [0, 1, 2, 3]  # each block closed before the next starts
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_a_stream_without_usage_or_finish_still_closes() -> None:
    events = events_of([[chunk({"content": "x"})]])
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"]["output_tokens"] == 0
    assert events[-1] == ("message_stop", {"type": "message_stop"})


def test_sse_encoding_names_each_event() -> None:
    raw = anthropic.encode([("ping", {"type": "ping"}), ("message_stop", {"type": "message_stop"})])
    assert raw == (
        b'event: ping\ndata: {"type":"ping"}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    assert orjson.loads(raw.split(b"data: ")[1].split(b"\n")[0]) == {"type": "ping"}
