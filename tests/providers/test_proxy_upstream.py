"""Upstreams through a real HTTP proxy on loopback (proxy.py, started here).

The fake upstream is addressed as ``upstream.internal``: only the proxy resolves that name (to
127.0.0.1), so a request that reaches the fake went through the proxy, and one that skips the
proxy cannot reach it. https goes through ``CONNECT`` with TLS to ``upstream.internal`` inside
the tunnel (a certificate from a test CA, trusted through ``ca_bundle``).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
import trustme

from chatgate.app import create_app
from chatgate.errors import ConfigError, UpstreamError
from chatgate.providers.openai import OpenAIConfig, OpenAIProvider
from chatgate.providers.transport import Transport
from tests.conftest import gateway_config
from tests.fakes.proxy import LoopbackProxy, SocksProxy
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

USER, PASSWORD = "gate", "pr0xy-Pa55word-never-logged"
HELLO = {"messages": [{"role": "user", "content": "hi"}]}
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(scope="module")
def proxy() -> Iterator[LoopbackProxy]:
    with LoopbackProxy(auth=(USER, PASSWORD)) as running:
        yield running


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def plain() -> Iterator[FakeUpstream]:
    with FakeUpstream(chunks=3) as fake:
        yield fake


@pytest.fixture(scope="module")
def tls(ca: trustme.CA) -> Iterator[FakeUpstream]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("upstream.internal", "127.0.0.1").configure_cert(context)
    with FakeUpstream(ssl_context=context, chunks=3) as fake:
        yield fake


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def internal(fake: FakeUpstream) -> str:
    """The fake's URL under the name only the proxy resolves."""
    return fake.base_url.replace("127.0.0.1", "upstream.internal") + "/v1"


@asynccontextmanager
async def provider(base_url: str, **fields: Any) -> AsyncIterator[OpenAIProvider]:
    cfg = OpenAIConfig(
        type="openai", base_url=base_url, api_keys=["sk-upstream-key-1234"], **fields
    )
    upstream = OpenAIProvider("up", cfg)
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.close()


async def ask(upstream: OpenAIProvider) -> str:
    answer = await upstream.chat(HELLO, "fake-model")
    return str(answer["choices"][0]["message"]["content"])


async def ask_streaming(upstream: OpenAIProvider) -> str:
    text = ""
    async for batch in upstream.stream(HELLO, "fake-model"):
        for chunk in batch:
            for choice in chunk.get("choices", []):
                text += choice.get("delta", {}).get("content") or ""
    return text


@pytest.mark.parametrize("kind", ["http1", "httpx"])
async def test_http_upstream_through_the_proxy(
    proxy: LoopbackProxy, plain: FakeUpstream, kind: str
) -> None:
    async with provider(internal(plain), proxy=proxy.url, transport=kind) as upstream:
        assert await ask(upstream)
        assert await ask_streaming(upstream)
    assert plain.requests[-1]["headers"].get("Authorization") == "Bearer sk-upstream-key-1234"


@pytest.mark.parametrize("kind", ["http1", "httpx"])
async def test_https_upstream_through_connect(
    proxy: LoopbackProxy, tls: FakeUpstream, ca_file: Path, kind: str
) -> None:
    url = internal(tls)
    assert url.startswith("https://upstream.internal:")
    async with provider(url, proxy=proxy.url, ca_bundle=ca_file, transport=kind) as upstream:
        for _ in range(3):
            assert await ask(upstream)
        if kind == "http1":  # one tunnel, kept alive across the requests
            pool = upstream._transport.pool_for(url.removesuffix("/v1"))  # type: ignore[union-attr]
            assert len(pool._all) == 1  # type: ignore[union-attr]
        assert await ask_streaming(upstream)


