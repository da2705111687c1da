"""Which proxy a URL goes through: the environment read as httpx (the openai SDK) reads it."""

from __future__ import annotations

import pytest
from httpx import URL
from httpx._utils import URLPattern, get_environment_proxies
from pydantic import ValidationError

from chatgate.config import Config, validation_error_to_config_error
from chatgate.providers.http1 import HTTP1Pool
from chatgate.providers.openai import HTTPConfig, OpenAIConfig, OpenAIProvider
from chatgate.providers.proxies import ProxyRules, parse_proxy
from tests.fakes.upstream import FakeUpstream

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD")

URLS = [
    "https://api.deepseek.com/v1/chat/completions",
    "https://deepseek.com",
    "http://wwwdeepseek.com",
    "https://api.openai.com:443/v1",
    "http://api.openai.com:8080/v1",
    "http://localhost:11434/v1",
    "http://127.0.0.1:8000",
    "http://10.1.2.3",
    "http://[::1]:8000",
    "https://gigachat.devices.sberbank.ru/api/v1",
    "http://internal.corp.example:9000",
]

ENVIRONMENTS: list[dict[str, str]] = [
    {},
    {"HTTPS_PROXY": "http://proxy:3128"},
    {"HTTPS_PROXY": "proxy:3128", "HTTP_PROXY": "http://other:8080"},
    {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2"},
    {"ALL_PROXY": "socks5://socks:1080", "HTTP_PROXY": "http://web:3128"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": "*"},
    {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "deepseek.com, localhost,127.0.0.1,::1"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": ".deepseek.com"},
    {"HTTP_PROXY": "http://p:1", "NO_PROXY": "api.openai.com:8080,10.0.0.0/8"},
    {"HTTP_PROXY": "http://p:1", "NO_PROXY": "http://internal.corp.example:9000"},
    {"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"},
    {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "sberbank.ru"},
]


def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _httpx_choice(url: str) -> str | None:
    """The proxy httpx's client (trust_env) takes for ``url``: its mounts, most specific first."""
    mounts = get_environment_proxies()
    for pattern in sorted(URLPattern(key) for key in mounts):
        if pattern.matches(URL(url)):
            return mounts[pattern.pattern]
    return None


@pytest.mark.parametrize(
    "env", ENVIRONMENTS, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items())
)
def test_agrees_with_httpx(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rules = ProxyRules.from_environment()
    for url in URLS:
        ours = rules.proxy_for(url)
        theirs = _httpx_choice(url)
        assert (ours.url if ours else None) == theirs, url


def test_no_proxy_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://p:1")
    monkeypatch.setenv("HTTP_PROXY", "http://p:1")
    monkeypatch.setenv("NO_PROXY", "example.com,.sub.org,10.0.0.1,localhost,host.net:8443")
    rules = ProxyRules.from_environment()
    direct = [
        "https://example.com",
        "https://api.example.com",
        "https://a.sub.org",
        "http://10.0.0.1:80",
        "http://localhost:1",
        "https://host.net:8443",
    ]
    proxied = [
        "https://wwwexample.com",
        "https://sub.org",  # a leading dot: subdomains only
        "http://10.0.0.2",
        "https://host.net",  # another port
        "https://api.openai.com",
    ]
    assert [rules.proxy_for(u) for u in direct] == [None] * len(direct)
    assert all(rules.proxy_for(u) is not None for u in proxied)


def test_lowercase_wins_and_empty_lowercase_unsets(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://upper:1")
    monkeypatch.setenv("https_proxy", "http://lower:2")
    found = ProxyRules.from_environment().proxy_for("https://x.io")
    assert found is not None and found.host == "lower"
    monkeypatch.setenv("https_proxy", "")
    assert ProxyRules.from_environment().proxy_for("https://x.io") is None


def test_parse_proxy_credentials_and_display() -> None:
    proxy = parse_proxy("http://us%40er:p%3Ass@proxy.corp:3128")
    assert (proxy.host, proxy.port, proxy.username, proxy.password) == (
        "proxy.corp",
        3128,
        "us@er",
        "p:ss",
    )
    assert proxy.authorization == "Basic dXNAZXI6cDpzcw=="  # base64("us@er:p:ss")
    assert proxy.display == "http://proxy.corp:3128"
    assert "p:ss" not in repr(proxy) and "p%3Ass" not in repr(proxy)
    assert "dXNAZXI6cDpzcw==" in proxy.secrets() and proxy.url in proxy.secrets()
    assert parse_proxy("proxy:8080").url == "http://proxy:8080"
    assert parse_proxy("socks5://s").port == 1080
    assert parse_proxy("http://nocreds:1").authorization is None


@pytest.mark.parametrize("bad", ["ftp://proxy:21", "http://", "http://host:notaport"])
def test_parse_proxy_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_proxy(bad)


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "ftp://proxy:21")
    with pytest.raises(ValueError, match="HTTPS_PROXY"):
        ProxyRules.from_environment()


def _config(**provider: object) -> Config:
    fields = {"type": "openai", "base_url": "https://api.example.com/v1", **provider}
    return Config.model_validate({"discover_env": False, "providers": {"up": fields}})


def test_provider_proxy_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    cfg = _config().providers["up"]
    assert isinstance(cfg, HTTPConfig)
    assert cfg.proxy_rules().proxy_for("https://api.example.com") == parse_proxy(
        "http://env-proxy:3128"
    )  # unset: the environment's
    own = _config(proxy="http://u:secret-pass@own:8080").providers["up"]
    assert isinstance(own, HTTPConfig)
    found = own.proxy_rules().proxy_for("http://anything.example:1")
    assert found is not None and found.display == "http://own:8080"
    assert "secret-pass" not in repr(own)  # a SecretStr, like api_keys
    for off in (None, "none", "NONE", ""):
        cfg = _config(proxy=off).providers["up"]
        assert isinstance(cfg, HTTPConfig)
        assert cfg.proxy_rules().proxy_for("https://api.example.com") is None


def test_bad_provider_proxy_is_a_config_error() -> None:
    with pytest.raises(ValidationError) as caught:
        _config(proxy="ftp://u:hidden-pass@proxy:21")
    shown = str(validation_error_to_config_error(caught.value))  # what start-up prints
    assert shown == "providers.up.proxy: proxy scheme `ftp` is not supported; use one of " + (
        "http, https, socks5, socks5h"
    )
    with pytest.raises(ValidationError, match="keepalive_expiry"):
        _config(keepalive_expiry=0)
    with pytest.raises(ValidationError, match="transport"):
        _config(transport="curl")


async def test_provider_settings_reach_its_pools(
    fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear(monkeypatch)
    cfg = OpenAIConfig(
        type="openai", base_url=fake.base_url + "/v1", keepalive_expiry=0.5, max_connections=3
    )
    provider = OpenAIProvider("up", cfg)
    await provider.start()
    try:
        assert await provider.list_models()
        pool = provider._transport.pool_for(fake.base_url)  # type: ignore[union-attr]
        assert isinstance(pool, HTTP1Pool)
        assert (pool.keepalive_expiry, pool.max_connections, pool.proxy) == (0.5, 3, None)
    finally:
        await provider.close()
