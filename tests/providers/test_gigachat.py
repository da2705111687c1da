"""GigaChatProvider against the fake upstream over real HTTP: OAuth tokens, 401 refresh, mapping."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from chatgate.errors import UpstreamError
from chatgate.providers.base import Provider
from chatgate.providers.gigachat import (
    GigaChatConfig,
    GigaChatProvider,
    _expiry,
    to_gigachat,
    to_openai,
)
from tests.fakes.upstream import FakeUpstream

OAUTH = "/api/v2/oauth"
CHAT = "/api/v1/chat/completions"
MODELS = "/api/v1/models"
HELLO = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with FakeUpstream(chunks=4) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeUpstream) -> FakeUpstream:
    server.reset()
    server.revoke_gigachat_tokens()
    return server


@asynccontextmanager
async def gigachat(fake: FakeUpstream, **overrides: Any) -> AsyncIterator[GigaChatProvider]:
    fields: dict[str, Any] = {
        "type": "gigachat",
        "base_url": fake.base_url + "/api/v1",
        "auth_url": fake.base_url + OAUTH,
        "credentials": SecretStr(fake.gigachat_credentials),
        **overrides,
    }
    provider = GigaChatProvider("gigachat", GigaChatConfig(**fields))
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


def oauth_requests(fake: FakeUpstream) -> list[dict[str, Any]]:
    return [r for r in fake.requests if r["path"] == OAUTH]


async def test_is_a_provider(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        assert isinstance(provider, Provider)


async def test_chat_is_openai_shaped(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        result = await provider.chat(HELLO, "GigaChat")
    assert result["object"] == "chat.completion"
    assert result["id"] and isinstance(result["created"], int)
    choice = result["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "tok0 tok1 tok2 tok3 "}
    assert choice["finish_reason"] == "stop"
    assert result["usage"]["total_tokens"] > 0
    [chat] = [r for r in fake.requests if r["path"] == CHAT]
    assert chat["body"]["model"] == "GigaChat" and chat["body"]["stream"] is False
    assert chat["headers"]["Authorization"].startswith("Bearer fake-giga-")


async def test_oauth_request_as_sber_documents_it(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        await provider.chat(HELLO, "GigaChat")
    [oauth] = oauth_requests(fake)
    headers = oauth["headers"]
    assert headers["Authorization"] == "Basic " + fake.gigachat_credentials
    assert uuid.UUID(headers["RqUID"]).version == 4
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["Accept"] == "application/json"
    assert oauth["body"] == {"scope": "GIGACHAT_API_PERS"}


async def test_configured_scope_is_sent(fake: FakeUpstream) -> None:
    async with gigachat(fake, scope="GIGACHAT_API_CORP") as provider:
        await provider.chat(HELLO, "GigaChat")
    assert [r["body"] for r in oauth_requests(fake)] == [{"scope": "GIGACHAT_API_CORP"}]


async def test_concurrent_calls_share_one_token_fetch(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        results = await asyncio.gather(*(provider.chat(HELLO, "GigaChat") for _ in range(50)))
        assert len(results) == 50
        assert fake.count(OAUTH) == 1
        assert fake.count(CHAT) == 50
        await provider.chat(HELLO, "GigaChat")  # and the token is cached afterwards
    assert fake.count(OAUTH) == 1
    tokens = {r["headers"]["Authorization"] for r in fake.requests if r["path"] == CHAT}
    assert len(tokens) == 1


async def test_rquid_is_a_fresh_uuid4_per_oauth_call(fake: FakeUpstream) -> None:
    for _ in range(3):
        async with gigachat(fake) as provider:
            await provider.chat(HELLO, "GigaChat")
    rquids = [r["headers"]["RqUID"] for r in oauth_requests(fake)]
    assert len(rquids) == 3 and len(set(rquids)) == 3
    assert all(uuid.UUID(q).version == 4 for q in rquids)


async def renewed_token(provider: GigaChatProvider, old: str) -> str:
    """The token once the renewal running behind the callers' backs has landed."""
    for _ in range(200):
        if (token := await provider.access_token()) != old:
            return token
        await asyncio.sleep(0.01)
    return old


