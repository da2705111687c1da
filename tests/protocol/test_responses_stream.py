"""The Responses stream: chat chunks in, events out — each event validated against the official
SDK's types and accumulated by the SDK's own stream state into the final response."""

from __future__ import annotations

from typing import Any

import orjson
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from chatgate.errors import UpstreamError
from chatgate.protocol.responses import new_id, parse_request
from chatgate.protocol.responses_render import skeleton
from chatgate.protocol.responses_stream import ResponseStream

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": choices,
        **extra,
    }


def parse(raw: bytes) -> list[dict[str, Any]]:
    """The events of an SSE body, checking that each ``event:`` line names its data's type."""
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n")
        payload = orjson.loads(data.removeprefix("data: "))
        assert name == "event: " + payload["type"]
        out.append(payload)
    return out


def run(
    batches: list[list[dict[str, Any]]], **fields: Any
) -> tuple[list[dict[str, Any]], ResponseStream]:
    req = parse_request({"model": "m", "input": "hi", "stream": True, **fields})
    stream = ResponseStream(skeleton(req, new_id(), 1700000000))
    raw = stream.start() + b"".join(stream.feed(b) for b in batches) + stream.close()
    return parse(raw + stream.completed()), stream


def accumulate(events: list[dict[str, Any]]) -> Response:
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for i, data in enumerate(events):
        assert data["sequence_number"] == i
        state.handle_event(EVENTS.validate_python(data))
    final = state._completed_response
    assert final is not None
    return final


USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_text_with_reasoning_streams_in_the_sdk_order() -> None:
    events, _ = run(
        [
            [
                chunk({"role": "assistant", "reasoning_content": "Let me "}),
                chunk({"reasoning_content": "think."}),
            ],
            [chunk({"content": "Hel"}), chunk({"content": "lo."})],
            [chunk({}, "stop"), chunk(usage=USAGE)],
        ]
    )
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = accumulate(events)
    assert final.status == "completed" and final.output_text == "Hello."
    assert final.output[0].type == "reasoning"
    assert final.output[0].content[0].text == "Let me think."  # type: ignore[union-attr, index]
    assert final.usage is not None and final.usage.total_tokens == 7
    assert (
        events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    )


def test_reasoning_is_its_own_summary_when_one_is_asked_for() -> None:
    events, _ = run(
        [
            [chunk({"reasoning_content": "Let me "}), chunk({"reasoning_content": "think."})],
            [chunk({"content": "Hi."}, "stop"), chunk(usage=USAGE)],
        ],
        reasoning={"effort": "high", "summary": "auto"},
    )
    kinds = [e["type"] for e in events]
    assert kinds[2:13] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.reasoning_text.done",
        "response.content_part.done",
    ]
    final = accumulate(events)
    item = final.output[0]
    assert item.type == "reasoning" and item.summary[0].text == "Let me think."
    assert final.reasoning is not None and final.reasoning.summary == "auto"


def test_tool_calls_stream_their_arguments() -> None:
    first = {
        "index": 0,
        "id": "call_a",
        "type": "function",
        "function": {"name": "f", "arguments": '{"x"'},
    }
    events, _ = run(
        [
            [chunk({"role": "assistant", "content": None, "tool_calls": [first]})],
            [chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]})],
            [
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 1,
                                "id": "call_b",
                                "function": {"name": "g", "arguments": "{}"},
                            }
                        ]
                    }
                )
            ],
            [chunk({}, "tool_calls"), chunk(usage=USAGE)],
        ]
    )
    kinds = [e["type"] for e in events]
    assert kinds.count("response.function_call_arguments.delta") == 3
    assert kinds.count("response.function_call_arguments.done") == 2
    final = accumulate(events)
    calls = [(i.call_id, i.name, i.arguments) for i in final.output]  # type: ignore[union-attr]
    assert calls == [("call_a", "f", '{"x":1}'), ("call_b", "g", "{}")]
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert done[0]["arguments"] == '{"x":1}'


def test_a_length_cut_ends_incomplete() -> None:
    events, _ = run([[chunk({"content": "abc"}, "length"), chunk(usage=USAGE)]])
    assert events[-1]["type"] == "response.incomplete"
    response = Response.model_validate(events[-1]["response"])
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"  # type: ignore[union-attr]


def test_a_failure_after_the_start_is_an_error_then_response_failed() -> None:
    req = parse_request({"model": "m", "input": "hi", "stream": True})
    stream = ResponseStream(skeleton(req, new_id(), 1))
    raw = stream.start() + stream.feed([chunk({"content": "par"})])
    raw += stream.failed(UpstreamError("upstream stream ended before the answer finished"))
    events = parse(raw)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    for data in events:
        EVENTS.validate_python(data)
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
