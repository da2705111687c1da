"""Retries only where the upstream cannot have started the work, or where the operator allows it.

An upstream that takes the POST and never answers is asked once (one bill), and the client
hears 504 after one read timeout, not three; 500 is not sent again either. Refusals that say
"not now" (429, 503 with Retry-After) are retried. ``retry_unsafe: true`` on a provider restores
retries after a send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatgate.app import create_app
from chatgate.config import Config
from chatgate.providers.openai import OpenAIConfig, OpenAIProvider
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

READ_TIMEOUT = 0.5


@pytest.fixture(scope="module")
def url(fake_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    def provider(**extra: Any) -> dict[str, Any]:
        return {
            "type": "openai",
            "base_url": fake_server.base_url + "/v1",
            "timeouts": {"connect": 1, "read": READ_TIMEOUT},
            **extra,
        }

    config = Config.model_validate(
        {
            "discover_env": False,
            "local_model": False,
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('r') / 'db'}"},
            "providers": {
                "once": provider(),
                "again": provider(retry_unsafe=True),
                "dead": {"type": "openai", "base_url": "http://127.0.0.1:9/v1"},
            },
            "models": {
                "once": {"provider": "once", "model": "fake-model"},
                "again": {"provider": "again", "model": "fake-model"},
                "dead-then-once": {"provider": "dead", "model": "x", "fallbacks": ["once"]},
            },
        }
    )
    with ServerThread(create_app(config)) as running:
        yield running


def ask(url: str, model: str, stream: bool = False, **knobs: Any) -> tuple[httpx.Response, float]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"retries {time.monotonic_ns()}"}],
        "stream": stream,
        "fake": knobs,
    }
    started = time.monotonic()
    resp = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
    return resp, time.monotonic() - started


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_upstream_that_never_answers_is_asked_once(
    url: str, fake: FakeUpstream, stream: bool
) -> None:
    resp, took = ask(url, "once", stream, hang=True)
    assert resp.status_code == 504, resp.text
    assert resp.json()["error"]["code"] == "upstream_timeout"
    assert fake.count() == 1  # one POST: one bill
    print("HANG", stream, "took", round(took, 2), "posts", fake.count())
    assert took < READ_TIMEOUT * 2, took  # one read timeout, not three plus backoff


def test_the_operator_may_allow_retrying_it(url: str, fake: FakeUpstream) -> None:
    resp, _ = ask(url, "again", hang=True)
    assert resp.status_code == 504
    assert fake.count() == 3


@pytest.mark.parametrize(
    ("knobs", "status", "calls"),
    [
        ({"status": 500}, 502, 1),
        ({"status": 503}, 502, 1),
        ({"status": 503, "retry_after": 0}, 502, 3),
        ({"status": 429, "retry_after": 0}, 429, 3),
        ({"reset_after": 0}, 502, 1),  # the connection dropped after the request went out
    ],
    ids=["500", "503", "503+retry-after", "429", "reset"],
)
def test_which_refusals_are_retried(
    url: str, fake: FakeUpstream, knobs: dict[str, Any], status: int, calls: int
) -> None:
    resp, _ = ask(url, "once", **knobs)
    assert resp.status_code == status, resp.text
    assert fake.count() == calls


def test_no_connection_is_retried_and_falls_back(url: str, fake: FakeUpstream) -> None:
    resp, _ = ask(url, "dead-then-once")
    assert resp.status_code == 200, resp.text
    assert fake.count() == 1


async def test_the_provider_says_the_request_was_never_sent(tmp_path: Path) -> None:
    provider = OpenAIProvider("dead", OpenAIConfig(type="openai", base_url="http://127.0.0.1:9/v1"))
    await provider.start()
    try:
        with pytest.raises(Exception) as failed:
            await provider.chat({"messages": []}, "x")
        assert getattr(failed.value, "sent", True) is False, failed.value
    finally:
        await provider.close()
    await asyncio.sleep(0)
