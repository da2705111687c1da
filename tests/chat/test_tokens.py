"""Token counting: real offline tokenizers per model family, the estimate until they load,
counts remembered and warmed off the event loop, calibration against the upstream's usage."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

import pytest

from chatgate.chat.tokens import (
    ESTIMATE,
    HuggingFace,
    LlamaVocab,
    Tiktoken,
    TokenCounter,
    Tokenizers,
    resolver,
)
from chatgate.config import Config
from chatgate.gateway.router import Deployment, Router
from chatgate.providers.llama_cpp import bundled_model_path

WORDS = "word " * 200  # one token per " word" in every BPE vocabulary; the estimate says 250


class Counting:
    """A tokenizer that counts how often it is asked (one token per character)."""

    name = "counting"

    def __init__(self) -> None:
        self.calls = 0
        self.batches: list[int] = []

    def count(self, text: str) -> int:
        self.calls += 1
        return len(text)

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        self.batches.append(len(texts))
        return [len(t) for t in texts]


@pytest.mark.parametrize(
    ("model", "base_url", "kind"),
    [
        ("deepseek-chat", "https://api.deepseek.com", HuggingFace),
        ("deepseek-r1:7b", "http://127.0.0.1:11434/v1", HuggingFace),
        ("gpt-4o-mini", "", Tiktoken),
        ("o3-mini", "", Tiktoken),
        ("any-model", "https://api.openai.com/v1", Tiktoken),
    ],
)
def test_each_family_gets_its_tokenizer(model: str, base_url: str, kind: type) -> None:
    tok = Tokenizers().pick(model, base_url)
    assert isinstance(tok, kind)
    tok.load()  # type: ignore[attr-defined]
    n = tok.count(WORDS)
    assert 195 <= n <= 205, n  # a real vocabulary, not bytes / 4 (= 250)
    assert tok.count_batch([WORDS, "word"]) == [n, 1]


def test_unknown_models_are_estimated() -> None:
    assert Tokenizers().pick("fake-model", "http://127.0.0.1:9/v1") is ESTIMATE
    assert Tokenizers().pick("GigaChat-Pro") is ESTIMATE
    assert ESTIMATE.count(WORDS) == 250


def test_the_local_model_counts_with_its_own_vocabulary() -> None:
    path = bundled_model_path()
    assert path is not None
    tok = Tokenizers().pick("SmolLM2-135M-Instruct", gguf=path)
    assert isinstance(tok, LlamaVocab)
    tok.load()
    assert 195 <= tok.count(WORDS) <= 205


def test_one_vocabulary_is_shared_by_the_models_that_use_it() -> None:
    vocab = Tokenizers()
    assert vocab.pick("deepseek-chat") is vocab.pick("deepseek-reasoner")


def test_the_estimate_answers_until_the_tokenizer_has_loaded() -> None:
    tok = Tokenizers().pick("deepseek-chat")
    assert isinstance(tok, HuggingFace)
    counter = TokenCounter(lambda _model: tok)
    first = counter.raw("deepseek-chat", WORDS)  # starts loading in the background
    assert first == 250
    deadline = time.monotonic() + 30
    while not tok.ready and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tok.ready
    assert counter.raw("deepseek-chat", WORDS + " ") in range(195, 206)


async def test_warm_counts_in_one_batch_and_raw_remembers() -> None:
    tok = Counting()
    counter = TokenCounter(lambda _model: tok)
    texts = [f"message {i}" for i in range(50)]
    await counter.warm("m", texts)
    await counter.warm("m", texts)  # already known: no second batch
    assert tok.batches == [50]
    assert [counter.raw("m", t) for t in texts] == [len(t) for t in texts]
    assert tok.calls == 0
    assert counter.raw("m", "new text") == 8 and tok.calls == 1


def test_calibration_scales_counts_per_model_and_tokenizer() -> None:
    tok = Counting()
    counter = TokenCounter(lambda _model: tok)
    counter.calibrate("m", raw_estimate=100, reported=150)
    assert counter.ratio("m") == 1.5 and counter.count("m", "x" * 10) == 15
    assert counter.ratio("other") == 1.0
    counter.calibrate("m", raw_estimate=100, reported=100)
    assert 1.0 < counter.ratio("m") < 1.5  # moves towards the new observation
    counter.calibrate("m", raw_estimate=4, reported=400)  # too small a prompt to learn from
    assert 1.0 < counter.ratio("m") < 1.5


def test_resolver_follows_the_router() -> None:
    config = Config.model_validate(
        {
            "providers": {
                "ds": {"type": "openai", "base_url": "https://api.deepseek.com", "api_keys": ["k"]},
                "fake": {"type": "openai", "base_url": "http://127.0.0.1:9/v1"},
            },
            "models": {
                "chat": {"provider": "ds", "model": "deepseek-chat"},
                "other": {"provider": "fake", "model": "fake-model"},
            },
        }
    )
    router = Router()
    for name, m in config.models.items():
        router.add(Deployment(name, m.provider, cast(Any, None), m.model or name, m))
    resolve = resolver(router, config.providers)
    assert isinstance(resolve("chat"), HuggingFace)
    assert resolve("other") is ESTIMATE
    assert resolve("no-such-model") is ESTIMATE
    assert resolve("chat") is resolve("ds/deepseek-chat")


def test_a_count_from_before_the_tokenizer_loaded_does_not_calibrate_it() -> None:
    now: list[Any] = [ESTIMATE]
    counter = TokenCounter(lambda _model: now[0])
    raw = counter.raw_prompt("m", [{"role": "user", "content": "x" * 100}])
    now[0] = Counting()  # the real tokenizer is ready by the time the usage comes back
    counter.calibrate("m", raw, reported=400, tokenizer=ESTIMATE.name)
    assert counter.ratio("m") == 1.0
    counter.calibrate("m", 100, reported=150, tokenizer="counting")
    assert counter.ratio("m") == 1.5
