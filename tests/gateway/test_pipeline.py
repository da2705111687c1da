"""Pipeline.open: the body as sent upstream, reasoning modes, usage shaping, cache status, errors.

The real router, caller, OpenAI provider and fake upstream; the fake's per-request knobs (in
the body's ``fake`` field) choose what the upstream answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from chatgate.config import ModelConfig
from chatgate.errors import InvalidRequestError, ModelNotFoundError, UpstreamError
from chatgate.gateway.cache import MemoryStore, TieredCache
from chatgate.gateway.cache.keys import cache_key
from chatgate.gateway.caching import ResponseCache
from chatgate.gateway.caller import UpstreamCaller
from chatgate.gateway.keypool import KeyPool
from chatgate.gateway.pipeline import Answer, Pipeline, prepare_body
from chatgate.gateway.router import Deployment, Router
from chatgate.protocol.openai import ChatRequest, ChunkBatch, validate_chat_request
from tests.fakes.upstream import FakeUpstream
from tests.gateway.conftest import KEY_A, MESSAGES, Upstreams, eventually, text_of

THINKING = "<think>plan</think>answer"


def model(**settings: Any) -> ModelConfig:
    return ModelConfig(provider="p", model="fake-model", **settings)


@pytest.fixture
async def pipeline(upstreams: Upstreams) -> AsyncIterator[Pipeline]:
    """Models: ``plain``, ``pirate`` (a system prompt), ``r1`` (strip, starts inside <think>)."""
    router = Router()
    settings = {
        "plain": model(),
        "pirate": model(system_prompt="Talk like a pirate."),
        "r1": model(reasoning="strip", reasoning_starts_inside=True),
    }
    provider = await upstreams.provider("p", [KEY_A])
    for name, cfg in settings.items():
        router.add(Deployment(name, "p", provider, "fake-model", cfg))
    caller = UpstreamCaller({"p": KeyPool("p", [KEY_A])}, {}, retries=0)
    pipeline = Pipeline(router, caller, reasoning="separate")
    yield pipeline
    if pipeline.cache is not None:
        await pipeline.cache.close()


def request(
    name: str = "plain",
    stream: bool = False,
    mode: str | None = None,
    extra: dict[str, Any] | None = None,
    **knobs: Any,
) -> ChatRequest:
    body: dict[str, Any] = {"model": name, "messages": MESSAGES, "stream": stream}
    if knobs:
        body["fake"] = knobs
    return validate_chat_request({**body, **(extra or {})}, mode)


async def read(answer: Answer) -> list[ChunkBatch]:
    try:
        return [batch async for batch in answer]
    finally:
        await answer.aclose()


async def text(pipeline: Pipeline, req: ChatRequest) -> tuple[str, str | None]:
    """(content, reasoning) of the answer, whole or streamed."""
    answer = await pipeline.open(req)
    if answer.completion is not None:
        message = answer.completion["choices"][0]["message"]
        return message["content"], message.get("reasoning_content")
    content, reasoning = text_of(await read(answer))
    return content, reasoning or None


async def test_prepare_body_adds_the_system_prompt_and_cleans_history(
    upstreams: Upstreams,
) -> None:
    pirate = await upstreams.deployment(public="pirate", settings=model(system_prompt="Arr."))
    history = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "<think>hmm</think>a1", "reasoning_content": "hmm"},
        {"role": "user", "content": "q2"},
    ]
    body = {"model": "pirate", "messages": history}
    sent = prepare_body(body, pirate)
    assert sent["messages"] == [
        {"role": "system", "content": "Arr."},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    assert body["messages"] is history and "reasoning_content" in history[1]  # untouched
    own = {"messages": [{"role": "developer", "content": "Be brief."}, *MESSAGES]}
    assert prepare_body(own, pirate) is own  # the client's own instructions win; no copy


async def test_the_body_sent_upstream_is_prepared_for_the_model(
    fake: FakeUpstream, pipeline: Pipeline
) -> None:
    await pipeline.open(request("pirate"))
    assert fake.requests[-1]["body"]["messages"] == [
        {"role": "system", "content": "Talk like a pirate."},
        *MESSAGES,
    ]
    plain = pipeline.router.resolve("plain")
    await pipeline.open(request("plain"), route=[pipeline.router.resolve("pirate"), plain])
    assert fake.requests[-1]["body"]["messages"][0]["role"] == "system"  # the route given


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("mode", "expected"),
    [("strip", ("answer", None)), ("separate", ("answer", "plan")), ("keep", (THINKING, None))],
)
async def test_reasoning_modes(
    pipeline: Pipeline, stream: bool, mode: str, expected: tuple[str, str | None]
) -> None:
    req = request("plain", stream, mode=mode, content=THINKING, chunks=7)
    assert await text(pipeline, req) == expected


@pytest.mark.parametrize("stream", [False, True])
async def test_reasoning_content_from_upstream_is_kept_apart_or_stripped(
    pipeline: Pipeline, stream: bool
) -> None:
    knobs = {"content": "answer", "reasoning": "plan", "chunks": 3}
    assert await text(pipeline, request("plain", stream, **knobs)) == ("answer", "plan")
    assert await text(pipeline, request("plain", stream, "strip", **knobs)) == ("answer", None)


@pytest.mark.parametrize("stream", [False, True])
async def test_the_model_s_mode_and_an_answer_starting_inside_think(
    pipeline: Pipeline, stream: bool
) -> None:
    knobs = {"content": "plan</think>answer", "chunks": 6}
    assert await text(pipeline, request("r1", stream, **knobs)) == ("answer", None)  # its strip
    separate = request("r1", stream, "separate", **knobs)  # the request's header wins
    assert await text(pipeline, separate) == ("answer", "plan")
    default = request("plain", stream, **knobs)  # the pipeline's default, not starting inside
    assert await text(pipeline, default) == ("plananswer", None)


async def test_usage_is_read_at_the_end_and_shown_only_when_asked(pipeline: Pipeline) -> None:
    answer = await pipeline.open(request(stream=True, chunks=3, chunk_delay_ms=20))
    assert answer.usage is None  # not yet: it comes last
    batches = await read(answer)
    assert all(chunk["choices"] for batch in batches for chunk in batch)  # no usage chunk
    assert answer.usage is not None and answer.usage["completion_tokens"] == 3

    asked = request(stream=True, chunks=3, extra={"stream_options": {"include_usage": True}})
    answer = await pipeline.open(asked)
    last = (await read(answer))[-1][-1]
    assert last["choices"] == [] and last["usage"] == answer.usage

    whole = await pipeline.open(request())
    assert whole.usage is not None and whole.usage == whole.completion["usage"]  # type: ignore[index]


async def test_cache_status_and_modes_applied_to_a_cached_answer(
    fake: FakeUpstream, pipeline: Pipeline
) -> None:
    assert (await pipeline.open(request())).cache == "bypass"  # no cache configured
    pipeline.cache = ResponseCache(TieredCache([MemoryStore(1 << 20)]), ttl=60)
    strip = request(stream=True, mode="strip", content=THINKING)
    first = await pipeline.open(strip)
    assert first.cache == "miss" and text_of(await read(first)) == ("answer", "")
    cache = pipeline.cache
    await eventually(lambda: cache.lookup(cache_key(strip.body, "p/fake-model")))
    hit = await pipeline.open(request(mode="separate", content=THINKING))
    assert hit.cache == "hit" and hit.completion is not None
    assert hit.completion["choices"][0]["message"]["reasoning_content"] == "plan"
    assert hit.usage is not None  # the upstream's usage, stored with the answer
    assert fake.count() == 2


async def test_errors_before_the_first_batch_are_raised_from_open(
    fake: FakeUpstream, pipeline: Pipeline
) -> None:
    with pytest.raises(ModelNotFoundError):
        await pipeline.open(request("nonexistent"))
    for stream in (False, True):
        with pytest.raises(UpstreamError):
            await pipeline.open(request(stream=stream, status=503))
        with pytest.raises(InvalidRequestError):
            await pipeline.open(request(stream=stream, status=400))
    with pytest.raises(UpstreamError, match="empty"):
        await pipeline.open(request(stream=True, done_after=0))
    assert pipeline.caller.pools["p"].snapshot()[0]["in_flight"] == 0
    assert fake.count() == 5


async def test_an_error_after_the_first_batch_ends_the_stream(pipeline: Pipeline) -> None:
    answer = await pipeline.open(request(stream=True, error_event_after=2, chunk_delay_ms=5))
    got = []
    with pytest.raises(UpstreamError, match="fake error event"):
        async for batch in answer:
            got.append(batch)
    await answer.aclose()
    assert text_of(got)[0] == "tok0 tok1 "


async def test_closing_an_answer_early_drops_the_upstream_call(
    fake: FakeUpstream, pipeline: Pipeline
) -> None:
    answer = await pipeline.open(request(stream=True, chunks=10, chunk_delay_ms=50))
    assert text_of([await anext(answer)])[0] == "tok0 "
    await answer.aclose()
    await eventually(lambda: fake.cancelled == 1)
    assert pipeline.caller.pools["p"].snapshot()[0]["in_flight"] == 0


class UsageOnly:
    """A provider whose stream holds nothing but a usage chunk. The fake upstream always sends
    a role chunk first, so it cannot produce a stream the filters leave empty."""

    name = "usage-only"

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def list_models(self) -> list[str]:
        return []

    async def chat(self, body: dict[str, Any], model: str, api_key: str | None = None) -> Any:
        raise NotImplementedError

    async def stream(
        self, body: dict[str, Any], model: str, api_key: str | None = None
    ) -> AsyncIterator[ChunkBatch]:
        usage = {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}
        yield [{"id": "x", "object": "chat.completion.chunk", "choices": [], "usage": usage}]


async def test_a_stream_left_empty_by_the_filters_is_an_error(pipeline: Pipeline) -> None:
    dep = Deployment("quiet", "quiet", UsageOnly(), "quiet")  # type: ignore[arg-type]
    with pytest.raises(UpstreamError, match="empty stream"):
        await pipeline.open(request("quiet", stream=True), route=[dep])
    asked = request("quiet", stream=True, extra={"stream_options": {"include_usage": True}})
    answer = await pipeline.open(asked, route=[dep])  # the usage chunk is the client's answer
    assert [chunk["choices"] for batch in await read(answer) for chunk in batch] == [[]]