async def test_token_renewed_before_it_expires_without_waiting(fake: FakeUpstream) -> None:
    # 61.2 s of life with the provider's 60 s margin: fresh for ~1.2 s, then renewed while the
    # old token still works, behind the callers' backs (they keep the old one meanwhile).
    fake.configure(gigachat_token_ttl_s=61.2)
    async with gigachat(fake) as provider:
        assert provider.token_margin_s == 60.0
        first = await provider.access_token()
        await provider.chat(HELLO, "GigaChat")
        assert fake.count(OAUTH) == 1
        await asyncio.sleep(1.4)
        tokens = await asyncio.gather(*(provider.access_token() for _ in range(20)))
        assert set(tokens) == {first}  # nobody waited for the renewal
        renewed = await renewed_token(provider, first)
        assert renewed != first
        assert fake.count(OAUTH) == 2  # one renewal for all twenty (and the polls)
        await provider.chat(HELLO, "GigaChat")
        assert fake.count(OAUTH) == 2
    sent = [r["headers"]["Authorization"] for r in fake.requests if r["path"] == CHAT]
    assert sent == ["Bearer " + first, "Bearer " + renewed]  # never a 401


async def test_expired_token_is_waited_for(fake: FakeUpstream) -> None:
    fake.configure(gigachat_token_ttl_s=1)  # inside the margin and the grace from the start
    async with gigachat(fake) as provider:
        first = await provider.access_token()
        second = await provider.access_token()
        assert first != second and fake.count(OAUTH) == 2
        await provider.chat(HELLO, "GigaChat")
    assert fake.count(CHAT) == 1  # the token sent was a fresh one: no 401


def test_expiry_in_milliseconds_seconds_or_expires_in() -> None:
    assert _expiry({"expires_at": 1_900_000_000_000}) == 1_900_000_000.0
    assert _expiry({"expires_at": 1_900_000_000}) == 1_900_000_000.0
    assert abs(_expiry({"expires_in": 600}) - (time.time() + 600)) < 5
    assert abs(_expiry({}) - (time.time() + 1800)) < 5


