"""Single-user mode only for direct loopback peers: a request carrying forwarding headers (a
reverse proxy on the same host) is not the local user, unless it comes from a trusted proxy
(``server.trusted_proxies``) for a loopback client; and the start-up line says which it is."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from chatgate.app import create_app
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

XRW = {"X-Requested-With": "tests"}
VISITOR = "203.0.113.7"
PROXIED = (
    {"X-Forwarded-For": VISITOR},
    {"X-Forwarded-For": "127.0.0.1"},  # not believed from an untrusted peer either
    {"Forwarded": f"for={VISITOR};proto=https"},
    {"X-Real-IP": VISITOR},
    {"X-Forwarded-Host": "chat.example.com", "X-Forwarded-Proto": "https"},
)


@pytest.fixture(scope="module")
def url(fake_server: FakeUpstream) -> Iterator[str]:
    """The default setup: loopback, no users, no admin key: single-user mode for local users."""
    with ServerThread(create_app(gateway_config(fake_server.base_url))) as base:
        yield base


def test_a_direct_local_request_is_the_implicit_admin(url: str) -> None:
    me = httpx.get(url + "/api/me")
    assert me.status_code == 200 and me.json()["single_user"] is True


@pytest.mark.parametrize("headers", PROXIED)
def test_a_proxied_request_is_nobody(url: str, headers: dict[str, str]) -> None:
    """A proxy on this host forwarding from the internet: its visitors are not the local user."""
    me = httpx.get(url + "/api/me", headers=headers)
    assert me.status_code == 401, me.text
    mint = httpx.post(url + "/admin/keys", json={"name": "pwned"}, headers={**headers, **XRW})
    assert mint.status_code == 401, mint.text
    assert httpx.get(url + "/api/conversations", headers=headers).status_code == 401
    assert httpx.get(url + "/admin/keys").json()["data"] == []


def test_trusted_proxy_for_a_loopback_client(fake_server: FakeUpstream) -> None:
    config = gateway_config(fake_server.base_url, server={"trusted_proxies": ["127.0.0.0/8"]})
    with ServerThread(create_app(config)) as base:
        local = httpx.get(base + "/api/me", headers={"X-Forwarded-For": "127.0.0.1"})
        assert local.status_code == 200 and local.json()["single_user"] is True
        for chain in (VISITOR, f"{VISITOR}, 127.0.0.1", f"127.0.0.1, {VISITOR}"):
            visitor = httpx.get(base + "/api/me", headers={"X-Forwarded-For": chain})
            assert visitor.status_code == 401, chain
        # A trusted proxy that names no client: not known to be local.
        assert httpx.get(base + "/api/me", headers={"X-Real-IP": "::1"}).status_code == 401


def test_client_addresses() -> None:
    from chatgate.api.peers import Peers

    def scope(peer: str, *headers: tuple[bytes, bytes]) -> dict[str, object]:
        return {"client": (peer, 1234), "headers": list(headers)}

    xff = b"x-forwarded-for"
    untrusted = Peers()
    assert untrusted.client(scope("10.0.0.5", (xff, b"1.2.3.4"))) == "10.0.0.5"
    assert untrusted.is_local(scope("127.0.0.1")) and untrusted.is_local(scope("::1"))
    assert not untrusted.is_local(scope("127.0.0.1", (xff, b"127.0.0.1")))
    assert not untrusted.is_local(scope("10.0.0.5"))
    assert not untrusted.is_local({"client": None, "headers": []})
    proxies = Peers(["10.0.0.0/8", "127.0.0.1"])
    assert proxies.client(scope("10.0.0.5", (xff, b"1.2.3.4, 10.0.0.9"))) == "1.2.3.4"
    assert proxies.client(scope("10.0.0.5", (xff, b"9.9.9.9, 1.2.3.4"))) == "1.2.3.4"
    assert proxies.client(scope("8.8.8.8", (xff, b"1.2.3.4"))) == "8.8.8.8"  # not a proxy
    assert proxies.client(scope("10.0.0.5")) == "10.0.0.5"
    assert proxies.is_local(scope("127.0.0.1", (xff, b"127.0.0.1")))
    assert not proxies.is_local(scope("127.0.0.1", (xff, b"127.0.0.1, 1.2.3.4")))
    host = b"x-forwarded-host"
    assert proxies.forwarded_host(scope("10.0.0.5", (host, b"chat.example.com"))) == (
        b"chat.example.com"
    )
    assert untrusted.forwarded_host(scope("10.0.0.5", (host, b"chat.example.com"))) is None


def _notice(caplog: pytest.LogCaptureFixture, config_url: str, **extra: object) -> list[str]:
    caplog.clear()
    app = create_app(gateway_config(config_url, **extra))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="chatgate"), ServerThread(app):
        pass
    return [
        f"{r.levelname} {r.getMessage()}"
        for r in caplog.records
        if "single-user mode" in r.getMessage()
    ]


def test_start_up_says_which_mode_and_why(
    fake_server: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    base = fake_server.base_url
    (line,) = _notice(caplog, base)
    assert line.startswith("WARNING single-user mode: on for direct requests from this machine")
    assert "forwarding headers" in line and "chatgate users create" in line
    (line,) = _notice(caplog, base, auth={"require_keys": True})
    assert line.startswith("INFO single-user mode: off (auth.require_keys is on)")
    (line,) = _notice(caplog, base, server={"host": "0.0.0.0"})
    assert line.startswith("INFO single-user mode: off (bound to 0.0.0.0")
    (line,) = _notice(caplog, base, auth={"single_user": "on"})
    assert line.startswith("WARNING single-user mode: ON for every request")
