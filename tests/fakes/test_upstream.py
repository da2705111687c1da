"""Tests of the fake upstream itself, over real HTTP."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import openai
import orjson
import pytest

from tests.conftest import FAKE_CONTENT
from tests.fakes.upstream import FakeUpstream

DEFAULT_TEXT = FAKE_CONTENT  # `fake` / `fake_server` come from tests/conftest.py


@pytest.fixture
def client(fake: FakeUpstream) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.base_url + "/v1", api_key="sk-test", max_retries=0)


MSGS = [{"role": "user", "content": "hello there"}]


async def test_non_stream_shape(fake: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    r = await client.chat.completions.create(model="fake-model", messages=MSGS)
    assert r.object == "chat.completion"
    assert r.model == "fake-model"
    assert r.choices[0].message.content == DEFAULT_TEXT
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None
    assert r.usage.completion_tokens == 24
    assert r.usage.total_tokens == r.usage.prompt_tokens + 24
    assert fake.count() == 1
    rec = fake.requests[-1]
    assert rec["method"] == "POST" and rec["path"] == "/v1/chat/completions"
    assert rec["body"]["messages"] == MSGS
    assert rec["headers"]["Authorization"] == "Bearer sk-test"
    assert rec["headers"]["authorization"] == "Bearer sk-test"


async def test_stream_shape_and_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="m1", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.model == "m1" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_TEXT
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 24


async def test_stream_without_usage_and_knobs(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="m",
        messages=MSGS,
        stream=True,
        extra_body={"fake": {"content": "Hello, world!", "chunks": 5, "reasoning": "hmm"}},
    )
    chunks = [c async for c in stream]
    assert all(c.choices for c in chunks)  # no usage chunk unless asked
    deltas = [c.choices[0].delta for c in chunks]
    reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    assert reasoning == "hmm"
    contents = [d.content for d in deltas if d.content]
    assert len(contents) == 5 and "".join(contents) == "Hello, world!"


async def test_raw_sse_framing(fake: FakeUpstream) -> None:
    body = {"model": "x", "messages": MSGS, "stream": True, "fake": {"chunks": 3}}
    async with (
        aiohttp.ClientSession() as s,
        s.post(fake.base_url + "/v1/chat/completions", json=body) as r,
    ):
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        raw = await r.read()
    events = raw.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    assert len(events) == 3 + 1 + 2  # content, finish, [DONE], trailing ""
    assert all(e.startswith(b"data: ") for e in events[:-1])
    first = orjson.loads(events[0][6:])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "tok0 "}


async def test_tool_call(client: openai.AsyncOpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    r = await client.chat.completions.create(
        model="m", messages=MSGS, tools=tools, extra_body={"fake": {"tool_call": True}}
    )
    assert r.choices[0].finish_reason == "tool_calls"
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == "{}"

    stream = await client.chat.completions.create(
        model="m",
        messages=MSGS,
        tools=tools,
        stream=True,
        extra_body={"fake": {"tool_call": True}},
    )
    chunks = [c async for c in stream]
    args = "".join(
        tc.function.arguments or ""
        for c in chunks
        for tc in (c.choices[0].delta.tool_calls or [])
        if tc.function
    )
    assert args == "{}"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_tool_call_once_answers_after_the_result(client: openai.AsyncOpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    once = {"fake": {"tool_call": "once"}}
    r = await client.chat.completions.create(model="m", messages=MSGS, tools=tools, extra_body=once)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    history = [
        *MSGS,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    r = await client.chat.completions.create(
        model="m", messages=history, tools=tools, extra_body=once
    )
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == DEFAULT_TEXT


async def test_status_knob(fake: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as ei:
        await client.chat.completions.create(
            model="m", messages=MSGS, extra_body={"fake": {"status": 429, "retry_after": 7}}
        )
    assert ei.value.response.headers["Retry-After"] == "7"
    assert ei.value.body["message"] == "fake error 429"

    fake.configure(status=503)
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="m", messages=MSGS, stream=True)
    fake.reset()
    r = await client.chat.completions.create(model="m", messages=MSGS)
    assert r.choices[0].message.content == DEFAULT_TEXT


async def test_reset_after_breaks_stream(fake: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="m", messages=MSGS, stream=True, extra_body={"fake": {"reset_after": 3}}
    )
    got = []
    with pytest.raises(openai.APIError):
        async for c in stream:
            got.append(c)
    assert len(got) == 3

    body = {"messages": MSGS, "stream": True, "fake": {"reset_after": 2}}
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with s.post(fake.base_url + "/v1/chat/completions", json=body) as r:
                await r.read()
    assert fake.cancelled == 0


async def test_error_event_after(fake: FakeUpstream) -> None:
    body = {"messages": MSGS, "stream": True, "fake": {"error_event_after": 2}}
    async with (
        aiohttp.ClientSession() as s,
        s.post(fake.base_url + "/v1/chat/completions", json=body) as r,
    ):
        raw = await r.read()
    events = [e for e in raw.split(b"\n\n") if e]
    assert len(events) == 3
    assert "error" in orjson.loads(events[-1][6:])


async def test_done_after_ends_the_stream_cleanly_but_short(fake: FakeUpstream) -> None:
    body = {"messages": MSGS, "stream": True, "fake": {"done_after": 2}}
    async with (
        aiohttp.ClientSession() as s,
        s.post(fake.base_url + "/v1/chat/completions", json=body) as r,
    ):
        raw = await r.read()
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]" and len(events) == 3
    assert all(orjson.loads(e[6:])["choices"][0]["finish_reason"] is None for e in events[:-1])


async def test_sequence_scripts_the_next_requests(
    fake: FakeUpstream, client: openai.AsyncOpenAI
) -> None:
    fake.configure(sequence=[{"status": 503}, {"content": "second"}])
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="m", messages=MSGS)
    assert fake.stats()["sequence_left"] == 1
    r = await client.chat.completions.create(
        model="m", messages=MSGS, extra_body={"fake": {"chunks": 2}}
    )
    assert r.choices[0].message.content == "second"  # the step over the server's knobs
    r = await client.chat.completions.create(model="m", messages=MSGS)
    assert r.choices[0].message.content == DEFAULT_TEXT  # used up: the server's knobs again
    assert fake.stats()["sequence_left"] == 0

    fake.configure(sequence=[{"status": 429}])
    fake.reset()
    r = await client.chat.completions.create(model="m", messages=MSGS)
    assert r.choices[0].message.content == DEFAULT_TEXT  # reset drops what was left
    with pytest.raises(ValueError, match="sequence"):
        fake.configure(sequence=[{"nope": 1}])
    with pytest.raises(openai.BadRequestError):  # server-wide only
        await client.chat.completions.create(
            model="m", messages=MSGS, extra_body={"fake": {"sequence": []}}
        )


async def test_hang_is_cancelled(fake: FakeUpstream) -> None:
    body = {"messages": MSGS, "fake": {"hang": True}}
    async with aiohttp.ClientSession() as s:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(s.post(fake.base_url + "/v1/chat/completions", json=body), 0.3)
    for _ in range(100):
        if fake.cancelled:
            break
        await asyncio.sleep(0.01)
    assert fake.cancelled == 1
    assert fake.stats()["in_flight"] == 0
    assert fake.requests[-1]["cancelled"] is True


async def test_stream_disconnect_is_cancelled(fake: FakeUpstream) -> None:
    body = {"messages": MSGS, "stream": True, "fake": {"chunk_delay_ms": 20}}
    async with (
        aiohttp.ClientSession() as s,
        s.post(fake.base_url + "/v1/chat/completions", json=body) as r,
    ):
        await r.content.readline()
        r.close()
    for _ in range(100):
        if fake.cancelled:
            break
        await asyncio.sleep(0.01)
    assert fake.cancelled == 1


async def test_models_tags_and_control(fake: FakeUpstream) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(fake.base_url + "/v1/models") as r:
            data = await r.json()
        assert [m["id"] for m in data["data"]] == ["fake-model", "fake-reasoner"]
        assert data["object"] == "list" and data["data"][0]["owned_by"] == "fake"
        async with s.post(fake.base_url + "/_fake/config", json={"models": ["a", "b:7b"]}) as r:
            assert r.status == 200
        async with s.get(fake.base_url + "/api/tags") as r:
            tags = await r.json()
        assert [(m["name"], m["model"]) for m in tags["models"]] == [("a", "a"), ("b:7b", "b:7b")]
        async with s.post(fake.base_url + "/_fake/config", json={"nope": 1}) as r:
            assert r.status == 400
        async with s.get(fake.base_url + "/_fake/stats") as r:
            stats = await r.json()
        assert stats["counts"] == {"/v1/models": 1, "/api/tags": 1}
        async with s.get(fake.base_url + "/_fake/requests") as r:
            assert [x["path"] for x in await r.json()] == ["/v1/models", "/api/tags"]
        async with s.post(fake.base_url + "/_fake/reset") as r:
            assert r.status == 200
        async with s.get(fake.base_url + "/v1/models") as r:
            assert len((await r.json())["data"]) == 2
    assert fake.count("/v1/models") == 1


async def test_latency(fake: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await client.chat.completions.create(
        model="m", messages=MSGS, extra_body={"fake": {"latency_ms": 150}}
    )
    assert loop.time() - t0 >= 0.14


async def _oauth(
    s: aiohttp.ClientSession,
    fake: FakeUpstream,
    *,
    rquid: str | None = None,
    creds: str | None = None,
    scope: str = "GIGACHAT_API_PERS",
) -> aiohttp.ClientResponse:
    headers = {
        "RqUID": rquid or str(uuid.uuid4()),
        "Authorization": "Basic " + (creds or fake.gigachat_credentials),
        "Accept": "application/json",
    }
    async with s.post(fake.base_url + "/api/v2/oauth", headers=headers, data={"scope": scope}) as r:
        await r.read()
        return r


async def test_gigachat_flow(fake: FakeUpstream) -> None:
    async with aiohttp.ClientSession() as s:
        assert (await _oauth(s, fake, rquid="not-a-uuid")).status == 400
        assert (await _oauth(s, fake, rquid=str(uuid.uuid1()))).status == 400
        assert (await _oauth(s, fake, scope="WRONG")).status == 400
        assert (await _oauth(s, fake, creds="wrong")).status == 401
        r = await _oauth(s, fake)
        assert r.status == 200
        tok = await r.json()
        assert tok["access_token"] and tok["expires_at"] > 1_000_000_000_000
        assert fake.count("/api/v2/oauth") == 5

        auth = {"Authorization": "Bearer " + tok["access_token"]}
        body = {"model": "GigaChat", "messages": MSGS}
        async with s.post(fake.base_url + "/api/v1/chat/completions", json=body) as r:
            assert r.status == 401
            assert await r.json() == {"status": 401, "message": "Unauthorized"}
        async with s.post(fake.base_url + "/api/v1/chat/completions", json=body, headers=auth) as r:
            assert r.status == 200
            assert (await r.json())["choices"][0]["message"]["content"] == DEFAULT_TEXT
        async with s.get(fake.base_url + "/api/v1/models", headers=auth) as r:
            ids = [m["id"] for m in (await r.json())["data"]]
            assert ids[:2] == ["GigaChat", "GigaChat-Pro"]

        giga = openai.AsyncOpenAI(
            base_url=fake.base_url + "/api/v1", api_key=tok["access_token"], max_retries=0
        )
        stream = await giga.chat.completions.create(model="GigaChat", messages=MSGS, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
        assert text == DEFAULT_TEXT

        fake.revoke_gigachat_tokens()
        async with s.post(fake.base_url + "/api/v1/chat/completions", json=body, headers=auth) as r:
            assert r.status == 401
        with pytest.raises(openai.AuthenticationError):
            await giga.chat.completions.create(model="GigaChat", messages=MSGS)


async def test_gigachat_token_expiry() -> None:
    with FakeUpstream(gigachat_token_ttl_s=0.2, gigachat_credentials="abc") as fake:
        assert fake.gigachat_credentials == "abc"
        async with aiohttp.ClientSession() as s:
            tok = await (await _oauth(s, fake)).json()
            auth = {"Authorization": "Bearer " + tok["access_token"]}
            async with s.get(fake.base_url + "/api/v1/models", headers=auth) as r:
                assert r.status == 200
            await asyncio.sleep(0.3)
            async with s.get(fake.base_url + "/api/v1/models", headers=auth) as r:
                assert r.status == 401


def test_constructor_defaults_and_bad_knob() -> None:
    with pytest.raises(ValueError):
        FakeUpstream(no_such_knob=1)
    fake = FakeUpstream(chunks=2)
    url = fake.start()
    try:
        assert url == fake.base_url and url.startswith("http://127.0.0.1:")
        fake.configure(chunks=5)
        fake.reset()  # back to the startup defaults (chunks=2)
        c = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
        r = c.chat.completions.create(model="m", messages=MSGS)
        assert r.choices[0].message.content == "tok0 tok1 "
    finally:
        fake.stop()


async def test_deepseek_lists_only_at_models_and_reports_its_cache(fake: FakeUpstream) -> None:
    deepseek = openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-ds", max_retries=0)
    assert [m.id async for m in deepseek.models.list()] == ["deepseek-v4-flash", "deepseek-v4-pro"]
    fake.configure(cache_hit_tokens=2, models_status=503)
    with pytest.raises(openai.InternalServerError):
        await deepseek.models.list()
    answer = await deepseek.chat.completions.create(model="deepseek-v4-flash", messages=MSGS)
    assert answer.usage is not None
    usage = answer.usage.model_dump()
    assert usage["prompt_cache_hit_tokens"] == 2
    assert usage["prompt_cache_miss_tokens"] == answer.usage.prompt_tokens - 2
    assert usage["prompt_tokens_details"]["cached_tokens"] == 2
    plain = await openai.AsyncOpenAI(
        base_url=fake.base_url + "/v1", api_key="k", max_retries=0
    ).chat.completions.create(model="fake-model", messages=MSGS)
    assert plain.usage is not None and "prompt_cache_hit_tokens" not in plain.usage.model_dump()
    assert [r["path"] for r in fake.requests] == [
        "/models",
        "/models",
        "/chat/completions",
        "/v1/chat/completions",
    ]


async def test_gigachat_speaks_functions_not_tools(fake: FakeUpstream) -> None:
    fake.configure(tool_call="once", tool_arguments='{"x": 1}')
    fn = {"name": "f", "parameters": {"type": "object"}}
    url = fake.base_url + "/api/v1/chat/completions"
    async with aiohttp.ClientSession() as s:
        tok = await (await _oauth(s, fake)).json()
        auth = {"Authorization": "Bearer " + tok["access_token"]}

        async def post(body: dict[str, object]) -> tuple[int, dict[str, object]]:
            async with s.post(url, json={"model": "GigaChat", **body}, headers=auth) as r:
                return r.status, await r.json()

        refused = [
            {"messages": MSGS, "tools": [{"type": "function", "function": fn}]},
            {"messages": [{"role": "tool", "tool_call_id": "c", "content": "{}"}]},
            {"messages": [{"role": "function", "name": "f", "content": "not json"}]},
            {
                "messages": [
                    {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}
                ]
            },
            {"messages": MSGS, "functions": [fn], "function_call": {"name": "g"}},
        ]
        for body in refused:
            status, _ = await post(body)
            assert status == 422, body
        status, answer = await post({"messages": MSGS, "functions": [fn]})
        assert status == 200
        [choice] = answer["choices"]  # type: ignore[misc]
        message = choice["message"]
        assert choice["finish_reason"] == "function_call"
        assert message["function_call"] == {"name": "f", "arguments": {"x": 1}}
        state = message["functions_state_id"]
        turn = {"role": "assistant", "content": "", "function_call": message["function_call"]}
        result = {"role": "function", "name": "f", "content": '{"ok": true}'}
        status, _ = await post(
            {"messages": [*MSGS, {**turn, "functions_state_id": str(uuid.uuid4())}, result]}
        )
        assert status == 422  # a state it never handed out
        status, final = await post(
            {"messages": [*MSGS, {**turn, "functions_state_id": state}, result], "functions": [fn]}
        )
        assert status == 200
        assert final["choices"][0]["message"]["content"] == DEFAULT_TEXT  # type: ignore[index]
