"""Secrets stay secret: a provider's configured ``headers:`` values are redacted from errors like
its keys, and ``/metrics`` can be protected with a bearer token (``server.metrics_token``)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from chatgate.app import create_app
from chatgate.providers.openai import OpenAIConfig
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

HEADER_SECRET = "hdr-secret-0123456789"
BEARER_TOKEN = "zzz-token-abcdefgh12"
METRICS_TOKEN = "metrics-token-for-tests-0123"
ADMIN = "admin-key-for-secret-tests-01"


@pytest.fixture(scope="module")
def url(fake_server: FakeUpstream) -> Iterator[str]:
    """A provider whose configured headers carry secrets."""
    config = gateway_config(
        fake_server.base_url,
        providers={
            "hdr": {
                "type": "openai",
                "base_url": fake_server.base_url + "/v1",
                "headers": {
                    "X-Upstream-Token": HEADER_SECRET,
                    "Authorization": f"Bearer {BEARER_TOKEN}",
                },
                "models": ["hdr-model"],
            }
        },
        models={},
    )
    with ServerThread(create_app(config)) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def guarded(fake_server: FakeUpstream) -> Iterator[str]:
    """/metrics behind a token, and an admin key."""
    config = gateway_config(
        fake_server.base_url, server={"metrics_token": METRICS_TOKEN}, auth={"admin_key": ADMIN}
    )
    with ServerThread(create_app(config)) as base_url:
        yield base_url


def test_header_values_are_redacted_from_upstream_errors(url: str, fake: FakeUpstream) -> None:
    # The fake's 400 for unknown knobs echoes them back, as an upstream echoing a request does.
    body = {
        "model": "hdr-model",
        "messages": [{"role": "user", "content": "hi"}],
        "fake": {"echo": f"{HEADER_SECRET} and {BEARER_TOKEN}"},
    }
    reply = httpx.post(url + "/v1/chat/completions", json=body)
    assert reply.status_code == 400, reply.text
    assert "bad fake knobs" in reply.text  # the upstream's message did come through ...
    assert HEADER_SECRET not in reply.text and BEARER_TOKEN not in reply.text  # ... redacted
    sent = fake.requests[-1]["headers"]
    assert sent["x-upstream-token"] == HEADER_SECRET  # and the header itself was sent


def test_header_values_are_not_in_the_config_repr() -> None:
    cfg = OpenAIConfig(type="openai", base_url="http://x/v1", headers={"X-K": HEADER_SECRET})
    assert HEADER_SECRET not in repr(cfg) and HEADER_SECRET not in str(cfg.model_dump())
    assert cfg.header_values() == {"X-K": HEADER_SECRET}
    short = OpenAIConfig(type="openai", base_url="http://x/v1", headers={"X-Title": "app"})
    assert short.header_secrets() == []  # too short to be a secret: messages stay readable


def test_metrics_need_the_token(guarded: str) -> None:
    url = guarded
    assert httpx.get(url + "/metrics").status_code == 401
    wrong = httpx.get(url + "/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "metrics_token_required"
    ok = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert ok.status_code == 200 and "chatgate_requests_total" in ok.text
    admin = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
    assert admin.status_code == 200


def test_metrics_are_open_without_a_token(gateway_url: str) -> None:
    assert httpx.get(gateway_url + "/metrics").status_code == 200
