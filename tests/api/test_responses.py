"""/v1/responses through chatgate to the fake upstream, with the official openai SDK's
``responses`` resource as the client: whole and streamed answers, a function-tool round trip,
``previous_response_id``, retrieve, input items and delete, and whose a stored response is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from chatgate.app import create_app
from tests.conftest import FAKE_CONTENT, gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

TOOLS: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": False,
    }
]


def upstream_body(fake: FakeUpstream) -> dict[str, Any]:
    """The body chatgate sent upstream last."""
    chats = [r for r in fake.requests if r["path"] == "/v1/chat/completions"]
    body: dict[str, Any] = chats[-1]["body"]
    return body


def test_a_whole_response(client: openai.OpenAI, fake: FakeUpstream) -> None:
    resp = client.responses.create(model="fake-model", input="hello", instructions="Be brief.")
    assert resp.id.startswith("resp_") and resp.object == "response"
    assert resp.status == "completed" and resp.model == "fake-model"
    assert resp.output_text == FAKE_CONTENT
    assert resp.usage is not None and resp.usage.output_tokens == 24
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert upstream_body(fake)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
    ]


def test_a_streamed_response_through_the_sdk_helper(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    with client.responses.stream(model="fake-model", input="hello") as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == FAKE_CONTENT and len(deltas) == 24
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert final.output_text == FAKE_CONTENT and final.status == "completed"
    assert final.usage is not None and final.usage.output_tokens == 24
    assert upstream_body(fake)["stream"] is True


def test_raw_stream_events(client: openai.OpenAI, fake: FakeUpstream) -> None:
    kinds = [e.type for e in client.responses.create(model="fake-model", input="hi", stream=True)]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_reasoning_becomes_a_reasoning_item(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(reasoning="Let me think about it.")
    resp = client.responses.create(model="fake-model", input="hi")
    assert [item.type for item in resp.output] == ["reasoning", "message"]
    assert resp.output[0].content[0].text == "Let me think about it."  # type: ignore[union-attr, index]
    assert resp.output_text == FAKE_CONTENT
    with client.responses.stream(model="fake-model", input="hi") as stream:
        events = list(stream)
    thought = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert thought == "Let me think about it."
    assert stream.get_final_response().output[0].type == "reasoning"
    assert not any(e.type.startswith("response.reasoning_summary") for e in events)
    with client.responses.stream(
        model="fake-model", input="hi", reasoning={"summary": "auto"}
    ) as stream:
        summary = "".join(
            e.delta for e in stream if e.type == "response.reasoning_summary_text.delta"
        )
    assert summary == "Let me think about it."  # the reasoning itself: Codex shows summaries


def test_think_tags_of_a_distilled_model_become_reasoning(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.configure(content="<think>Hmm.</think>Answer.")
    resp = client.responses.create(model="fake-model", input="hi")
    assert resp.output[0].type == "reasoning" and resp.output_text == "Answer."


@pytest.mark.parametrize("stream", [False, True])
def test_a_function_tool_round_trip(
    client: openai.OpenAI, fake: FakeUpstream, stream: bool
) -> None:
    fake.configure(tool_call="once")

    def create(**kw: Any) -> Any:
        if not stream:
            return client.responses.create(model="fake-model", tools=TOOLS, **kw)
        with client.responses.stream(model="fake-model", tools=TOOLS, **kw) as s:
            list(s)
            return s.get_final_response()

    first = create(input="Weather in Paris?", parallel_tool_calls=False)
    [call] = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    sent = upstream_body(fake)
    assert sent["tools"] == [
        {"type": "function", "function": {k: v for k, v in TOOLS[0].items() if k != "type"}}
    ]
    assert sent["parallel_tool_calls"] is False
    second = create(
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert second.output_text == FAKE_CONTENT
    messages = upstream_body(fake)["messages"]
    assert messages[0] == {"role": "user", "content": "Weather in Paris?"}
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}


def test_a_stateless_round_trip_sends_the_output_back(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    """As Codex does: ``store: false`` and the whole conversation every time."""
    fake.configure(tool_call="once")
    history: list[Any] = [{"role": "user", "content": "Weather?"}]
    first = client.responses.create(model="fake-model", input=history, tools=TOOLS, store=False)
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append(
        {"type": "function_call_output", "call_id": first.output[0].call_id, "output": "rain"}
    )  # type: ignore[union-attr]
    second = client.responses.create(model="fake-model", input=history, tools=TOOLS, store=False)
    assert second.output_text == FAKE_CONTENT
    assert [m["role"] for m in upstream_body(fake)["messages"]] == ["user", "assistant", "tool"]
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_previous_response_id_chains_turns(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(content="Hello, Ann.")
    first = client.responses.create(model="fake-model", input="I am Ann.", instructions="Old.")
    second = client.responses.create(
        model="fake-model", previous_response_id=first.id, input="Who am I?", instructions="New."
    )
    assert second.previous_response_id == first.id
    third = client.responses.create(
        model="fake-model", previous_response_id=second.id, input="Again?"
    )
    assert third.status == "completed"
    assert upstream_body(fake)["messages"] == [  # instructions are not carried over
        {"role": "user", "content": "I am Ann."},
        {"role": "assistant", "content": "Hello, Ann."},
        {"role": "user", "content": "Who am I?"},
        {"role": "assistant", "content": "Hello, Ann."},
        {"role": "user", "content": "Again?"},
    ]
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="fake-model", previous_response_id="resp_nope", input="x")
    assert err.value.code == "previous_response_not_found"


def test_retrieve_list_input_items_and_delete(client: openai.OpenAI, fake: FakeUpstream) -> None:
    first = client.responses.create(model="fake-model", input="one", metadata={"run": "7"})
    resp = client.responses.create(
        model="fake-model",
        previous_response_id=first.id,
        input=[{"role": "user", "content": "two"}],
    )
    got = client.responses.retrieve(resp.id)
    assert got.id == resp.id and got.output_text == resp.output_text
    assert client.responses.retrieve(first.id).metadata == {"run": "7"}
    items = client.responses.input_items.list(resp.id, order="asc")
    assert [i.type for i in items.data] == ["message", "message", "message"]
    assert [i.role for i in items.data] == ["user", "assistant", "user"]  # type: ignore[union-attr]
    assert items.data[0].content[0].text == "one"  # type: ignore[union-attr, index]
    assert len({i.id for i in items.data}) == 3
    page = client.responses.input_items.list(resp.id, limit=1)
    assert [i.id for i in page.data] == [items.data[-1].id] and page.has_more
    client.responses.delete(resp.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(resp.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(resp.id)
    assert client.responses.retrieve(first.id).id == first.id  # the earlier one is its own
    unstored = client.responses.create(model="fake-model", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_translated_fields_reach_the_upstream(client: openai.OpenAI, fake: FakeUpstream) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    client.responses.create(
        model="fake-model",
        input="x",
        max_output_tokens=33,
        temperature=0.3,
        top_p=0.8,
        user="alice",
        reasoning={"effort": "low"},
        text={"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}},
        tools=TOOLS,
        tool_choice={"type": "function", "name": "get_weather"},
    )
    sent = upstream_body(fake)
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"], sent["user"]) == (
        33,
        0.3,
        0.8,
        "alice",
    )
    assert sent["reasoning_effort"] == "low"
    assert sent["response_format"]["json_schema"]["schema"] == schema
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    for field in ("input", "store", "instructions", "max_output_tokens", "text", "reasoning"):
        assert field not in sent


def test_errors_come_in_openai_shape(
    client: openai.OpenAI, gateway_url: str, fake: FakeUpstream
) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model="no-such-model", input="x")
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="fake-model", input="x", tools=[{"type": "web_search"}])
    assert bad.value.param == "tools[0].type"
    resp = httpx.post(
        gateway_url + "/v1/responses", content=b"{", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400 and set(resp.json()) == {"error"}
    fake.configure(status=503)
    with pytest.raises(openai.APIStatusError) as upstream:
        client.responses.create(model="fake-model", input="x", stream=True)
    assert upstream.value.status_code == 502


def test_a_failure_mid_stream_ends_with_response_failed(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.configure(error_event_after=3)
    events = list(client.responses.create(model="fake-model", input="x", stream=True))
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1].response.status == "failed"  # type: ignore[union-attr]
    assert events[-1].response.error is not None  # type: ignore[union-attr]


def test_cache_and_reasoning_headers_apply(gateway_url: str, fake: FakeUpstream) -> None:
    fake.configure(reasoning="Hidden.")
    headers = {"X-Chatgate-Reasoning": "strip"}
    body = {"model": "fake-model", "input": "x"}
    resp = httpx.post(gateway_url + "/v1/responses", json=body, headers=headers)
    assert resp.status_code == 200 and resp.headers["x-chatgate-cache"] == "bypass"
    assert [item["type"] for item in resp.json()["output"]] == ["message"]
    assert resp.headers["x-request-id"]


def test_the_door_is_documented(gateway_url: str) -> None:
    paths = httpx.get(gateway_url + "/openapi.json").json()["paths"]
    create = paths["/v1/responses"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["required"] == ["model"]
    assert "text/event-stream" in create["responses"]["200"]["content"]
    assert {"get", "delete"} <= set(paths["/v1/responses/{response_id}"])
    assert "get" in paths["/v1/responses/{response_id}/input_items"]


# -- whose a stored response is ------------------------------------------------------------------
ADMIN = "admin-key-for-responses-tests"


@pytest.fixture(scope="module")
def keyed_url(fake_server: FakeUpstream) -> Iterator[str]:
    config = gateway_config(fake_server.base_url, auth={"admin_key": ADMIN, "key_cache_ttl": 0})
    with ServerThread(create_app(config)) as url:
        yield url


def new_key(url: str) -> str:
    resp = httpx.post(
        url + "/admin/keys", json={"name": "r"}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert resp.status_code == 201, resp.text
    secret: str = resp.json()["key"]
    return secret


def test_a_stored_response_is_its_keys_alone(keyed_url: str, fake: FakeUpstream) -> None:
    def sdk(key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=keyed_url + "/v1", api_key=key, max_retries=0)

    mine, theirs, anonymous = sdk(new_key(keyed_url)), sdk(new_key(keyed_url)), sdk("unknown")
    resp = mine.responses.create(model="fake-model", input="secret")
    assert mine.responses.retrieve(resp.id).id == resp.id
    for other in (theirs, anonymous):
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(resp.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.input_items.list(resp.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(resp.id)
        with pytest.raises(openai.BadRequestError):
            other.responses.create(model="fake-model", previous_response_id=resp.id, input="x")
    assert mine.responses.retrieve(resp.id).id == resp.id  # still there
    shared = anonymous.responses.create(model="fake-model", input="open")
    assert sdk("also-unknown").responses.retrieve(shared.id).id == shared.id
