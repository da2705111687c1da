"""The refusals made before any door (``api.guard``: 421 Host, 403 foreign Origin, 415 content
type, 413 declared size; ``api.bodylimit``: 413 while reading; a wrong method) come in the
error shape of the door the request was for, so each dialect's own client can read them:
Anthropic's at ``/v1/messages*``, Ollama's at Ollama's ``/api/…`` paths (not the web chat's
``/api/…`` routes), the seed's at ``/chatgpt/`` and ``/gigachat/``, OpenAI's elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import ollama
import orjson
import pytest
from robustness.rawhttp import Reply, request
from robustness.shape import (
    anthropic_body_problem,
    body_problem,
    ollama_body_problem,
    seed_body_problem,
)

from chatgate.app import create_app
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

LIMIT = 64 * 1024
JSON = {"content-type": "application/json"}
BODY = orjson.dumps({"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]})

Problem = Callable[[bytes], str | None]
# path → (method, the shape checker of its door)
DOORS: dict[str, tuple[str, Problem]] = {
    "/v1/messages": ("POST", anthropic_body_problem),
    "/v1/messages/count_tokens": ("POST", anthropic_body_problem),
    "/api/chat": ("POST", ollama_body_problem),
    "/api/generate": ("POST", ollama_body_problem),
    "/api/show": ("POST", ollama_body_problem),
    "/api/tags": ("GET", ollama_body_problem),
    "/api/version": ("GET", ollama_body_problem),
    "/chatgpt/": ("POST", seed_body_problem),
    "/gigachat/": ("POST", seed_body_problem),
    "/v1/chat/completions": ("POST", body_problem),
    "/v1/responses": ("POST", body_problem),
    "/v1/embeddings": ("POST", body_problem),
    # The web chat's own /api/ routes are not Ollama's: OpenAI's shape.
    "/api/conversations": ("POST", body_problem),
    "/api/auth/login": ("POST", body_problem),
}


@pytest.fixture(scope="module")
def url(fake_server: FakeUpstream) -> Iterator[str]:
    config = gateway_config(fake_server.base_url, server={"max_body_bytes": LIMIT})
    with ServerThread(create_app(config)) as base:
        yield base


def call(url: str, method: str, path: str, **kw: Any) -> Reply:
    return asyncio.run(request(url, method, path, **kw))


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1]


def refusals(url: str, method: str) -> dict[int, dict[str, Any]]:
    """One request per guard refusal this method can get: status → request keywords."""
    evil = f"evil.test:{_port(url)}"
    out: dict[int, dict[str, Any]] = {421: {"headers": {"host": evil}}}
    if method == "POST":
        out[403] = {"headers": {**JSON, "origin": "https://evil.test"}, "body": BODY}
        # Same-origin (a browser's): Ollama's paths take curl's form posts without an Origin.
        out[415] = {"headers": {"content-type": "text/plain", "origin": url}, "body": BODY}
        out[413] = {"headers": {**JSON, "content-length": str(LIMIT * 4)}}
    return out


@pytest.mark.parametrize("path", list(DOORS))
def test_guard_refusals_come_in_the_doors_shape(url: str, path: str) -> None:
    method, problem = DOORS[path]
    for status, kw in refusals(url, method).items():
        reply = call(url, method, path, **kw)
        assert reply.status == status, (path, reply)
        assert problem(reply.body) is None, (path, status, reply.body, problem(reply.body))


@pytest.mark.parametrize("path", ["/chatgpt/", "/api/show", "/api/auth/login"])
def test_body_counted_past_the_limit_is_413_in_the_doors_shape(url: str, path: str) -> None:
    """A chunked body declares no length: the 413 comes from the counter while reading."""
    piece = b'{"x": "' + b"a" * (16 * 1024) + b'"}'
    reply = call(url, "POST", path, headers=JSON, chunks=[piece] * 16)
    assert reply.status == 413, reply
    problem = DOORS[path][1]
    assert problem(reply.body) is None, (path, reply.body)


def test_a_wrong_method_comes_in_the_doors_shape(url: str) -> None:
    for path in ("/v1/messages", "/api/chat", "/chatgpt/", "/v1/chat/completions"):
        reply = call(url, "GET", path)
        assert reply.status == 405, (path, reply)
        assert DOORS[path][1](reply.body) is None, (path, reply.body)


def test_the_anthropic_sdk_reads_a_refusal(url: str) -> None:
    evil = anthropic.Anthropic(
        base_url=url,
        api_key="unused",
        max_retries=0,
        default_headers={"host": f"evil.test:{_port(url)}"},
    )
    with pytest.raises(anthropic.APIStatusError) as refused:
        evil.messages.create(
            model="fake-model", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.status_code == 421
    body = refused.value.body
    assert isinstance(body, dict) and body["type"] == "error", body
    assert "server.allowed_hosts" in body["error"]["message"]

    client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as too_large:
        client.messages.create(
            model="fake-model",
            max_tokens=16,
            messages=[{"role": "user", "content": "x" * (2 * LIMIT)}],
        )
    assert too_large.value.status_code == 413
    body = too_large.value.body
    assert isinstance(body, dict), body
    assert body["error"] == {
        "type": "request_too_large",
        "message": f"Request body is larger than the limit of {LIMIT} bytes.",
    }


def test_the_ollama_client_reads_a_refusal(url: str) -> None:
    evil = ollama.Client(host=url, headers={"host": f"evil.test:{_port(url)}"})
    with pytest.raises(ollama.ResponseError) as refused:
        evil.list()
    assert refused.value.status_code == 421
    assert isinstance(refused.value.error, str), refused.value.error
    assert "server.allowed_hosts" in refused.value.error

    with pytest.raises(ollama.ResponseError) as too_large:
        ollama.Client(host=url).chat(
            model="fake-model", messages=[{"role": "user", "content": "x" * (2 * LIMIT)}]
        )
    assert too_large.value.status_code == 413
    assert too_large.value.error == f"Request body is larger than the limit of {LIMIT} bytes."
