"""Shared fixtures: the fake upstream (real HTTP on 127.0.0.1) and a running chatgate in front."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from chatgate.app import create_app
from chatgate.config import Config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

FAKE_CONTENT = "".join(f"tok{i} " for i in range(24))


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeUpstream) -> Iterator[FakeUpstream]:
    """The shared fake upstream, with knobs and records reset for this test, and reset again
    after it, its answers still streaming ended: a test that does not ask for ``fake`` must not
    meet another's knobs (a hang), nor count another's answer in flight."""
    fake_server.reset()
    yield fake_server
    fake_server.abort_in_flight()
    fake_server.reset()


def gateway_config(fake_url: str, **extra: Any) -> Config:
    """A config routing to the fake: `fake-model` and friends, no env discovery, no local model."""
    data: dict[str, Any] = {
        "discover_env": False,
        "local_model": False,
        "database": {"url": f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='chatgate-')}/db"},
        "providers": {
            "fake": {
                "type": "openai",
                "base_url": fake_url + "/v1",
                "api_keys": ["sk-fake-upstream-key-0123456789"],
                "models": ["fake-model", "fake-reasoner"],
            },
            "slow": {
                "type": "openai",
                "base_url": fake_url + "/v1",
                "timeouts": {"connect": 1, "read": 0.5},
            },
            "dead": {"type": "openai", "base_url": "http://127.0.0.1:9/v1"},
            # Tests that change a key's health (401 disables it, 429 cools it) use their own
            # providers, so the shared gateway's main key stays healthy for everyone else.
            "refused": {
                "type": "openai",
                "base_url": fake_url + "/v1",
                "api_keys": ["sk-refused-key-0123456789"],
                "models": ["fake-model"],
            },
            "limited": {
                "type": "openai",
                "base_url": fake_url + "/v1",
                "api_keys": ["sk-limited-key-0123456789"],
                "models": ["fake-model"],
            },
            "giga": {
                "type": "gigachat",
                "base_url": fake_url + "/api/v1",
                "auth_url": fake_url + "/api/v2/oauth",
                "credentials": "fake-gigachat-credentials",
                "scope": "GIGACHAT_API_PERS",
            },
        },
        "models": {
            "slow-model": {"provider": "slow", "model": "fake-model"},
            "with-fallback": {"provider": "dead", "model": "x", "fallbacks": ["fake-model"]},
            "dead-model": {"provider": "dead", "model": "y"},
            "r1-distill": {
                "provider": "fake",
                "model": "fake-model",
                "reasoning": "strip",
                "reasoning_starts_inside": True,
            },
            "pirate": {
                "provider": "fake",
                "model": "fake-model",
                "system_prompt": "Talk like a pirate.",
            },
        },
    }
    data.update(extra)
    return Config.model_validate(data)


@pytest.fixture(scope="session")
def gateway_url(fake_server: FakeUpstream) -> Iterator[str]:
    with ServerThread(create_app(gateway_config(fake_server.base_url))) as url:
        yield url


@pytest.fixture
def client(gateway_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway_url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture
def aclient(gateway_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway_url + "/v1", api_key="unused", max_retries=0)