async def test_without_the_proxy_the_upstream_is_unreachable(
    proxy: LoopbackProxy,
    plain: FakeUpstream,
    tls: FakeUpstream,
    ca_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    for url in (internal(plain), internal(tls)):
        async with provider(url, ca_bundle=ca_file) as upstream:  # the environment's proxy
            assert await ask(upstream)
        for off in (None, "none"):  # proxy: null / none turn it off for this provider
            async with provider(url, proxy=off, ca_bundle=ca_file) as upstream:
                with pytest.raises(UpstreamError, match="cannot connect"):
                    await ask(upstream)


async def test_no_proxy_bypasses_it(
    proxy: LoopbackProxy,
    plain: FakeUpstream,
    tls: FakeUpstream,
    ca_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.org, .internal")
    async with provider(internal(tls), ca_bundle=ca_file) as upstream:
        with pytest.raises(UpstreamError, match="cannot connect"):
            await ask(upstream)  # went direct: nobody else knows upstream.internal
    # and the other way round: a dead proxy, and a NO_PROXY host reached directly
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    async with provider(plain.base_url + "/v1") as upstream:
        with pytest.raises(UpstreamError, match="cannot connect"):
            await ask(upstream)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    async with provider(plain.base_url + "/v1") as upstream:
        assert await ask(upstream)


@pytest.mark.parametrize("kind", ["http1", "httpx"])
async def test_proxy_credentials_are_checked_and_never_shown(
    proxy: LoopbackProxy,
    plain: FakeUpstream,
    tls: FakeUpstream,
    ca_file: Path,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = proxy.url.replace(PASSWORD, PASSWORD[::-1])
    errors: list[str] = []
    for url in (internal(plain), internal(tls)):
        for proxy_url in (proxy.bare_url, wrong):
            async with provider(url, proxy=proxy_url, ca_bundle=ca_file, transport=kind) as up:
                with pytest.raises(UpstreamError) as caught:
                    await ask(up)
            errors.append(str(caught.value))
            assert "Proxy Authentication Required" in str(caught.value), str(caught.value)
        async with provider(url, proxy=proxy.url, ca_bundle=ca_file, transport=kind) as up:
            assert await ask(up)
    shown = "\n".join([*errors, caplog.text])
    for secret in (PASSWORD, PASSWORD[::-1], "Z2F0ZT"):  # "Z2F0ZT…": base64 of "gate:…"
        assert secret not in shown


async def test_transport_kind_and_bad_environment(
    proxy: LoopbackProxy, plain: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with provider(internal(plain), proxy="socks5://127.0.0.1:9", transport="http1") as up:
        with pytest.raises(UpstreamError, match="needs `transport: httpx`"):
            await ask(up)
    async with provider(internal(plain), proxy="socks5://127.0.0.1:9") as up:  # auto: httpx
        with pytest.raises(UpstreamError, match="cannot connect"):
            await ask(up)
        assert isinstance(up._transport, Transport)
        assert (
            type(
                up._transport.pool_for(plain.base_url.replace("127.0.0.1", "upstream.internal"))
            ).__name__
            == "HTTPXPool"
        )
    monkeypatch.setenv("HTTPS_PROXY", "ftp://proxy:21")
    with pytest.raises(ConfigError, match="HTTPS_PROXY"):
        async with provider(internal(plain)):
            pass


def test_gateway_through_the_proxy(
    proxy: LoopbackProxy,
    tls: FakeUpstream,
    ca_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """chatgate under uvicorn (uvloop) with the openai SDK in front, DeepSeek-like and GigaChat
    providers behind the proxy (GigaChat's OAuth too), over CONNECT tunnels."""
    caplog.set_level(logging.DEBUG)
    root = internal(tls).removesuffix("/v1")
    config = gateway_config(
        tls.base_url,
        providers={
            "behind": {
                "type": "openai",
                "base_url": root + "/v1",
                "api_keys": ["sk-behind-the-proxy-0123"],
                "models": ["fake-model"],
                "proxy": proxy.url,
                "ca_bundle": str(ca_file),
            },
            "giga": {
                "type": "gigachat",
                "base_url": root + "/api/v1",
                "auth_url": root + "/api/v2/oauth",
                "credentials": "fake-gigachat-credentials",
                "scope": "GIGACHAT_API_PERS",
                "models": ["GigaChat"],
                "proxy": proxy.url,
                "ca_bundle": str(ca_file),
            },
        },
        models={},
    )
    with ServerThread(create_app(config)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        hello = [{"role": "user", "content": "hi"}]
        answer = client.chat.completions.create(model="fake-model", messages=hello)  # type: ignore[arg-type]
        assert answer.choices[0].message.content
        streamed = client.chat.completions.create(
            model="fake-model",
            messages=hello,
            stream=True,  # type: ignore[arg-type]
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        giga = client.chat.completions.create(model="GigaChat", messages=hello)  # type: ignore[arg-type]
        assert giga.choices[0].message.content
    assert PASSWORD not in caplog.text


async def test_socks5_through_the_httpx_transport(
    plain: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy chatgate's own client does not speak: `auto` hands the origin to httpx."""
    caplog.set_level(logging.DEBUG)
    with SocksProxy(auth=(USER, PASSWORD)) as socks:
        async with provider(plain.base_url + "/v1", proxy=socks.url) as upstream:
            assert await ask(upstream)
            assert await ask_streaming(upstream)
            pool = upstream._transport.pool_for(plain.base_url)  # type: ignore[union-attr]
            assert type(pool).__name__ == "HTTPXPool"
        assert any(f"-> 127.0.0.1:{plain.port}" in line for line in socks.connections())
        wrong = socks.url.replace(PASSWORD, "not-the-password")
        async with provider(plain.base_url + "/v1", proxy=wrong) as upstream:
            with pytest.raises(UpstreamError) as caught:
                await ask(upstream)
    assert "not-the-password" not in str(caught.value)
    assert PASSWORD not in caplog.text and "not-the-password" not in caplog.text