async def test_revoked_token_is_refreshed_once_and_call_retried(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        await provider.chat(HELLO, "GigaChat")
        fake.revoke_gigachat_tokens()
        result = await provider.chat(HELLO, "GigaChat")
    assert result["choices"][0]["message"]["content"] == "tok0 tok1 tok2 tok3 "
    assert fake.count(OAUTH) == 2
    assert fake.count(CHAT) == 3  # ok, 401, retried ok


async def test_concurrent_401s_share_one_refresh(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        await provider.chat(HELLO, "GigaChat")
        fake.revoke_gigachat_tokens()
        await asyncio.gather(*(provider.chat(HELLO, "GigaChat") for _ in range(20)))
    assert fake.count(OAUTH) == 2


async def test_second_401_is_the_upstream_error(fake: FakeUpstream) -> None:
    fake.configure(status=401)  # the chat API refuses even a fresh token
    async with gigachat(fake) as provider:
        with pytest.raises(UpstreamError) as info:
            await provider.chat(HELLO, "GigaChat")
    assert info.value.upstream_status == 401
    assert fake.count(OAUTH) == 2
    assert fake.count(CHAT) == 2


async def test_bad_credentials_error_hides_them(fake: FakeUpstream) -> None:
    secret = "d3JvbmctaWQ6d3Jvbmctc2VjcmV0"
    async with gigachat(fake, credentials=SecretStr(secret)) as provider:
        assert secret in provider.secrets()
        calls = [provider.chat(HELLO, "GigaChat") for _ in range(10)]
        errors = await asyncio.gather(*calls, return_exceptions=True)
        assert fake.count(OAUTH) == 1  # the waiters shared the one failed fetch
        with pytest.raises(UpstreamError):
            await provider.chat(HELLO, "GigaChat")  # a failure is not cached
        assert fake.count(OAUTH) == 2
    for err in errors:
        assert isinstance(err, UpstreamError)
        assert err.upstream_status == 401
        assert "authorization failed" in err.message
        assert secret not in err.message and secret not in str(err)
    assert fake.count(CHAT) == 0


async def test_bad_scope_is_an_auth_failure_not_a_client_error(fake: FakeUpstream) -> None:
    async with gigachat(fake, scope="NO_SUCH_SCOPE") as provider:
        with pytest.raises(UpstreamError) as info:
            await provider.chat(HELLO, "GigaChat")
    assert info.value.upstream_status == 401  # the oauth 400 must not become the client's 400
    assert "scope" in info.value.message


async def test_stream(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        chunks = [c async for b in provider.stream(HELLO, "GigaChat") for c in b]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "tok0 tok1 tok2 tok3 "
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    [chat] = [r for r in fake.requests if r["path"] == CHAT]
    assert chat["body"]["stream"] is True
    assert chat["headers"]["Accept"] == "text/event-stream"


async def test_stream_after_revoked_token_refreshes_once(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        await provider.chat(HELLO, "GigaChat")
        fake.revoke_gigachat_tokens()
        chunks = [c async for b in provider.stream(HELLO, "GigaChat") for c in b]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert fake.count(OAUTH) == 2 and fake.count(CHAT) == 3


async def test_stream_second_401_raises(fake: FakeUpstream) -> None:
    fake.configure(status=401)
    async with gigachat(fake) as provider:
        with pytest.raises(UpstreamError) as info:
            _ = [c async for b in provider.stream(HELLO, "GigaChat") for c in b]
    assert info.value.upstream_status == 401
    assert fake.count(OAUTH) == 2 and fake.count(CHAT) == 2


async def test_list_models(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        assert await provider.list_models() == ["GigaChat", "GigaChat-Pro"]
        fake.revoke_gigachat_tokens()
        assert await provider.list_models() == ["GigaChat", "GigaChat-Pro"]
    models = [r for r in fake.requests if r["path"] == MODELS]
    assert len(models) == 3 and fake.count(OAUTH) == 2
    assert models[0]["headers"]["Authorization"].startswith("Bearer ")


async def test_token_is_a_secret(fake: FakeUpstream) -> None:
    async with gigachat(fake) as provider:
        token = await provider.access_token()
        assert token in provider.secrets()
        assert fake.gigachat_credentials in provider.secrets()


async def test_request_translated_on_the_wire(fake: FakeUpstream) -> None:
    body = {
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "weather "}, "in Moscow?"]},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {}}}],
        "tool_choice": "required",
        "stream_options": {"include_usage": True},
        "seed": 1,
        "stop": ["\n"],
        "max_completion_tokens": 64,
        "temperature": 0.5,
        "repetition_penalty": 1.1,
    }
    async with gigachat(fake) as provider:
        await provider.chat(body, "GigaChat-Pro")
    [chat] = [r for r in fake.requests if r["path"] == CHAT]
    sent = chat["body"]
    for dropped in ("tools", "tool_choice", "stream_options", "seed", "stop"):
        assert dropped not in sent
    assert sent["functions"] == [{"name": "weather", "parameters": {}}]
    assert sent["function_call"] == {"name": "weather"}  # "required" with one function
    assert sent["max_tokens"] == 64 and "max_completion_tokens" not in sent
    assert sent["temperature"] == 0.5 and sent["repetition_penalty"] == 1.1
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather in Moscow?"},
    ]


def test_tool_history_becomes_function_messages() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Moscow"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"t": 20}'},
        ],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
    }
    out = to_gigachat(body, "GigaChat", stream=False)
    assert out["function_call"] == {"name": "weather"}
    assert out["messages"][1] == {
        "role": "assistant",
        "content": "",
        "function_call": {"name": "weather", "arguments": {"city": "Moscow"}},
    }
    assert out["messages"][2] == {
        "role": "function",
        "name": "weather",
        "content": '{"result":"sunny"}',
    }
    assert out["messages"][3]["content"] == '{"t": 20}'


