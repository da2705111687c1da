"""Ollama API ↔ OpenAI chat translation: requests, whole answers, NDJSON streams, listings."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from chatgate.errors import InvalidRequestError
from chatgate.protocol import ollama

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAA"
    "AABJRU5ErkJggg=="
)
USER = [{"role": "user", "content": "hi"}]


def test_a_chat_streams_unless_told_not_to() -> None:
    out = ollama.chat_body({"model": "m", "messages": USER}, "resolved")
    assert out == {
        "model": "resolved",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    whole = ollama.chat_body({"model": "m", "messages": USER, "stream": False}, "m")
    assert "stream" not in whole


def test_options_map_to_sampling_fields() -> None:
    options = {
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 20,
        "seed": 7,
        "num_predict": 100,
        "stop": ["\n"],
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "min_p": 0.05,
        "num_ctx": 4096,  # a load-time option: the upstream's own
        "repeat_penalty": 1.1,
    }
    out = ollama.chat_body({"model": "m", "messages": USER, "options": options}, "m")
    for name in ("temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty"):
        assert out[name] == options[name]
    assert out["min_p"] == 0.05 and out["max_tokens"] == 100 and out["stop"] == ["\n"]
    assert "num_ctx" not in out and "repeat_penalty" not in out


@pytest.mark.parametrize("num_predict", [-1, -2, 0])
def test_an_unlimited_num_predict_sets_no_limit(num_predict: int) -> None:
    out = ollama.chat_body(
        {"model": "m", "messages": USER, "options": {"num_predict": num_predict}}, "m"
    )
    assert "max_tokens" not in out


def test_format_json_and_schema() -> None:
    json_mode = ollama.chat_body({"model": "m", "messages": USER, "format": "json"}, "m")
    assert json_mode["response_format"] == {"type": "json_object"}
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}}
    structured = ollama.chat_body({"model": "m", "messages": USER, "format": schema}, "m")
    assert structured["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }


def test_think() -> None:
    assert ollama.reasoning_mode({"think": False}) == "strip"
    assert ollama.reasoning_mode({"think": True}) is None
    assert ollama.reasoning_mode({}) is None
    out = ollama.chat_body({"model": "m", "messages": USER, "think": "high"}, "m")
    assert out["reasoning_effort"] == "high"


def test_images_become_image_parts_with_a_sniffed_type() -> None:
    messages = [{"role": "user", "content": "What is it?", "images": [PNG, "/9j/4AAQ"]}]
    [message] = ollama.to_messages(messages)
    assert message["content"] == [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
    ]


def test_tool_calls_get_ids_and_tool_answers_find_them() -> None:
    history = [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "content": "",
            "thinking": "Two calls.",
            "tool_calls": [
                {"function": {"name": "weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "time", "arguments": {"city": "Oslo"}}},
            ],
        },
        {"role": "tool", "tool_name": "time", "content": "12:00"},
        {"role": "tool", "content": "sunny"},
    ]
    messages = ollama.to_messages(history)
    calls = messages[1]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_1_0", "call_1_1"]
    assert calls[0]["function"] == {"name": "weather", "arguments": '{"city":"Paris"}'}
    assert messages[1]["reasoning_content"] == "Two calls."
    assert messages[2] == {"role": "tool", "content": "12:00", "tool_call_id": "call_1_1"}
    assert messages[3] == {"role": "tool", "content": "sunny", "tool_call_id": "call_1_0"}
    assert ollama.to_messages(history) == messages  # the same ids every time: cacheable


def test_tools_pass_as_openai_function_tools() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert ollama.chat_body({"model": "m", "messages": USER, "tools": tools}, "m")["tools"] == tools


def test_generate_is_a_system_and_a_user_message() -> None:
    body = {"model": "m", "prompt": "Why?", "system": "Be brief.", "images": [PNG], "stream": False}
    out = ollama.generate_body(body, "m")
    assert out["messages"][0] == {"role": "system", "content": "Be brief."}
    assert out["messages"][1]["role"] == "user"
    assert out["messages"][1]["content"][0] == {"type": "text", "text": "Why?"}
    with pytest.raises(InvalidRequestError):
        ollama.generate_body({"model": "m", "prompt": "def f(", "suffix": "return x"}, "m")


def test_load_requests() -> None:
    assert ollama.is_load_request({"model": "m"}, "generate")
    assert ollama.is_load_request({"model": "m", "messages": []}, "chat")
    assert not ollama.is_load_request({"model": "m", "prompt": "x"}, "generate")
    answer = ollama.load_response("m", "generate")
    assert answer["done"] is True and answer["done_reason"] == "load" and answer["response"] == ""


@pytest.mark.parametrize(
    "bad",
    [
        {"messages": "hi"},
        {"messages": [{"role": "robot", "content": "x"}]},
        {"messages": [{"role": "user", "content": 3}]},
        {"messages": USER, "stream": "yes"},
        {"messages": USER, "options": {"temperature": "hot"}},
        {"messages": USER, "options": {"num_predict": 1.5}},
        {"messages": USER, "format": "xml"},
        {"messages": [{"role": "user", "content": "x", "images": [3]}]},
        {"messages": [{"role": "assistant", "tool_calls": [{"function": {}}]}]},
    ],
)
def test_bad_requests(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        ollama.chat_body({"model": "m", **bad}, "m")


def test_latest_tag_reaches_an_untagged_model() -> None:
    known = {"local", "qwen3:8b"}.__contains__
    assert ollama.resolve_model("local:latest", known) == "local"
    assert ollama.resolve_model("qwen3:8b", known) == "qwen3:8b"
    assert ollama.resolve_model("other:latest", known) == "other:latest"


# -- answers -----------------------------------------------------------------------------------
def completion(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 5},
    }


def test_a_whole_chat_answer() -> None:
    timing = ollama.Timing(time.perf_counter() - 0.5)
    answer = ollama.chat_response(
        completion(
            {
                "content": "Hello.",
                "reasoning_content": "Greet.",
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": '{"a": 1}'}}],
            },
            "length",
        ),
        "m:latest",
        timing,
    )
    assert answer["model"] == "m:latest" and answer["created_at"].endswith("Z")
    assert answer["message"] == {
        "role": "assistant",
        "content": "Hello.",
        "thinking": "Greet.",
        "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}],
    }
    assert answer["done"] is True and answer["done_reason"] == "length"
    assert answer["prompt_eval_count"] == 11 and answer["eval_count"] == 5
    assert answer["total_duration"] >= 500_000_000 and answer["load_duration"] == 0
    assert answer["eval_duration"] > 0  # a whole answer: all generation, never a zero rate


def test_a_whole_generate_answer() -> None:
    answer = ollama.generate_response(
        completion({"content": "42"}), "m", ollama.Timing(time.perf_counter())
    )
    assert answer["response"] == "42" and answer["done_reason"] == "stop"
    assert "message" not in answer and "thinking" not in answer


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def lines(raw: bytes) -> list[dict[str, Any]]:
    assert raw.endswith(b"\n")
    return [orjson.loads(line) for line in raw.splitlines()]


def test_a_chat_stream() -> None:
    stream = ollama.NdjsonStream("m", "chat", ollama.Timing(time.perf_counter()))
    raw = stream.feed(
        [chunk({"role": "assistant", "reasoning_content": "Hm."}), chunk({"content": "Hi"})]
    )
    raw += stream.feed(
        [
            chunk({"content": " there"}, "stop"),
            {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
        ]
    )
    raw += stream.finish()
    parts = lines(raw)
    assert [p["message"] for p in parts[:3]] == [
        {"role": "assistant", "content": "", "thinking": "Hm."},
        {"role": "assistant", "content": "Hi"},
        {"role": "assistant", "content": " there"},
    ]
    assert all(p["done"] is False and p["model"] == "m" for p in parts[:3])
    last = parts[-1]
    assert last["done"] is True and last["done_reason"] == "stop"
    assert last["message"] == {"role": "assistant", "content": ""}
    assert last["prompt_eval_count"] == 3 and last["eval_count"] == 2
    assert {"total_duration", "load_duration", "prompt_eval_duration", "eval_duration"} <= set(last)


def test_streamed_tool_calls_come_whole_before_the_end() -> None:
    stream = ollama.NdjsonStream("m", "chat", ollama.Timing(time.perf_counter()))
    raw = stream.feed(
        [
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "c", "function": {"name": "f", "arguments": '{"a"'}}
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
            chunk({}, "tool_calls"),
        ]
    )
    assert raw == b""  # nothing to say until the calls are whole
    parts = lines(stream.finish())
    assert parts[0]["message"]["tool_calls"] == [{"function": {"name": "f", "arguments": {"a": 1}}}]
    assert parts[0]["done"] is False
    assert parts[1]["done"] is True and parts[1]["done_reason"] == "stop"


def test_a_generate_stream() -> None:
    stream = ollama.NdjsonStream("m", "generate", ollama.Timing(time.perf_counter()))
    parts = lines(
        stream.feed([chunk({"content": "4"}), chunk({"content": "2"}, "length")]) + stream.finish()
    )
    assert [p["response"] for p in parts] == ["4", "2", ""]
    assert parts[-1]["done_reason"] == "length" and "message" not in parts[-1]


def test_error_line() -> None:
    assert orjson.loads(ollama.error_line("boom")) == {"error": "boom"}


def test_listings() -> None:
    tags = ollama.tags(["local", "deepseek-chat"])["models"]
    assert [m["name"] for m in tags] == ["local", "deepseek-chat"]
    assert tags[0]["model"] == "local" and len(tags[0]["digest"]) == 64 and tags[0]["size"] == 0
    shown = ollama.show("local", 2048)
    assert shown["model_info"]["chatgate.context_length"] == 2048
    assert shown["model_info"]["general.architecture"] == "chatgate"
    assert "completion" in shown["capabilities"]
    assert "chatgate.context_length" not in ollama.show("x", None)["model_info"]
    [running] = ollama.ps([("local", 2048)])["models"]
    assert running["context_length"] == 2048 and running["expires_at"].endswith("Z")
