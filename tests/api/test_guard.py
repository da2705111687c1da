"""The checks before every route (``api.guard``): the Host allow-list (DNS rebinding), foreign
Origins without a key, JSON-only bodies, on the hot path, FastAPI routes and the WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from robustness.rawhttp import Reply, request, ws_handshake_headers

from chatgate.app import create_app
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

CHAT = orjson.dumps({"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]})
SEED = orjson.dumps({"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]})
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def url(fake_server: FakeUpstream) -> Iterator[str]:
    """The default setup: loopback, no keys, no users (single-user mode), no admin key."""
    config = gateway_config(fake_server.base_url)
    with ServerThread(create_app(config)) as base:
        yield base


def call(url: str, method: str, path: str, **kw: Any) -> Reply:
    return asyncio.run(request(url, method, path, **kw))


def evil(url: str) -> dict[str, str]:
    port = url.rsplit(":", 1)[1]
    return {"host": f"evil.test:{port}", "origin": f"http://evil.test:{port}"}


# -- Host allow-list -----------------------------------------------------------------------------
def test_dns_rebinding_is_refused_everywhere(url: str) -> None:
    rebound = evil(url)
    for method, path, body in (
        ("POST", "/admin/keys", b'{"name": "pwned"}'),
        ("GET", "/api/conversations", None),
        ("GET", "/v1/models", None),
        ("POST", "/v1/chat/completions", CHAT),
        ("GET", "/", None),
    ):
        reply = call(url, method, path, headers={**rebound, **JSON}, body=body)
        assert reply.status == 421, (path, reply)
        assert reply.code == "host_not_allowed"
        assert b"server.allowed_hosts" in reply.body
    # The same minus the Origin: still the wrong Host.
    reply = call(url, "GET", "/api/conversations", headers={"host": rebound["host"]})
    assert reply.status == 421
    # And the WebSocket handshake.
    ws = call(url, "GET", "/api/ws", headers={**ws_handshake_headers(), **rebound})
    assert ws.status == 421
    # Nothing was made: the key list read the proper way is empty.
    assert httpx.get(url + "/admin/keys").json()["data"] == []


def test_loopback_names_are_served(url: str) -> None:
    port = url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
        assert call(url, "GET", "/health", headers={"host": host}).status == 200, host


def test_configured_hosts(fake_server: FakeUpstream) -> None:
    config = gateway_config(
        fake_server.base_url, server={"allowed_hosts": ["chat.example.com", ".corp.test"]}
    )
    with ServerThread(create_app(config)) as base:
        for host, status in (
            ("chat.example.com", 200),
            ("CHAT.example.com:443", 200),
            ("corp.test", 200),
            ("a.b.corp.test", 200),
            ("evilcorp.test", 421),
            ("localhost", 421),  # a list replaces the default
        ):
            assert call(base, "GET", "/health", headers={"host": host}).status == status, host


def test_host_list_rules() -> None:
    from chatgate.api.guard import HostList, default_hosts, host_name

    assert host_name(b"[::1]:8000") == "::1" and host_name("Example.COM.:80") == "example.com"
    assert default_hosts("127.0.0.1") == ["localhost", "127.0.0.1", "::1", "127.0.0.1"]
    assert default_hosts("0.0.0.0") is None and default_hosts("10.1.2.3") is None
    hosts = HostList(["a.test", ".b.test"])
    assert hosts.allows(b"a.test:1") and hosts.allows(b"x.b.test") and hosts.allows(b"b.test")
    assert not hosts.allows(b"xa.test") and not hosts.allows(b"b.test.evil")
    assert HostList(["*"]).allows(b"anything") and HostList(None).allows(b"anything")
    for _ in range(3000):  # made-up names are judged, and the memo stays bounded
        hosts.allows(f"n{_}.test".encode())
    assert len(hosts._memo) <= 1024


# -- cross-site requests -------------------------------------------------------------------------
def test_cross_site_simple_request_cannot_spend_credit(url: str, fake: FakeUpstream) -> None:
    """A page on another site posting text/plain (no preflight) must not reach the upstream."""
    for path in ("/v1/chat/completions", "/chatgpt/"):
        reply = call(
            url,
            "POST",
            path,
            headers={"content-type": "text/plain", "origin": "https://evil.test"},
            body=CHAT,
        )
        assert reply.status in (403, 415), (path, reply)
        # JSON with a foreign Origin and no key: refused too.
        reply = call(url, "POST", path, headers={**JSON, "origin": "https://evil.test"}, body=SEED)
        assert reply.status == 403 and b"needs an API key" in reply.body, (path, reply)
    assert fake.count() == 0


def test_non_json_bodies_are_415(url: str) -> None:
    for path in ("/v1/chat/completions", "/chatgpt/", "/api/auth/login", "/api/conversations"):
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"content-type": content_type} if content_type else {}
            reply = call(url, "POST", path, headers=headers, body=b'{"a": 1}')
            assert reply.status == 415, (path, content_type, reply)
            assert b"Content-Type: application/json" in reply.body  # in the door's shape
    from chatgate.api.guard import is_json

    assert is_json(b"application/json; charset=utf-8") and is_json(b"Application/JSON")
    assert is_json(b"application/merge-patch+json") and not is_json(b"text/json")


def test_same_origin_and_keyed_requests_pass(url: str) -> None:
    own = {**JSON, "origin": url}
    assert call(url, "POST", "/v1/chat/completions", headers=own, body=CHAT).status == 200
    # Another site's page with a key: it passed a CORS preflight to send Authorization, or
    # it is not a browser at all.
    keyed = {**JSON, "origin": "https://app.test", "authorization": "Bearer sk-anything"}
    assert call(url, "POST", "/v1/chat/completions", headers=keyed, body=CHAT).status == 200
    # Reads need no Origin check (the browser will not let the page read them anyway).
    assert call(url, "GET", "/v1/models", headers={"origin": "https://evil.test"}).status == 200
    # Bodiless requests need no content type.
    assert call(url, "GET", "/health").status == 200


def test_allowed_origins(fake_server: FakeUpstream) -> None:
    config = gateway_config(
        fake_server.base_url, server={"allowed_origins": ["https://ui.example.com/"]}
    )
    with ServerThread(create_app(config)) as base:
        ok = {**JSON, "origin": "https://ui.example.com"}
        assert call(base, "POST", "/v1/chat/completions", headers=ok, body=CHAT).status == 200
        bad = {**JSON, "origin": "https://ui.example.com.evil.test"}
        assert call(base, "POST", "/v1/chat/completions", headers=bad, body=CHAT).status == 403


def test_foreign_origin_websocket_is_refused(url: str) -> None:
    headers = {**ws_handshake_headers(), "origin": "https://evil.test"}
    assert call(url, "GET", "/api/ws", headers=headers).status == 403
    assert call(url, "GET", "/api/ws", headers=ws_handshake_headers()).status == 101