def test_gigachat_function_call_answer_becomes_tool_calls() -> None:
    answer = {  # as GigaChat sends it: no id, arguments as an object
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "",
                    "function_call": {"name": "weather", "arguments": {"city": "Moscow"}},
                },
                "finish_reason": "function_call",
            }
        ],
        "created": 1700000000,
        "model": "GigaChat:1.0",
        "object": "chat.completion",
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }
    out = to_openai(answer, "GigaChat", "chat.completion", "chatcmpl-x")
    assert out["id"] == "chatcmpl-x"
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None and "function_call" not in message
    [call] = message["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "weather", "arguments": '{"city":"Moscow"}'}


def test_gigachat_chunks_become_openai_chunks() -> None:
    chunk = {  # GigaChat labels stream chunks "chat.completion" and sends no id
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": "", "function_call": {"name": "f"}},
                "finish_reason": "function_call",
            }
        ],
        "created": 1700000000,
        "model": "GigaChat",
        "object": "chat.completion",
    }
    out = to_openai(chunk, "GigaChat", "chat.completion.chunk", "chatcmpl-y")
    assert out["object"] == "chat.completion.chunk" and out["id"] == "chatcmpl-y"
    [call] = out["choices"][0]["delta"]["tool_calls"]
    assert call["index"] == 0 and call["function"] == {"name": "f", "arguments": "{}"}
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    blocked = {"choices": [{"index": 0, "delta": {}, "finish_reason": "blacklist"}]}
    out = to_openai(blocked, "GigaChat", "chat.completion.chunk", "chatcmpl-z")
    assert out["choices"][0]["finish_reason"] == "content_filter"
    assert out["model"] == "GigaChat"


WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ASK = {"role": "user", "content": "Weather in Moscow?"}


def chat_bodies(fake: FakeUpstream) -> list[dict[str, Any]]:
    return [r["body"] for r in fake.requests if r["path"] == CHAT]


async def test_function_round_trip_hands_the_state_back(fake: FakeUpstream) -> None:
    fake.configure(tool_call="once", tool_arguments='{"city": "Moscow"}')
    async with gigachat(fake) as provider:
        first = await provider.chat({"messages": [ASK], "tools": [WEATHER]}, "GigaChat")
        message = first["choices"][0]["message"]
        assert first["choices"][0]["finish_reason"] == "tool_calls"
        [call] = message["tool_calls"]
        assert call["function"] == {"name": "weather", "arguments": '{"city":"Moscow"}'}
        result = {"role": "tool", "tool_call_id": call["id"], "content": "-3 and snowing"}
        body = {"messages": [ASK, message, result], "tools": [WEATHER]}
        second = await provider.chat(body, "GigaChat")
    assert second["choices"][0]["message"]["content"] == "tok0 tok1 tok2 tok3 "
    sent = chat_bodies(fake)
    assert [b.get("functions") for b in sent] == [[WEATHER["function"]]] * 2
    [issued] = fake.server.function_states
    assert call["id"] == "call_" + issued  # the call's id carries GigaChat's functions_state_id
    assert sent[1]["messages"][1:] == [
        {
            "role": "assistant",
            "content": "",
            "function_call": {"name": "weather", "arguments": {"city": "Moscow"}},
            "functions_state_id": issued,
        },
        {"role": "function", "name": "weather", "content": '{"result":"-3 and snowing"}'},
    ]


async def test_streamed_function_call_becomes_a_tool_call_delta(fake: FakeUpstream) -> None:
    fake.configure(tool_call=True, tool_arguments='{"city": "Moscow"}')
    body = {"messages": [ASK], "tools": [WEATHER], "tool_choice": "auto"}
    async with gigachat(fake) as provider:
        chunks = [c async for b in provider.stream(body, "GigaChat") for c in b]
    [[call]] = [c["choices"][0]["delta"]["tool_calls"] for c in chunks if c["choices"]]
    assert call["index"] == 0 and call["type"] == "function"
    assert call["id"] == "call_" + next(iter(fake.server.function_states))
    assert call["function"] == {"name": "weather", "arguments": '{"city":"Moscow"}'}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["total_tokens"] > 0
    assert all(c["object"] == "chat.completion.chunk" and c["id"] for c in chunks)


