"""Responses API translation: request items into chat messages, chat answers into ``response``
objects that validate against the official SDK's own types."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response

from chatgate.errors import InvalidRequestError
from chatgate.protocol.responses import chat_body, new_id, parse_request, to_messages
from chatgate.protocol.responses_render import render, usage_of


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "input": "hi", **fields}


def test_a_string_input_is_one_user_message() -> None:
    req = parse_request(body(instructions="Be brief."))
    assert req.store and not req.stream and req.previous_response_id is None
    assert chat_body(req) == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    }


def test_sampling_limits_format_and_effort_are_translated() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = parse_request(
        body(
            stream=True,
            temperature=0.2,
            top_p=0.9,
            max_output_tokens=64,
            user="u1",
            metadata={"k": "v"},
            text={
                "format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}
            },
            reasoning={"effort": "high", "summary": "auto"},
        )
    )
    chat = chat_body(req)
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert (chat["temperature"], chat["top_p"], chat["max_tokens"]) == (0.2, 0.9, 64)
    assert chat["user"] == "u1" and "metadata" not in chat
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": schema, "strict": True},
    }
    assert chat["reasoning_effort"] == "high"
    json_object = chat_body(parse_request(body(text={"format": {"type": "json_object"}})))
    assert json_object["response_format"] == {"type": "json_object"}
    assert "response_format" not in chat_body(
        parse_request(body(text={"format": {"type": "text"}}))
    )


def test_function_tools_and_tool_choice() -> None:
    tools = [
        {"type": "function", "name": "a", "parameters": {"type": "object"}, "strict": True},
        {"type": "function", "name": "b", "description": "B", "parameters": None, "strict": None},
    ]
    chat = chat_body(
        parse_request(
            body(
                tools=tools,
                parallel_tool_calls=False,
                tool_choice={"type": "function", "name": "a"},
            )
        )
    )
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "a", "parameters": {"type": "object"}, "strict": True},
        },
        {"type": "function", "function": {"name": "b", "description": "B"}},
    ]
    assert chat["parallel_tool_calls"] is False
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "a"}}
    allowed = {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "function", "name": "b"}],
    }
    chat = chat_body(parse_request(body(tools=tools, tool_choice=allowed)))
    assert chat["tool_choice"] == "required" and [t["function"]["name"] for t in chat["tools"]] == [
        "b"
    ]
    assert chat_body(parse_request(body(tool_choice="none")))["tool_choice"] == "none"


def test_hosted_tools_are_refused_not_dropped() -> None:
    with pytest.raises(InvalidRequestError) as err:
        chat_body(parse_request(body(tools=[{"type": "web_search"}])))
    assert err.value.param == "tools[0].type"


def test_items_become_one_chat_turn_each() -> None:
    items = [
        {"role": "developer", "content": "Rules."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is"},
                {"type": "input_text", "text": "the weather?"},
            ],
        },
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "Think."}],
        },
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
        },
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {
            "type": "function_call_output",
            "call_id": "c2",
            "output": [{"type": "input_text", "text": "noon"}],
        },
        {"type": "reasoning", "id": "rs_2", "summary": [{"type": "summary_text", "text": "Sum."}]},
        {"type": "function_call", "call_id": "c3", "name": "weather", "arguments": '{"x":1}'},
    ]
    assert to_messages(items, "input") == [
        {"role": "system", "content": "Rules."},
        {"role": "user", "content": "What is\nthe weather?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "reasoning_content": "Think.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": "{}"},
                },
                {"id": "c2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "noon"},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "Sum.",
            "tool_calls": [
                {
                    "id": "c3",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"x":1}'},
                }
            ],
        },
    ]


def test_images_and_files_keep_their_parts() -> None:
    content = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
        {"type": "input_file", "file_data": "data:application/pdf;base64,AA", "filename": "a.pdf"},
    ]
    [msg] = to_messages([{"role": "user", "content": content}], "input")
    assert msg["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,AA", "filename": "a.pdf"},
        },
    ]
    with pytest.raises(InvalidRequestError):
        to_messages(
            [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}], "input"
        )


def test_history_comes_before_the_new_input() -> None:
    history = [
        {"type": "message", "role": "user", "content": "one"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "1"}]},
    ]
    req = parse_request({"model": "m", "input": "two", "previous_response_id": "resp_x"})
    assert [m["content"] for m in chat_body(req, history)["messages"]] == ["one", "1", "two"]


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ([], None),
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
        ({"model": "m", "input": "x", "temperature": "hot"}, "temperature"),
        ({"model": "m", "input": "x", "max_output_tokens": 1.5}, "max_output_tokens"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0]"),
        (
            {"model": "m", "input": [{"type": "function_call_output", "output": "x"}]},
            "input[0].call_id",
        ),
    ],
)
def test_bad_requests_name_the_field(data: Any, param: str | None) -> None:
    with pytest.raises(InvalidRequestError) as err:
        chat_body(parse_request(data))
    assert err.value.param == param
    assert err.value.status == 400


def completion(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    }


def test_a_whole_answer_renders_as_the_sdk_reads_it() -> None:
    rid = new_id()
    req = parse_request(body(metadata={"a": "b"}, temperature=0.5))
    obj = render(req, rid, completion({"content": "Hello.", "reasoning_content": "Greet."}))
    response = Response.model_validate(obj)
    assert response.id == rid and response.status == "completed"
    assert response.output_text == "Hello."
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].content[0].text == "Greet."  # type: ignore[union-attr, index]
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (10, 5)
    assert response.usage.input_tokens_details.cached_tokens == 4
    assert response.usage.output_tokens_details.reasoning_tokens == 2
    assert response.metadata == {"a": "b"} and response.temperature == 0.5
    assert len({item.id for item in response.output}) == 2


def test_a_summary_asked_for_is_the_reasoning_itself() -> None:
    req = parse_request(body(reasoning={"summary": "detailed"}))
    obj = render(req, new_id(), completion({"content": "Hi.", "reasoning_content": "Why."}))
    item = Response.model_validate(obj).output[0]
    assert item.type == "reasoning" and [s.text for s in item.summary] == ["Why."]
    plain = render(parse_request(body()), new_id(), completion({"reasoning_content": "Why."}))
    assert plain["output"][0]["summary"] == []


def test_tool_calls_render_as_function_call_items() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
        {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": '{"x":1}'}},
    ]
    obj = render(
        parse_request(body()),
        new_id(),
        completion({"content": None, "tool_calls": calls}, "tool_calls"),
    )
    response = Response.model_validate(obj)
    assert [(i.type, i.call_id, i.name) for i in response.output] == [  # type: ignore[union-attr]
        ("function_call", "call_1", "a"),
        ("function_call", "call_2", "b"),
    ]
    assert response.output_text == ""


def test_a_cut_answer_is_incomplete() -> None:
    obj = render(parse_request(body()), new_id(), completion({"content": "Hel"}, "length"))
    response = Response.model_validate(obj)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_deepseek_cache_hits_count_as_cached_tokens() -> None:
    usage = usage_of({"prompt_tokens": 9, "completion_tokens": 1, "prompt_cache_hit_tokens": 8})
    assert usage is not None and usage["input_tokens_details"]["cached_tokens"] == 8
    assert usage["total_tokens"] == 10
    assert usage_of(None) is None