async def test_openai_dialect_is_refused_by_the_fake(fake: FakeUpstream) -> None:
    """The fake holds the provider to GigaChat's dialect: OpenAI's tool fields are a 422."""
    async with gigachat(fake) as provider:
        token = await provider.access_token()
    raw = {"model": "GigaChat", "messages": [ASK], "tools": [WEATHER]}
    auth = {"Authorization": "Bearer " + token}
    async with httpx.AsyncClient() as http:
        resp = await http.post(fake.base_url + CHAT, json=raw, headers=auth)
    assert resp.status_code == 422 and "tools" in resp.text


def test_several_tool_calls_become_one_function_call_each() -> None:
    calls = [
        {"id": f"call_{n}", "type": "function", "function": {"name": n, "arguments": "{}"}}
        for n in ("a", "b")
    ]
    body = {
        "messages": [
            ASK,
            {"role": "assistant", "content": "Looking.", "tool_calls": calls},
            {"role": "tool", "tool_call_id": "call_b", "content": '{"b": 2}'},
            {"role": "tool", "tool_call_id": "call_a", "content": '{"a": 1}'},
            {"role": "user", "content": "and?"},
        ]
    }
    out = to_gigachat(body, "GigaChat", stream=False)["messages"]
    assert [(m["role"], m.get("name") or m["function_call"]["name"]) for m in out[1:5]] == [
        ("assistant", "a"),
        ("function", "a"),
        ("assistant", "b"),
        ("function", "b"),
    ]
    assert out[1]["content"] == "Looking." and out[3]["content"] == ""
    assert out[2]["content"] == '{"a": 1}' and out[4]["content"] == '{"b": 2}'
    assert out[5] == {"role": "user", "content": "and?"}
    assert all("functions_state_id" not in m for m in out)  # ids that carry no state


async def test_listed_embedders_are_embeddings_models(fake: FakeUpstream) -> None:
    fake.configure(gigachat_embedders=["Embeddings", "EmbeddingsGigaR"])
    async with gigachat(fake) as provider:
        models = await provider.list_models()
        kinds = {m: provider.model_kind(m) for m in models}
        vectors = await provider.embeddings({"input": ["a", "bb"]}, "EmbeddingsGigaR")
    assert kinds == {
        "GigaChat": "chat",
        "GigaChat-Pro": "chat",
        "Embeddings": "embeddings",
        "EmbeddingsGigaR": "embeddings",
    }
    assert [d["index"] for d in vectors["data"]] == [0, 1]
    async with gigachat(fake) as unlisted:  # configured names, never listed
        assert unlisted.model_kind("EmbeddingsGigaR") == "embeddings"
        assert unlisted.model_kind("GigaChat-2-Max") == "chat"
    assert vectors["usage"]["prompt_tokens"] == 2


async def test_models_at_another_base_url(fake: FakeUpstream) -> None:
    """The API's address is configurable (old host `gigachat.devices.sberbank.ru/api/v1`, newer
    ones elsewhere): every call goes under base_url, the token under auth_url."""
    async with gigachat(fake, base_url=fake.base_url + "/api/v1/") as provider:
        assert provider.base_url == fake.base_url + "/api/v1"
        await provider.list_models()
        await provider.chat(HELLO, "GigaChat")
    assert [r["path"] for r in fake.requests] == [OAUTH, MODELS, CHAT]


def test_tool_choice_as_function_call() -> None:
    tools = [{"type": "function", "function": {"name": n}} for n in ("a", "b")]

    def sent(choice: object, n: int = 2) -> object:
        body = {"messages": [ASK], "tools": tools[:n], "tool_choice": choice}
        return to_gigachat(body, "GigaChat", stream=False)["function_call"]

    assert sent("auto") == "auto" and sent("none") == "none"
    assert sent("required") == "auto"  # several functions: GigaChat cannot be made to pick one
    assert sent("required", 1) == {"name": "a"}
    assert sent({"type": "function", "function": {"name": "b"}}) == {"name": "b"}
